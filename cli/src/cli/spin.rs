//! The command line's busy wait, with the spin of the bridge's own receive
//! loop under `WaitPolicy::Backoff`: one pause per poll for the first 1024
//! polls, then a yield per poll, since the machine may have fewer free cores
//! than spinning threads. (The default `SpinThenPark` pauses 64 polls before
//! yielding, then parks; see src/wait.rs.) The floor of `compare` and the queue ceiling of `stream` wait
//! this way, so they wait as the bridge does. (crossbeam's `Backoff` would
//! be wrong for the floor: it spins up to 64 pauses per poll and starts
//! yielding after ten polls, which puts its own delay into the figure.)

/// Counts the polls of one wait.
#[derive(Default)]
pub(crate) struct Spin {
    polls: u32,
}

impl Spin {
    /// Polls so far.
    pub(crate) fn polls(&self) -> u32 {
        self.polls
    }

    /// One poll found nothing: pause, or yield once the wait is long.
    pub(crate) fn snooze(&mut self) {
        if self.polls < 1 << 10 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        self.polls = self.polls.saturating_add(1);
    }
}
