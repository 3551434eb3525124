//! [`ReadPosition`]: what both consumer halves keep of their progress.

use super::*;
use crate::layout::MessageHeader;

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

    /// Hands the message just read (its header, and its payload at the
    /// front of `scratch`) to `f`, then counts it read, not yet freed: the
    /// end of both consumers' `read_with`.
    #[inline]
    pub(crate) fn deliver<R>(
        &mut self,
        header: &MessageHeader,
        scratch: &[u64],
        f: impl FnOnce(&MessageHeader, &[u8]) -> R,
    ) -> R {
        let bytes: &[u8] = bytemuck::cast_slice(scratch);
        let out = f(header, &bytes[..header.len as usize]);
        self.advance();
        out
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
