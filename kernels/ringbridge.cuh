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
 *   Launch it with one block per region (one for a bridge; N for a
 *   striped group, where block b serves region b: rb_select_stripe), any
 *   block size up to 1024 (one request per thread per batch in the slot
 *   format; one request per warp in the lane format, which needs at least
 *   32 threads). Load it with
 *   ringbridge's CUDA backend by entry name. in_payload and out_payload are
 *   16-byte aligned: in the slot format they point straight into the slots,
 *   in the lane format into block-shared buffers the serve loop fills from
 *   and drains to the lanes. Read and write them with rb_ld16 / rb_st16 (or
 *   rb_map16), in whole 16-byte chunks up to rb_round16(len); both buffers
 *   are large enough. The handler is called by one thread per request in
 *   both formats. See kernels/handlers.h for the built-in handlers.
 *
 * MEMORY ORDER, IN BRIEF (measured facts: docs/platform-facts.md,
 * "Memory order on the message path")
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
 *   - The lane format (RB_FORMAT_LANES, small messages) reads and writes no
 *     head at all on the message path: every 16-byte lane carries its
 *     message's tag, loaded and stored with one relaxed system-scope vector
 *     access per thread, and the tag carries a check of the lane's data so
 *     that a lane read in two pieces is never taken. See "Lane format"
 *     below.
 *   The host fallback uses the C++ equivalents (__atomic_* with ACQUIRE /
 *   RELEASE / RELAXED), and the Rust side accesses the same words with
 *   AtomicU64 acquire / release / relaxed.
 */
#ifndef RINGBRIDGE_CUH
#define RINGBRIDGE_CUH

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "ringbridge_layout.h"

#if defined(__CUDACC__)
/* nvcc: the device build. */
#define RB_ON_GPU 1
/* The block-parallel algorithms (many threads, warps of 32). */
#define RB_BLOCK_PARALLEL 1
/* Functions the serve loop and handlers use. */
#define RB_DEVICE __device__ inline
/* Small primitives, always inlined so the whole loop lives in the entry. */
#define RB_INLINE __device__ __forceinline__
/* Block-shared state: one copy per thread block. */
#define RB_BLOCK_SHARED __shared__
#elif defined(RB_EMULATE_BLOCK)
/* The block emulation (kernels/host/block_emulation.cpp): the GPU's
   block-parallel algorithms, and a handler's, run by many CPU threads, one
   per CUDA thread, with barriers and warp exchanges emulated by
   kernels/host/block_emulation.h, so races and barrier pairings show up
   without a GPU. Memory accesses use the host's C++ atomics. */
#define RB_ON_GPU 0
#define RB_BLOCK_PARALLEL 1
#include <pthread.h>
#include <sched.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h> /* the doorbell's futex */
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define RB_DEVICE inline
#define RB_INLINE inline
/* One copy shared by every thread: one emulated block runs at a time. */
#define RB_BLOCK_SHARED static
#include "host/block_emulation.h"
#else
/* A plain C++ compiler: the host fallback, one thread = one block. */
#define RB_ON_GPU 0
#define RB_BLOCK_PARALLEL 0
#include <sched.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h> /* the doorbell's futex */
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define RB_DEVICE inline
/* Always inlined, as on the GPU, so the serve loop is one function. */
#define RB_INLINE inline __attribute__((always_inline))
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
    uint64_t format; /* RB_FORMAT_SLOTS or RB_FORMAT_LANES, same for both rings */
    uint64_t pad_cfg[(RB_RING_HEADER_SIZE - RB_RING_OFF_FORMAT) / 8 - 1];
};

/* One 16-byte lane of a lane-format slot (src/layout.rs `Lane`). */
struct alignas(16) rb_lane {
    uint64_t data; /* lane 0: len | kind << 24 | flags << 32; else 8 payload bytes */
    uint64_t tag;  /* rb_lane_tag: position + 1 (0: never written) | a check of data */
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
    uint64_t terminate;   /* host only */
    uint64_t host_parked; /* host doorbell: set by the host, cleared by the serve loop's wake */
    uint64_t pad_host[(RB_CTL_OFF_STATUS - RB_CTL_OFF_HOST_PARKED) / 8 - 1];
    uint64_t status; /* kernel only: RB_STATUS_* */
    uint64_t error_code;
    uint64_t error_detail;
    uint64_t heartbeat;
    uint64_t consumed;
    uint64_t produced;
    uint64_t kernel_parked; /* kernel doorbell: set by the serve loop, cleared by the host's wake */
    uint64_t pad_kernel[(RB_CTL_OFF_MAGIC - RB_CTL_OFF_KERNEL_PARKED) / 8 - 1];
    uint64_t magic;
    uint64_t version;
    uint64_t param;
    uint64_t check_interval;
    uint64_t stripes;       /* regions served by one launch, one block each (region 0's counts) */
    uint64_t stripe_stride; /* bytes between two regions' starts */
    uint64_t wait_policy;   /* RB_WAIT_*: how the host fallback idles */
    uint64_t pad_cfg[(RB_CONTROL_SIZE - RB_CTL_OFF_WAIT_POLICY) / 8 - 1];
};

/* One bridge-owned buffer (src/layout.rs `BufferRef`): device memory on
   CUDA, host memory on the fallback. */
struct rb_buffer {
    uint64_t addr;  /* 0 when unused */
    uint64_t bytes;
};

/* What a kernel is launched with besides its rings (src/layout.rs
   `LaunchArgs`): a __grid_constant__ kernel parameter on CUDA (every thread
   reads it from the constant bank), a pointer on the host. */
struct alignas(16) rb_args {
    uint8_t param[RB_MAX_PARAM_SIZE]; /* the typed parameter, zero past param_size */
    rb_buffer buffers[RB_MAX_BUFFERS];
    uint32_t param_size;
    uint32_t buffer_count;
    uint64_t reserved;
};

static_assert(sizeof(rb_buffer) == RB_BUFFER_SIZE, "rb_buffer size");
static_assert(sizeof(rb_args) == RB_ARGS_SIZE, "rb_args size");
static_assert(offsetof(rb_args, param) == RB_ARGS_OFF_PARAM, "rb_args.param");
static_assert(offsetof(rb_args, buffers) == RB_ARGS_OFF_BUFFERS, "rb_args.buffers");
static_assert(offsetof(rb_args, param_size) == RB_ARGS_OFF_PARAM_SIZE, "rb_args.param_size");
static_assert(offsetof(rb_args, buffer_count) == RB_ARGS_OFF_BUFFER_COUNT, "rb_args.buffer_count");
static_assert(sizeof(rb_ring) == RB_RING_HEADER_SIZE, "rb_ring size");
static_assert(alignof(rb_ring) == RB_LINE, "rb_ring alignment");
static_assert(offsetof(rb_ring, head) == RB_RING_OFF_HEAD, "rb_ring.head");
static_assert(offsetof(rb_ring, tail) == RB_RING_OFF_TAIL, "rb_ring.tail");
static_assert(offsetof(rb_ring, magic) == RB_RING_OFF_MAGIC, "rb_ring.magic");
static_assert(offsetof(rb_ring, version) == RB_RING_OFF_VERSION, "rb_ring.version");
static_assert(offsetof(rb_ring, capacity) == RB_RING_OFF_CAPACITY, "rb_ring.capacity");
static_assert(offsetof(rb_ring, mask) == RB_RING_OFF_MASK, "rb_ring.mask");
static_assert(offsetof(rb_ring, slot_size) == RB_RING_OFF_SLOT_SIZE, "rb_ring.slot_size");
static_assert(offsetof(rb_ring, format) == RB_RING_OFF_FORMAT, "rb_ring.format");
static_assert(sizeof(rb_lane) == RB_LANE_SIZE, "rb_lane size");
static_assert(offsetof(rb_lane, data) == RB_LANE_OFF_DATA, "rb_lane.data");
static_assert(offsetof(rb_lane, tag) == RB_LANE_OFF_TAG, "rb_lane.tag");
static_assert(RB_MAX_LANE_SLOT_SIZE / RB_LANE_SIZE == 32, "a lane slot is at most one warp of lanes");

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
static_assert(offsetof(rb_control, stripes) == RB_CTL_OFF_STRIPES, "rb_control.stripes");
static_assert(offsetof(rb_control, stripe_stride) == RB_CTL_OFF_STRIPE_STRIDE, "rb_control.stripe_stride");
static_assert(offsetof(rb_control, host_parked) == RB_CTL_OFF_HOST_PARKED, "rb_control.host_parked");
static_assert(offsetof(rb_control, kernel_parked) == RB_CTL_OFF_KERNEL_PARKED, "rb_control.kernel_parked");
static_assert(offsetof(rb_control, wait_policy) == RB_CTL_OFF_WAIT_POLICY, "rb_control.wait_policy");

/* ------------------------------------------------------------------------ */
/* Codes of the device half.                                                */
/* ------------------------------------------------------------------------ */

/* The codes (RB_BAD_* details of RB_ERR_BAD_MAGIC, RB_DETAIL_REPLY_TOO_LONG,
   the handlers' error-reply codes) come from src/layout.rs through
   ringbridge_layout.h. A handler returning RB_HANDLER_PANICKED fails the
   kernel with RB_ERR_HANDLER_PANICKED (detail 0) instead of RB_ERR_HANDLER:
   the fallback's Rust callback returns it after catching a panic. */
#define RB_HANDLER_PANICKED ((int32_t)(uint32_t)RB_HANDLER_PANICKED_BITS)
/* What a handler returns to answer a request with nothing (not fatal). */
#define RB_NO_REPLY ((int32_t)(uint32_t)RB_NO_REPLY_BITS)

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

/* ------------------------------------------------------------------------ */
/* Chunkwise handlers: the fast path for element-wise work.                 */
/* ------------------------------------------------------------------------ */
/*
 * A handler whose reply is its request with every 16-byte chunk mapped on
 * its own (echo, scale, any element-wise transform) may say so:
 *
 *   static constexpr bool rb_chunkwise = true;
 *   // 0: reply with len = in.len, flags = in.flags, chunks mapped by chunk();
 *   // > 0: error reply with that code; < 0: fatal (as operator()).
 *   RB_DEVICE int admit(const rb_msg_header& in, uint32_t out_capacity) const;
 *   RB_DEVICE rb_vec16 chunk(rb_vec16 v) const;
 *
 * The slot-format serve loop then spreads the chunks of a whole batch over
 * every thread of the block, so a long message is read by many threads at
 * once (all its loads in flight together, one PCIe round trip) instead of
 * by one thread 64 bytes at a time. A handler without the flag is called
 * once per request by one thread (operator()).
 */
template <class H, class = void>
struct rb_chunkwise_of {
    static constexpr bool value = false;
};
template <class H>
struct rb_chunkwise_of<H, decltype((void)H::rb_chunkwise)> {
    static constexpr bool value = H::rb_chunkwise;
};

/* operator() of a chunkwise handler, for the per-request paths (the lane
   format): admit, then map every chunk up to rb_round16(len). */
template <class H>
RB_INLINE int rb_chunkwise_call(const H& h, const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                                uint8_t* out_payload, uint32_t out_capacity) {
    const int rc = h.admit(in, out_capacity);
    if (rc != 0) return rc;
    rb_map16(in_payload, out_payload, in.len, [&h](rb_vec16 v) { return h.chunk(v); });
    out.len = in.len;
    return 0;
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
#elif RB_BLOCK_PARALLEL
    return rb_emu_thread_index();
#else
    return 0;
#endif
}

RB_INLINE uint32_t rb_block_size() {
#if RB_ON_GPU
    return blockDim.x * blockDim.y * blockDim.z;
#elif RB_BLOCK_PARALLEL
    return rb_emu_block_size();
#else
    return 1;
#endif
}

#if !RB_ON_GPU
/* The host builds' block index: the fallback serves stripe b of a striped
   group on a thread of its own that sets this first (host/fallback.cpp). */
inline thread_local uint32_t rb_host_block_index = 0;
#endif

RB_INLINE uint64_t rb_block_index() {
#if RB_ON_GPU
    return blockIdx.x + (uint64_t)gridDim.x * (blockIdx.y + (uint64_t)gridDim.y * blockIdx.z);
#else
    return rb_host_block_index;
#endif
}

/*
 * Striping: one launch of G blocks can serve `stripes` regions, region b
 * `stripe_stride` bytes after region 0, whose addresses the kernel gets.
 * Block b moves its three pointers to region b; returns false (serve
 * nothing, touch nothing) for a block without a region. Block 0 keeps region
 * 0 and validates the numbers in its start checks (RB_BAD_STRIPES).
 * RELAXED: region 0's configuration, written by the host before the launch,
 * which orders it before every load of the kernel.
 */
