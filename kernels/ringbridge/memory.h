/*
 * ringbridge/memory.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * Memory-order primitives on the shared words, and the plain 16-byte
 * accesses to slots that the acquire/release pairs order.
 *
 * The memory order, in brief (measured facts: docs/platform-facts.md,
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
#ifndef RINGBRIDGE_DETAIL_MEMORY_H
#define RINGBRIDGE_DETAIL_MEMORY_H

namespace rb_detail {

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

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_MEMORY_H */
