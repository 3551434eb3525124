//! How a bridge waits when there is nothing to do: the [`WaitPolicy`], and
//! the host's half of the doorbell that lets both sides of a host-fallback
//! bridge sleep in the kernel instead of polling.
//!
//! The doorbell is one word per side in the control block
//! ([`ControlBlock::host_parked`], [`ControlBlock::kernel_parked`]). A
//! waiter that has spun long enough sets its word's parked flag, fences
//! (SeqCst), polls its ring once more and only then parks on the word (a
//! futex). A publisher stores its ring counter (release), fences (SeqCst)
//! and reads the other side's word; finding the flag, it clears it and
//! wakes. The two SeqCst fences are ordered one way or the other in the
//! single total order of SeqCst operations, and the later one's load sees
//! the earlier side's store: either the waiter's last poll finds the
//! message or the publisher finds the flag. The futex sleeps only while
//! the word still holds what the waiter saw when it announced itself, so a
//! wake that came between that poll and the sleep is not lost.
//!
//! The host's word may have several waiters at once (a sender waiting for
//! room, receivers, the async dispatcher), so it is a generation, not a
//! bare flag: bit 0 is the flag, and the serve loop's wake clears it and
//! advances the count above it in one step. Each waiter parks on the value
//! it announced with; after any wake that value is gone, even when another
//! waiter has set the flag again since (with a 0/1 word that second waiter
//! would make the first sleep with its message waiting). The serve loop's
//! half is `rb_idle`/`rb_wake_host` in `kernels/ringbridge/idle.h`.
//!
//! Every park is timed (10 ms at most) so that a parked serve thread still
//! beats for the watchdog and a parked host call still checks it: a lost
//! wake-up, were there one, would cost latency, never a hang.
//!
//! On CUDA the GPU cannot wake a host thread, so the host's blocking calls
//! sleep in capped, doubling steps instead; the GPU's serve loop spins, or
//! `__nanosleep`s when built with `RB_GPU_IDLE_NANOSLEEP_MAX`.
//!
//! [`ControlBlock::host_parked`]: crate::layout::ControlBlock::host_parked
//! [`ControlBlock::kernel_parked`]: crate::layout::ControlBlock::kernel_parked

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use crate::backend::{Backend, SharedMemory};
use crate::layout::{ControlBlock, WAIT_BACKOFF, WAIT_LOW_POWER, WAIT_SPIN, WAIT_SPIN_THEN_PARK};

/// How a bridge's blocking calls (`recv`, `send` on a full ring, ...) and
/// the host fallback's serve thread wait for the other side.
///
/// | policy | host fallback: both sides | CUDA: host calls | first message after silence |
/// |---|---|---|---|
/// | `Spin` | poll without pause | poll | fastest; a core per waiting side, forever |
/// | `Backoff` | spin, yield, then sleep per poll | same | a sleep (20-30 us plus timer slack) |
/// | `SpinThenPark` | spin, yield for ~1 ms, then park on the doorbell | spin, then sleep 20 us doubling to 200 us | a futex wake-up (host); up to 200 us (CUDA) |
/// | `LowPower` | park almost at once | spin briefly, then sleep doubling to 1 ms | a futex wake-up (host); up to 1 ms (CUDA) |
///
/// The GPU's serve loop ignores the policy: it spins, or `__nanosleep`s
/// when compiled with `RB_GPU_IDLE_NANOSLEEP_MAX` (see `kernels/ringbridge.cuh`).
///
/// ```
/// use ringbridge::{Backend, Bridge, WaitPolicy};
/// assert_eq!(WaitPolicy::default(), WaitPolicy::SpinThenPark);
/// let bridge = Bridge::builder()
///     .backend(Backend::Fallback)
///     .wait_policy(WaitPolicy::LowPower)
///     .launch()?;
/// assert_eq!(bridge.round_trip(b"a")?.payload, b"b");
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitPolicy {
    /// Poll without ever yielding: lowest latency, one busy core per
    /// waiting side for as long as it waits.
    Spin,
    /// Spin, then yield, then sleep a fixed time per poll (20 us on the
    /// host's calls, 30 us on the fallback's serve thread): ringbridge's
    /// behaviour before wait policies. An idle bridge still wakes tens of
    /// thousands of times a second.
    Backoff,
    /// Spin briefly, yield for about a millisecond (a stream's next
    /// message is usually closer than that), then park on the doorbell until the other side publishes
    /// (host fallback), or sleep in doubling steps capped at 200 us (CUDA).
    #[default]
    SpinThenPark,
    /// Like `SpinThenPark` with almost no spinning, and a 1 ms cap on CUDA:
    /// the least CPU, at the cost of a wake-up on nearly every message of a
    /// slow stream.
    LowPower,
}

