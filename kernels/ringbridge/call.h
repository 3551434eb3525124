/*
 * ringbridge/call.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * The kernel's half of the call ring: calls to host services (rb_call) and
 * log lines (rb_log). The host's half is src/calls/ (ring.rs, server.rs).
 *
 * THE PROTOCOL
 *   The call ring is `capacity` slots after one header line, in the same
 *   mapped region as the rings (the control block's call_offset says where).
 *   A slot's `state` word is `pos << 2 | phase` (pos: the call's 32-bit
 *   position, wrapping) and has one writer per phase:
 *     FREE(pos)    --kernel-->  CALL(pos)       request written
 *     CALL(pos)    --host--->   ANSWER(pos)     answer written
 *     ANSWER(pos)  --kernel-->  FREE(pos + capacity)
 *   and a log line: CALL(pos) --host--> FREE(pos + capacity), no answer.
 *   Each writer release-stores the new state after its plain stores to the
 *   slot; each reader acquire-loads it before its plain loads. So neither
 *   side needs a read-modify-write on mapped memory (a GPU on PCIe cannot
 *   count on one being atomic with the CPU's), and a slot is touched by one
 *   side at a time.
 *   Threads of a block claim positions from a block-shared counter (one
 *   shared-memory atomic per warp on the GPU: a warp's callers take
 *   consecutive slots). The host serves positions strictly in order on a
 *   thread of its own, which never waits for H2K or K2H: see
 *   docs/architecture.md ("Calls from the kernel") for why every wait ends.
 */
#ifndef RINGBRIDGE_DETAIL_CALL_H
#define RINGBRIDGE_DETAIL_CALL_H

#if RB_ON_GPU
#include <cooperative_groups.h>
#endif

namespace rb_detail {

/* One block's view of its call ring, set by thread 0 at the start of
   rb_serve (before the first barrier), read by every thread after it. */
struct rb_call_ring {
    uint8_t* slots;     /* slot 0; nullptr: the bridge has no call ring */
    uint64_t* doorbell; /* the host service thread's doorbell word */
    rb_control* ctl;
    uint32_t mask;      /* capacity - 1 */
    uint32_t capacity;
    uint32_t slot_size;
    uint32_t next;      /* the next position to claim */
    int32_t block_status; /* rb_block_call's result, for the whole block */
    uint32_t block_len;
};

#if RB_ON_GPU
/* Block-shared: one per thread block. */
static __shared__ rb_call_ring rb_calls;
#elif defined(RB_EMULATE_BLOCK)
/* One emulated block runs at a time per library. */
inline rb_call_ring rb_calls;
#else
/* The fallback: one thread is one block, and several bridges' threads may
   run in one process. */
inline thread_local rb_call_ring rb_calls;
#endif

/* Reads the call ring's place from the control block, as the host wrote
   it before the launch (RELAXED); a malformed one (which the host never
   writes) is taken for none, so calls return RB_CALL_NO_RING. */
RB_INLINE void rb_call_ring_init(rb_control* ctl) {
    rb_calls.slots = nullptr;
    rb_calls.doorbell = nullptr;
    rb_calls.ctl = ctl;
    rb_calls.next = 0;
    rb_calls.block_status = 0;
    rb_calls.block_len = 0;
    const uint64_t offset = rb_ld_relaxed(&ctl->call_offset);
    if (offset == 0) return;
    const uint64_t cap = rb_ld_relaxed(&ctl->call_capacity);
    const uint64_t slot = rb_ld_relaxed(&ctl->call_slot_size);
    if (offset % RB_LINE != 0 || cap == 0 || (cap & (cap - 1)) != 0 || cap > (1ull << 16) ||
        slot < RB_MIN_SLOT_SIZE || (slot & (slot - 1)) != 0 || slot > RB_MAX_SLOT_SIZE)
        return;
    uint8_t* ring = reinterpret_cast<uint8_t*>(ctl) + offset;
    rb_calls.doorbell = reinterpret_cast<uint64_t*>(ring);
    rb_calls.slots = ring + RB_CALL_RING_HEADER_SIZE;
    rb_calls.capacity = (uint32_t)cap;
    rb_calls.mask = (uint32_t)cap - 1u;
    rb_calls.slot_size = (uint32_t)slot;
}

/* Called by every entry (RB_KERNEL_ENTRY) before rb_serve, by every thread:
   thread 0 sets up its block's call ring (its region's, found as
   rb_select_stripe finds the rings); the other threads read it only after
   rb_serve's first barrier. Outside rb_serve (and out of line on the
   host), so the serve loop's code does not change with it. */
#if RB_ON_GPU
RB_INLINE void rb_call_ring_setup(rb_control* ctl, rb_ring* h2k, rb_ring* k2h) {
#else
__attribute__((noinline, cold)) inline void rb_call_ring_setup(rb_control* ctl, rb_ring* h2k, rb_ring* k2h) {
#endif
    if (rb_thread_index() != 0) return;
    rb_calls.slots = nullptr;
    if (!rb_select_stripe(ctl, h2k, k2h)) return;
    rb_call_ring_init(ctl);
}

RB_INLINE uint64_t rb_call_state(uint32_t pos, uint64_t phase) { return ((uint64_t)pos << 2) | phase; }

RB_INLINE rb_call_header* rb_call_slot(uint32_t pos) {
    return reinterpret_cast<rb_call_header*>(rb_calls.slots + (uint64_t)(pos & rb_calls.mask) * rb_calls.slot_size);
}

/* Claims the next position. On the GPU the threads of a warp that call
   together take consecutive positions with one shared-memory atomic. */
RB_INLINE uint32_t rb_call_claim() {
#if RB_ON_GPU
    namespace cg = cooperative_groups;
    cg::coalesced_group g = cg::coalesced_threads();
    uint32_t base = 0;
    if (g.thread_rank() == 0) base = atomicAdd(&rb_calls.next, (uint32_t)g.size());
    return g.shfl(base, 0) + (uint32_t)g.thread_rank();
#else
    return rb_block_fetch_add_u32(&rb_calls.next, 1u);
#endif
}

/* One poll of a call slot found the wrong state: pause. GPU: a short
   __nanosleep (each poll is a PCIe read; many threads may poll). Host: spin,
   then yield, then sleep, so a long service does not hold a core; the
   emulation's threads outnumber the cores and yield at once. */
RB_INLINE void rb_call_pause(uint32_t& polls) {
    ++polls;
#if RB_ON_GPU
    __nanosleep(polls < 8u ? 32u << polls : 4096u);
#elif defined(RB_EMULATE_BLOCK)
    if (polls < RB_HOST_YIELD_AFTER) {
        sched_yield();
    } else {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, nullptr);
    }
#else
    if (polls < RB_HOST_PARK_SPIN) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else if (polls < RB_HOST_YIELD_AFTER) {
        sched_yield();
    } else {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, nullptr);
    }
#endif
}

