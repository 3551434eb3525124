/*
 * ringbridge.cuh — the device half of ringbridge.
 *
 * WHAT IT IS
 *   The kernel side of ringbridge's protocol: a persistent serve loop that
 *   takes requests from the host-to-kernel (H2K) ring, hands each one to a
 *   handler, and publishes the replies on the kernel-to-host (K2H) ring. Both
 *   rings and the control block live in one region of pinned, device-mapped
 *   host memory whose layout is defined by src/layout.rs; the numbers come
 *   from the generated ringbridge_layout.h, and every struct below is
 *   static_assert-ed against them (no constant is copied by hand).
 *
 *   The same source compiles under nvcc (one thread block on the GPU) and
 *   under a plain C++17 compiler (the host fallback, kernels/host/fallback.cpp,
 *   which runs it as a block of one thread on a CPU thread).
 *
 * USING IT IN YOUR OWN KERNEL
 *   Put ringbridge.cuh and ringbridge_layout.h on the include path, write a
 *   handler, and define an entry point:
 *
 *     #include "ringbridge.cuh"
 *     struct my_handler {
 *         // Built once per thread from the control block's `param` word.
 *         RB_DEVICE explicit my_handler(uint64_t param) : k(param) {}
 *         // 0: reply (set out.len, write out_payload); > 0: error reply with
 *         // that code in flags; < 0: fatal, the kernel stops (RB_ERR_HANDLER).
 *         RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload,
 *                                  rb_msg_header& out, uint8_t* out_payload,
 *                                  uint32_t out_capacity) { ... }
 *         uint64_t k;
 *     };
 *     RB_KERNEL_ENTRY(my_kernel, my_handler)
 *
 *   which defines
 *     extern "C" __global__ void my_kernel(rb_control* ctl, rb_ring* h2k, rb_ring* k2h);
 *   Launch it with a grid of ONE block, any block size up to 1024 (one
 *   request per thread per batch). Load it with ringbridge's CUDA backend
 *   by entry name. in_payload and out_payload point straight into the slots
 *   (16-byte aligned): read and write them with rb_ld16 / rb_st16 (or
 *   rb_map16), in whole 16-byte chunks up to rb_round16(len); both slots are
 *   large enough. See kernels/handlers.h for the built-in handlers.
 *
 * MEMORY ORDER, IN BRIEF (measured facts: see gpu-facts.md)
 *   - Thread 0 polls the peer's counter with an ACQUIRE load at system scope
 *     (ld.acquire.sys). It orders every later load of the block (after the
 *     block barrier) after the peer's slot writes, and invalidates the SM's
 *     L1, so the payload is then read with PLAIN, weak, 16-byte loads that
 *     are all in flight together (volatile loads would each wait a PCIe
 *     round trip).
 *   - Replies are written with plain 16-byte stores by every thread; a block
 *     barrier then a RELEASE store at system scope (st.release.sys) of the
 *     K2H head by thread 0 publishes them all: the barrier puts the other
 *     threads' stores before thread 0's release in causality order, and a
 *     release is cumulative, so the host that acquires the head sees them.
 *   - The H2K tail is released after the batch's slots were read, so the
 *     host never overwrites a slot that is still being read.
 *   - terminate, heartbeat and the progress counters are RELAXED: they order
 *     nothing; only the final status store is a release.
 *   - No __threadfence_system() (membar.sys / fence.sc.sys) anywhere: a full
 *     system fence costs several microseconds against host memory.
 *   The host fallback uses the C++ equivalents (__atomic_* with ACQUIRE /
 *   RELEASE / RELAXED), and the Rust side accesses the same words with
 *   AtomicU64 acquire / release / relaxed.
 */
#ifndef RINGBRIDGE_CUH
#define RINGBRIDGE_CUH

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ringbridge_layout.h"

#if defined(__CUDACC__)
/* nvcc: the device build. */
#define RB_ON_GPU 1
/* Functions the serve loop and handlers use. */
#define RB_DEVICE __device__ inline
/* Small primitives, always inlined so the whole loop lives in the entry. */
#define RB_INLINE __device__ __forceinline__
/* Block-shared state: one copy per thread block. */
#define RB_BLOCK_SHARED __shared__
#else
/* A plain C++ compiler: the host fallback, one thread = one block. */
#define RB_ON_GPU 0
#include <sched.h>
#include <time.h>
#define RB_DEVICE inline
#define RB_INLINE inline
/* A local of the (only) thread of the block. */
#define RB_BLOCK_SHARED
#endif

