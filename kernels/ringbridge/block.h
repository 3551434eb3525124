/*
 * ringbridge/block.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * The block abstraction: thread index, block size, barriers, warp
 * exchanges and block-shared atomics on the GPU, on the host's one thread,
 * and in the block emulation.
 */
#ifndef RINGBRIDGE_DETAIL_BLOCK_H
#define RINGBRIDGE_DETAIL_BLOCK_H

namespace rb_detail {

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

#if !RB_ON_GPU && !defined(RB_EMULATE_BLOCK)
/* The host fallback's block index: the fallback serves stripe b of a striped
   group on a thread of its own that sets this first (host/fallback.cpp). */
inline thread_local uint32_t rb_host_block_index = 0;
#endif

RB_INLINE uint64_t rb_block_index() {
#if RB_ON_GPU
    return blockIdx.x + (uint64_t)gridDim.x * (blockIdx.y + (uint64_t)gridDim.y * blockIdx.z);
#elif defined(RB_EMULATE_BLOCK)
    /* Library-wide, not per thread: every emulated thread of the block must
       see the index its launch set (host/block_emulation.h). */
    return rb_emu_block_index;
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

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_BLOCK_H */