impl WaitPolicy {
    /// Every policy, in the order of the table above.
    ///
    /// ```
    /// use ringbridge::WaitPolicy;
    /// assert_eq!(WaitPolicy::ALL.len(), 4);
    /// assert_eq!(WaitPolicy::ALL[0], WaitPolicy::Spin);
    /// ```
    pub const ALL: [WaitPolicy; 4] = [
        WaitPolicy::Spin,
        WaitPolicy::Backoff,
        WaitPolicy::SpinThenPark,
        WaitPolicy::LowPower,
    ];

    /// The policy's name in the command line and reports.
    ///
    /// ```
    /// use ringbridge::WaitPolicy;
    /// assert_eq!(WaitPolicy::SpinThenPark.name(), "spin-then-park");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            WaitPolicy::Spin => "spin",
            WaitPolicy::Backoff => "backoff",
            WaitPolicy::SpinThenPark => "spin-then-park",
            WaitPolicy::LowPower => "low-power",
        }
    }

    /// The control block's `wait_policy` word for this policy.
    ///
    /// ```
    /// use ringbridge::WaitPolicy;
    /// use ringbridge::layout::WAIT_LOW_POWER;
    /// assert_eq!(WaitPolicy::LowPower.word(), WAIT_LOW_POWER);
    /// ```
    pub fn word(self) -> u64 {
        match self {
            WaitPolicy::Spin => WAIT_SPIN,
            WaitPolicy::Backoff => WAIT_BACKOFF,
            WaitPolicy::SpinThenPark => WAIT_SPIN_THEN_PARK,
            WaitPolicy::LowPower => WAIT_LOW_POWER,
        }
    }

    fn parks(self) -> bool {
        matches!(self, WaitPolicy::SpinThenPark | WaitPolicy::LowPower)
    }
}

/// Longest single park or sleep of a host call: it then runs the watchdog
/// and looks at its deadline, so neither waits on a parked thread.
const PARK_MAX: Duration = Duration::from_millis(10);
/// First sleep of a host call on CUDA under the parking policies; each
/// further one doubles, up to the policy's cap.
const SLEEP_MIN: Duration = Duration::from_micros(20);

/// One bridge's policy and the host's half of its doorbells.
pub(crate) struct Doorbell {
    memory: Arc<dyn SharedMemory>,
    policy: WaitPolicy,
    /// Whether the other side can wake us (the host fallback under a
    /// parking policy): then both sides park and ring.
    parks: bool,
    /// Word index of the host's doorbell: the control block's
    /// `host_parked`, or a call ring's (its service thread's).
    host_index: usize,
}

impl Doorbell {
    pub(crate) fn new(memory: Arc<dyn SharedMemory>, policy: WaitPolicy, backend: Backend) -> Self {
        Self::on_word(
            memory,
            policy,
            backend,
            crate::word_of!(ControlBlock, host_parked),
        )
    }

    /// A doorbell whose host side parks on word `host_index` of `memory`
    /// (a generation word like `host_parked`).
    pub(crate) fn on_word(
        memory: Arc<dyn SharedMemory>,
        policy: WaitPolicy,
        backend: Backend,
        host_index: usize,
    ) -> Self {
        Self {
            memory,
            policy,
            parks: backend == Backend::Fallback && policy.parks(),
            host_index,
        }
    }