RB_INLINE bool rb_select_stripe(rb_control*& ctl, rb_ring*& h2k, rb_ring*& k2h) {
    const uint64_t b = rb_block_index();
    if (b == 0) return true;
    const uint64_t stripes = rb_ld_relaxed(&ctl->stripes);
    const uint64_t stride = rb_ld_relaxed(&ctl->stripe_stride);
    if (b >= stripes || stride == 0 || stride % RB_LINE != 0) return false;
    const uint64_t off = b * stride;
    ctl = reinterpret_cast<rb_control*>(reinterpret_cast<uint8_t*>(ctl) + off);
    h2k = reinterpret_cast<rb_ring*>(reinterpret_cast<uint8_t*>(h2k) + off);
    k2h = reinterpret_cast<rb_ring*>(reinterpret_cast<uint8_t*>(k2h) + off);
    return true;
}

/* Block barrier; also orders the block-shared state. */
RB_INLINE void rb_block_sync() {
#if RB_ON_GPU
    __syncthreads();
#elif RB_BLOCK_PARALLEL
    rb_emu_block_sync();
#endif
}

/* *p = min(*p, v) on block-shared state, from any thread of the block. */
RB_INLINE void rb_block_min_u32(uint32_t* p, uint32_t v) {
#if RB_ON_GPU
    atomicMin(reinterpret_cast<unsigned int*>(p), v);
#elif RB_BLOCK_PARALLEL
    /* RELAXED: the block barrier after it orders the result. */
    uint32_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < cur && !__atomic_compare_exchange_n(p, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
#else
    if (v < *p) *p = v;
#endif
}

/* Returns *p and adds v, on block-shared state, from any thread of the
   block (the slot a thread's own message takes). */
RB_INLINE uint32_t rb_block_fetch_add_u32(uint32_t* p, uint32_t v) {
#if RB_ON_GPU
    return atomicAdd(reinterpret_cast<unsigned int*>(p), v);
#elif RB_BLOCK_PARALLEL
    /* RELAXED: only the count is shared; the block barrier after the
       handlers orders it and the messages before thread 0 publishes. */
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
#else
    const uint32_t old = *p;
    *p = old + v;
    return old;
#endif
}

/* ------------------------------------------------------------------------ */
/* Handler models: sending, cooperative, dispatch.                          */
/* ------------------------------------------------------------------------ */

/* rb_max_sends of a handler (0 when it declares none). */
template <class H, class = void>
struct rb_max_sends_of {
    static constexpr uint32_t value = 0;
};
template <class H>
struct rb_max_sends_of<H, decltype((void)H::rb_max_sends)> {
    static constexpr uint32_t value = H::rb_max_sends;
};

/* Whether a handler is block-cooperative (rb_cooperative = true). */
template <class H, class = void>
struct rb_cooperative_of {
    static constexpr bool value = false;
};
template <class H>
struct rb_cooperative_of<H, decltype((void)H::rb_cooperative)> {
    static constexpr bool value = H::rb_cooperative;
};

/* rb_scratch_bytes of a cooperative handler (0 when it declares none). */
template <class H, class = void>
struct rb_scratch_of {
    static constexpr uint32_t value = 0;
};
template <class H>
struct rb_scratch_of<H, decltype((void)H::rb_scratch_bytes)> {
    static constexpr uint32_t value = H::rb_scratch_bytes;
};

/* Whether a handler has an idle hook, `void idle(rb_sender&)`. */
struct rb_sender;
template <class H, class = void>
struct rb_has_idle {
    static constexpr bool value = false;
};
template <class H>
struct rb_has_idle<H, decltype((void)std::declval<H&>().idle(std::declval<rb_sender&>()))> {
    static constexpr bool value = true;
};

/* Whether a handler sends messages of its own: then it is served in the
   slot format only (as is a cooperative one). */
template <class H>
struct rb_sends_of {
    static constexpr bool value = rb_max_sends_of<H>::value > 0 || rb_has_idle<H>::value;
};

/*
 * Where a handler's own messages go: K2H positions reserved after the
 * batch's replies (rb_max_sends per request; the idle hook's: the free
 * room). Any thread may send; each send takes the next reserved position
 * (a block-shared count) and writes the whole message there with plain
 * stores; thread 0 publishes them with the batch's replies, by the same
 * release of the K2H head (the barrier before it orders every thread's
 * stores). So the host receives a batch's replies, then its messages.
 */
struct rb_sender {
    rb_ring* k2h;
    uint64_t base;       /* position of the first reserved slot */
    uint64_t mask, slot_size;
    uint64_t first_event; /* event number of the first reserved slot */
    uint32_t* count;     /* block-shared: sends so far (may pass limit) */
    uint32_t limit;      /* reserved slots */

    RB_DEVICE bool send(uint32_t flags, const void* payload, uint32_t len) const {
        if (limit == 0 || len > slot_size - RB_MSG_HEADER_SIZE) return false;
        const uint32_t i = rb_block_fetch_add_u32(count, 1u);
        if (i >= limit) return false;
        uint8_t* slot = reinterpret_cast<uint8_t*>(k2h) + RB_RING_HEADER_SIZE + ((base + i) & mask) * slot_size;
        rb_msg_header h;
        h.seq = base + i;
        h.correlation = first_event + i;
        h.kind = RB_KIND_EVENT;
        h.len = len;
        h.flags = flags;
        h.reserved = 0;
        /* Plain stores, published by thread 0's release of the head. */
        rb_store_header(slot, &h);
        uint8_t* out = slot + RB_MSG_HEADER_SIZE;
        const uint8_t* in = static_cast<const uint8_t*>(payload);
        uint32_t k = 0;
        if ((reinterpret_cast<uintptr_t>(in) & 15u) == 0)
            for (; k + 16u <= len; k += 16u) rb_st16(out + k, rb_ld16(in + k));
        for (; k < len; ++k) out[k] = in[k];
        return true;
    }
    /* Sends made, at most the reserved slots (after the block barrier). */
    RB_DEVICE uint32_t sent() const { return *count < limit ? *count : limit; }
};

/* What a cooperative handler gets: the block, its barrier, and scratch
   memory shared by the block (rb_scratch_bytes, 16-byte aligned). */
struct rb_block {
    uint8_t* scratch_memory;
    RB_DEVICE uint32_t thread() const { return rb_thread_index(); }
    RB_DEVICE uint32_t size() const { return rb_block_size(); }
    RB_DEVICE void sync() const { rb_block_sync(); }
    template <class T>
    RB_DEVICE T* scratch() const {
        return reinterpret_cast<T*>(scratch_memory);
    }
};

/* Calls a per-request or chunkwise handler for one request: operator()
   (with the sender when it takes one), or admit + chunk. */
template <class H>
RB_INLINE int rb_handle(H& h, const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                        uint8_t* out_payload, uint32_t out_capacity, rb_sender& sender) {
    if constexpr (rb_chunkwise_of<H>::value) {
        (void)sender;
        return rb_chunkwise_call(h, in, in_payload, out, out_payload, out_capacity);
    } else if constexpr (std::is_invocable<H&, const rb_msg_header&, const uint8_t*, rb_msg_header&, uint8_t*,
                                           uint32_t, rb_sender&>::value) {
        return h(in, in_payload, out, out_payload, out_capacity, sender);
    } else {
        (void)sender;
        return h(in, in_payload, out, out_payload, out_capacity);
    }
}

/* Calls a cooperative handler (every thread of the block) for one request. */
template <class H>
RB_INLINE int rb_handle_cooperative(H& h, rb_block& block, const rb_msg_header& in, const uint8_t* in_payload,
                                    rb_msg_header& out, uint8_t* out_payload, uint32_t out_capacity,
                                    rb_sender& sender) {
    if constexpr (std::is_invocable<H&, rb_block&, const rb_msg_header&, const uint8_t*, rb_msg_header&, uint8_t*,
                                    uint32_t, rb_sender&>::value) {
        return h(block, in, in_payload, out, out_payload, out_capacity, sender);
    } else {
        (void)sender;
        return h(block, in, in_payload, out, out_payload, out_capacity);
    }
}

/* ------------------------------------------------------------------------ */
/* Idle policy.                                                             */
/* ------------------------------------------------------------------------ */

#if !RB_ON_GPU
/* Host, RB_WAIT_BACKOFF (the behaviour from before wait policies) and
   back-pressure under every parking policy: after this many consecutive
   idle polls, yield the CPU each poll... */
#define RB_HOST_YIELD_AFTER 4096u
/* ...and after this many, sleep RB_HOST_SLEEP_NS each poll, so an idle
   fallback thread does not starve a small machine. */
#define RB_HOST_SLEEP_AFTER 65536u
#define RB_HOST_SLEEP_NS 30000
/* Host, RB_WAIT_SPIN_THEN_PARK: spin RB_HOST_PARK_SPIN polls, then yield
   each poll until RB_HOST_PARK_AFTER (about a millisecond: a stream's next
   request is usually closer than that), then park on the doorbell. The
   spin is short because a futex wake-up tends to put the woken thread on
   the waker's CPU: two threads sharing a core must hand it over soon, or
   each round trip waits out a whole spin (measured: 63 us instead of
   0.8 us back to back with a 4096-poll spin on a loaded 2-vCPU VM).
   RB_WAIT_LOW_POWER parks after RB_HOST_LOW_POWER_SPIN polls. */
#define RB_HOST_PARK_SPIN 256u
#define RB_HOST_PARK_AFTER 4096u
#define RB_HOST_LOW_POWER_SPIN 64u
/* The idle counter's two parking states: announce next, or sleep next. */
#define RB_IDLE_ANNOUNCE RB_HOST_PARK_AFTER
#define RB_IDLE_ANNOUNCED (RB_HOST_PARK_AFTER + 1u)
/* A parked serve thread wakes by itself at least this often (ns): to beat,
   since the host's watchdog takes a still heartbeat for a hang, and to read
   terminate. A hundred wake-ups a second cost far below 1% of a core. */
#define RB_HOST_PARK_NS 10000000ull
#endif

#if RB_ON_GPU
/* GPU: the idle serve loop spins by default (RB_GPU_IDLE_NANOSLEEP_MAX 0).
   Each poll is an acquire load of host memory, a PCIe round trip of about a
   microsecond, so the loop is already throttled to one outstanding 8-byte
   read, and the SM is reserved for this block anyway. Defined > 0 (nvcc
   -DRB_GPU_IDLE_NANOSLEEP_MAX=...), an idle poll __nanosleeps, doubling from
   32 ns up to that many ns: fewer PCIe reads and less power while idle, at
   the price of up to the cap (plus the poll) on the first request after a
   quiet spell. terminate and the heartbeat stay on check_interval turns, so
   with a cap of C ns they come every check_interval * C ns at most. */
#ifndef RB_GPU_IDLE_NANOSLEEP_MAX
#define RB_GPU_IDLE_NANOSLEEP_MAX 0
#endif
#endif

/* Requests the host fallback's thread serves per turn at most, one after
   another, before it publishes their replies with one head store: a stream
   then moves the head's cache line once per batch, not once per message. */
#define RB_HOST_MAX_BATCH 64u

#if !RB_ON_GPU
/* The doorbells' futex: the low 32 bits of a 64-bit doorbell word, which
   only ever holds 0 or 1 (so the high half stays 0 and the low half is the
   whole value). Linux; elsewhere a "park" is a short sleep and a wake does
   nothing, which the timed parks make merely slower, never stuck. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the doorbell futex is the low half of a 64-bit word: little-endian only"
#endif

/* Blocks while *word is 1, at most timeout_ns; returns at once if it is not
   1 (the kernel compares atomically with going to sleep, so a wake that
   cleared the word before this call is never lost). May return early. */
inline void rb_host_park_on(uint64_t* word, uint64_t timeout_ns) {
    struct timespec ts;
#if defined(__linux__)
    ts.tv_sec = (time_t)(timeout_ns / 1000000000ull);
    ts.tv_nsec = (long)(timeout_ns % 1000000000ull);
    /* PRIVATE: every waiter and waker is in this process. */
    (void)syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, 1u, &ts, nullptr, 0);
#else
    (void)word;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)(timeout_ns < 50000ull ? timeout_ns : 50000ull);
    nanosleep(&ts, nullptr);
#endif
}

/* Wakes every thread parked on *word. */
inline void rb_host_wake_on(uint64_t* word) {
#if defined(__linux__)
    (void)syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
#else
    (void)word;
#endif
}
#endif

/*
 * The doorbell, the serve loop's half (the host's is in src/wait.rs). A
 * Dekker pair on each side: the waiter stores its doorbell = 1, fences
 * (SeqCst), then polls the ring once more before it parks; the publisher
 * stores its ring counter (release), fences (SeqCst), then reads the
 * doorbell. Both fences are in the one total order of SeqCst operations:
 * whichever is later, its thread's load sees the other thread's store. So
 * either the waiter's last poll sees the message, or the publisher sees 1
 * and wakes it, never neither. The waker swaps in 0 before waking, so a
 * waiter that has not yet entered the futex finds 0 and does not sleep.
 */

/* Thread 0, after publishing replies, freeing request slots or a final
   status: wakes a host thread parked in a bridge call. Host fallback with a
   parking policy only (the host parks under no other, and never on CUDA). */
