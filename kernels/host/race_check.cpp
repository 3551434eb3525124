// The race-check build's runtime: schedule shaking for the block emulation
// built with ThreadSanitizer (ringbridge-build's Kernels::race_check, which
// compiles a kernel source with -fsanitize=thread and RB_EMU_SHAKE into
// lib<stem>_racecheck.so, with this file and block_emulation.cpp).
//
// ThreadSanitizer reports two accesses to one word from two emulated
// threads with no happens-before between them (no atomic, no barrier),
// whatever the schedule. What it cannot see is a protocol of atomics that
// is wrong only in some orders (a check-then-act of two atomics, a lost
// update): on a 2-core machine 64 emulated threads rarely interleave inside
// a handler. So every shake point (a handler call, a barrier, a warp
// exchange, and every atomic operation of this library) may yield the CPU
// or sleep a few microseconds, as a per-thread generator decides. The
// generators are seeded from RINGBRIDGE_SHAKE_SEED, or from the clock, and
// the seed is printed: the same seed replays the same decisions (the
// kernel's own scheduling still varies from run to run). Seed 0 turns the
// shaking off.
//
// The atomic operations are caught where the compiler sends them: with
// -fsanitize=thread every atomic builtin becomes a call to ThreadSanitizer's
// __tsan_atomic* entry points. This file defines those (hidden, so only
// this library's calls bind to them), shakes, and calls ThreadSanitizer's
// own, found in the preloaded runtime. It is compiled without
// -fsanitize=thread (ringbridge-build does so): instrumented, the guard of
// its own function-local statics would call these very entry points.
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "host/block_emulation.h"

namespace {

// The seed of every thread's generator, read once per loaded copy.
uint64_t shake_seed() {
    static const uint64_t seed = [] {
        const char* v = getenv("RINGBRIDGE_SHAKE_SEED");
        uint64_t s;
        if (v != nullptr && *v != '\0') {
            s = strtoull(v, nullptr, 0);
        } else {
            timespec t{};
            clock_gettime(CLOCK_REALTIME, &t);
            s = ((uint64_t)t.tv_nsec ^ ((uint64_t)t.tv_sec << 20)) | 1u;
        }
        if (s == 0) {
            fputs("ringbridge race check: schedule shaking off (RINGBRIDGE_SHAKE_SEED=0)\n", stderr);
        } else {
            fprintf(stderr,
                    "ringbridge race check: shaking the schedule with seed %llu "
                    "(RINGBRIDGE_SHAKE_SEED=%llu replays it)\n",
                    (unsigned long long)s, (unsigned long long)s);
        }
        return s;
    }();
    return seed;
}

// A thread's generator: xorshift64*, started from the seed and the
// thread's index in its block (0 until the thread first shakes).
__thread uint64_t state = 0;

uint64_t next_draw() {
    if (state == 0) {
        state = (shake_seed() ^ (0x9e3779b97f4a7c15ull * (rb_emu_tid + 1u))) | 1u;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dull;
}

}  // namespace

void rb_emu_shake() {
    if (shake_seed() == 0) return; /* off: ThreadSanitizer alone */
    const uint64_t r = next_draw();
    // One point in 4 yields; one in 64 sleeps 1 to 32 us instead, long
    // enough for another thread to run a whole handler meanwhile.
    if ((r & 63u) == 0) {
        const timespec pause{0, (long)(1000u * (1u + ((r >> 8) & 31u)))};
        nanosleep(&pause, nullptr);
    } else if ((r & 3u) == 1) {
        sched_yield();
    }
}

// ThreadSanitizer's atomic entry points, shaken. The memory order is an
// int (its enum); widths as its interface declares them.
#define RB_TSAN_HIDDEN extern "C" __attribute__((visibility("hidden")))

// The runtime's own entry `name`, looked up once per loaded copy in the
// global scope (the preloaded runtime; this library's definitions are
// hidden, so not found there).
template <class F>
F real(const char* name) {
    void* f = dlsym(RTLD_DEFAULT, name);
    if (f == nullptr) {
        fprintf(stderr, "ringbridge race check: %s not found: is ThreadSanitizer's runtime preloaded?\n", name);
        abort();
    }
    return reinterpret_cast<F>(f);
}

#define RB_TSAN_RMW(bits, type, op)                                                         \
    RB_TSAN_HIDDEN type __tsan_atomic##bits##_##op(volatile type* a, type v, int mo) {      \
        using fn = type (*)(volatile type*, type, int);                                     \
        static const fn f = real<fn>("__tsan_atomic" #bits "_" #op);                        \
        rb_emu_shake();                                                                     \
        return f(a, v, mo);                                                                 \
    }

#define RB_TSAN_WIDTH(bits, type)                                                           \
    RB_TSAN_HIDDEN type __tsan_atomic##bits##_load(const volatile type* a, int mo) {        \
        using fn = type (*)(const volatile type*, int);                                     \
        static const fn f = real<fn>("__tsan_atomic" #bits "_load");                        \
        rb_emu_shake();                                                                     \
        return f(a, mo);                                                                    \
    }                                                                                       \
    RB_TSAN_HIDDEN void __tsan_atomic##bits##_store(volatile type* a, type v, int mo) {     \
        using fn = void (*)(volatile type*, type, int);                                     \
        static const fn f = real<fn>("__tsan_atomic" #bits "_store");                       \
        rb_emu_shake();                                                                     \
        f(a, v, mo);                                                                        \
    }                                                                                       \
    RB_TSAN_RMW(bits, type, exchange)                                                       \
    RB_TSAN_RMW(bits, type, fetch_add)                                                      \
    RB_TSAN_RMW(bits, type, fetch_sub)                                                      \
    RB_TSAN_RMW(bits, type, fetch_and)                                                      \
    RB_TSAN_RMW(bits, type, fetch_or)                                                       \
    RB_TSAN_RMW(bits, type, fetch_xor)                                                      \
    RB_TSAN_RMW(bits, type, fetch_nand)                                                     \
    RB_TSAN_HIDDEN int __tsan_atomic##bits##_compare_exchange_strong(volatile type* a, type* c, type v, int mo, \
                                                                     int fail_mo) {        \
        using fn = int (*)(volatile type*, type*, type, int, int);                          \
        static const fn f = real<fn>("__tsan_atomic" #bits "_compare_exchange_strong");     \
        rb_emu_shake();                                                                     \
        return f(a, c, v, mo, fail_mo);                                                     \
    }                                                                                       \
    RB_TSAN_HIDDEN int __tsan_atomic##bits##_compare_exchange_weak(volatile type* a, type* c, type v, int mo, \
                                                                   int fail_mo) {          \
        using fn = int (*)(volatile type*, type*, type, int, int);                          \
        static const fn f = real<fn>("__tsan_atomic" #bits "_compare_exchange_weak");       \
        rb_emu_shake();                                                                     \
        return f(a, c, v, mo, fail_mo);                                                     \
    }                                                                                       \
    RB_TSAN_HIDDEN type __tsan_atomic##bits##_compare_exchange_val(volatile type* a, type c, type v, int mo, \
                                                                   int fail_mo) {          \
        using fn = type (*)(volatile type*, type, type, int, int);                          \
        static const fn f = real<fn>("__tsan_atomic" #bits "_compare_exchange_val");        \
        rb_emu_shake();                                                                     \
        return f(a, c, v, mo, fail_mo);                                                     \
    }

RB_TSAN_WIDTH(8, char)
RB_TSAN_WIDTH(16, short)
RB_TSAN_WIDTH(32, int)
RB_TSAN_WIDTH(64, long)
