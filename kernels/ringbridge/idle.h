/*
 * ringbridge/idle.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * How the serve loop idles: spin, backoff, park (host fallback), or
 * __nanosleep (GPU), per the control block's wait policy.
 */
#ifndef RINGBRIDGE_DETAIL_IDLE_H
#define RINGBRIDGE_DETAIL_IDLE_H

namespace rb_detail {

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
   each round trip waits out a whole spin (docs/perf-idle.md measures a
   4096-poll spin doing just that).
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
/* The doorbells' futex: the low 32 bits of a 64-bit doorbell word.
   kernel_parked only ever holds 0 or 1; host_parked holds a parked flag
   (bit 0) and a wake generation above it, whose low 31 bits the futex
   compares. Linux; elsewhere a "park" is a short sleep and a wake does
   nothing, which the timed parks make merely slower, never stuck. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the doorbell futex is the low half of a 64-bit word: little-endian only"
#endif

/* Blocks while *word is `expected`, at most timeout_ns; returns at once if
   it is not (the kernel compares atomically with going to sleep, so a wake
   that changed the word before this call is never lost). May return early. */
inline void rb_host_park_while(uint64_t* word, uint32_t expected, uint64_t timeout_ns) {
    struct timespec ts;
#if defined(__linux__)
    ts.tv_sec = (time_t)(timeout_ns / 1000000000ull);
    ts.tv_nsec = (long)(timeout_ns % 1000000000ull);
    /* PRIVATE: every waiter and waker is in this process. */
    (void)syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
#else
    (void)word;
    (void)expected;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)(timeout_ns < 50000ull ? timeout_ns : 50000ull);
    nanosleep(&ts, nullptr);
#endif
}

/* The kernel's doorbell (one waiter, the serving thread): blocks while
   *word is 1. */
inline void rb_host_park_on(uint64_t* word, uint64_t timeout_ns) { rb_host_park_while(word, 1u, timeout_ns); }

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
 * Dekker pair on each side: the waiter sets its doorbell's parked flag,
 * fences (SeqCst), then polls the ring once more before it parks; the
 * publisher stores its ring counter (release), fences (SeqCst), then reads
 * the doorbell. Both fences are in the one total order of SeqCst
 * operations: whichever is later, its thread's load sees the other
 * thread's store. So either the waiter's last poll sees the message, or
 * the publisher sees the flag and wakes it, never neither.
 *
 * The host's doorbell may have several waiters (a sender waiting for room,
 * a receiver): each parks on the value it saw when it announced itself, and
 * the waker clears the flag and advances the generation in one step. A
 * waiter that announced before a wake then finds a new value and does not
 * sleep, even if another waiter set the flag again after the wake (with a
 * bare 0/1 word it would find 1 again and sleep with its message waiting).
 * The kernel's doorbell has one waiter, the serving thread, and stays 0/1.
 */

/* After publishing: wakes the host threads parked on a host doorbell
   `word` (generation and flag, see above): the control block's, by thread 0
   after publishing replies, freeing request slots or a final status; the
   call ring's, by any thread after writing a call. Host fallback with a
   parking policy only (the host parks under no other, and never on CUDA). */
RB_INLINE void rb_wake_waiters(rb_control* ctl, uint64_t* word) {
#if RB_ON_GPU
    (void)ctl;
    (void)word;
#else
    /* RELAXED: configuration, written before the serving thread started. */
    if (rb_ld_relaxed(&ctl->wait_policy) < RB_WAIT_SPIN_THEN_PARK) return;
    /* SEQ_CST fence: orders our earlier ring stores before the load of
       the doorbell (store-load), the publisher's half of the Dekker pair. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    /* RELAXED: the fence above orders it; no flag is the common case, no RMW. */
    uint64_t seen = __atomic_load_n(word, __ATOMIC_RELAXED);
    /* RELEASE on success: a host thread that reads the new generation
       (acquire) on waking also sees the ring stores before it. seen + 1
       clears the flag (bit 0) and advances the generation above it. Host
       waiters only set the flag, never clear it, so the loop ends. */
    while ((seen & 1u) != 0) {
        if (__atomic_compare_exchange_n(word, &seen, seen + 1u, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
            rb_host_wake_on(word);
            return;
        }
    }
#endif
}

/* The host's doorbell in the control block (see rb_wake_waiters). */
RB_INLINE void rb_wake_host(rb_control* ctl) { rb_wake_waiters(ctl, &ctl->host_parked); }

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
    uint64_t policy = rb_ld_relaxed(&ctl->wait_policy);
#if defined(RB_EMULATE_BLOCK)
    /* Run for the test simulator's GPU launch: its CUDA host never wakes a
       parked kernel, so poll with back-off (a GPU kernel keeps polling). */
    if (rb_emu_as_gpu) policy = RB_WAIT_BACKOFF;
#endif
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
#if defined(RB_EMULATE_BLOCK)
    /* An emulated turn takes barriers of CPU threads (up to milliseconds),
       so a check every check_interval turns would make a shutdown take
       seconds: the lane format's idle turns, which pass three barriers
       each, took 3 s to see terminate with 64 threads. Check every turn;
       the barriers cost far more than the check. */
    (void)idle;
    return true;
#else
    return idle >= RB_HOST_YIELD_AFTER;
#endif
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

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_IDLE_H */
