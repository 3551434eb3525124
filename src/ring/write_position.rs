//! [`WritePosition`]: what both producer halves keep of their progress, and
//! the one check of the consumer's `tail` they share.

use super::*;
use crate::error::Result;

/// What both producer halves ([`RingProducer`], [`LaneProducer`]) keep of
/// their own position, and their view of the consumer's.
#[derive(Debug, Default)]
pub(crate) struct WritePosition {
    /// Next position to write.
    pub(super) head: u64,
    /// Positions below `head` written but not yet visible to the consumer:
    /// slots written and not yet published by a `head` store, or lane
    /// messages staged without their tags.
    pub(super) unpublished: u64,
    /// Last `tail` read from shared memory.
    tail_cache: u64,
}

impl WritePosition {
    /// Messages the consumer may see.
    #[inline]
    pub(super) fn published(&self) -> u64 {
        self.head - self.unpublished
    }

    /// Whether the cached `tail` says the slot at `head` is free.
    #[inline]
    pub(super) fn next_is_free(&self, ring: &RingRef) -> bool {
        ring.capacity - (self.head - self.tail_cache) > 0
    }

    /// Free slots, reading the consumer's `tail` only if the cached one
    /// says fewer than `want` are free. A `tail` that went backwards, or
    /// past what was published, is [`Error::RingCorrupted`].
    #[inline]
    pub(super) fn free(&mut self, ring: &RingRef, want: u64) -> Result<u64> {
        let mut free = ring.capacity - (self.head - self.tail_cache);
        if free < want {
            // Acquire: pairs with the consumer's release store of `tail`,
            // made after it finished reading the slots (or lanes) it frees;
            // our later stores to those slots cannot overtake its loads.
            let tail = ring.tail().load(Ordering::Acquire);
            if tail < self.tail_cache || tail > self.published() {
                return Err(self.tail_out_of_range(ring, tail));
            }
            self.tail_cache = tail;
            free = ring.capacity - (self.head - tail);
        }
        Ok(free)
    }

    #[cold]
    fn tail_out_of_range(&self, ring: &RingRef, tail: u64) -> Error {
        ring.corrupted(format!(
            "tail {tail} outside [{}, {}] (went backwards or past what was published)",
            self.tail_cache,
            self.published()
        ))
    }

    /// Forgets every unpublished message: their positions are free again.
    #[cfg(not(loom))]
    #[inline]
    pub(super) fn discard(&mut self) {
        self.head -= self.unpublished;
        self.unpublished = 0;
    }
}
