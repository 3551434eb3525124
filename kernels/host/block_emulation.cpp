// The block emulation's runtime: runs a serve loop as a block of POSIX
// threads, one per CUDA thread, with __syncthreads and the warp shuffle and
// votes emulated (kernels/host/block_emulation.h). The host fallback proper
// runs a block of ONE thread, which cannot show a missing barrier or a race
// between requests of one batch; this can, without a GPU.
//
// ringbridge-build compiles it, with a kernel source built with
// RB_EMULATE_BLOCK, into that source's own shared library
// (lib<stem>_emulation.so, hidden visibility but for the entries), which the
// bridge loads only when asked to emulate a block: the serve loop's
// instantiations there never mix with the fallback's, and a user's build
// links none of it.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>

#include "host/block_emulation.h"

rb_emu_block* rb_emu_the_block = nullptr;
__thread uint32_t rb_emu_tid = 0;
uint32_t rb_emu_block_index = 0;
bool rb_emu_as_gpu = false;

namespace {

struct job {
    rb_emu_thread_fn fn;
    void* ctl;
    void* h2k;
    void* k2h;
    const void* args;
    uint32_t tid;
    int32_t status;
};

// The start gate: every thread of a block waits here until all of them
// exist (GO) or one could not be created (ABANDON: the started ones return
// without serving, so the block can be joined and the lock released).
enum gate_state { GATE_WAIT, GATE_GO, GATE_ABANDON };
pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t gate_open = PTHREAD_COND_INITIALIZER;
gate_state gate = GATE_WAIT;

void set_gate(gate_state to) {
    pthread_mutex_lock(&gate_lock);
    gate = to;
    pthread_cond_broadcast(&gate_open);
    pthread_mutex_unlock(&gate_lock);
}

void* run_thread(void* arg) {
    job* j = static_cast<job*>(arg);
    rb_emu_tid = j->tid;
    pthread_mutex_lock(&gate_lock);
    while (gate == GATE_WAIT) pthread_cond_wait(&gate_open, &gate_lock);
    const bool go = gate == GATE_GO;
    pthread_mutex_unlock(&gate_lock);
    if (go) j->status = j->fn(j->ctl, j->h2k, j->k2h, j->args);
    return nullptr;
}

// Tests: RINGBRIDGE_EMU_FAIL_THREAD=k makes the creation of thread k fail
// as if pthread_create had (no thread can be made otherwise on demand).
uint32_t failing_thread() {
    const char* v = getenv("RINGBRIDGE_EMU_FAIL_THREAD");
    return v == nullptr ? UINT32_MAX : (uint32_t)strtoul(v, nullptr, 10);
}

// One emulated block at a time in this library: the block-shared state is
// static.
pthread_mutex_t one_block = PTHREAD_MUTEX_INITIALIZER;

// The trap hook and its cookie. Atomics, though set before any block runs,
// so that a trapping thread reads them without a data race; the cookie is
// stored before the hook (release) and read after it (acquire), so a hook
// seen comes with its own cookie.
std::atomic<void (*)(void*)> trap_hook{nullptr};
std::atomic<void*> trap_cookie{nullptr};

}  // namespace

extern "C" void rb_emu_set_trap_hook(void (*hook)(void* cookie), void* cookie) {
    trap_cookie.store(cookie, std::memory_order_relaxed);
    trap_hook.store(hook, std::memory_order_release);
}

void rb_emu_trap() {
    void (*hook)(void*) = trap_hook.load(std::memory_order_acquire);
    if (hook == nullptr) {
        // Nobody to tell: fail loudly, as a trap fails a GPU launch.
        fputs("ringbridge block emulation: __trap() called\n", stderr);
        abort();
    }
    hook(trap_cookie.load(std::memory_order_relaxed));
    // A trapped GPU thread never runs on: park this one for good, asleep
    // (pause() returns only after a signal handler, so loop), leaving the
    // block's memory as the trap found it for whoever heard of it.
    for (;;) pause();
}

int32_t rb_emu_run(uint32_t nthreads, rb_emu_thread_fn fn, void* ctl, void* h2k, void* k2h, const void* args) {
    return rb_emu_run_block(0, nthreads, fn, ctl, h2k, k2h, args);
}

int32_t rb_emu_run_block(uint32_t block_index, uint32_t nthreads, rb_emu_thread_fn fn, void* ctl, void* h2k,
                         void* k2h, const void* args) {
    if (fn == nullptr || nthreads == 0 || nthreads > 1024) return -1;
    pthread_mutex_lock(&one_block);
    // Under the lock, before the threads start (pthread_create orders it
    // before their reads): the index belongs to this block alone.
    rb_emu_block_index = block_index;
    static rb_emu_block block;
    block.nthreads = nthreads;
    pthread_barrier_init(&block.block, nullptr, nthreads);
    const uint32_t full_warps = nthreads / RB_EMU_WARP;
    for (uint32_t w = 0; w < full_warps; ++w) pthread_barrier_init(&block.warp[w], nullptr, RB_EMU_WARP);
    rb_emu_the_block = &block;

    static job jobs[1024];
    static pthread_t threads[1024];
    set_gate(GATE_WAIT);
    const uint32_t fail_at = failing_thread();
    uint32_t started = 0;
    for (; started < nthreads; ++started) {
        jobs[started] = job{fn, ctl, h2k, k2h, args, started, -1};
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        const int rc =
            started == fail_at ? EAGAIN : pthread_create(&threads[started], &attr, run_thread, &jobs[started]);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
    }
    // The block cannot run short-handed: if a thread could not be made, the
    // started ones leave the gate without serving; either way all are joined
    // and the lock released, so later blocks of this library still run.
    const bool whole = started == nthreads;
    set_gate(whole ? GATE_GO : GATE_ABANDON);
    for (uint32_t t = 0; t < started; ++t) pthread_join(threads[t], nullptr);
    const int32_t status = whole ? jobs[0].status : -1;
    pthread_barrier_destroy(&block.block);
    for (uint32_t w = 0; w < full_warps; ++w) pthread_barrier_destroy(&block.warp[w]);
    rb_emu_the_block = nullptr;
    pthread_mutex_unlock(&one_block);
    return status;
}