RB_INLINE void rb_wake_host(rb_control* ctl) {
#if RB_ON_GPU
    (void)ctl;
#else
    /* RELAXED: configuration, written before the serving thread started. */
    if (rb_ld_relaxed(&ctl->wait_policy) < RB_WAIT_SPIN_THEN_PARK) return;
    /* SEQ_CST fence: orders our earlier ring stores before the load of
       host_parked (store-load), the publisher's half of the Dekker pair. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    /* RELAXED: the fence above orders it; 0 is the common case, no RMW. */
    if (__atomic_load_n(&ctl->host_parked, __ATOMIC_RELAXED) == 0) return;
    /* RELEASE: a host thread that reads our 0 (acquire) on waking also sees
       the ring stores before it. Only the swap that took the 1 wakes. */
    if (__atomic_exchange_n(&ctl->host_parked, 0, __ATOMIC_RELEASE) != 0) rb_host_wake_on(&ctl->host_parked);
#endif
}

/* One idle poll of thread 0 found nothing to do. `can_park`: the loop waits
   for a request (the host's next publish rings the doorbell), not for room
   in K2H (freeing a reply slot rings nothing, so back-pressure never parks:
   under the parking policies it waits as RB_WAIT_BACKOFF does). */
RB_INLINE void rb_idle(rb_control* ctl, uint32_t& idle, bool can_park) {
#if RB_ON_GPU
    (void)ctl;
    (void)can_park;
#if RB_GPU_IDLE_NANOSLEEP_MAX > 0
    if (idle < 31u) ++idle;
    const uint32_t ns = idle >= 25u ? (uint32_t)RB_GPU_IDLE_NANOSLEEP_MAX : 16u << idle;
    __nanosleep(ns < (uint32_t)RB_GPU_IDLE_NANOSLEEP_MAX ? ns : (uint32_t)RB_GPU_IDLE_NANOSLEEP_MAX);
#else
    (void)idle;
#endif
#else
    /* RELAXED: configuration, written before the serving thread started. */
    const uint64_t policy = rb_ld_relaxed(&ctl->wait_policy);
    if (policy == RB_WAIT_SPIN) {
        /* idle stays 0: never backing off, terminate on check_interval. */
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return;
    }
    if (policy == RB_WAIT_BACKOFF || !can_park) {
        if (idle < RB_HOST_SLEEP_AFTER) ++idle;
        if (idle >= RB_HOST_SLEEP_AFTER) {
            struct timespec ts;
            ts.tv_sec = 0;
            ts.tv_nsec = RB_HOST_SLEEP_NS;
            nanosleep(&ts, nullptr);
        } else if (idle >= RB_HOST_YIELD_AFTER) {
            sched_yield();
        }
        return;
    }
    const uint32_t park_after = policy == RB_WAIT_LOW_POWER ? RB_HOST_LOW_POWER_SPIN : RB_HOST_PARK_AFTER;
    if (idle < park_after) {
        ++idle;
        if (idle >= RB_HOST_PARK_SPIN) sched_yield(); /* never under RB_WAIT_LOW_POWER */
        return;
    }
    if (idle != RB_IDLE_ANNOUNCED) {
        /* Announce, and let the loop poll once more before parking.
           RELAXED store, then SEQ_CST fence: orders the store before that
           poll's loads (store-load), the waiter's half of the Dekker pair. */
        rb_st_relaxed(&ctl->kernel_parked, 1);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        idle = RB_IDLE_ANNOUNCED;
        return;
    }
    /* Announced, and the poll after the fence found nothing: park. */
    rb_host_park_on(&ctl->kernel_parked, RB_HOST_PARK_NS);
    /* ACQUIRE: pairs with the host's release swap to 0 when it woke us, so
       the next poll sees the requests it published before. */
    (void)rb_ld_acquire(&ctl->kernel_parked);
    idle = RB_IDLE_ANNOUNCE;
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

/* Nanoseconds on a clock that never goes back, for the serve loop's
   time-based checks (rb_after_batch). Read once per served batch, never on
   an idle poll. GPU: %globaltimer, the device's nanosecond timer (a register
   read, no memory access). Host: CLOCK_MONOTONIC_COARSE where it exists
   (Linux: the last tick's time, a few ns through the vDSO; its tick, a few
   ms, is fine grained enough for RB_CHECK_NS), else CLOCK_MONOTONIC. */
RB_INLINE uint64_t rb_clock_ns() {
#if RB_ON_GPU
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
#else
#ifdef CLOCK_MONOTONIC_COARSE
    const clockid_t id = CLOCK_MONOTONIC_COARSE;
#else
    const clockid_t id = CLOCK_MONOTONIC;
#endif
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
    rb_wake_host(ctl); /* a parked host sees the end at once */
    return status;
}

/*
 * When thread 0 publishes the heartbeat and looks at terminate (a check):
 *   - after check_interval turns since the last check. A turn that serves
 *     nothing (an idle poll, back-pressure) costs no clock read, and a
 *     stream of small messages reads terminate (a PCIe round trip on the
 *     GPU) only every so many turns, not on every one;
 *   - on the turn after a batch that ended RB_CHECK_NS or more after the
 *     last check (rb_after_batch: one clock read per batch). So however
 *     slow the handler and however large the messages, a loop that makes
 *     progress beats, and sees terminate, within one batch's handler time
 *     plus RB_CHECK_NS (or the host clock's tick, if coarser): the host's
 *     hang timeout measures a stalled handler, not a slow stream;
 *   - on every turn while the host fallback backs off.
 */
#ifndef RB_CHECK_NS
#define RB_CHECK_NS 1000000ull
#endif

/* Thread 0's check cadence. */
struct rb_checks {
    uint64_t turns;      /* turns since the last check */
    uint64_t mask;       /* check_interval - 1 */
    uint64_t checked_ns; /* rb_clock_ns() at the last check */
};

/* Whether this turn's rb_turn_check checks. */
RB_INLINE bool rb_check_due(const rb_checks& c, uint32_t idle) { return c.turns + 1u > c.mask || rb_backing_off(idle); }

/* Thread 0, after serving (and publishing) a batch: makes the next turn
   check if RB_CHECK_NS passed since the last check. */
RB_INLINE void rb_after_batch(rb_checks& c) {
    if (rb_clock_ns() - c.checked_ns >= RB_CHECK_NS) c.turns = c.mask;
}

/* Thread 0, once per turn of a serve loop: when rb_check_due says so,
   publishes the progress words and looks at terminate. Returns
   RB_STATUS_STOPPED to stop, else 0. RELAXED: the stop request orders
   nothing; what was served is already published. */
RB_INLINE uint32_t rb_turn_check(rb_control* ctl, rb_checks& c, uint32_t idle, uint64_t& beat, uint64_t h2k_tail,
                                 uint64_t k2h_head) {
    if (!rb_check_due(c, idle)) {
        ++c.turns;
        return 0;
    }
    c.turns = 0;
    c.checked_ns = rb_clock_ns();
    rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
    if (rb_ld_relaxed(&ctl->terminate) == 0) return 0;
    return (uint32_t)rb_finish(ctl, RB_STATUS_STOPPED, 0, 0);
}

/* Thread 0: the free K2H slots, in *room. The host's tail is read only when
   the cached one says fewer than `need` are free (ACQUIRE: the host has
   finished reading the slots, or lanes, below it). A tail ahead of our head,
   or gone backwards, fails the kernel: returns RB_STATUS_FAILED; else 0. */
RB_INLINE uint32_t rb_k2h_room(rb_control* ctl, rb_ring* k2h, uint64_t& k2h_tail, uint64_t k2h_head, uint64_t k2h_cap,
                               uint64_t h2k_tail, uint64_t& beat, uint64_t& room, uint64_t need = 1) {
    room = k2h_cap - (k2h_head - k2h_tail);
    if (room >= need) return 0;
    const uint64_t tail = rb_ld_acquire(&k2h->tail);
    if (k2h_head - tail > k2h_cap) {
        rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
        return (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, tail);
    }
    k2h_tail = tail;
    room = k2h_cap - (k2h_head - k2h_tail);
    return 0;
}

#if !RB_ON_GPU
/* Host fallback, after publishing replies: claims the next K2H slot's cache
   lines, as many as the last reply used (at most 64: 4 KiB), for this core
   while the slot is free, so the next reply's stores find them here instead
   of waiting, ahead of the head store, for the host core that read them a
   lap ago to give them up (RingProducer::warm_next_slot on the Rust side
   does the same; the figures are there). RELAXED stores of 0: the slot is
   ours (our cached tail says the host left it, and the host reads no slot
   before a head covering it), and the next reply overwrites these words
   before its head is released. They follow the head's release store, so
   they cannot delay it. The last reply's length is read back from the
   header we wrote (our own store). The GPU writes mapped memory over PCIe,
   where this would buy nothing. */
RB_INLINE void rb_host_warm_slot(rb_ring* k2h, uint64_t k2h_head, uint64_t k2h_tail, uint64_t k2h_cap, uint64_t mask,
                                 uint64_t slot_size) {
    if (k2h_head - k2h_tail >= k2h_cap) return; /* full as far as we know */
    const uint8_t* last = rb_slot(k2h, k2h_head - 1, mask, slot_size);
    uint32_t len = 0;
    memcpy(&len, last + offsetof(rb_msg_header, len), sizeof len);
    uint64_t bytes = (uint64_t)RB_MSG_HEADER_SIZE + len;
    if (bytes > slot_size) bytes = slot_size;
    if (bytes > 4096u) bytes = 4096u;
    uint8_t* slot = rb_slot(k2h, k2h_head, mask, slot_size);
    for (uint64_t off = 0; off < bytes; off += 64u)
        __atomic_store_n(reinterpret_cast<uint64_t*>(slot + off), 0ull, __ATOMIC_RELAXED);
}
#endif

/* State thread 0 shares with the block through block-shared memory. */
struct rb_block_state {
    uint64_t h2k_tail;     /* position of the batch's first request */
    uint64_t k2h_head;     /* position of the batch's first reply */
    uint64_t h2k_mask, h2k_slot_size, k2h_mask, k2h_slot_size; /* read once */
    uint64_t fatal_code, fatal_detail; /* the failing thread's error */
    uint32_t n;            /* requests in the batch, <= block size */
    uint32_t stop;         /* 0: serve the batch; else the final RB_STATUS_* */
    uint32_t fatal_index;  /* lowest failing thread of the batch, or RB_NO_FATAL */
    uint32_t lanes;        /* 1: the rings are in RB_FORMAT_LANES */
    uint32_t sent;         /* the handlers' own messages in this batch (rb_sender) */
    uint64_t events;       /* event number of the batch's first own message */
};
#define RB_NO_FATAL 0xFFFFFFFFu


/* The reply header for request `in` at K2H position out_pos, before the
   handler runs: an empty REPLY with the request's flags. */
RB_INLINE rb_msg_header rb_reply_header(uint64_t out_pos, const rb_msg_header& in) {
    rb_msg_header out;
    out.seq = out_pos;
    out.correlation = in.seq;
    out.kind = RB_KIND_REPLY;
    out.len = 0;
    out.flags = in.flags;
    out.reserved = 0;
    return out;
}

/* Settles a handler's return code: 0 keeps the REPLY (a len beyond out_cap
   is fatal), > 0 makes it an empty ERROR reply with that code in flags,
   < 0 is fatal. For a fatal code *code / *detail get the kernel's error
   (RB_ERR_HANDLER_PANICKED or RB_ERR_HANDLER); otherwise they stay 0. */
RB_INLINE void rb_settle_reply(int rc, rb_msg_header& out, uint32_t out_cap, uint64_t& code, uint64_t& detail) {
    if (rc == 0) {
        out.kind = RB_KIND_REPLY;
        if (out.len > out_cap) {
            code = RB_ERR_HANDLER;
            detail = RB_DETAIL_REPLY_TOO_LONG | out.len;
        }
    } else if (rc > 0) {
        out.kind = RB_KIND_ERROR;
        out.flags = (uint32_t)rc;
        out.len = 0;
    } else if (rc == RB_NO_REPLY) {
        /* The request's mark on K2H: it keeps K2H one position per
           request, and the host counts the request as answered. */
        out.kind = RB_KIND_NO_REPLY;
        out.flags = 0;
        out.len = 0;
    } else if (rc == RB_HANDLER_PANICKED) {
        code = RB_ERR_HANDLER_PANICKED;
        detail = 0;
    } else {
        code = RB_ERR_HANDLER;
        detail = (uint64_t)(-(int64_t)rc);
    }
}

/* ------------------------------------------------------------------------ */
/* Lane format (RB_FORMAT_LANES): flagged 16-byte lanes.                    */
/* ------------------------------------------------------------------------ */
/*
 * A slot is slot_size / 16 lanes {data, tag}. The message at position pos
 * writes tag = pos + 1 into lane 0 (data: len | kind << 24 | flags << 32) and
 * into lanes 1..ceil(len / 8) (data: 8 payload bytes each). The receiver
 * takes the message only when all those lanes carry pos + 1, so it never
 * reads the ring's head: one round of loads brings the whole message
 * (docs/platform-facts.md, "Flagged 16-byte lanes": 2.4 us p50 up to
 * 128-byte messages, against 3.9-4.4 us for head-then-payload).
 *
 * A lane's tag is rb_lane_tag(pos, data): pos + 1 in the low RB_LANE_SEQ_BITS
 * bits, and above them a check mixed from the data and that position
 * (src/layout.rs lane_tag, the same function). Below, "the lane's tag" means
 * its position field.
 *
 * Tags a lane of slot(pos) may hold before the message arrives: 0, or
 * pos + 1 - k * capacity for k >= 1 (a lane a short message left alone keeps
 * an older lap's tag). Anything else (from the future, or not congruent to
 * pos + 1) is RB_ERR_RING_CORRUPTED, as are a current header with an unknown
 * kind or a len beyond the slot.
 *
 * MEMORY ORDER
 *   GPU reader: thread t of a warp loads lane t with ONE ld.relaxed.sys.v2
 *   (a single coalesced warp access; ld.global.cv.v2 measured the same; a
 *   plain weak load could hit a stale L1 line, so polling never uses one).
 *   System-scope relaxed: it reads the coherent (host) copy. The host writes
 *   each lane's data before its tag (release in the C++/Rust model).
 *   TORN LANES. The PTX memory model treats a vector access as one access
 *   per element, in no specified order, and covers scalars of at most 64
 *   bits (PTX ISA "Memory Operations on Vector Data Types"); no document
 *   promises that a 16-byte access to host memory is one piece (see
 *   docs/platform-facts.md, "16-byte accesses"). So a reader may see the
 *   current tag with an earlier write's data. The tag's check catches that:
 *   such a lane is RB_LANE_TORN, the slot is polled again (a tear lasts
 *   only until both halves of one write have landed), and a slot still
 *   torn after RB_LANE_TORN_TURNS turns in a row is RB_ERR_RING_CORRUPTED.
 *   Measured on an H200: 0 torn in 50,000 and in 270,000 messages.
 *   GPU writer: thread t writes reply lane t with ONE st.relaxed.sys.v2
 *   {data, tag}; no release store and no fence on the per-message path:
 *   each lane carries its own tag and check (the host reader acquires the
 *   tag, reads the data, and verifies the check).
 *   Host fallback: writer data RELAXED then tag RELEASE; reader tag ACQUIRE
 *   then data RELAXED (the acquire synchronises with the release, so the data
 *   of that lap is seen).
 *   Flow control as in the slot format: the H2K tail is RELEASE-stored after
 *   the batch's lanes were loaded (barriers put every warp's loads before
 *   thread 0's release, which is cumulative), the host's K2H tail is
 *   ACQUIRE-loaded when the cache says full. The K2H head is stored RELAXED
 *   for statistics (and a restart); nobody reads it to find messages.
 */

/* Per-lane states and per-slot poll results. */
#define RB_LANE_CUR 0u
#define RB_LANE_STALE 1u
#define RB_LANE_BAD 2u
#define RB_SLOT_WAIT 0u
#define RB_SLOT_READY 1u
#define RB_SLOT_CORRUPT 2u
#define RB_LANE_TORN 3u /* position current, check does not match the data */
#define RB_SLOT_TORN 3u /* a needed lane is torn: poll again */
/* Turns in a row whose first slot is torn before that is corruption: a real
   tear lasts one write's landing (well under one poll on the GPU, which
   takes a PCIe round trip), so 1024 turns (about 2 ms on an H200) in a row
   are not one. The host fallback's reader and writer are both on the host
   (acquire/release, never torn), so there a torn lane is corruption; its
   turns are a few ns until it backs off to 30 us sleeps, so it counts 2^17
   turns (about 2 s) to report it in a comparable time. */
#ifndef RB_LANE_TORN_TURNS
#if RB_ON_GPU
#define RB_LANE_TORN_TURNS 1024u
#else
#define RB_LANE_TORN_TURNS (1u << 17)
#endif
#endif

/* Slots polled per batch at most: the warps of a 1024-thread block (the host
   fallback, one thread, polls up to this many slots one after another). */
#define RB_LANE_WARPS 32u
/* 64-bit words of one lane slot's payload buffer: 31 lanes * 8 bytes, rounded
   up to whole 16-byte chunks for the handlers' rb_ld16 / rb_st16. */
#define RB_LANE_PAY_WORDS 32u

#define RB_LANE_LEN_MASK ((1ull << RB_LANE_LEN_BITS) - 1ull)

RB_INLINE uint64_t rb_lane_word(uint32_t kind, uint32_t len, uint32_t flags) {
    return ((uint64_t)len & RB_LANE_LEN_MASK) | ((uint64_t)(kind & 0xffu) << RB_LANE_KIND_SHIFT) |
           ((uint64_t)flags << RB_LANE_FLAGS_SHIFT);
}

#define RB_LANE_SEQ_MASK ((1ull << RB_LANE_SEQ_BITS) - 1ull)

/* src/layout.rs lane_mix: odd multiplies and xor-shifts, a bijection. */
RB_INLINE uint64_t rb_lane_mix(uint64_t x) {
    x *= RB_LANE_MIX_MUL1;
    x ^= x >> 32;
    x *= RB_LANE_MIX_MUL2;
    x ^= x >> 29;
    return x;
}

/* src/layout.rs lane_tag: position + 1, and the check of data above it. */
RB_INLINE uint64_t rb_lane_tag(uint64_t pos, uint64_t data) {
    const uint64_t seq = (pos + 1u) & RB_LANE_SEQ_MASK;
    return seq | ((rb_lane_mix(data ^ seq) >> RB_LANE_SEQ_BITS) << RB_LANE_SEQ_BITS);
}

/* What a lane says about the message whose position field is `want`
   (pos + 1): current (and whole), torn, stale or impossible. */
RB_INLINE uint32_t rb_lane_state(uint64_t tag, uint64_t data, uint64_t want, uint64_t mask) {
    const uint64_t seq = tag & RB_LANE_SEQ_MASK;
    if (seq == want) return rb_lane_tag(want - 1u, data) == tag ? RB_LANE_CUR : RB_LANE_TORN;
    if (seq == 0 || (seq < want && ((want - seq) & mask) == 0)) return RB_LANE_STALE;
    return RB_LANE_BAD;
}

/* Lanes of the slot of counter value `pos`. */
RB_INLINE rb_lane* rb_lane_slot(rb_ring* r, uint64_t pos, uint64_t mask, uint64_t slot_size) {
    return reinterpret_cast<rb_lane*>(rb_slot(r, pos, mask, slot_size));
}

#if RB_ON_GPU
/* RELAXED, system scope, ONE 16-byte access: a lane {data, tag}. */
RB_INLINE void rb_ld_lane(const rb_lane* p, uint64_t& data, uint64_t& tag) {
    asm volatile("ld.relaxed.sys.global.v2.u64 {%0, %1}, [%2];"
                 : "=l"(data), "=l"(tag)
                 : "l"(rb_global(p))
                 : "memory");
}
RB_INLINE void rb_st_lane(rb_lane* p, uint64_t data, uint64_t tag) {
    asm volatile("st.relaxed.sys.global.v2.u64 [%0], {%1, %2};" : : "l"(rb_global(p)), "l"(data), "l"(tag) : "memory");
}
#define RB_FULL_WARP 0xffffffffu
RB_INLINE uint64_t rb_warp_shfl(uint64_t v, uint32_t src) { return __shfl_sync(RB_FULL_WARP, v, src); }
RB_INLINE uint32_t rb_warp_shfl(uint32_t v, uint32_t src) { return __shfl_sync(RB_FULL_WARP, v, src); }
RB_INLINE bool rb_warp_any(bool p) { return __any_sync(RB_FULL_WARP, p); }
RB_INLINE bool rb_warp_all(bool p) { return __all_sync(RB_FULL_WARP, p); }
#elif RB_BLOCK_PARALLEL
/* Emulated lanes: the tag ACQUIRE then the data (a current tag was
   release-stored after its data, and the slot is not rewritten before it is
   released); stores are the data then the tag RELEASE. */
RB_INLINE void rb_ld_lane(const rb_lane* p, uint64_t& data, uint64_t& tag) {
    tag = __atomic_load_n(&p->tag, __ATOMIC_ACQUIRE);
    data = __atomic_load_n(&p->data, __ATOMIC_RELAXED);
}
RB_INLINE void rb_st_lane(rb_lane* p, uint64_t data, uint64_t tag) {
    __atomic_store_n(&p->data, data, __ATOMIC_RELAXED);
    __atomic_store_n(&p->tag, tag, __ATOMIC_RELEASE);
}
RB_INLINE uint64_t rb_warp_shfl(uint64_t v, uint32_t src) { return rb_emu_warp_shfl(v, src); }
RB_INLINE uint32_t rb_warp_shfl(uint32_t v, uint32_t src) { return (uint32_t)rb_emu_warp_shfl(v, src); }
RB_INLINE bool rb_warp_any(bool p) { return rb_emu_warp_any(p); }
RB_INLINE bool rb_warp_all(bool p) { return rb_emu_warp_all(p); }
#endif

#if !RB_BLOCK_PARALLEL
/* The slot state of a first lane that is not current. */
RB_INLINE uint32_t rb_lane_slot_state(uint32_t lane_state) {
    return lane_state == RB_LANE_STALE ? RB_SLOT_WAIT : (lane_state == RB_LANE_TORN ? RB_SLOT_TORN : RB_SLOT_CORRUPT);
}
#endif

/*
 * Polls the request at `pos` in `slot` once. On the GPU the whole warp calls
 * it (thread t loads lane t); on the host the one thread loads lane by lane.
 * Returns RB_SLOT_WAIT / READY / TORN / CORRUPT (warp-uniform). When READY, lane 0's
 * data is in *word and the payload words in pay[0..ceil(len/8)).
 */
RB_INLINE uint32_t rb_lane_poll(const rb_lane* slot, uint32_t nlanes, uint64_t pos, uint64_t mask, uint32_t max_len,
                                uint64_t* word, uint64_t* pay) {
    const uint64_t want = pos + 1;
#if RB_BLOCK_PARALLEL
    const uint32_t t = rb_thread_index() & 31u;
    uint64_t data = 0, tag = 0;
    if (t < nlanes) rb_ld_lane(&slot[t], data, tag); /* one coalesced warp access */
    const uint32_t st = rb_lane_state(tag, data, want, mask);
    const uint64_t w0 = rb_warp_shfl(data, 0u);
    const uint32_t st0 = rb_warp_shfl(st, 0u);
    const uint32_t len = (uint32_t)(w0 & RB_LANE_LEN_MASK);
    const uint32_t kind = (uint32_t)((w0 >> RB_LANE_KIND_SHIFT) & 0xffu);
    const bool bad_header = st0 == RB_LANE_CUR && (kind != RB_KIND_REQUEST || len > max_len);
    /* Lanes this message needs: lane 0, and its payload lanes once lane 0 is
       current and sane (before that, lane 0's len means nothing). */
    const uint32_t last = (st0 == RB_LANE_CUR && !bad_header) ? (len + 7u) / 8u : 0u;
    const bool needed = t <= last;
    const bool corrupt = rb_warp_any(needed && st == RB_LANE_BAD) || bad_header;
    const bool all_current = rb_warp_all(!needed || st == RB_LANE_CUR);
    const bool torn = rb_warp_any(needed && st == RB_LANE_TORN);
    if (t >= 1 && t <= last) pay[t - 1] = data;
    if (t == 0) *word = w0;
    return corrupt ? RB_SLOT_CORRUPT : (all_current ? RB_SLOT_READY : (torn ? RB_SLOT_TORN : RB_SLOT_WAIT));
#else
    (void)nlanes;
    /* ACQUIRE on each tag: pairs with the writer's release store of that tag
       (made after the lane's data), so the RELAXED data load that follows
       sees this lap's data; the check is verified all the same. */
    const uint64_t t0 = __atomic_load_n(&slot[0].tag, __ATOMIC_ACQUIRE);
    const uint64_t w0 = __atomic_load_n(&slot[0].data, __ATOMIC_RELAXED);
    const uint32_t st0 = rb_lane_state(t0, w0, want, mask);
    if (st0 != RB_LANE_CUR) return rb_lane_slot_state(st0);
    const uint32_t len = (uint32_t)(w0 & RB_LANE_LEN_MASK);
    const uint32_t kind = (uint32_t)((w0 >> RB_LANE_KIND_SHIFT) & 0xffu);
    if (kind != RB_KIND_REQUEST || len > max_len) return RB_SLOT_CORRUPT;
    const uint32_t last = (len + 7u) / 8u;
    for (uint32_t k = 1; k <= last; ++k) {
        const uint64_t tk = __atomic_load_n(&slot[k].tag, __ATOMIC_ACQUIRE); /* as lane 0 */
        const uint64_t dk = __atomic_load_n(&slot[k].data, __ATOMIC_RELAXED);
        const uint32_t st = rb_lane_state(tk, dk, want, mask);
        if (st != RB_LANE_CUR) return rb_lane_slot_state(st);
        pay[k - 1] = dk;
    }
    *word = w0;
    return RB_SLOT_READY;
#endif
}

/* Writes the reply at `pos` in `nl` lanes (lane 0: `word`, then `pay`), each
   lane with its rb_lane_tag. GPU: the whole warp calls it, thread t stores
   lane t with ONE 16-byte st.relaxed.sys (no fence: every lane carries its
   own tag and check). Host: payload lanes first, each data RELAXED then tag
   RELEASE (the release orders the data before the tag for a reader that
   acquires the tag). */
RB_INLINE void rb_lane_write(rb_lane* slot, uint32_t nl, uint64_t word, const uint64_t* pay, uint64_t pos) {
#if RB_BLOCK_PARALLEL
    const uint32_t t = rb_thread_index() & 31u;
    if (t < nl) {
        const uint64_t data = t == 0 ? word : pay[t - 1];
        rb_st_lane(&slot[t], data, rb_lane_tag(pos, data));
    }
#else
    /* Last payload lane first: the slot's first cache line (lane 0 with
       lanes 1-3) is then written in one burst at the end, so the reader
       spinning on lane 0 takes that line from us once, not twice (measured
       on the fallback, 64 B: about 10% off the round trip). */
    for (uint32_t k = nl; k-- > 1;) {
        __atomic_store_n(&slot[k].data, pay[k - 1], __ATOMIC_RELAXED);
        __atomic_store_n(&slot[k].tag, rb_lane_tag(pos, pay[k - 1]), __ATOMIC_RELEASE);
    }
    __atomic_store_n(&slot[0].data, word, __ATOMIC_RELAXED);
    __atomic_store_n(&slot[0].tag, rb_lane_tag(pos, word), __ATOMIC_RELEASE);
#endif
}

/*
 * Timing of the lane serve loop on the GPU: when it releases the H2K tail,
 * and when it polls after serving.
 *
 * The tail. A release store at system scope waits until the thread's earlier
 * accesses to host memory are performed (MEMBAR.SYS in the SASS). Made after
 * every batch, it sat between the replies and the next poll. No reply waits
 * for the tail (every lane carries its own tag); only a producer whose ring
 * looks full does. So with RB_LANE_LAZY_TAIL (the default) thread 0 releases
 * the tail at the start of a turn only when one of these holds:
 *   - a quarter of the ring was read since the last release, so slots read
 *     but not yet released never cost a producer more than a quarter ring;
 *   - RB_LANE_IDLE_TURNS turns in a row served nothing (a producer waiting
 *     for room gets it within those turns, it never waits forever);
 *   - the turn looks at terminate (rb_check_due), so a kernel that stops has
 *     released everything it read, and a relaunch resumes from there.
 * -DRB_LANE_LAZY_TAIL=0 releases after every batch.
 *
 * The poll. One warp's poll is one PCIe read, about 1.1 us there and back,
 * and it sees host memory as it was when it reached the host. In a round
 * trip the next request cannot land before the host has seen the replies
 * and written it, so a poll issued at once after the replies comes back
 * empty, and whether the second poll finds the request depends on a few
 * tens of ns: on an H200 (2026-11-26, 64-byte echo, 200,000 round trips a
 * run) p50 was either about 2.2 us or about 4.0 us, run by run. With the
 * eager tail release the MEMBAR delayed the first poll by chance, and p50
 * was a steady 2.58 us (32 threads) and 2.75 us (128). So after a turn that
 * drained the ring, the polling warps wait RB_LANE_POLL_DELAY_CYCLES SM
 * cycles first: 1200 cycles (0.6 us at 1.98 GHz) gave a steady 2.41-2.46 us
 * (32 threads) and 2.54-2.56 us (128) on one machine, 2.56-2.60 and
 * 2.66-2.67 us on another (eager release, same runs: 2.58-2.60 / 2.75 and
 * 2.60-2.61 / 2.79-2.81); 400 and 800 cycles were still bimodal, 1600 gave
 * 2.62-2.77 us. The best delay depends on the host's and
 * the link's turnaround, so it is a switch: -DRB_LANE_POLL_DELAY_CYCLES=N
 * (0: no delay), e.g. through RINGBRIDGE_KERNEL_DEFINES (build.rs). A
 * stream that fills every polling warp's slot is never delayed.
 */
#ifndef RB_LANE_LAZY_TAIL
#define RB_LANE_LAZY_TAIL 1
#endif
#define RB_LANE_IDLE_TURNS 8u
#ifndef RB_LANE_POLL_DELAY_CYCLES
#define RB_LANE_POLL_DELAY_CYCLES 1200
#endif

/* Block-shared state of the lane serve loop. */
struct rb_lane_shared {
    alignas(16) uint64_t in_pay[RB_LANE_WARPS][RB_LANE_PAY_WORDS];  /* request payloads */
    alignas(16) uint64_t out_pay[RB_LANE_WARPS][RB_LANE_PAY_WORDS]; /* reply payloads */
    uint64_t in_word[RB_LANE_WARPS];  /* request lane 0 data */
    uint64_t out_word[RB_LANE_WARPS]; /* reply lane 0 data */
    uint64_t code[RB_LANE_WARPS], detail[RB_LANE_WARPS]; /* a failing slot's error */
    uint32_t state[RB_LANE_WARPS];     /* RB_SLOT_* of each polled slot */
    uint32_t out_lanes[RB_LANE_WARPS]; /* reply lanes to write */
    uint64_t h2k_tail, k2h_head;
    uint32_t limit, stop, fatal_index;
};

/*
 * The lane-format serve loop (called by rb_serve once the start checks
 * passed; the counter arguments are thread 0's). Warp w polls slot
 * tail + w; the batch is the run of consecutive ready slots from the first,
 * capped by the free K2H slots (thread 0 waits when K2H is full, never drops).
 * Each ready warp's first thread runs the SAME handler as the slot format on
 * the request copied into block-shared memory; the reply lanes are then
 * written by the warp. On a fatal error the replies before the failing
 * request are written, nothing from it on.
 */
template <class Handler>
RB_INLINE int rb_serve_lanes(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, Handler& handler, const rb_block_state& sh,
                             uint64_t& h2k_tail, uint64_t& k2h_head, uint64_t& k2h_tail, uint64_t h2k_cap,
                             uint64_t k2h_cap, rb_checks& checks, uint64_t& beat, uint32_t& idle) {
    const uint32_t tid = rb_thread_index();
#if RB_BLOCK_PARALLEL
    const uint32_t my_warp = tid / 32u;
    const uint32_t lane_id = tid & 31u;
    const uint32_t nwarps = rb_block_size() / 32u < RB_LANE_WARPS ? rb_block_size() / 32u : RB_LANE_WARPS;
    const uint32_t step = nwarps; /* one slot per warp per batch */
#else
    const uint32_t my_warp = 0, lane_id = 0;
    const uint32_t nwarps = RB_LANE_WARPS;
    const uint32_t step = 1; /* the one thread takes every slot in turn */
#endif
    RB_BLOCK_SHARED rb_lane_shared ls;
    const uint64_t h2k_mask = sh.h2k_mask, k2h_mask = sh.k2h_mask;
    const uint64_t h2k_slot = sh.h2k_slot_size, k2h_slot = sh.k2h_slot_size;
    const uint32_t in_lanes = (uint32_t)(h2k_slot / RB_LANE_SIZE);
    const uint32_t in_max = (in_lanes - 1u) * 8u;
    const uint32_t out_cap = (uint32_t)(k2h_slot / RB_LANE_SIZE - 1u) * 8u;
    /* Thread 0's: the tail last release-stored, requests read between
       publishes, and turns in a row that served nothing. */
    uint64_t published = h2k_tail;
    const uint64_t publish_every = RB_LANE_LAZY_TAIL && h2k_cap >= 4u ? h2k_cap / 4u : 1u;
    uint32_t empty_turns = 0;
    uint32_t torn_turns = 0; /* see RB_LANE_TORN_TURNS */
#if RB_ON_GPU
    long long poll_after = 0; /* SM clock before which this turn's poll waits */
#endif

    for (;;) {
        if (tid == 0) {
            if (h2k_tail != published &&
                (h2k_tail - published >= publish_every || empty_turns >= RB_LANE_IDLE_TURNS ||
                 rb_check_due(checks, idle))) {
                /* RELEASE, system scope: the block's loads of every request
                   lane below h2k_tail happened before the barriers of the
                   turns that read them, which put them before this store in
                   causality order; a release is cumulative, so the host
                   reuses those slots only after they were read. */
                rb_st_release(&h2k->tail, h2k_tail);
                /* RELAXED: statistics only; the reply lanes publish themselves. */
                rb_st_relaxed(&k2h->head, k2h_head);
                published = h2k_tail;
                rb_wake_host(ctl); /* a sender may be parked waiting for room */
            }
            uint32_t limit = 0;
            uint32_t stop = rb_turn_check(ctl, checks, idle, beat, h2k_tail, k2h_head);
            if (stop == 0) {
                uint64_t room = 0;
                stop = rb_k2h_room(ctl, k2h, k2h_tail, k2h_head, k2h_cap, h2k_tail, beat, room);
                if (stop == 0) {
                    uint64_t lim = room < h2k_cap ? room : h2k_cap;
                    if (lim > nwarps) lim = nwarps;
                    limit = (uint32_t)lim;
                    if (limit == 0) { /* back-pressure: wait, never drop */
                        ++empty_turns;
                        rb_idle(ctl, idle, false);
                    }
                }
            }
            ls.stop = stop;
            ls.limit = limit;
            ls.h2k_tail = h2k_tail;
            ls.k2h_head = k2h_head;
            ls.fatal_index = RB_NO_FATAL;
        }
        rb_block_sync(); /* broadcast the batch's bounds */
        if (ls.stop != 0) return (int)ls.stop;
        /* Local copies: thread 0 rewrites ls for the next batch while slower
           warps may still be writing this batch's replies. */
        const uint32_t limit = ls.limit;
        const uint64_t in_base = ls.h2k_tail, out_base = ls.k2h_head;
        if (limit == 0) {
            /* Back-pressure. The barrier keeps thread 0 from rewriting
               ls.stop / ls.limit for the next turn before every warp has
               read this turn's: without it a slow warp could take the next
               turn's bounds and pair its barriers with the wrong ones (seen
               as a hang on an H200 with 1024 threads and 4-slot rings). */
            rb_block_sync();
            continue;
        }

#if RB_ON_GPU
        while (clock64() < poll_after) { /* see RB_LANE_POLL_DELAY_CYCLES */
        }
#endif
        for (uint32_t w = my_warp; w < limit; w += step) {
            const uint64_t pos = in_base + w;
            const uint32_t st =
                rb_lane_poll(rb_lane_slot(h2k, pos, h2k_mask, h2k_slot), in_lanes, pos, h2k_mask, in_max, &ls.in_word[w],
                             ls.in_pay[w]);
            if (lane_id == 0) ls.state[w] = st;
            if (!RB_BLOCK_PARALLEL && st != RB_SLOT_READY) break; /* the run ends here */
        }
        rb_block_sync(); /* every polled slot's state and lanes are in ls */

        uint32_t n = 0;
        while (n < limit && ls.state[n] == RB_SLOT_READY) ++n;
        /* Every thread counts the same (ls.state is block-shared): turns in a
           row that served nothing because the first slot was torn. */
        torn_turns = (n == 0 && ls.state[0] == RB_SLOT_TORN) ? torn_turns + 1u : 0u;
        if (n < limit && (ls.state[n] == RB_SLOT_CORRUPT || torn_turns >= RB_LANE_TORN_TURNS)) { /* block-uniform */
            if (tid == 0) {
                /* RELEASE: as at the top of the turn (what was read stays read). */
                if (h2k_tail != published) rb_st_release(&h2k->tail, h2k_tail);
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, in_base + n);
            }
            return (int)RB_STATUS_FAILED;
        }
        if (n == 0) {
            if (tid == 0) {
                ++empty_turns;
                rb_idle(ctl, idle, true);
            }
            continue;
        }

        for (uint32_t w = my_warp; w < n; w += step) {
            if (lane_id == 0) {
                const uint64_t word = ls.in_word[w];
                rb_msg_header in;
                in.seq = in_base + w;
                in.correlation = 0;
                in.kind = RB_KIND_REQUEST;
                in.len = (uint32_t)(word & RB_LANE_LEN_MASK);
                in.flags = (uint32_t)(word >> RB_LANE_FLAGS_SHIFT);
                in.reserved = 0;
                rb_msg_header out = rb_reply_header(out_base + w, in);
                uint64_t code = 0, detail = 0;
                /* Handlers that send are refused the lane format at start. */
                uint32_t no_count = 0;
                rb_sender no_sends{k2h, 0, 0, 0, 0, &no_count, 0};
                const int rc = rb_handle(handler, in, reinterpret_cast<const uint8_t*>(ls.in_pay[w]), out,
                                         reinterpret_cast<uint8_t*>(ls.out_pay[w]), out_cap, no_sends);
                rb_settle_reply(rc, out, out_cap, code, detail);
                ls.out_word[w] = rb_lane_word(out.kind, out.len, out.flags);
                ls.out_lanes[w] = 1u + (out.len + 7u) / 8u;
                ls.code[w] = code;
                ls.detail[w] = detail;
                if (code != 0) rb_block_min_u32(&ls.fatal_index, w);
            }
        }
        /* Every request was handled; the batch's requests are all loaded. */
        rb_block_sync();

        /* On a fatal error, the replies before the failing request are still
           written and published (as the one-request batches of the host
           fallback's slot format do); nothing from the failing one on. */
        const uint32_t fatal = ls.fatal_index; /* block-uniform */
        const uint32_t done = fatal == RB_NO_FATAL ? n : fatal;
        for (uint32_t w = my_warp; w < done; w += step) {
            const uint64_t pos = out_base + w;
            rb_lane_write(rb_lane_slot(k2h, pos, k2h_mask, k2h_slot), ls.out_lanes[w], ls.out_word[w], ls.out_pay[w],
                          pos);
        }

        if (fatal != RB_NO_FATAL) {
            /* The barrier puts every warp's reply stores before thread 0's
               release store of the final status (cumulative), so a host that
               sees FAILED finds the replies before it already written. */
            rb_block_sync();
            if (tid == 0) {
                h2k_tail += done;
                k2h_head += done;
                rb_st_release(&h2k->tail, h2k_tail);
                rb_st_relaxed(&k2h->head, k2h_head);
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                rb_finish(ctl, RB_STATUS_FAILED, ls.code[fatal], ls.detail[fatal]);
            }
            return (int)RB_STATUS_FAILED;
        }

#if RB_ON_GPU
        /* The ring was drained (some polled slot was empty, or one warp
           polls one slot): the next request comes from a host that has yet
           to see these replies, so poll for it a little later. */
        if (RB_LANE_POLL_DELAY_CYCLES > 0 && (n < limit || limit == 1))
            poll_after = clock64() + RB_LANE_POLL_DELAY_CYCLES;
#endif
        if (tid == 0) {
            if (idle != 0) idle = 0;
            empty_turns = 0;
            h2k_tail += n;
            k2h_head += n;
            /* The replies' lanes are written (by this thread; in the block
               emulation other warps may still be writing theirs, and a host
               woken too early parks again until a later wake or its
               timeout: slower, never stuck). */
            rb_wake_host(ctl);
            /* The tail is published at the top of a later turn (see
               RB_LANE_LAZY_TAIL). */
            rb_after_batch(checks);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Slot format, chunkwise handlers: a batch served by the whole block.      */
/* ------------------------------------------------------------------------ */

/* Requests per batch at most on this path (block-shared state per request). */
#define RB_COOP_MAX_BATCH 1024u
/* Requests per batch of a cooperative handler: served one after another,
   so a long batch would hold back the replies of its first requests. */
#define RB_COOPERATIVE_MAX_BATCH 32u
/* Pairs of adjacent 16-byte chunks each thread loads per round, all in
   flight together: 4 loads (64 bytes) per thread. */
#define RB_COOP_PAIRS 2u
/* len of a request whose header failed validation. */
#define RB_LEN_CORRUPT 0xFFFFFFFFu

/* Whether a slot-format batch takes the chunkwise path below: a chunkwise
   handler in a block of threads. The host fallback's one thread serves
   chunkwise handlers request by request instead (rb_serve_per_request_batch,
   with rb_handle mapping the chunks): the chunkwise path's rounds, written
   to spread a batch over a block, cost one thread more than they save.
   Measured side by side on a 2-vCPU EPYC VM, 2026-11-26: 64-byte round
   trips 251-260 -> 211-220 ns (vCPUs close) and 691-701 -> 541-571 ns (far
   apart), a 4064-byte stream 0.91 -> 2.1-2.2 M msg/s. The chunkwise path
   still runs on the host in tests, under the block emulation (a block of
   CPU threads, RB_BLOCK_PARALLEL). */
template <class Handler>
struct rb_use_coop {
    static constexpr bool value = rb_chunkwise_of<Handler>::value && RB_BLOCK_PARALLEL;
};

/* Block-shared per-request state of a chunkwise batch. */
struct rb_coop_shared {
    uint32_t len[RB_COOP_MAX_BATCH];   /* validated request len, or RB_LEN_CORRUPT */
    uint32_t flags[RB_COOP_MAX_BATCH]; /* request flags */
    int32_t rc[RB_COOP_MAX_BATCH];     /* the handler's admit() */
    uint32_t fatal_index;              /* first request that stops the kernel, or RB_NO_FATAL */
};

/* log2 of a power of two. */
RB_INLINE uint32_t rb_log2(uint64_t x) {
#if RB_ON_GPU
    return (uint32_t)(__ffsll((long long)x) - 1);
#else
    return (uint32_t)__builtin_ctzll(x);
#endif
}

/* Whether request state (len, rc) stops the kernel: a corrupted header, a
   fatal admit(), or a reply that would not fit a K2H slot. */
RB_INLINE bool rb_coop_fatal(uint32_t len, int32_t rc, uint32_t out_cap) {
    return len == RB_LEN_CORRUPT || rc < 0 || (rc == 0 && len > out_cap);
}

/*
 * Serves the batch of n requests that thread 0 acquired (H2K positions
 * sh.h2k_tail.., K2H positions sh.k2h_head..) with a chunkwise handler. Every
 * thread of the block calls it. The batch's request slots, header chunks
 * included, form one index space of n * (slot_size / 16) chunks that the
 * block walks in rounds: in a round, thread t loads RB_COOP_PAIRS pairs of
 * adjacent chunks (a slot's two header chunks are always one pair), with
 * plain 16-byte loads that are all in flight together, so a 4 KiB request
 * costs one PCIe round trip, not 64. A chunk whose request header arrives in
 * the same round is loaded speculatively (it lies inside its slot, so the
 * load is always in bounds) and used only if the header, checked after the
 * round's barrier, makes it payload; later rounds load only payload chunks.
 *
 * MEMORY ORDER: the loads are plain (weak): thread 0's ACQUIRE of the H2K
 * head and the block barrier that broadcast the batch order them after the
 * host's slot writes (see rb_serve). The reply stores are plain; the final
 * barrier here puts them all before thread 0's RELEASE of the K2H head.
 *
 * Returns RB_NO_FATAL, or (block-uniform) the index of the first request
 * that is corrupted or fatal, with thread 0's *code and *detail set; then
 * nothing of the batch may be published.
 */
template <class Handler>
RB_INLINE uint32_t rb_serve_chunkwise_batch(rb_ring* h2k, rb_ring* k2h, const Handler& handler,
                                            const rb_block_state& sh, uint32_t n, uint64_t* code, uint64_t* detail) {
    RB_BLOCK_SHARED rb_coop_shared cs;
    const uint32_t tid = rb_thread_index();
    const uint32_t nthreads = rb_block_size();
    const uint64_t in_base = sh.h2k_tail, out_base = sh.k2h_head;
    const uint32_t in_shift = rb_log2(sh.h2k_slot_size / 16u); /* chunks per request slot, log2 */
    const uint32_t in_mask = (1u << in_shift) - 1u;
    const uint32_t in_cap = (uint32_t)(sh.h2k_slot_size - RB_MSG_HEADER_SIZE);
    const uint32_t out_cap = (uint32_t)(sh.k2h_slot_size - RB_MSG_HEADER_SIZE);
    const uint64_t total = (uint64_t)n << in_shift;
    const uint64_t per_round = (uint64_t)nthreads * 2u * RB_COOP_PAIRS;
    if (tid == 0) cs.fatal_index = RB_NO_FATAL;
    rb_block_sync(); /* fatal_index is reset before any thread lowers it */

    for (uint64_t base = 0; base < total; base += per_round) {
        rb_vec16 v[RB_COOP_PAIRS][2] = {}; /* zeroed: quiets maybe-uninitialized; only loaded pairs are used */
        uint64_t idx[RB_COOP_PAIRS]; /* first chunk of each pair, or `total`: none */
        RB_UNROLL
        for (uint32_t p = 0; p < RB_COOP_PAIRS; ++p) {
            const uint64_t i = base + (uint64_t)p * nthreads * 2u + 2u * tid;
            idx[p] = total;
            if (i >= total) continue;
            const uint32_t m = (uint32_t)(i >> in_shift), c = (uint32_t)i & in_mask;
            /* A header read in an earlier round: load only payload chunks of
               an admitted request (c >= 2 here: pairs and slots are even). */
            if (((uint64_t)m << in_shift) < base &&
                (cs.rc[m] != 0 || cs.len[m] == RB_LEN_CORRUPT || (c - 2u) * 16u >= cs.len[m]))
                continue;
            idx[p] = i;
            const uint8_t* chunk = rb_slot(h2k, in_base + m, sh.h2k_mask, sh.h2k_slot_size) + (size_t)c * 16u;
            v[p][0] = rb_ld16(chunk);
            v[p][1] = rb_ld16(chunk + 16);
        }
        /* The header pairs of this round: validate, admit, share. */
        RB_UNROLL
        for (uint32_t p = 0; p < RB_COOP_PAIRS; ++p) {
            if (idx[p] == total || (idx[p] & in_mask) != 0) continue;
            const uint32_t m = (uint32_t)(idx[p] >> in_shift);
            rb_msg_header in;
            memcpy(reinterpret_cast<uint8_t*>(&in), &v[p][0], 16);
            memcpy(reinterpret_cast<uint8_t*>(&in) + 16, &v[p][1], 16);
            uint32_t len = in.len;
            int32_t rc = 0;
            if (in.seq != in_base + m || in.kind != RB_KIND_REQUEST || in.len > in_cap) {
                len = RB_LEN_CORRUPT;
            } else {
                rc = handler.admit(in, out_cap);
            }
            cs.len[m] = len;
            cs.flags[m] = in.flags;
            cs.rc[m] = rc;
            if (rb_coop_fatal(len, rc, out_cap)) rb_block_min_u32(&cs.fatal_index, m);
        }
        rb_block_sync(); /* every header of this round is in cs */
        /* Replies: the header pair writes the reply header, payload pairs
           their mapped chunks up to rb_round16(len). */
        RB_UNROLL
        for (uint32_t p = 0; p < RB_COOP_PAIRS; ++p) {
            if (idx[p] == total) continue;
            const uint32_t m = (uint32_t)(idx[p] >> in_shift), c = (uint32_t)idx[p] & in_mask;
            const uint32_t len = cs.len[m];
            const int32_t rc = cs.rc[m];
            if (rb_coop_fatal(len, rc, out_cap)) continue; /* the batch is not published */
            uint8_t* out = rb_slot(k2h, out_base + m, sh.k2h_mask, sh.k2h_slot_size);
            if (c == 0) {
                rb_msg_header o;
                o.seq = out_base + m;
                o.correlation = in_base + m;
                o.kind = rc == 0 ? RB_KIND_REPLY : RB_KIND_ERROR;
                o.len = rc == 0 ? len : 0u;
                o.flags = rc == 0 ? cs.flags[m] : (uint32_t)rc;
                o.reserved = 0;
                rb_store_header(out, &o);
            } else if (rc == 0) {
                const uint32_t end = rb_round16(len);
                if ((c - 2u) * 16u < end) rb_st16(out + (size_t)c * 16u, handler.chunk(v[p][0]));
                if ((c - 1u) * 16u < end) rb_st16(out + (size_t)c * 16u + 16u, handler.chunk(v[p][1]));
            }
        }
    }
    /* Every reply chunk of the batch is stored and every request chunk read,
       before thread 0 publishes (or reports the failure). */
    rb_block_sync();
    const uint32_t fatal = cs.fatal_index;
    if (fatal != RB_NO_FATAL && tid == 0) {
        if (cs.len[fatal] == RB_LEN_CORRUPT) {
            *code = RB_ERR_RING_CORRUPTED;
            *detail = in_base + fatal;
        } else {
            /* A fatal admit(), or rc 0 with a reply (len = request len) that
               does not fit: the same errors as a per-request handler's. */
            rb_msg_header o{};
            o.len = cs.len[fatal];
            rb_settle_reply(cs.rc[fatal], o, out_cap, *code, *detail);
        }
    }
    return fatal;
}

/* The sender of a batch of n requests: rb_max_sends slots per request,
   reserved after the batch's replies (rb_serve sized the batch for them). */
template <class Handler>
RB_INLINE rb_sender rb_batch_sender(rb_ring* k2h, rb_block_state& sh, uint32_t n) {
    return rb_sender{k2h,          sh.k2h_head + n, sh.k2h_mask, sh.k2h_slot_size, sh.events, &sh.sent,
                     n * rb_max_sends_of<Handler>::value};
}

/* ------------------------------------------------------------------------ */
/* Slot format, cooperative handlers: the whole block per request.          */
/* ------------------------------------------------------------------------ */

/*
 * Serves the batch's n requests one after another, each by every thread of
 * the block (the host fallback's one thread is a block of one). Every
 * thread reads the request's header (plain loads, after the acquire and the
 * barrier) and calls the handler; thread 0's return code and reply header
 * count. A barrier after each request orders the handler's stores (reply,
 * scratch) before thread 0 settles the reply and before the next request
 * reuses the scratch. Returns RB_NO_FATAL, or (block-uniform) the first
 * request that is corrupted or fatal, with *code and *detail set; as in the
 * per-request path, a block publishes nothing of such a batch, the host's
 * one thread the replies before it.
 */
template <class Handler>
RB_INLINE uint32_t rb_serve_cooperative_batch(rb_ring* h2k, rb_ring* k2h, Handler& handler, rb_block_state& sh,
                                              uint32_t n, uint64_t* code, uint64_t* detail) {
    constexpr uint32_t scratch_bytes = rb_scratch_of<Handler>::value;
    static_assert(scratch_bytes <= 48u * 1024u, "rb_scratch_bytes: at most 48 KiB of static shared memory");
    struct alignas(16) scratch_memory {
        uint8_t bytes[scratch_bytes > 0 ? scratch_bytes : 16u];
    };
    RB_BLOCK_SHARED scratch_memory scratch;
    rb_block block{scratch.bytes};
    rb_sender sender = rb_batch_sender<Handler>(k2h, sh, n);
    const uint32_t tid = rb_thread_index();
    const uint32_t in_cap = (uint32_t)(sh.h2k_slot_size - RB_MSG_HEADER_SIZE);
    const uint32_t out_cap = (uint32_t)(sh.k2h_slot_size - RB_MSG_HEADER_SIZE);
    for (uint32_t k = 0; k < n; ++k) {
        const uint64_t in_pos = sh.h2k_tail + k, out_pos = sh.k2h_head + k;
        const uint8_t* in_slot = rb_slot(h2k, in_pos, sh.h2k_mask, sh.h2k_slot_size);
        uint8_t* out_slot = rb_slot(k2h, out_pos, sh.k2h_mask, sh.k2h_slot_size);
        rb_msg_header in;
        rb_load_header(&in, in_slot);
        /* Every thread read the same header: the test is block-uniform. */
        if (in.seq != in_pos || in.kind != RB_KIND_REQUEST || in.len > in_cap) {
            *code = RB_ERR_RING_CORRUPTED;
            *detail = in_pos;
            return k;
        }
        rb_msg_header out = rb_reply_header(out_pos, in);
        const int rc = rb_handle_cooperative(handler, block, in, in_slot + RB_MSG_HEADER_SIZE, out,
                                             out_slot + RB_MSG_HEADER_SIZE, out_cap, sender);
        rb_block_sync(); /* every thread's reply and scratch stores are done */
        if (tid == 0) {
            uint64_t c = 0, d = 0;
            rb_settle_reply(rc, out, out_cap, c, d);
            if (c == 0) {
                rb_store_header(out_slot, &out);
            } else {
                sh.fatal_index = k;
                sh.fatal_code = c;
                sh.fatal_detail = d;
            }
        }
        rb_block_sync(); /* broadcast the outcome */
        if (sh.fatal_index != RB_NO_FATAL) { /* block-uniform */
            *code = sh.fatal_code;
            *detail = sh.fatal_detail;
            return sh.fatal_index;
        }
    }
    return RB_NO_FATAL;
}

/* ------------------------------------------------------------------------ */
/* Slot format, other handlers: one request per thread.                     */
/* ------------------------------------------------------------------------ */

/* One request of a per-request batch: validates request in_pos, runs the
   handler straight in the slots and writes the reply header. Returns 0, or
   the error code with *detail set (then no reply header is written). */
template <class Handler>
RB_INLINE uint64_t rb_serve_one(rb_ring* h2k, rb_ring* k2h, Handler& handler, const rb_block_state& sh,
                                uint64_t in_pos, uint64_t out_pos, uint64_t* detail, rb_sender& sender) {
    const uint8_t* in_slot = rb_slot(h2k, in_pos, sh.h2k_mask, sh.h2k_slot_size);
    uint8_t* out_slot = rb_slot(k2h, out_pos, sh.k2h_mask, sh.k2h_slot_size);
    const uint32_t in_cap = (uint32_t)(sh.h2k_slot_size - RB_MSG_HEADER_SIZE);
    const uint32_t out_cap = (uint32_t)(sh.k2h_slot_size - RB_MSG_HEADER_SIZE);
    rb_msg_header in;
    rb_load_header(&in, in_slot); /* plain 16-byte loads, after the acquire + barrier */
    if (in.seq != in_pos || in.kind != RB_KIND_REQUEST || in.len > in_cap) {
        *detail = in_pos;
        return RB_ERR_RING_CORRUPTED;
    }
    rb_msg_header out = rb_reply_header(out_pos, in);
    uint64_t code = 0;
    const int rc =
        rb_handle(handler, in, in_slot + RB_MSG_HEADER_SIZE, out, out_slot + RB_MSG_HEADER_SIZE, out_cap, sender);
    rb_settle_reply(rc, out, out_cap, code, *detail);
    out.seq = out_pos;
    out.correlation = in.seq;
    out.reserved = 0;
    if (code == 0) rb_store_header(out_slot, &out); /* plain 16-byte stores */
    return code;
}

/*
 * Serves the batch of n requests that thread 0 acquired. In a block, thread
 * t < n <= block size serves request t; the host fallback's one thread
 * serves them in order. Each reads the request's header and calls the
 * handler, which reads and writes the payload straight in the slots (plain
 * loads and stores, ordered as in rb_serve_chunkwise_batch). Returns
 * RB_NO_FATAL, or (block-uniform) the first request that is corrupted or
 * fatal, with thread 0's *code and *detail set. In a block nothing of such
 * a batch may then be published; on the host the replies before it are
 * whole (it stops at the first failure) and may be.
 */
template <class Handler>
RB_INLINE uint32_t rb_serve_per_request_batch(rb_ring* h2k, rb_ring* k2h, Handler& handler, rb_block_state& sh,
                                              uint32_t n, uint64_t* code, uint64_t* detail) {
    rb_sender sender = rb_batch_sender<Handler>(k2h, sh, n);
#if !RB_BLOCK_PARALLEL
    for (uint32_t k = 0; k < n; ++k) {
        *code = rb_serve_one(h2k, k2h, handler, sh, sh.h2k_tail + k, sh.k2h_head + k, detail, sender);
        if (*code != 0) return k;
    }
    return RB_NO_FATAL;
#else
    const uint32_t tid = rb_thread_index();
    uint64_t my_code = 0, my_detail = 0;
    if (tid < n) {
        my_code = rb_serve_one(h2k, k2h, handler, sh, sh.h2k_tail + tid, sh.k2h_head + tid, &my_detail, sender);
        if (my_code != 0) rb_block_min_u32(&sh.fatal_index, tid);
    }
    /* Every reply slot of the batch is written and every request slot read. */
    rb_block_sync();

    if (sh.fatal_index == RB_NO_FATAL) return RB_NO_FATAL; /* block-uniform */
    if (tid == sh.fatal_index) {
        sh.fatal_code = my_code;
        sh.fatal_detail = my_detail;
    }
    rb_block_sync();
    *code = sh.fatal_code;
    *detail = sh.fatal_detail;
    return sh.fatal_index;
#endif
}

/* Thread 0, slot format: publishes the first n served requests of a batch
   (all of it, or on the host the run before a failing request).
   RELEASE, system scope, of the K2H head: publishes their replies. The
   barrier after the replies were written ordered every thread's reply stores
   before this thread's next operations (causality order), and a release is
   cumulative over what precedes it in that order, so a host that acquires
   the new head sees all n reply slots.
   RELEASE of the H2K tail: the block's loads of those request slots are
   done (the barrier again), so the host may now reuse them. */
RB_INLINE void rb_publish_served(rb_ring* h2k, rb_ring* k2h, uint64_t& h2k_tail, uint64_t& k2h_head, uint64_t n,
                                 uint64_t sent) {
    k2h_head += n + sent; /* the replies, then the handlers' own messages after them */
    rb_st_release(&k2h->head, k2h_head);
    h2k_tail += n;
    rb_st_release(&h2k->tail, h2k_tail);
}

/* Thread 0, idle (no request waiting), for a handler with an idle hook:
   calls handler.idle(sender) with room for rb_max_sends messages (at least
   1, at most the free K2H slots; none free: not called) and publishes what
   it sent. RELEASE of the K2H head: the messages are this thread's own
   plain stores, before the release in program order. Returns a final status
   when the K2H ring is corrupted, else 0. */
template <class Handler>
RB_INLINE uint32_t rb_idle_hook(rb_control* ctl, rb_ring* k2h, Handler& handler, rb_block_state& sh,
                                uint64_t& k2h_tail, uint64_t& k2h_head, uint64_t k2h_cap, uint64_t h2k_tail,
                                uint64_t& beat, uint64_t& events) {
    uint64_t room = 0;
    const uint32_t stop = rb_k2h_room(ctl, k2h, k2h_tail, k2h_head, k2h_cap, h2k_tail, beat, room);
    if (stop != 0 || room == 0) return stop;
    constexpr uint64_t per_turn = rb_max_sends_of<Handler>::value > 0 ? rb_max_sends_of<Handler>::value : 1u;
    /* sh.sent is free: the other threads wait at the barrier for the batch. */
    sh.sent = 0;
    rb_sender sender{k2h, k2h_head, sh.k2h_mask, sh.k2h_slot_size, events, &sh.sent,
                     (uint32_t)(room < per_turn ? room : per_turn)};
    handler.idle(sender);
    const uint32_t sent = sender.sent();
    if (sent > 0) {
        k2h_head += sent;
        rb_st_release(&k2h->head, k2h_head);
        events += sent;
        rb_wake_host(ctl);
    }
    return 0;
}

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
 * error nothing of the failing batch is published by a block; the host
 * fallback's one thread, which serves a batch in order and stops at the
 * failing request, publishes the replies before it.
 */
template <class Handler>
RB_INLINE int rb_serve(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, Handler& handler) {
    if (!rb_select_stripe(ctl, h2k, k2h)) return (int)RB_STATUS_LAUNCHING;
    const uint32_t tid = rb_thread_index();
    const uint32_t nthreads = rb_block_size();
    RB_BLOCK_SHARED rb_block_state sh;
#if !RB_BLOCK_PARALLEL
    /* The host's sh is a plain local: zero it, so the compiler, which cannot
       tell that thread 0 is the only thread, sees every field set. */
    sh = rb_block_state();
#endif

    /* Thread 0's own state: the counters it owns and caches of the peer's. */
    uint64_t h2k_tail = 0;   /* ours: requests consumed */
    uint64_t h2k_head = 0;   /* cache of the host's H2K head */
    uint64_t k2h_head = 0;   /* ours: replies published */
    uint64_t k2h_tail = 0;   /* cache of the host's K2H tail */
    uint64_t h2k_cap = 0, k2h_cap = 0, beat = 0;
    rb_checks checks = {0, 0, 0};
    uint32_t idle = 0;
    uint32_t start_failed = 0; /* thread 0: the final status if the start checks failed */
    /* Requests per batch: one per thread, or (chunkwise, in a block of
       threads) as many as the block-shared state holds; the host fallback's
       one thread takes up to RB_HOST_MAX_BATCH in turn. */
    const uint64_t max_batch = rb_cooperative_of<Handler>::value ? RB_COOPERATIVE_MAX_BATCH
                               : rb_use_coop<Handler>::value    ? RB_COOP_MAX_BATCH
                                                                : (RB_BLOCK_PARALLEL ? nthreads : RB_HOST_MAX_BATCH);
    /* K2H slots per request: its reply and the messages it may send. */
    constexpr uint64_t per_request = 1u + rb_max_sends_of<Handler>::value;
    constexpr bool slots_only = rb_cooperative_of<Handler>::value || rb_sends_of<Handler>::value;
    uint64_t events = 0; /* thread 0: the handlers' own messages published so far */

    if (tid == 0) {
        sh.stop = 0;
        sh.n = 0;
        sh.fatal_index = RB_NO_FATAL;
        sh.lanes = 0;
        sh.sent = 0;
        sh.events = 0;
        uint64_t bad = 0;
        /* RELAXED reads of words the host wrote before the launch. */
        const uint64_t interval = rb_ld_relaxed(&ctl->check_interval);
        const uint64_t stripes = rb_ld_relaxed(&ctl->stripes);
        const uint64_t stride = rb_ld_relaxed(&ctl->stripe_stride);
        if (rb_ld_relaxed(&ctl->magic) != RB_MAGIC || rb_ld_relaxed(&ctl->version) != RB_LAYOUT_VERSION) {
            bad = RB_BAD_CONTROL;
        } else if (interval == 0 || (interval & (interval - 1)) != 0) {
            bad = RB_BAD_CHECK_INTERVAL;
        } else if (stripes == 0 || (stripes > 1 && (stride == 0 || stride % RB_LINE != 0))) {
            bad = RB_BAD_STRIPES;
        } else if (!rb_ring_ok(h2k)) {
            bad = RB_BAD_H2K;
        } else if (!rb_ring_ok(k2h) || rb_ld_relaxed(&k2h->capacity) < per_request) {
            /* a K2H ring too small for a reply and a handler's own messages
               would never have room for a batch */
            bad = RB_BAD_K2H;
        } else {
            /* RELAXED: written by the host before the launch. */
            const uint64_t format = rb_ld_relaxed(&h2k->format);
            const bool lanes = format == RB_FORMAT_LANES;
            if (rb_ld_relaxed(&k2h->format) != format || (format != RB_FORMAT_SLOTS && !lanes) || (lanes && slots_only) ||
                (lanes && (rb_ld_relaxed(&h2k->slot_size) > RB_MAX_LANE_SLOT_SIZE ||
                           rb_ld_relaxed(&k2h->slot_size) > RB_MAX_LANE_SLOT_SIZE || (RB_BLOCK_PARALLEL && nthreads < 32u)))) {
                bad = RB_BAD_FORMAT;
            } else {
                sh.lanes = lanes ? 1u : 0u;
            }
        }
        if (bad != 0) {
            start_failed = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_BAD_MAGIC, bad);
        } else {
            checks.mask = interval - 1;
            checks.checked_ns = rb_clock_ns();
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
                sh.lanes = 0; /* the slot loop below reports the failure */
            } else {
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                /* RELEASE: the host that acquires RUNNING sees the progress words. */
                rb_st_release(&ctl->status, RB_STATUS_RUNNING);
            }
        }
    }

    rb_block_sync(); /* broadcast the format */
    if constexpr (!slots_only) {
        if (sh.lanes != 0) { /* block-uniform */
            return rb_serve_lanes(ctl, h2k, k2h, handler, sh, h2k_tail, k2h_head, k2h_tail, h2k_cap, k2h_cap, checks,
                                  beat, idle);
        }
    }

    for (;;) {
        if (tid == 0) {
            uint32_t stop = start_failed;
            uint64_t n = 0;
            while (stop == 0) {
                /* terminate and heartbeat: see rb_check_due, so an idle
                   poll costs one PCIe read, not two. */
                stop = rb_turn_check(ctl, checks, idle, beat, h2k_tail, k2h_head);
                if (stop != 0) break;
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
                        if constexpr (rb_has_idle<Handler>::value) {
                            stop = rb_idle_hook(ctl, k2h, handler, sh, k2h_tail, k2h_head, k2h_cap, h2k_tail, beat,
                                                events);
                            if (stop != 0) break;
                        }
                        rb_idle(ctl, idle, true);
                        continue;
                    }
                }
                uint64_t room = 0;
                stop = rb_k2h_room(ctl, k2h, k2h_tail, k2h_head, k2h_cap, h2k_tail, beat, room, per_request);
                if (stop != 0) break;
                room /= per_request; /* whole requests: a reply and its own messages each */
                if (room == 0) { /* back-pressure: wait, never drop */
                    rb_idle(ctl, idle, false);
                    continue;
                }
                idle = 0;
                n = avail < room ? avail : room;
                if (n > max_batch) n = max_batch;
                break;
            }
            sh.stop = stop;
            sh.n = (uint32_t)n;
            sh.h2k_tail = h2k_tail;
            sh.k2h_head = k2h_head;
            sh.sent = 0;
            sh.events = events;
        }
        rb_block_sync(); /* broadcast the batch (block-shared memory) */
        if (sh.stop != 0) return (int)sh.stop;

        const uint32_t n = sh.n;
        uint64_t code = 0, detail = 0;
        uint32_t fatal;
        if constexpr (rb_cooperative_of<Handler>::value) {
            fatal = rb_serve_cooperative_batch(h2k, k2h, handler, sh, n, &code, &detail);
        } else if constexpr (rb_use_coop<Handler>::value) {
            fatal = rb_serve_chunkwise_batch(h2k, k2h, handler, sh, n, &code, &detail);
        } else {
            fatal = rb_serve_per_request_batch(h2k, k2h, handler, sh, n, &code, &detail);
        }
        if (fatal != RB_NO_FATAL) { /* block-uniform */
            if (tid == 0) {
#if !RB_BLOCK_PARALLEL
                /* The host's one thread stopped at the failing request: the
                   replies before it are whole. */
                if (fatal > 0) rb_publish_served(h2k, k2h, h2k_tail, k2h_head, fatal, 0);
#else
                /* Publish nothing of this batch: the counters stay put. */
#endif
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                rb_finish(ctl, RB_STATUS_FAILED, code, detail);
            }
            return (int)RB_STATUS_FAILED;
        }

        if (tid == 0) {
            /* The barrier that ended the batch ordered every send's count. */
            const uint32_t reserved = n * rb_max_sends_of<Handler>::value;
            const uint32_t sent = sh.sent < reserved ? sh.sent : reserved;
            rb_publish_served(h2k, k2h, h2k_tail, k2h_head, n, sent);
            events += sent;
            rb_wake_host(ctl); /* after the publish: the host may be parked */
#if !RB_ON_GPU
            rb_host_warm_slot(k2h, k2h_head, k2h_tail, k2h_cap, sh.k2h_mask, sh.k2h_slot_size);
#endif
            rb_after_batch(checks); /* after the publish: the clock read delays no reply */
        }
    }
}