/* ------------------------------------------------------------------------ */
/* The shared structs, mirroring src/layout.rs.                             */
/* ------------------------------------------------------------------------ */

/* Header of one ring, followed by `capacity` slots of `slot_size` bytes. */
struct alignas(RB_LINE) rb_ring {
    uint64_t head; /* written by the producer only (release) */
    uint64_t pad_head[(RB_RING_OFF_TAIL - RB_RING_OFF_HEAD) / 8 - 1];
    uint64_t tail; /* written by the consumer only (release) */
    uint64_t pad_tail[(RB_RING_OFF_MAGIC - RB_RING_OFF_TAIL) / 8 - 1];
    uint64_t magic;
    uint64_t version;
    uint64_t capacity; /* slots, a power of two */
    uint64_t mask;     /* capacity - 1 */
    uint64_t slot_size;
    uint64_t pad_cfg[(RB_RING_HEADER_SIZE - RB_RING_OFF_SLOT_SIZE) / 8 - 1];
};

/* Header of one slot; the payload follows it. 16 = one vector access. */
struct alignas(16) rb_msg_header {
    uint64_t seq;         /* position of the message in its ring */
    uint64_t correlation; /* reply: seq of the request it answers */
    uint32_t kind;        /* RB_KIND_* */
    uint32_t len;         /* payload bytes */
    uint32_t flags;       /* free for the application; echoed by default */
    uint32_t reserved;    /* zero */
};

/* Control block of one bridge. */
struct alignas(RB_LINE) rb_control {
    uint64_t terminate; /* host only */
    uint64_t pad_host[(RB_CTL_OFF_STATUS - RB_CTL_OFF_TERMINATE) / 8 - 1];
    uint64_t status; /* kernel only: RB_STATUS_* */
    uint64_t error_code;
    uint64_t error_detail;
    uint64_t heartbeat;
    uint64_t consumed;
    uint64_t produced;
    uint64_t pad_kernel[(RB_CTL_OFF_MAGIC - RB_CTL_OFF_PRODUCED) / 8 - 1];
    uint64_t magic;
    uint64_t version;
    uint64_t param;
    uint64_t check_interval;
    uint64_t pad_cfg[(RB_CONTROL_SIZE - RB_CTL_OFF_CHECK_INTERVAL) / 8 - 1];
};

static_assert(sizeof(rb_ring) == RB_RING_HEADER_SIZE, "rb_ring size");
static_assert(alignof(rb_ring) == RB_LINE, "rb_ring alignment");
static_assert(offsetof(rb_ring, head) == RB_RING_OFF_HEAD, "rb_ring.head");
static_assert(offsetof(rb_ring, tail) == RB_RING_OFF_TAIL, "rb_ring.tail");
static_assert(offsetof(rb_ring, magic) == RB_RING_OFF_MAGIC, "rb_ring.magic");
static_assert(offsetof(rb_ring, version) == RB_RING_OFF_VERSION, "rb_ring.version");
static_assert(offsetof(rb_ring, capacity) == RB_RING_OFF_CAPACITY, "rb_ring.capacity");
static_assert(offsetof(rb_ring, mask) == RB_RING_OFF_MASK, "rb_ring.mask");
static_assert(offsetof(rb_ring, slot_size) == RB_RING_OFF_SLOT_SIZE, "rb_ring.slot_size");

static_assert(sizeof(rb_msg_header) == RB_MSG_HEADER_SIZE, "rb_msg_header size");
static_assert(RB_MSG_HEADER_SIZE % 16 == 0, "the payload must start 16-byte aligned");
static_assert(offsetof(rb_msg_header, seq) == RB_MSG_OFF_SEQ, "rb_msg_header.seq");
static_assert(offsetof(rb_msg_header, correlation) == RB_MSG_OFF_CORRELATION, "rb_msg_header.correlation");
static_assert(offsetof(rb_msg_header, kind) == RB_MSG_OFF_KIND, "rb_msg_header.kind");
static_assert(offsetof(rb_msg_header, len) == RB_MSG_OFF_LEN, "rb_msg_header.len");
static_assert(offsetof(rb_msg_header, flags) == RB_MSG_OFF_FLAGS, "rb_msg_header.flags");
static_assert(offsetof(rb_msg_header, reserved) == RB_MSG_OFF_RESERVED, "rb_msg_header.reserved");

