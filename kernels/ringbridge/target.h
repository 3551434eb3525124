/*
 * ringbridge/target.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * Target switches: what differs between nvcc (a GPU block), the host
 * fallback (one CPU thread) and the block emulation (CPU threads as a block).
 */
#ifndef RINGBRIDGE_DETAIL_TARGET_H
#define RINGBRIDGE_DETAIL_TARGET_H

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
/* Where the race-check build shakes the schedule (before each handler
   call; the barriers shake themselves): nothing in other builds. */
#define RB_SHAKE_POINT() ::rb_emu_shake()
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

#ifndef RB_SHAKE_POINT
#define RB_SHAKE_POINT() ((void)0)
#endif

#endif /* RINGBRIDGE_DETAIL_TARGET_H */
