//! Latency summaries for reports: the library's percentiles
//! ([`ringbridge::measure::Latency`]), in nanoseconds, serializable.

use ringbridge::measure::Latency;
use serde::Serialize;

/// Percentiles of a set of round-trip times, in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Summary {
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

impl Summary {
    /// Sorts `samples` and reads the percentiles (nearest rank).
    pub fn of(samples: &mut [u64]) -> Option<Self> {
        let l = Latency::from_nanos(samples)?;
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Some(Self {
            min_ns: ns(l.min),
            p50_ns: ns(l.p50),
            p90_ns: ns(l.p90),
            p99_ns: ns(l.p99),
            p999_ns: ns(l.p999),
            max_ns: ns(l.max),
            mean_ns: l.mean.as_nanos() as f64,
        })
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let us = |ns: u64| ns as f64 / 1000.0;
        format!(
            "min {:.2} us  p50 {:.2} us  p90 {:.2} us  p99 {:.2} us  p99.9 {:.2} us  max {:.2} us",
            us(self.min_ns),
            us(self.p50_ns),
            us(self.p90_ns),
            us(self.p99_ns),
            us(self.p999_ns),
            us(self.max_ns)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = Summary::of(&mut v).unwrap();
        assert_eq!(
            (s.min_ns, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns),
            (1, 500, 900, 990, 999, 1000)
        );
        assert!(Summary::of(&mut []).is_none());
    }
}