static_assert(sizeof(rb_control) == RB_CONTROL_SIZE, "rb_control size");
static_assert(alignof(rb_control) == RB_LINE, "rb_control alignment");
static_assert(offsetof(rb_control, terminate) == RB_CTL_OFF_TERMINATE, "rb_control.terminate");
static_assert(offsetof(rb_control, status) == RB_CTL_OFF_STATUS, "rb_control.status");
static_assert(offsetof(rb_control, error_code) == RB_CTL_OFF_ERROR_CODE, "rb_control.error_code");
static_assert(offsetof(rb_control, error_detail) == RB_CTL_OFF_ERROR_DETAIL, "rb_control.error_detail");
static_assert(offsetof(rb_control, heartbeat) == RB_CTL_OFF_HEARTBEAT, "rb_control.heartbeat");
static_assert(offsetof(rb_control, consumed) == RB_CTL_OFF_CONSUMED, "rb_control.consumed");
static_assert(offsetof(rb_control, produced) == RB_CTL_OFF_PRODUCED, "rb_control.produced");
static_assert(offsetof(rb_control, magic) == RB_CTL_OFF_MAGIC, "rb_control.magic");
static_assert(offsetof(rb_control, version) == RB_CTL_OFF_VERSION, "rb_control.version");
static_assert(offsetof(rb_control, param) == RB_CTL_OFF_PARAM, "rb_control.param");
static_assert(offsetof(rb_control, check_interval) == RB_CTL_OFF_CHECK_INTERVAL, "rb_control.check_interval");

/* ------------------------------------------------------------------------ */
/* Codes of the device half (mirrored in src/kernels.rs, tested there).     */
/* ------------------------------------------------------------------------ */

/* error_detail of RB_ERR_BAD_MAGIC: which check failed. */
#define RB_BAD_CONTROL 1ull        /* control block magic or version */
#define RB_BAD_CHECK_INTERVAL 2ull /* check_interval zero or not a power of two */
#define RB_BAD_H2K 3ull            /* H2K header: magic, version, capacity, mask or slot_size */
#define RB_BAD_K2H 4ull            /* K2H header: likewise */

/* error_detail of RB_ERR_HANDLER for a handler that returned 0 with
   out.len > out_capacity: this bit | out.len. (For a negative return code
   the detail is -code, below 2^32.) */
#define RB_DETAIL_REPLY_TOO_LONG (1ull << 32)

/* A handler returning this fails the kernel with RB_ERR_HANDLER_PANICKED
   (detail 0) instead of RB_ERR_HANDLER: the fallback's Rust callback
   returns it after catching a panic. */
#define RB_HANDLER_PANICKED INT32_MIN

/* ------------------------------------------------------------------------ */
/* Memory-order primitives on one 64-bit word of the shared region.        */
/* ------------------------------------------------------------------------ */

#if RB_ON_GPU
/* The region is mapped host memory, a global-space address: convert the
   generic pointer so the .global instruction gets a global address. */
RB_INLINE uint64_t rb_global(const void* p) { return (uint64_t)__cvta_generic_to_global(p); }
#endif

/* ACQUIRE, system scope: for the peer's counter. Later loads (this thread's,
   and the block's after a barrier) see every write the peer made before its
   release of this value. */
RB_INLINE uint64_t rb_ld_acquire(const uint64_t* p) {
#if RB_ON_GPU
    uint64_t v;
    asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(rb_global(p)) : "memory");
    return v;
#else
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#endif
}

/* RELEASE, system scope: for our own counter and the final status. Every
   earlier load and store (cumulatively: the block's, after a barrier) is
   visible before the new value is. */
RB_INLINE void rb_st_release(uint64_t* p, uint64_t v) {
#if RB_ON_GPU
    asm volatile("st.release.sys.global.u64 [%0], %1;" : : "l"(rb_global(p)), "l"(v) : "memory");
#else
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
#endif
}