    /// Wakes every host thread parked on this doorbell, as the serve loop's
    /// `rb_wake_waiters` does (a bridge stopping its own service thread).
    pub(crate) fn wake_host_waiters(&self) {
        if !self.parks {
            return;
        }
        // SeqCst fence: orders the caller's stores (a stop flag) before the
        // load of the doorbell, against the waiter's announce, fence and
        // last look (the same Dekker pair as `wake_kernel`).
        fence(Ordering::SeqCst);
        let word = self.host_word();
        // Release CAS: as the serve loop's, clears the flag and advances
        // the generation, so a waiter about to park on the old value won't.
        let mut seen = word.load(Ordering::Relaxed);
        while seen & 1 != 0 {
            match word.compare_exchange_weak(seen, seen + 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    // SAFETY: the word lies in `self.memory`, alive for the call.
                    unsafe { crate::fallback::ffi::rb_host_doorbell_wake(word.as_ptr()) };
                    return;
                }
                Err(now) => seen = now,
            }
        }
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        &self.memory.words()[index]
    }

    fn host_word(&self) -> &AtomicU64 {
        self.word(self.host_index)
    }

    fn kernel_word(&self) -> &AtomicU64 {
        self.word(crate::word_of!(ControlBlock, kernel_parked))
    }

    /// After publishing requests or asking the kernel to stop: wakes the
    /// fallback's serve thread if it is parked (the publisher's half of the
    /// Dekker pair). A no-op unless the bridge parks.
    pub(crate) fn wake_kernel(&self) {
        if !self.parks {
            return;
        }
        // SeqCst fence: orders the caller's ring stores (the head's release
        // store, or terminate) before the load of `kernel_parked`
        // (store-load), against the serve loop's store of 1 and its fence.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence; 0, the common case, costs no RMW.
        let word = self.kernel_word();
        // Release swap: a serve thread that reads our 0 (acquire) on waking
        // also sees what we published. Only the swap that took the 1 wakes.
        if word.load(Ordering::Relaxed) != 0 && word.swap(0, Ordering::Release) != 0 {
            // SAFETY: the word lies in `self.memory`, alive for the call.
            unsafe { crate::fallback::ffi::rb_host_doorbell_wake(word.as_ptr()) };
        }
    }

    /// A waiter for one blocking call.
    pub(crate) fn waiter(&self) -> Waiter<'_> {
        Waiter {
            bell: self,
            step: 0,
            announced: None,
            sleep: SLEEP_MIN,
        }
    }
}

/// The waiting state of one blocking call: how long it has waited, and
/// whether it announced itself on the doorbell.
pub(crate) struct Waiter<'a> {
    bell: &'a Doorbell,
    step: u32,
    /// `host_parked` as this waiter left it when it set the flag (and
    /// fenced) since the last park: the caller has polled once more, and
    /// the next snooze may sleep while the word still holds this value.
    announced: Option<u64>,
    /// Next sleep on CUDA under a parking policy.
    sleep: Duration,
}

/// Polls spent spinning before yielding, and before parking or sleeping.
/// `SpinThenPark` spins briefly and yields for longer: a futex wake-up
/// tends to put the woken thread on the waker's CPU, and two threads sharing
/// a core must hand it over soon (see `RB_HOST_PARK_SPIN` in
/// `kernels/ringbridge.cuh`).
fn phases(policy: WaitPolicy) -> (u32, u32) {
    match policy {
        WaitPolicy::Spin => (u32::MAX, u32::MAX),
        WaitPolicy::Backoff => (1 << 10, 1 << 16),
        WaitPolicy::SpinThenPark => (1 << 6, 1 << 10),
        WaitPolicy::LowPower => (16, 16),
    }
}

