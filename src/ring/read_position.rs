//! [`ReadPosition`]: what both consumer halves keep of their progress.

use super::*;

/// What both consumer halves ([`RingConsumer`], [`LaneConsumer`]) keep of
/// their own position.
#[derive(Debug, Default)]
pub(crate) struct ReadPosition {
    /// Next position to read; equals the shared `tail` after `release`.
    pub(crate) tail: u64,
    /// Positions read but not yet released to the producer.
    pub(super) unreleased: u64,
}

impl ReadPosition {
    /// One more message read, not yet freed.
    #[inline]
    pub(crate) fn advance(&mut self) {
        self.tail += 1;
        self.unreleased += 1;
    }

    /// Frees every message read so far with one release store of `ring`'s
    /// `tail`.
    #[inline]
    pub(crate) fn release(&mut self, ring: &RingRef) {
        if self.unreleased > 0 {
            // Release: orders our reads of the freed slots (or lanes) before
            // the new `tail`, so the producer's next lap cannot change what
            // we read.
            ring.tail().store(self.tail, Ordering::Release);
            self.unreleased = 0;
        }
    }
}
