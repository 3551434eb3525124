//! A progress bar on stderr for long runs, drawn by `indicatif`.
//!
//! Drawn only when stderr is a terminal and the output is not JSON, and
//! cleared when the run ends, so that the report on stdout (and anything
//! piped) stays clean. The wrapper only adds a cheap gate in front of
//! indicatif, because the measuring loops report every message and a clock
//! read per message would sit between round trips.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar for `total` steps; a no-op when disabled.
pub(crate) struct Progress {
    /// `None` when nothing is drawn at all.
    bar: Option<ProgressBar>,
    /// Steps in all (at least 1).
    total: u64,
    /// Calls of [`set`](Self::set) since the bar was last told.
    calls: u32,
    /// Steps counted by [`inc`](Self::inc).
    count: u64,
}

impl Progress {
    /// A bar labelled `label` for `total` steps, drawn only if stderr is a
    /// terminal and `quiet` (e.g. `--json`) is false.
    pub(crate) fn new(label: impl Into<String>, total: u64, quiet: bool) -> Self {
        let total = total.max(1);
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {percent:>3}% {pos}/{len} {per_sec} ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("#>-");
            bar.set_style(style);
            bar.set_message(label.into());
            bar
        });
        Self {
            bar,
            total,
            calls: 0,
            count: 0,
        }
    }

    /// Records that `done` steps are complete. Cheap enough to call once
    /// per message: indicatif (which reads the clock and limits redraws
    /// itself) hears of it every 64 calls and at the end.
    pub(crate) fn set(&mut self, done: u64) {
        let Some(bar) = &self.bar else { return };
        self.calls = self.calls.wrapping_add(1);
        if self.calls.is_multiple_of(64) || done >= self.total {
            bar.set_position(done.min(self.total));
        }
    }

    /// Records one more completed step.
    pub(crate) fn inc(&mut self) {
        self.count += 1;
        self.set(self.count);
    }

    /// Clears the bar (idempotent; also done on drop).
    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn quiet_bar_draws_nothing() {
        let mut p = Progress::new("x", 10, true);
        for i in 0..=10 {
            p.set(i);
        }
        assert!(p.bar.is_none());
        p.finish();
    }
}