/* Waits until a slot's state is `want`. ACQUIRE: the other side's stores
   to the slot before its release of `want` are visible to the plain loads
   after. */
RB_INLINE void rb_call_wait_state(const uint64_t* state, uint64_t want) {
    uint32_t polls = 0;
    while (rb_ld_acquire(state) != want) rb_call_pause(polls);
}

/* Takes a free slot: claims a position and waits until its slot is free
   for it (the call `capacity` positions before has been answered and read,
   or logged). */
RB_INLINE rb_call_header* rb_call_take(uint32_t& pos) {
    pos = rb_call_claim();
    rb_call_header* h = rb_call_slot(pos);
    rb_call_wait_state(&h->state, rb_call_state(pos, RB_CALL_PHASE_FREE));
    return h;
}

/* Publishes a written slot and rings the service thread's doorbell (host
   fallback: it may be parked). RELEASE: the header and payload stores
   before it are visible to the host that acquires CALL(pos). */
RB_INLINE void rb_call_publish(rb_call_header* h, uint32_t pos) {
    rb_st_release(&h->state, rb_call_state(pos, RB_CALL_PHASE_CALL));
    rb_wake_waiters(rb_calls.ctl, rb_calls.doorbell);
}

RB_INLINE uint8_t* rb_call_payload(rb_call_header* h) { return reinterpret_cast<uint8_t*>(h) + RB_CALL_HEADER_SIZE; }

/* The calling thread's call: see rb_call in ringbridge.cuh. */
RB_DEVICE int rb_call_bytes(uint32_t service, const void* request, uint32_t request_len, void* answer,
                            uint32_t answer_capacity, uint32_t* answer_len) {
    if (answer_len != nullptr) *answer_len = 0;
    if (rb_calls.slots == nullptr) return (int)RB_CALL_NO_RING;
    if (request_len > rb_calls.slot_size - (uint32_t)RB_CALL_HEADER_SIZE || service == (uint32_t)RB_SERVICE_LOG)
        return service == (uint32_t)RB_SERVICE_LOG ? (int)RB_CALL_UNKNOWN_SERVICE : (int)RB_CALL_TOO_LONG;
    uint32_t pos = 0;
    rb_call_header* h = rb_call_take(pos);
    h->service = service;
    h->len = request_len;
    h->status = 0;
    h->thread = rb_thread_index();
    h->block = (uint32_t)rb_block_index();
    h->reserved = 0;
    if (request_len > 0) memcpy(rb_call_payload(h), request, request_len);
    rb_call_publish(h, pos);
    rb_call_wait_state(&h->state, rb_call_state(pos, RB_CALL_PHASE_ANSWER));
    const uint32_t status = h->status;
    const uint32_t len = h->len;
    const uint32_t n = len < answer_capacity ? len : answer_capacity;
    if (n > 0) memcpy(answer, rb_call_payload(h), n);
    if (answer_len != nullptr) *answer_len = len;
    /* RELEASE: our loads of the answer come before the host's next writes
       to this slot, which it makes only after acquiring this state. */
    rb_st_release(&h->state, rb_call_state(pos + rb_calls.capacity, RB_CALL_PHASE_FREE));
    if (status == RB_CALL_OK && len > answer_capacity) return (int)RB_CALL_ANSWER_SIZE;
    return (int)status;
}