#if !RB_ON_GPU
/* Whether a host entry's regions are usable: the control block and both
   ring headers 128-byte aligned and not null. */
inline bool rb_host_regions_ok(const void* ctl, const void* h2k, const void* k2h) {
    const auto aligned = [](const void* p) { return p != nullptr && reinterpret_cast<uintptr_t>(p) % RB_LINE == 0; };
    return aligned(ctl) && aligned(h2k) && aligned(k2h);
}
#endif

/*
 * The largest block RB_KERNEL_ENTRY's kernels are compiled for: nvcc fits the
 * handler's registers to it, so a handler built for 128 threads need not
 * spill to fit 1024. Define it (e.g. ringbridge_build::Kernels::define(
 * "RB_MAX_BLOCK_THREADS", Some("128"))) to the block size you launch with;
 * a larger block is then refused at launch.
 */
#ifndef RB_MAX_BLOCK_THREADS
#define RB_MAX_BLOCK_THREADS 1024
#endif

/*
 * What a handler may be built from instead of the uint64_t parameter: a
 * constructor taking `const rb_launch&` gets the launch's typed parameter
 * (any trivially copyable struct of at most RB_MAX_PARAM_SIZE bytes, set on
 * the host with UserKernel::with_param) and the bridge's buffers (device
 * memory on CUDA, host memory on the fallback; BridgeBuilder::buffer). The
 * references stay valid for the kernel's lifetime: on CUDA they point into
 * the __grid_constant__ kernel parameter, read through the constant bank.
 */
