//! The blocking waits: how long a call waits ([`Deadline`]) and the loop
//! that waits, running the watchdog meanwhile.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

use super::Bridge;

/// When a blocking call gives up.
#[derive(Clone, Copy)]
pub(super) enum Deadline {
    Never,
    At(Instant, Duration),
    Now,
}

impl Deadline {
    pub(super) fn after(timeout: Duration) -> Self {
        Deadline::At(Instant::now() + timeout, timeout)
    }
}

impl Bridge {
    /// Waits until `attempt` returns `Some`, running the watchdog meanwhile.
    pub(super) fn wait<T>(
        &self,
        deadline: Deadline,
        op: &'static str,
        mut attempt: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let mut waiter = self.state.doorbell.waiter();
        let mut spins = 0u32;
        loop {
            if let Some(v) = attempt()? {
                return Ok(v);
            }
            // Instant::now costs ~20 ns and the check takes a lock: look at
            // the clock every 64 spins, first after 16, so a reply that is
            // a few hundred nanoseconds away is not kept waiting behind a
            // check (a try-only call checks at once). A sleeping waiter
            // checks after every sleep.
            if spins % 64 == 16 || waiter.is_slow() || matches!(deadline, Deadline::Now) {
                let now = Instant::now();
                self.state.check(now)?;
                match deadline {
                    Deadline::Never => {}
                    Deadline::Now => {
                        return Err(if op == "send" {
                            Error::Full
                        } else {
                            Error::Empty
                        });
                    }
                    Deadline::At(at, after) if now >= at => {
                        return Err(Error::Timeout { op, after });
                    }
                    Deadline::At(..) => {}
                }
            }
            spins = spins.wrapping_add(1);
            waiter.snooze(match deadline {
                Deadline::At(at, _) => Some(at),
                _ => None,
            });
        }
    }
}