impl Waiter<'_> {
    /// Whether the wait has reached its sleeping phase: each snooze then
    /// takes long enough that the caller should run its checks after each.
    pub(crate) fn is_slow(&self) -> bool {
        self.step >= phases(self.bell.policy).1
    }

    /// One poll found nothing: pause, yield, announce, park or sleep, by
    /// the policy and how long this call has waited. Never past `until`
    /// by more than the timer's slack.
    pub(crate) fn snooze(&mut self, until: Option<Instant>) {
        let policy = self.bell.policy;
        let (spin, sleep) = phases(policy);
        let step = self.step;
        self.step = step.saturating_add(1);
        if step < spin {
            std::hint::spin_loop();
            return;
        }
        if step < sleep {
            std::thread::yield_now();
            return;
        }
        let budget = |d: Duration| match until {
            Some(at) => d.min(at.saturating_duration_since(Instant::now())),
            None => d,
        };
        if policy == WaitPolicy::Backoff {
            std::thread::sleep(budget(Duration::from_micros(20)));
            return;
        }
        if !self.bell.parks {
            // CUDA: nothing will wake us; sleep in doubling steps.
            let cap = if policy == WaitPolicy::LowPower {
                Duration::from_millis(1)
            } else {
                Duration::from_micros(200)
            };
            std::thread::sleep(budget(self.sleep));
            self.sleep = (self.sleep * 2).min(cap);
            return;
        }
        let Some(expected) = self.announced else {
            self.announce();
            return;
        };
        let timeout = budget(PARK_MAX);
        let word = self.bell.host_word();
        // SAFETY: the word lies in the bridge's memory, which the doorbell
        // keeps alive for the call.
        unsafe {
            crate::fallback::ffi::rb_host_doorbell_park(
                word.as_ptr(),
                expected as u32,
                timeout.as_nanos() as u64,
            )
        };
        // Acquire: pairs with the serve loop's release CAS when it woke us,
        // so the next poll sees the replies published before it.
        word.load(Ordering::Acquire);
        // Never cleared by us: the serve loop's wake does, at the cost of
        // at most one needless wake when we found work without parking.
        self.announced = None;
    }

    /// Sets the parked flag of the host's doorbell (unless another waiter
    /// has) and remembers the word's value, then lets the caller poll once
    /// more before the next snooze parks.
    fn announce(&mut self) {
        let word = self.bell.host_word();
        // Relaxed CAS, then the SeqCst fence: orders the flag before that
        // poll's loads (store-load), the waiter's half of the Dekker pair
        // with the serve loop's `rb_wake_host`. Waiters only ever set the
        // flag; the loop ends once it is set, by us or another waiter.
        let mut seen = word.load(Ordering::Relaxed);
        while seen & 1 == 0 {
            match word.compare_exchange_weak(seen, seen | 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => seen |= 1,
                Err(now) => seen = now,
            }
        }
        fence(Ordering::SeqCst);
        self.announced = Some(seen);
    }

    /// Tests: whether a park now would sleep (the word still holds what
    /// this waiter announced with).
    #[cfg(test)]
    fn would_sleep(&self) -> bool {
        self.announced == Some(self.bell.host_word().load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fallback::HostMemory;

    /// Issue 23, item 3: B announces and polls (nothing yet); the serve
    /// loop publishes and wakes (nobody is asleep); A announces; B must not
    /// then sleep with its reply waiting. With a 0/1 word, A's announcement
    /// put back the very value B would sleep on.
    #[test]
    fn a_second_waiter_cannot_swallow_the_first_ones_wake() {
        let memory: Arc<dyn SharedMemory> = HostMemory::new(4096).unwrap();
        let policy_word = crate::word_of!(ControlBlock, wait_policy);
        memory.words()[policy_word].store(WAIT_SPIN_THEN_PARK, Ordering::Relaxed);
        let bell = Doorbell::new(memory.clone(), WaitPolicy::SpinThenPark, Backend::Fallback);
        let mut b = bell.waiter();
        let mut a = bell.waiter();
        b.announce();
        assert!(b.would_sleep(), "no wake yet: B may sleep");
        // SAFETY: the control block is the start of `memory`, alive here.
        unsafe {
            crate::fallback::ffi::rb_host_doorbell_wake_host(memory.words().as_ptr() as *mut _)
        };
        assert!(!b.would_sleep(), "woken: B must not sleep");
        a.announce();
        assert!(a.would_sleep(), "A announced after the wake: it may sleep");
        assert!(
            !b.would_sleep(),
            "A's announcement must not put B back to sleep"
        );
        // The next wake releases A as well.
        // SAFETY: as above.
        unsafe {
            crate::fallback::ffi::rb_host_doorbell_wake_host(memory.words().as_ptr() as *mut _)
        };
        assert!(!a.would_sleep());
    }
}