struct rb_launch {
    const rb_args* args;
    /* The parameter as a T (the host sent sizeof(T) bytes or fewer, zero
       padded). */
    template <class T>
    RB_DEVICE const T& param() const {
        static_assert(sizeof(T) <= RB_MAX_PARAM_SIZE, "parameter larger than RB_MAX_PARAM_SIZE");
        static_assert(alignof(T) <= 16, "parameter aligned beyond 16 bytes");
        return *reinterpret_cast<const T*>(args->param);
    }
    /* Bytes of the parameter the host set. */
    RB_DEVICE uint32_t param_size() const { return args->param_size; }
    /* Buffers the bridge owns for this kernel. */
    RB_DEVICE uint32_t buffer_count() const { return args->buffer_count; }
    /* Buffer i as an array of T (nullptr when there is no buffer i). */
    template <class T>
    RB_DEVICE T* buffer(uint32_t i) const {
        return i < args->buffer_count ? reinterpret_cast<T*>(args->buffers[i].addr) : nullptr;
    }
    /* Size of buffer i in bytes (0 when there is none). */
    RB_DEVICE uint64_t buffer_bytes(uint32_t i) const { return i < args->buffer_count ? args->buffers[i].bytes : 0; }
};

/* Builds a handler from the launch: `H(const rb_launch&)` when it has that
   constructor, else `H(uint64_t)` from the parameter's first 8 bytes. */
