/*
 * block_emulation.h — what a CUDA thread block gives the serve loop (thread
 * index, block size, __syncthreads, warp shuffle and votes), emulated by
 * POSIX threads, one per CUDA thread, so the block-parallel code of
 * ringbridge.cuh and a user's handler run on a CPU as on a GPU block
 * (runtime: kernels/host/block_emulation.cpp).
 *
 * Included by ringbridge.cuh when RB_EMULATE_BLOCK is defined, after
 * <pthread.h> and <stdint.h>. Every barrier here is a pthread barrier: a
 * wait synchronises memory (POSIX), so plain accesses to the block-shared
 * statics are ordered by the block barriers exactly as __syncthreads orders
 * __shared__ memory, and the warp exchange's slots by the warp barriers.
 */
#ifndef RINGBRIDGE_BLOCK_EMULATION_H
#define RINGBRIDGE_BLOCK_EMULATION_H

/* Threads of a warp, as on NVIDIA GPUs. */
#define RB_EMU_WARP 32u
/* Warps of a 1024-thread block. */
#define RB_EMU_MAX_WARPS 32u

/* The one emulated block (one runs at a time). */
struct rb_emu_block {
    uint32_t nthreads;
    pthread_barrier_t block;                   /* __syncthreads */
    pthread_barrier_t warp[RB_EMU_MAX_WARPS];  /* full warps only */
    uint64_t slot[RB_EMU_MAX_WARPS][RB_EMU_WARP]; /* one value per lane, per exchange */
};

extern rb_emu_block* rb_emu_the_block;
extern __thread uint32_t rb_emu_tid;

/* What each emulated thread runs (a serve loop). */
typedef int32_t (*rb_emu_thread_fn)(void* ctl, void* h2k, void* k2h, const void* args);

/* The block index rb_block_index() returns in this build (default 0): the
   block being run, set by rb_emu_run_block under the one-block lock before
   the block's threads start. A plain global, not per thread, because every
   emulated thread of the block reads it; one is enough because one block
   runs at a time per loaded copy of the library (the block-shared state is
   static too), which is why the bridge (src/emulation.rs) and the test
   simulator (sim-driver) load a copy of the library per block that runs at
   the same time, or that hung for good. */
extern uint32_t rb_emu_block_index;

/* Set (before its threads start) when the block runs for the test
   simulator's GPU launch (name__rb_sim_launch): the serve loop then idles as
   a GPU kernel does, polling with back-off and never parking, because the
   CUDA host never wakes a parked kernel (kernels/ringbridge/idle.h). */
extern bool rb_emu_as_gpu;

/* Runs fn on a block of nthreads (1 to 1024) POSIX threads until every one
   returns; returns thread 0's result, or -1 for bad arguments or a thread
   that could not be created (the started ones are then left blocked). One
   block at a time per library: a second call waits for the first. The
   block plays block `block_index` of its launch (rb_emu_block_index), so
   rb_select_stripe moves it to that block's region, as on a GPU. */
int32_t rb_emu_run_block(uint32_t block_index, uint32_t nthreads, rb_emu_thread_fn fn, void* ctl, void* h2k,
                         void* k2h, const void* args);

/* rb_emu_run_block as block 0: serves the regions it is given. */
int32_t rb_emu_run(uint32_t nthreads, rb_emu_thread_fn fn, void* ctl, void* h2k, void* k2h, const void* args);

/* What __trap() does in this build (it has no host form in the fallback):
   calls the hook set by rb_emu_set_trap_hook, if any, then parks the
   calling thread for good, as a trapped GPU block never runs on; with no
   hook, says so on stderr and aborts. Never returns. */
[[noreturn]] void rb_emu_trap();

/* A kernel source's __trap() (test-kernels' faults.cu) compiles to
   rb_emu_trap() here; a function-like macro, so only a call is rewritten. */
#define __trap() ::rb_emu_trap()

/* The emulation library is built with hidden visibility: its entries say
   otherwise. */
#define RB_EMU_EXPORT __attribute__((visibility("default")))

/* Sets the function rb_emu_trap calls (with `cookie`) when an emulated
   thread executes __trap(): the test simulator's way to hear of a trap and
   fail the launch, rather than the process aborting. Call it before any
   block runs (right after loading the library); a null hook restores the
   abort. */
extern "C" RB_EMU_EXPORT void rb_emu_set_trap_hook(void (*hook)(void* cookie), void* cookie);

/* Schedule shaking, in the race-check build only (RB_EMU_SHAKE, runtime in
   kernels/host/race_check.cpp): at each shake point the calling thread may
   yield or sleep a few microseconds, as a generator seeded from
   RINGBRIDGE_SHAKE_SEED (or a printed random seed) decides, so orders
   that a 2-core machine rarely runs become common. The points: before each
   handler call, each barrier and warp exchange, and each atomic operation
   of the race-check build (ThreadSanitizer's atomic entry points). Nothing
   in other builds. */
#if defined(RB_EMU_SHAKE)
void rb_emu_shake();
#else
inline void rb_emu_shake() {}
#endif

inline uint32_t rb_emu_thread_index() { return rb_emu_tid; }
inline uint32_t rb_emu_block_size() { return rb_emu_the_block->nthreads; }
inline void rb_emu_block_sync() {
    rb_emu_shake();
    pthread_barrier_wait(&rb_emu_the_block->block);
}

/* Every lane of the calling (full) warp posts v; returns the 32 values'
   `lane`-th, after which the slots may be reused. */
inline uint64_t rb_emu_warp_exchange(uint64_t v, uint32_t lane) {
    rb_emu_block* b = rb_emu_the_block;
    const uint32_t w = rb_emu_tid / RB_EMU_WARP;
    rb_emu_shake();
    b->slot[w][rb_emu_tid % RB_EMU_WARP] = v;
    pthread_barrier_wait(&b->warp[w]); /* every lane has posted */
    const uint64_t r = b->slot[w][lane];
    pthread_barrier_wait(&b->warp[w]); /* every lane has read */
    return r;
}

/* __shfl_sync(full mask, v, src). */
inline uint64_t rb_emu_warp_shfl(uint64_t v, uint32_t src) { return rb_emu_warp_exchange(v, src); }

/* __any_sync / __all_sync (full mask): every lane reads all 32 posts. */
inline uint32_t rb_emu_warp_count(bool p) {
    rb_emu_block* b = rb_emu_the_block;
    const uint32_t w = rb_emu_tid / RB_EMU_WARP;
    rb_emu_shake();
    b->slot[w][rb_emu_tid % RB_EMU_WARP] = p ? 1u : 0u;
    pthread_barrier_wait(&b->warp[w]);
    uint32_t n = 0;
    for (uint32_t l = 0; l < RB_EMU_WARP; ++l) n += (uint32_t)b->slot[w][l];
    pthread_barrier_wait(&b->warp[w]);
    return n;
}
inline bool rb_emu_warp_any(bool p) { return rb_emu_warp_count(p) != 0; }
inline bool rb_emu_warp_all(bool p) { return rb_emu_warp_count(p) == RB_EMU_WARP; }

#endif /* RINGBRIDGE_BLOCK_EMULATION_H */
