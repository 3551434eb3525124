// Handlers for the race check (tests/race_check.rs), each in a correct form
// and with a bug that shows only when the requests of a batch run at once:
//   races_histogram_{atomic,plain}  add one to bin request[0] of buffer 0:
//                                   with an atomic add, or with a plain +=;
//   races_scratch_{after,before}    cooperative: every thread posts its
//                                   index in scratch, thread 0 replies the
//                                   sum, read after the barrier or before;
//   races_counter_{fetch_add,load_store}  count the requests in buffer 0:
//                                   an atomic fetch_add, or an atomic load
//                                   then an atomic store (no data race, but
//                                   updates get lost when two interleave:
//                                   what schedule shaking is for).
// A request flagged 1 (the counters) or any request (the others) replies
// the current count or sum as 8 bytes.
#include "ringbridge.cuh"

/* Device atomics on a u64: CUDA's on the GPU, the C++ builtins on the host
   (where the block emulation runs the handler on many threads too). */
#if RB_ON_GPU
RB_DEVICE uint64_t races_fetch_add(uint64_t* p, uint64_t v) {
    return atomicAdd(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
RB_DEVICE uint64_t races_load(const uint64_t* p) { return *reinterpret_cast<const volatile uint64_t*>(p); }
RB_DEVICE void races_store(uint64_t* p, uint64_t v) { *reinterpret_cast<volatile uint64_t*>(p) = v; }
#else
RB_DEVICE uint64_t races_fetch_add(uint64_t* p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
RB_DEVICE uint64_t races_load(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
RB_DEVICE void races_store(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
#endif

RB_DEVICE void races_reply_u64(rb_msg_header& out, uint8_t* out_payload, uint64_t v) {
    memcpy(out_payload, &v, 8);
    out.len = 8;
}

template <bool Atomic>
struct histogram_handler {
    uint64_t* bins;
    RB_DEVICE explicit histogram_handler(const rb_launch& l) : bins(l.buffer<uint64_t>(0)) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (bins == nullptr || in.len < 1 || out_capacity < 8) return 1;
        uint64_t* bin = &bins[in_payload[0] % 16u];
        if (Atomic) {
            races_fetch_add(bin, 1);
        } else {
            *bin += 1; /* the bug: a plain read-modify-write of a shared bin */
        }
        races_reply_u64(out, out_payload, in_payload[0]);
        return 0;
    }
};
using histogram_atomic = histogram_handler<true>;
using histogram_plain = histogram_handler<false>;
RB_KERNEL_ENTRY(races_histogram_atomic, histogram_atomic)
RB_KERNEL_ENTRY(races_histogram_plain, histogram_plain)

template <bool AfterBarrier>
struct scratch_handler {
    static constexpr bool rb_cooperative = true;
    static constexpr uint32_t rb_scratch_bytes = 1024 * 8;
    RB_DEVICE explicit scratch_handler(uint64_t) {}
    RB_DEVICE int operator()(rb_block& b, const rb_msg_header&, const uint8_t*, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (out_capacity < 8) return 1;
        uint64_t* posted = b.scratch<uint64_t>();
        const uint32_t t = b.thread(), n = b.size();
        posted[t] = t + 1u;
        if (AfterBarrier) b.sync();
        /* The bug, without the barrier: thread 0 reads the others' posts
           before they are known to be written. */
        if (t == 0) {
            uint64_t sum = 0;
            for (uint32_t i = 0; i < n; ++i) sum += posted[i];
            races_reply_u64(out, out_payload, sum);
        }
        if (!AfterBarrier) b.sync();
        b.sync(); /* the scratch is reused by the next request */
        return 0;
    }
};
using scratch_after = scratch_handler<true>;
using scratch_before = scratch_handler<false>;
RB_KERNEL_ENTRY(races_scratch_after, scratch_after)
RB_KERNEL_ENTRY(races_scratch_before, scratch_before)

template <bool FetchAdd>
struct counter_handler {
    uint64_t* count;
    RB_DEVICE explicit counter_handler(const rb_launch& l) : count(l.buffer<uint64_t>(0)) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t*, rb_msg_header& out, uint8_t* out_payload,
                             uint32_t out_capacity) const {
        if (count == nullptr || out_capacity < 8) return 1;
        if (in.flags == 1) { /* read, in a batch of its own */
            races_reply_u64(out, out_payload, races_load(count));
            return 0;
        }
        if (FetchAdd) {
            races_fetch_add(count, 1);
        } else {
            /* The bug: two atomics where one read-modify-write is needed. */
            races_store(count, races_load(count) + 1);
        }
        return RB_NO_REPLY;
    }
};
using counter_fetch_add = counter_handler<true>;
using counter_load_store = counter_handler<false>;
RB_KERNEL_ENTRY(races_counter_fetch_add, counter_fetch_add)
RB_KERNEL_ENTRY(races_counter_load_store, counter_load_store)
