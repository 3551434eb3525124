//! A small progress bar on stderr for long runs.
//!
//! Drawn only when stderr is a terminal and the output is not JSON, at most
//! ten times a second, and erased when the run ends, so that the report on
//! stdout (and anything piped) stays clean.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the bar is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);
/// Width of the bar itself, in characters.
const WIDTH: usize = 30;

/// A progress bar for `total` steps; a no-op when disabled.
pub(crate) struct Progress {
    /// What is running, shown before the bar.
    label: String,
    /// Steps in all (at least 1).
    total: u64,
    /// Whether anything is drawn at all.
    enabled: bool,
    /// When the bar was created.
    started: Instant,
    /// When it was last drawn.
    drawn: Option<Instant>,
    /// Calls of [`set`](Self::set) since the clock was last read.
    calls: u32,
    /// Steps done when the clock was last read.
    seen: u64,
    /// Steps counted by [`inc`](Self::inc).
    count: u64,
}

impl Progress {
    /// A bar labelled `label` for `total` steps, drawn only if stderr is a
    /// terminal and `quiet` (e.g. `--json`) is false.
    pub(crate) fn new(label: impl Into<String>, total: u64, quiet: bool) -> Self {
        Self {
            label: label.into(),
            total: total.max(1),
            enabled: !quiet && std::io::stderr().is_terminal(),
            started: Instant::now(),
            drawn: None,
            calls: 0,
            seen: 0,
            count: 0,
        }
    }

    /// Records that `done` steps are complete; redraws now and then. Cheap
    /// enough to call once per message (it reads the clock every 64 calls,
    /// or after 1024 more steps).
    pub(crate) fn set(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        self.calls = self.calls.wrapping_add(1);
        if self.calls % 64 != 0 && done < self.total && done.saturating_sub(self.seen) < 1024 {
            return;
        }
        self.seen = done;
        let now = Instant::now();
        if self.drawn.is_some_and(|t| now - t < REDRAW) && done < self.total {
            return;
        }
        self.drawn = Some(now);
        self.draw(done.min(self.total), now - self.started);
    }

    /// Records one more completed step.
    pub(crate) fn inc(&mut self) {
        self.count += 1;
        self.set(self.count);
    }

    /// Draws the bar for `done` steps after `elapsed`.
    fn draw(&self, done: u64, elapsed: Duration) {
        let frac = done as f64 / self.total as f64;
        let filled = ((frac * WIDTH as f64) as usize).min(WIDTH);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        let eta = if done > 0 {
            format!("{:.0}s", (self.total - done) as f64 / rate)
        } else {
            "?".to_string()
        };
        let line = format!(
            "\r\x1b[2K{} [{}{}] {:>3.0}% {}/{} {:.0}/s ETA {eta}",
            self.label,
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            frac * 100.0,
            done,
            self.total,
            rate,
        );
        let mut err = std::io::stderr().lock();
        // A progress bar that cannot be drawn is not worth an error.
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    /// Erases the bar (idempotent; also done on drop).
    pub(crate) fn finish(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[2K");
            let _ = err.flush();
        }
        self.drawn = None;
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
        assert!(p.drawn.is_none());
        p.finish();
    }
}
