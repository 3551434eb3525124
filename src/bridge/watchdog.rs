//! The watchdog: a dead bridge's first error, the kernel's exit, and
//! hang detection from its heartbeat.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::{ERR_PARAM_SIZE, STATUS_FAILED, STATUS_STOPPED};
use crate::ring::{KernelReport, describe_error};
use crate::sync::lock;

use super::BridgeState;

/// Heartbeat tracking, shared by every waiting call.
pub(super) struct Heartbeat {
    pub(super) last_beat: u64,
    pub(super) last_change: Instant,
    pub(super) next_check: Instant,
}

impl Heartbeat {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Self {
            last_beat: 0,
            last_change: now,
            next_check: now,
        }
    }
}

/// How often the watchdog looks at the kernel while a call waits or sends.
pub(super) const CHECK_PERIOD: Duration = Duration::from_millis(1);

impl BridgeState {
    /// Records the bridge's death (the first cause wins) and returns it.
    pub(super) fn fail(&self, e: Error) -> Error {
        let mut dead = lock(&self.dead);
        let first = dead.get_or_insert(e).clone();
        // Release/Acquire pair with `check_dead`: a thread that sees the flag
        // also finds the error in the mutex (the mutex orders it anyway).
        self.is_dead.store(true, Ordering::Release);
        drop(dead);
        // Every caller waiting for an answer or an event looks once more
        // (what was published is still handed out) and meets the error.
        self.router.wake_all();
        first
    }

    pub(super) fn check_dead(&self) -> Result<()> {
        if self.is_dead.load(Ordering::Acquire)
            && let Some(e) = lock(&self.dead).clone()
        {
            return Err(e);
        }
        Ok(())
    }

    /// The watchdog: looks at the engine and the heartbeat at most every
    /// [`CHECK_PERIOD`]. Cheap when not due (one `Instant::now`).
    pub(super) fn check(&self, now: Instant) -> Result<()> {
        self.check_dead()?;
        let mut w = lock(&self.heartbeat);
        if now < w.next_check {
            return Ok(());
        }
        w.next_check = now + CHECK_PERIOD;
        let report = self.control.report();
        match self.engine.poll() {
            Err(e) => return Err(self.fail(e)),
            Ok(true) => {
                // Release: pairs with `shutdown`'s acquire load, so whoever
                // sees the kernel stopped also sees what led to it here.
                self.stopped.store(true, Ordering::Release);
                return Err(self.fail(self.exit_error(&report)));
            }
            Ok(false) => {}
        }
        if report.status == STATUS_FAILED || report.status == STATUS_STOPPED {
            return Err(self.fail(self.exit_error(&report)));
        }
        if report.heartbeat != w.last_beat {
            w.last_beat = report.heartbeat;
            w.last_change = now;
        } else if now.duration_since(w.last_change) > self.hang_timeout {
            if self.calls.as_ref().is_some_and(|c| c.busy()) {
                // The kernel waits for a call's answer: the host's turn,
                // bounded by the service timeout, not a hang.
                w.last_change = now;
                return Ok(());
            }
            return Err(self.fail(Error::KernelHung {
                stalled_for: now.duration_since(w.last_change),
            }));
        }
        Ok(())
    }
}

/// The error a stopped kernel's report gives: its failure, or an exit.
pub(super) fn report_error(report: &KernelReport) -> Error {
    if report.status == STATUS_FAILED && report.error_code == ERR_PARAM_SIZE {
        Error::ParamSize {
            expected: report.error_detail >> 32,
            given: report.error_detail & 0xffff_ffff,
        }
    } else if report.status == STATUS_FAILED {
        Error::KernelFailed {
            code: report.error_code,
            detail: report.error_detail,
            what: describe_error(report.error_code),
        }
    } else {
        Error::KernelExited
    }
}

impl BridgeState {
    /// Why a kernel that stopped is gone: a requested shutdown, or its error.
    pub(super) fn exit_error(&self, report: &KernelReport) -> Error {
        // Acquire: pairs with the release store in `shutdown`.
        if self.stopping.load(Ordering::Acquire) && report.status != STATUS_FAILED {
            Error::ShutDown
        } else {
            report_error(report)
        }
    }
}