template <class H>
RB_DEVICE H rb_make_handler(const rb_args& args) {
    if constexpr (std::is_constructible<H, const rb_launch&>::value) {
        return H(rb_launch{&args});
    } else {
        return H(*reinterpret_cast<const uint64_t*>(args.param));
    }
}

/* The RB_TRAIT_* bits of a handler type, for the host (the name__rb_traits
   function each entry's host build defines). */
template <class H>
constexpr uint32_t rb_traits_of() {
    return (rb_chunkwise_of<H>::value ? (uint32_t)RB_TRAIT_CHUNKWISE : 0u) |
           (rb_cooperative_of<H>::value ? (uint32_t)RB_TRAIT_COOPERATIVE : 0u) |
           (rb_sends_of<H>::value ? (uint32_t)RB_TRAIT_SENDS : 0u);
}

#if RB_ON_GPU
/*
 * Defines a persistent-kernel entry point serving `HandlerType`:
 *   extern "C" __global__ void name(rb_control* ctl, rb_ring* h2k, rb_ring* k2h,
 *                                   const __grid_constant__ rb_args args)
 * Each thread builds its handler (rb_make_handler), then serves.
 * __launch_bounds__(threads): any block size up to `threads` launches
 * (RB_KERNEL_ENTRY: RB_MAX_BLOCK_THREADS). Write it at the start of a line:
 * ringbridge-build lists a source's entry points from its
 * `RB_KERNEL_ENTRY(` and `RB_KERNEL_ENTRY_BOUNDED(` lines.
 */