/* RELAXED, system scope: a single-copy-atomic word that orders nothing
   (terminate, heartbeat, progress counters, configuration read at start). */
RB_INLINE uint64_t rb_ld_relaxed(const uint64_t* p) {
#if RB_ON_GPU
    uint64_t v;
    asm volatile("ld.relaxed.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(rb_global(p)) : "memory");
    return v;
#else
    return __atomic_load_n(p, __ATOMIC_RELAXED);
#endif
}

RB_INLINE void rb_st_relaxed(uint64_t* p, uint64_t v) {
#if RB_ON_GPU
    asm volatile("st.relaxed.sys.global.u64 [%0], %1;" : : "l"(rb_global(p)), "l"(v) : "memory");
#else
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
#endif
}

/* ------------------------------------------------------------------------ */
/* Plain (weak) 16-byte accesses to slots: ordered by the acquire/release   */
/* of the counters, never volatile (volatile loads serialise over PCIe).    */
/* ------------------------------------------------------------------------ */

#if RB_ON_GPU
typedef uint4 rb_vec16;
RB_INLINE rb_vec16 rb_ld16(const void* p) { return *static_cast<const uint4*>(p); }
RB_INLINE void rb_st16(void* p, rb_vec16 v) { *static_cast<uint4*>(p) = v; }
RB_INLINE float rb_u32_as_f32(uint32_t x) { return __uint_as_float(x); }
RB_INLINE uint32_t rb_f32_as_u32(float x) { return __float_as_uint(x); }
#else
struct alignas(16) rb_vec16 {
    uint32_t x, y, z, w;
};
RB_INLINE rb_vec16 rb_ld16(const void* p) {
    rb_vec16 v;
    memcpy(&v, p, 16);
    return v;
}
RB_INLINE void rb_st16(void* p, rb_vec16 v) { memcpy(p, &v, 16); }
RB_INLINE float rb_u32_as_f32(uint32_t x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}
RB_INLINE uint32_t rb_f32_as_u32(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}
#endif

/* `len` rounded up to whole 16-byte chunks. */
RB_INLINE uint32_t rb_round16(uint32_t len) { return (len + 15u) & ~15u; }

#if RB_ON_GPU
#define RB_UNROLL _Pragma("unroll")
#else
#define RB_UNROLL _Pragma("GCC unroll 4")
#endif

/* Chunks loaded before any is stored: in_payload and out_payload may alias
   as far as the compiler knows, so a load after a store could not be issued
   early; grouping keeps up to 4 loads (64 bytes) in flight together. */
#define RB_MAP_GROUP 4u

/* out[i] = f(in[i]) for every 16-byte chunk of the first rb_round16(len)
   bytes. Plain loads and stores, RB_MAP_GROUP loads in flight at a time. */
template <class F>
RB_INLINE void rb_map16(const uint8_t* in, uint8_t* out, uint32_t len, F f) {
    for (uint32_t off = 0; off < len; off += 16u * RB_MAP_GROUP) {
        rb_vec16 v[RB_MAP_GROUP] = {};
        RB_UNROLL
        for (uint32_t j = 0; j < RB_MAP_GROUP; ++j) {
            if (off + 16u * j < len) v[j] = rb_ld16(in + off + 16u * j);
        }
        RB_UNROLL
        for (uint32_t j = 0; j < RB_MAP_GROUP; ++j) {
            if (off + 16u * j < len) rb_st16(out + off + 16u * j, f(v[j]));
        }
    }
}

RB_INLINE void rb_load_header(rb_msg_header* h, const uint8_t* slot) {
    const rb_vec16 a = rb_ld16(slot);
    const rb_vec16 b = rb_ld16(slot + 16);
    memcpy(reinterpret_cast<uint8_t*>(h), &a, 16);
    memcpy(reinterpret_cast<uint8_t*>(h) + 16, &b, 16);
}

RB_INLINE void rb_store_header(uint8_t* slot, const rb_msg_header* h) {
    rb_vec16 a, b;
    memcpy(&a, reinterpret_cast<const uint8_t*>(h), 16);
    memcpy(&b, reinterpret_cast<const uint8_t*>(h) + 16, 16);
    rb_st16(slot, a);
    rb_st16(slot + 16, b);
}

/* Slot of counter value `pos`. */
RB_INLINE uint8_t* rb_slot(rb_ring* r, uint64_t pos, uint64_t mask, uint64_t slot_size) {
    return reinterpret_cast<uint8_t*>(r) + RB_RING_HEADER_SIZE + (pos & mask) * slot_size;
}

/* ------------------------------------------------------------------------ */
/* The block abstraction: the serve loop runs as one block on the GPU and   */
/* as a block of one thread on the host.                                    */
/* ------------------------------------------------------------------------ */

RB_INLINE uint32_t rb_thread_index() {
#if RB_ON_GPU
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
#else
    return 0;
#endif
}

RB_INLINE uint32_t rb_block_size() {
#if RB_ON_GPU
    return blockDim.x * blockDim.y * blockDim.z;
#else
    return 1;
#endif
}

RB_INLINE bool rb_first_block() {
#if RB_ON_GPU
    return blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0;
#else
    return true;
#endif
}

/* Block barrier; also orders the block-shared state. */
RB_INLINE void rb_block_sync() {
#if RB_ON_GPU
    __syncthreads();
#endif
}

/* *p = min(*p, v) on block-shared state, from any thread of the block. */
RB_INLINE void rb_block_min_u32(uint32_t* p, uint32_t v) {
#if RB_ON_GPU
    atomicMin(reinterpret_cast<unsigned int*>(p), v);
#else
    if (v < *p) *p = v;
#endif
}

/* ------------------------------------------------------------------------ */
/* Idle policy.                                                             */
/* ------------------------------------------------------------------------ */

#if !RB_ON_GPU
/* Host: after this many consecutive idle polls, yield the CPU each poll... */
#define RB_HOST_YIELD_AFTER 4096u
/* ...and after this many, sleep RB_HOST_SLEEP_NS each poll, so an idle
   fallback thread does not starve a small machine. */
#define RB_HOST_SLEEP_AFTER 65536u
#define RB_HOST_SLEEP_NS 30000
#endif

/* One idle poll found nothing to do. On the GPU: pure spin. Each poll is an
   acquire load of host memory, a PCIe round trip of about a microsecond, so
   the loop is already throttled to one outstanding 8-byte read; a
   __nanosleep would only add its own latency to the next message, and the SM
   is reserved for this block anyway. */
RB_INLINE void rb_idle(uint32_t& idle) {
#if RB_ON_GPU
    (void)idle;
#else
    if (idle < RB_HOST_SLEEP_AFTER) ++idle;
    if (idle >= RB_HOST_SLEEP_AFTER) {
        struct timespec ts;
        ts.tv_sec = 0;
        ts.tv_nsec = RB_HOST_SLEEP_NS;
        nanosleep(&ts, nullptr);
    } else if (idle >= RB_HOST_YIELD_AFTER) {
        sched_yield();
    }
#endif
}

/* Whether the host fallback is backing off: then it checks terminate on every
   poll (a cache-line read on the host), so a sleeping thread still stops
   promptly whatever check_interval is. */
RB_INLINE bool rb_backing_off(uint32_t idle) {
#if RB_ON_GPU
    (void)idle;
    return false;
#else
    return idle >= RB_HOST_YIELD_AFTER;
#endif
}

/* ------------------------------------------------------------------------ */
/* Control-block helpers (thread 0 only).                                   */
/* ------------------------------------------------------------------------ */

/* Whether a ring header can be trusted (magic, version, power-of-two
   capacity with its mask, power-of-two slot size within bounds). */
RB_INLINE bool rb_ring_ok(const rb_ring* r) {
    /* RELAXED: written once by the host before the launch, which orders them. */
    const uint64_t magic = rb_ld_relaxed(&r->magic);
    const uint64_t version = rb_ld_relaxed(&r->version);
    const uint64_t cap = rb_ld_relaxed(&r->capacity);
    const uint64_t mask = rb_ld_relaxed(&r->mask);
    const uint64_t slot = rb_ld_relaxed(&r->slot_size);
    return magic == RB_MAGIC && version == RB_LAYOUT_VERSION && cap != 0 && (cap & (cap - 1)) == 0 &&
           mask == cap - 1 && slot >= RB_MIN_SLOT_SIZE && slot <= RB_MAX_SLOT_SIZE && (slot & (slot - 1)) == 0;
}

/* Progress words for watchdogs and humans: heartbeat, and consumed/produced
   as the absolute ring counters (H2K tail, K2H head). RELAXED: they order
   nothing. */
RB_INLINE void rb_publish_progress(rb_control* ctl, uint64_t beat, uint64_t consumed, uint64_t produced) {
    rb_st_relaxed(&ctl->heartbeat, beat);
    rb_st_relaxed(&ctl->consumed, consumed);
    rb_st_relaxed(&ctl->produced, produced);
}

/* Final status. The error words are RELAXED; the status store is a RELEASE
   after them, so a host that acquires status sees the error words and the
   last progress counters. */
RB_INLINE uint64_t rb_finish(rb_control* ctl, uint64_t status, uint64_t code, uint64_t detail) {
    if (status == RB_STATUS_FAILED) {
        rb_st_relaxed(&ctl->error_code, code);
        rb_st_relaxed(&ctl->error_detail, detail);
    }
    rb_st_release(&ctl->status, status);
    return status;
}

/* State thread 0 shares with the block through block-shared memory. */
struct rb_block_state {
    uint64_t h2k_tail;     /* position of the batch's first request */
    uint64_t k2h_head;     /* position of the batch's first reply */
    uint64_t h2k_mask, h2k_slot_size, k2h_mask, k2h_slot_size; /* read once */
    uint64_t fatal_code, fatal_detail; /* the failing thread's error */
    uint32_t n;            /* requests in the batch, <= block size */
    uint32_t stop;         /* 0: serve the batch; else the final RB_STATUS_* */
    uint32_t fatal_index;  /* lowest failing thread of the batch, or RB_NO_FATAL */
};
#define RB_NO_FATAL 0xFFFFFFFFu

/* ------------------------------------------------------------------------ */
/* The serve loop.                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Serves until the host sets ctl->terminate (returns RB_STATUS_STOPPED) or an
 * error stops it (returns RB_STATUS_FAILED; ctl->error_code/error_detail say
 * why). Every thread of the block must call it; a block other than the first
 * of the grid returns RB_STATUS_LAUNCHING at once and touches nothing.
 *
 * Requests must have seq == their H2K position, kind == RB_KIND_REQUEST and
 * len <= H2K slot_size - RB_MSG_HEADER_SIZE; anything else is
 * RB_ERR_RING_CORRUPTED (detail = that position). A reply has seq = its K2H
 * position, correlation = the request's seq, flags = the request's flags
 * unless the handler changes them. The K2H ring full is back-pressure: the
 * loop waits (still watching terminate), it never drops a reply. On a fatal
 * error nothing of the failing batch is published.
 */
template <class Handler>
RB_INLINE int rb_serve(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, Handler& handler) {
    if (!rb_first_block()) return (int)RB_STATUS_LAUNCHING;
    const uint32_t tid = rb_thread_index();
    const uint32_t nthreads = rb_block_size();
    RB_BLOCK_SHARED rb_block_state sh;

    /* Thread 0's own state: the counters it owns and caches of the peer's. */
    uint64_t h2k_tail = 0;   /* ours: requests consumed */
    uint64_t h2k_head = 0;   /* cache of the host's H2K head */
    uint64_t k2h_head = 0;   /* ours: replies published */
    uint64_t k2h_tail = 0;   /* cache of the host's K2H tail */
    uint64_t h2k_cap = 0, k2h_cap = 0, check_mask = 0, iter = 0, beat = 0;
    uint32_t idle = 0;
    uint32_t start_failed = 0; /* thread 0: the final status if the start checks failed */

    if (tid == 0) {
        sh.stop = 0;
        sh.n = 0;
        sh.fatal_index = RB_NO_FATAL;
        uint64_t bad = 0;
        /* RELAXED reads of words the host wrote before the launch. */
        const uint64_t interval = rb_ld_relaxed(&ctl->check_interval);
        if (rb_ld_relaxed(&ctl->magic) != RB_MAGIC || rb_ld_relaxed(&ctl->version) != RB_LAYOUT_VERSION) {
            bad = RB_BAD_CONTROL;
        } else if (interval == 0 || (interval & (interval - 1)) != 0) {
            bad = RB_BAD_CHECK_INTERVAL;
        } else if (!rb_ring_ok(h2k)) {
            bad = RB_BAD_H2K;
        } else if (!rb_ring_ok(k2h)) {
            bad = RB_BAD_K2H;
        }
        if (bad != 0) {
            start_failed = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_BAD_MAGIC, bad);
        } else {
            check_mask = interval - 1;
            h2k_cap = rb_ld_relaxed(&h2k->capacity);
            k2h_cap = rb_ld_relaxed(&k2h->capacity);
            sh.h2k_mask = h2k_cap - 1;
            sh.k2h_mask = k2h_cap - 1;
            sh.h2k_slot_size = rb_ld_relaxed(&h2k->slot_size);
            sh.k2h_slot_size = rb_ld_relaxed(&k2h->slot_size);
            /* RELAXED: our own counters, only we write them. */
            h2k_tail = rb_ld_relaxed(&h2k->tail);
            k2h_head = rb_ld_relaxed(&k2h->head);
            h2k_head = h2k_tail; /* "empty": the first poll acquires the real head */
            /* ACQUIRE: the host's K2H tail; reply slots below it are free. */
            k2h_tail = rb_ld_acquire(&k2h->tail);
            beat = rb_ld_relaxed(&ctl->heartbeat);
            if (k2h_head - k2h_tail > k2h_cap) {
                start_failed = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, k2h_tail);
            } else {
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                /* RELEASE: the host that acquires RUNNING sees the progress words. */
                rb_st_release(&ctl->status, RB_STATUS_RUNNING);
            }
        }
    }

    for (;;) {
        if (tid == 0) {
            uint32_t stop = start_failed;
            uint64_t n = 0;
            while (stop == 0) {
                /* terminate and heartbeat: every check_interval iterations,
                   so an idle poll costs one PCIe read, not two. */
                ++iter;
                if ((iter & check_mask) == 0 || rb_backing_off(idle)) {
                    rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                    /* RELAXED: the stop request orders nothing; the batch
                       being served is already published. */
                    if (rb_ld_relaxed(&ctl->terminate) != 0) {
                        stop = (uint32_t)rb_finish(ctl, RB_STATUS_STOPPED, 0, 0);
                        break;
                    }
                }
                uint64_t avail = h2k_head - h2k_tail;
                if (avail == 0) {
                    /* ACQUIRE: the slots below the head are written. */
                    const uint64_t head = rb_ld_acquire(&h2k->head);
                    if (head - h2k_tail > h2k_cap) { /* backwards or past a full ring */
                        rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                        stop = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, head);
                        break;
                    }
                    h2k_head = head;
                    avail = head - h2k_tail;
                    if (avail == 0) {
                        rb_idle(idle);
                        continue;
                    }
                }
                uint64_t room = k2h_cap - (k2h_head - k2h_tail);
                if (room == 0) {
                    /* ACQUIRE: the host has finished reading the slots below its tail. */
                    const uint64_t tail = rb_ld_acquire(&k2h->tail);
                    if (k2h_head - tail > k2h_cap) { /* tail ahead of our head, or backwards */
                        rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                        stop = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, tail);
                        break;
                    }
                    k2h_tail = tail;
                    room = k2h_cap - (k2h_head - k2h_tail);
                    if (room == 0) { /* back-pressure: wait, never drop */
                        rb_idle(idle);
                        continue;
                    }
                }
                idle = 0;
                n = avail < room ? avail : room;
                if (n > nthreads) n = nthreads;
                break;
            }
            sh.stop = stop;
            sh.n = (uint32_t)n;
            sh.h2k_tail = h2k_tail;
            sh.k2h_head = k2h_head;
        }
        rb_block_sync(); /* broadcast the batch (block-shared memory) */
        if (sh.stop != 0) return (int)sh.stop;

        const uint32_t n = sh.n;
        uint64_t my_code = 0, my_detail = 0;
        if (tid < n) {
            const uint64_t in_pos = sh.h2k_tail + tid;
            const uint64_t out_pos = sh.k2h_head + tid;
            const uint8_t* in_slot = rb_slot(h2k, in_pos, sh.h2k_mask, sh.h2k_slot_size);
            uint8_t* out_slot = rb_slot(k2h, out_pos, sh.k2h_mask, sh.k2h_slot_size);
            const uint32_t in_cap = (uint32_t)(sh.h2k_slot_size - RB_MSG_HEADER_SIZE);
            const uint32_t out_cap = (uint32_t)(sh.k2h_slot_size - RB_MSG_HEADER_SIZE);
            rb_msg_header in;
            rb_load_header(&in, in_slot); /* plain 16-byte loads, after the acquire + barrier */
            if (in.seq != in_pos || in.kind != RB_KIND_REQUEST || in.len > in_cap) {
                my_code = RB_ERR_RING_CORRUPTED;
                my_detail = in_pos;
            } else {
                rb_msg_header out;
                out.seq = out_pos;
                out.correlation = in.seq;
                out.kind = RB_KIND_REPLY;
                out.len = 0;
                out.flags = in.flags;
                out.reserved = 0;
                const int rc = handler(in, in_slot + RB_MSG_HEADER_SIZE, out, out_slot + RB_MSG_HEADER_SIZE, out_cap);
                if (rc == 0) {
                    out.kind = RB_KIND_REPLY;
                    if (out.len > out_cap) {
                        my_code = RB_ERR_HANDLER;
                        my_detail = RB_DETAIL_REPLY_TOO_LONG | out.len;
                    }
                } else if (rc > 0) {
                    out.kind = RB_KIND_ERROR;
                    out.flags = (uint32_t)rc;
                    out.len = 0;
                } else if (rc == RB_HANDLER_PANICKED) {
                    my_code = RB_ERR_HANDLER_PANICKED;
                    my_detail = 0;
                } else {
                    my_code = RB_ERR_HANDLER;
                    my_detail = (uint64_t)(-(int64_t)rc);
                }
                out.seq = out_pos;
                out.correlation = in.seq;
                out.reserved = 0;
                if (my_code == 0) rb_store_header(out_slot, &out); /* plain 16-byte stores */
            }
            if (my_code != 0) rb_block_min_u32(&sh.fatal_index, tid);
        }
        /* Every reply slot of the batch is written and every request slot read. */
        rb_block_sync();

        if (sh.fatal_index != RB_NO_FATAL) { /* block-uniform */
            if (tid == sh.fatal_index) {
                sh.fatal_code = my_code;
                sh.fatal_detail = my_detail;
            }
            rb_block_sync();
            if (tid == 0) {
                /* Publish nothing of this batch: the counters stay put. */
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                rb_finish(ctl, RB_STATUS_FAILED, sh.fatal_code, sh.fatal_detail);
            }
            return (int)RB_STATUS_FAILED;
        }

        if (tid == 0) {
            /* RELEASE, system scope: publishes the batch's replies. The
               barrier above ordered every thread's reply stores before this
               thread's next operations (causality order), and a release is
               cumulative over what precedes it in that order, so a host that
               acquires the new head sees all n reply slots. */
            k2h_head += n;
            rb_st_release(&k2h->head, k2h_head);
            /* RELEASE: the block's loads of the request slots are done (the
               barrier again), so the host may now reuse them. */
            h2k_tail += n;
            rb_st_release(&h2k->tail, h2k_tail);
        }
    }
}

#if RB_ON_GPU
/*
 * Defines a persistent-kernel entry point serving `HandlerType`:
 *   extern "C" __global__ void name(rb_control* ctl, rb_ring* h2k, rb_ring* k2h)
 * Each thread builds its handler from ctl->param (RELAXED: written before the
 * launch), then serves. __launch_bounds__(1024): any block size up to 1024
 * launches. Write it at the start of a line: build.rs lists an image's entry
 * points from the `RB_KERNEL_ENTRY(` lines of its .cu file.
 */
#define RB_KERNEL_ENTRY(name, HandlerType)                                                           \
    extern "C" __global__ void __launch_bounds__(1024) name(rb_control* ctl, rb_ring* h2k, rb_ring* k2h) { \
        HandlerType handler(rb_ld_relaxed(&ctl->param));                                             \
        (void)rb_serve(ctl, h2k, k2h, handler);                                                      \
    }
#endif

#endif /* RINGBRIDGE_CUH */
