// Tests only: the device half's block-parallel serve loops (the GPU's code
// paths: chunkwise batches spread over the block, one warp per lane slot)
// run by a block of POSIX threads on the CPU, one per CUDA thread, with
// __syncthreads and the warp shuffle and votes emulated
// (kernels/host/block_emulation.h). The host fallback proper
// (fallback.cpp) runs a block of ONE thread, which cannot show a missing
// barrier or a race between warps; this can, without a GPU.
//
// Everything is compiled inside its own namespace, so its instantiations of
// the serve loop (built with RB_EMULATE_BLOCK) never mix with fallback.cpp's.
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define RB_EMULATE_BLOCK 1

namespace rb_emu_ns {

#include "handlers.h"
#include "host/serve_host.h"

rb_emu_block* rb_emu_the_block = nullptr;
__thread uint32_t rb_emu_tid = 0;

struct job {
    rb_control* ctl;
    rb_ring* h2k;
    rb_ring* k2h;
    uint32_t handler_id;
    rb_host_handler_fn fn;
    void* fn_ctx;
    uint32_t tid;
    int32_t status;
};

// The handlers the emulation runs, by id (0 echo, 1 scale_f32, 2 fn): a
// test harness's choice. The fallback proper has no such switch: built-in
// and users' kernels reach it through their RB_KERNEL_ENTRY host entries.
int32_t serve_by_id(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, uint32_t handler_id, rb_host_handler_fn fn,
                    void* fn_ctx) {
    /* RELAXED: written by the host before the serving threads started. */
    const uint64_t param = rb_ld_relaxed(&ctl->param);
    switch (handler_id) {
        case 0: {
            rb_echo_handler h(param);
            return rb_serve(ctl, h2k, k2h, h);
        }
        case 1: {
            rb_scale_f32_handler h(param);
            return rb_serve(ctl, h2k, k2h, h);
        }
        case 2:
            return rb_serve_callback(ctl, h2k, k2h, fn, fn_ctx);
        default:
            return -1;
    }
}

void* run_thread(void* arg) {
    job* j = static_cast<job*>(arg);
    rb_emu_tid = j->tid;
    j->status = serve_by_id(j->ctl, j->h2k, j->k2h, j->handler_id, j->fn, j->fn_ctx);
    return nullptr;
}

// One emulated block at a time: the block-shared state is static.
pthread_mutex_t one_block = PTHREAD_MUTEX_INITIALIZER;

}  // namespace rb_emu_ns

// Runs the serve loop as a block of `nthreads` (1 to 1024) POSIX threads
// until terminate or failure; returns thread 0's final status, or -1 for bad
// arguments (an unknown id, id 2 without fn, a null or misaligned region, a
// bad nthreads) or when a thread could not be created (then
// the threads already started are left blocked: tests only).
extern "C" int32_t rb_emu_serve(void* ctl, void* h2k, void* k2h, uint32_t handler_id, rb_emu_ns::rb_host_handler_fn fn,
                                void* fn_ctx, uint32_t nthreads) {
    using namespace rb_emu_ns;
    const bool args_ok = rb_host_regions_ok(ctl, h2k, k2h) && handler_id <= 2 && (handler_id != 2 || fn != nullptr);
    if (!args_ok || nthreads == 0 || nthreads > 1024) return -1;
    pthread_mutex_lock(&one_block);
    static rb_emu_block block;
    block.nthreads = nthreads;
    pthread_barrier_init(&block.block, nullptr, nthreads);
    const uint32_t full_warps = nthreads / RB_EMU_WARP;
    for (uint32_t w = 0; w < full_warps; ++w) pthread_barrier_init(&block.warp[w], nullptr, RB_EMU_WARP);
    rb_emu_the_block = &block;

    static job jobs[1024];
    static pthread_t threads[1024];
    uint32_t started = 0;
    for (; started < nthreads; ++started) {
        jobs[started] = job{static_cast<rb_control*>(ctl), static_cast<rb_ring*>(h2k), static_cast<rb_ring*>(k2h),
                            handler_id, fn, fn_ctx, started, -1};
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        const int rc = pthread_create(&threads[started], &attr, run_thread, &jobs[started]);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
    }
    if (started != nthreads) {
        // The block cannot run short-handed: the started threads wait at
        // their first barrier for threads that will never come. Leave them
        // (and the lock) behind and report the failure; tests only.
        return -1;
    }
    for (uint32_t t = 0; t < nthreads; ++t) pthread_join(threads[t], nullptr);
    const int32_t status = jobs[0].status;
    pthread_barrier_destroy(&block.block);
    for (uint32_t w = 0; w < full_warps; ++w) pthread_barrier_destroy(&block.warp[w]);
    rb_emu_the_block = nullptr;
    pthread_mutex_unlock(&one_block);
    return status;
}