#define RB_KERNEL_ENTRY_BOUNDED(name, HandlerType, threads)                                          \
    extern "C" __global__ void __launch_bounds__(threads)                                            \
        name(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, const __grid_constant__ rb_args args) {    \
        HandlerType handler = rb_make_handler<HandlerType>(args);                                    \
        (void)rb_serve(ctl, h2k, k2h, handler);                                                      \
    }
#elif defined(RB_EMULATE_BLOCK)
/*
 * The same line in the block emulation's build (ringbridge-build's
 * lib<stem>_emulation.so) defines
 *   extern "C" int32_t name__rb_emulate(void* ctl, void* h2k, void* k2h, const void* args,
 *                                       uint32_t nthreads)
 * which serves region 0's rings (no stripes) on a block of nthreads emulated
 * threads (at most `threads`), each building its handler from *args, until
 * terminate or failure; returns thread 0's final status, or -1 for bad
 * arguments.
 */
#define RB_KERNEL_ENTRY_BOUNDED(name, HandlerType, threads)                                          \
    static int32_t name##__rb_emulated_thread(void* ctl, void* h2k, void* k2h, const void* args) {   \
        HandlerType handler = rb_make_handler<HandlerType>(*static_cast<const rb_args*>(args));      \
        return rb_serve(static_cast<rb_control*>(ctl), static_cast<rb_ring*>(h2k),                   \
                        static_cast<rb_ring*>(k2h), handler);                                        \
    }                                                                                                \
    extern "C" RB_EMU_EXPORT int32_t name##__rb_emulate(void* ctl, void* h2k, void* k2h, const void* args, \
                                                        uint32_t nthreads) {                         \
        if (!rb_host_regions_ok(ctl, h2k, k2h) || args == nullptr || nthreads > (uint32_t)(threads)) \
            return -1;                                                                               \
        return rb_emu_run(nthreads, name##__rb_emulated_thread, ctl, h2k, k2h, args);                \
    }
#else
/*
 * The same line compiled by a host C++ compiler (ringbridge-build's host
 * build of a .cu file) defines the entry the fallback calls instead:
 *   extern "C" int32_t name__rb_host(void* ctl, void* h2k, void* k2h, uint32_t block,
 *                                    const void* args)
 * run on the calling thread as block `block` of a striped group (0 for a
 * plain bridge; ctl, h2k and k2h are region 0's, see rb_select_stripe). It
 * builds the handler from *args (an rb_args that outlives the call) and
 * serves until terminate or failure; returns the final status
 * (RB_STATUS_STOPPED or RB_STATUS_FAILED), RB_STATUS_LAUNCHING when the
 * group has no region for `block`, or -1 for a null or misaligned region or
 * null args. rb_host_block_index is a C++17 inline variable: defined once
 * however many kernels' libraries are linked together. It also defines
 *   extern "C" uint32_t name__rb_traits(void)
 * the handler's RB_TRAIT_* bits, which the host reads to pick a format.
 */
#define RB_KERNEL_ENTRY_BOUNDED(name, HandlerType, threads)                                          \
    extern "C" int32_t name##__rb_host(void* ctl, void* h2k, void* k2h, uint32_t block, const void* args) { \
        if (!rb_host_regions_ok(ctl, h2k, k2h) || args == nullptr) return -1;                       \
        rb_host_block_index = block;                                                                 \
        HandlerType handler = rb_make_handler<HandlerType>(*static_cast<const rb_args*>(args));      \
        return rb_serve(static_cast<rb_control*>(ctl), static_cast<rb_ring*>(h2k),                   \
                        static_cast<rb_ring*>(k2h), handler);                                        \
    }                                                                                                \
    extern "C" uint32_t name##__rb_traits(void) { return rb_traits_of<HandlerType>(); }
#endif

/* The common case: bounded by RB_MAX_BLOCK_THREADS (default 1024). */
#define RB_KERNEL_ENTRY(name, HandlerType) RB_KERNEL_ENTRY_BOUNDED(name, HandlerType, RB_MAX_BLOCK_THREADS)

#endif /* RINGBRIDGE_CUH */