/* rb_block_call: thread 0 calls, every thread gets the status. */
RB_DEVICE int rb_block_call_bytes(uint32_t service, const void* request, uint32_t request_len, void* answer,
                                  uint32_t answer_capacity, uint32_t* answer_len) {
    if (rb_thread_index() == 0) {
        uint32_t len = 0;
        rb_calls.block_status = rb_call_bytes(service, request, request_len, answer, answer_capacity, &len);
        rb_calls.block_len = len;
    }
    rb_block_sync(); /* the answer and the status, to every thread */
    const int status = rb_calls.block_status;
    if (answer_len != nullptr) *answer_len = rb_calls.block_len;
    rb_block_sync(); /* every thread has read them before the next call writes */
    return status;
}

/* ------------------------------------------------------------------------ */
/* Log lines: the format string and up to 8 numbers, formatted by the host. */
/* ------------------------------------------------------------------------ */

/* A log line's payload: rb_log_head, the argument words, then the text. */
struct rb_log_head {
    uint32_t args;     /* numbers that follow, at most 8 */
    uint32_t text_len; /* bytes of text after them (cut to fit the slot) */
    uint8_t kinds[8];  /* per number: 1 unsigned, 2 signed, 3 double, 4 bool */
};
static_assert(sizeof(rb_log_head) == 16, "rb_log_head");

struct rb_log_arg {
    uint64_t bits;
    uint8_t kind;
};

template <class T>
RB_INLINE rb_log_arg rb_log_arg_of(T v) {
    rb_log_arg a{0, 1};
    if constexpr (std::is_same<T, bool>::value) {
        a.bits = v ? 1u : 0u;
        a.kind = 4;
    } else if constexpr (std::is_floating_point<T>::value) {
        const double d = (double)v;
        memcpy(&a.bits, &d, sizeof d);
        a.kind = 3;
    } else if constexpr (std::is_pointer<T>::value) {
        a.bits = (uint64_t)(uintptr_t)v;
    } else if constexpr (std::is_enum<T>::value) {
        a.bits = (uint64_t)(typename std::underlying_type<T>::type)v;
    } else if constexpr (std::is_signed<T>::value) {
        a.bits = (uint64_t)(int64_t)v;
        a.kind = 2;
    } else {
        static_assert(std::is_unsigned<T>::value, "rb_log: numbers, bools and pointers only");
        a.bits = (uint64_t)v;
    }
    return a;
}

RB_DEVICE void rb_log_write(uint32_t level, const char* text, const rb_log_arg* args, uint32_t nargs) {
    if (rb_calls.slots == nullptr) return;
    const uint32_t cap = rb_calls.slot_size - (uint32_t)RB_CALL_HEADER_SIZE;
    const uint32_t room = (cap - (uint32_t)sizeof(rb_log_head)) / 8u; /* a 64-byte slot holds 2 numbers */
    if (nargs > room) nargs = room;
    const uint32_t fixed = (uint32_t)sizeof(rb_log_head) + 8u * nargs;
    uint32_t len = 0;
    if (text != nullptr)
        while (text[len] != 0 && fixed + len < cap) ++len;
    uint32_t pos = 0;
    rb_call_header* h = rb_call_take(pos);
    h->service = (uint32_t)RB_SERVICE_LOG;
    h->len = fixed + len;
    h->status = level;
    h->thread = rb_thread_index();
    h->block = (uint32_t)rb_block_index();
    h->reserved = 0;
    uint8_t* p = rb_call_payload(h);
    rb_log_head head;
    memset(&head, 0, sizeof head);
    head.args = nargs;
    head.text_len = len;
    for (uint32_t i = 0; i < nargs; ++i) head.kinds[i] = args[i].kind;
    memcpy(p, &head, sizeof head);
    for (uint32_t i = 0; i < nargs; ++i) memcpy(p + sizeof head + 8u * i, &args[i].bits, 8);
    if (len > 0) memcpy(p + fixed, text, len);
    /* The host logs it and frees the slot: nothing to wait for. */
    rb_call_publish(h, pos);
}

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_CALL_H */
