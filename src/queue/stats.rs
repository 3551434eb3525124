//! Queue statistics.
//!
//! Every counter here is accessed with `Ordering::Relaxed`: a statistic orders
//! nothing (no thread reads slot data, or anything else, because of a value it
//! read here), so all it needs is atomicity, which Relaxed gives. A snapshot
//! taken while both halves run is therefore approximate, as any such snapshot
//! must be; once both threads are joined it is exact.
//!
//! `enqueued` and `dequeued` are not separate counters at all: the producer's
//! `head` and the consumer's `tail` already count every item ever enqueued and
//! dequeued, so the hot path pays nothing for them. `dropped` is a running
//! total that only the producer writes; it keeps the total in a field of its
//! own and publishes it with one plain store (no load, and no locked
//! read-modify-write: a spinning producer retrying a full queue would
//! otherwise pay a full fence per try). `max_depth` is raised only by the
//! producer, with a plain store as well. A reset records the
//! running totals as bases, and a snapshot subtracts the bases; a reset never
//! writes a counter the other half writes, so none of its effect can be lost.

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of a queue's counters, from [`SpscQueue::stats`],
/// [`Producer::stats`] or [`Consumer::stats`].
///
/// [`SpscQueue::stats`]: super::SpscQueue::stats
/// [`Producer::stats`]: super::Producer::stats
/// [`Consumer::stats`]: super::Consumer::stats
///
/// ```
/// use ringbridge::{QueueStats, SpscQueue};
/// let (mut tx, mut rx) = SpscQueue::<u8>::new(2).split();
/// tx.try_enqueue(1).unwrap();
/// tx.try_enqueue(2).unwrap();
/// assert!(tx.try_enqueue(3).is_err());
/// rx.try_dequeue().unwrap();
/// assert_eq!(
///     rx.stats(),
///     QueueStats { enqueued: 2, dequeued: 1, dropped: 1, depth: 1, max_depth: 2 }
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct QueueStats {
    /// Items enqueued since creation or the last reset.
    pub enqueued: u64,
    /// Items dequeued since creation or the last reset.
    pub dequeued: u64,
    /// Items refused because the queue was full: each failed
    /// [`try_enqueue`](super::Producer::try_enqueue) counts one, and each item
    /// of a [`push_slice`](super::Producer::push_slice) that did not fit
    /// counts one.
    pub dropped: u64,
    /// Items in the queue when the snapshot was taken.
    pub depth: u64,
    /// The largest depth the producer saw right after an enqueue since
    /// creation or the last reset (a reset sets it to the current depth).
    pub max_depth: u64,
}

/// The producer's statistics; written by the producer (and by resets).
#[derive(Default)]
pub(super) struct ProducerStats {
    /// `head` at the last reset: `enqueued = head - enqueued_base`.
    pub(super) enqueued_base: AtomicU64,
    /// Refused items ever; written only by the producer.
    pub(super) dropped_total: AtomicU64,
    /// `dropped_total` at the last reset: `dropped = dropped_total - dropped_base`.
    pub(super) dropped_base: AtomicU64,
    /// High-water mark of the depth.
    pub(super) max_depth: AtomicU64,
}

/// The consumer's statistics; written only by resets.
#[derive(Default)]
pub(super) struct ConsumerStats {
    /// `tail` at the last reset: `dequeued = tail - dequeued_base`.
    pub(super) dequeued_base: AtomicU64,
}

impl ProducerStats {
    /// Publishes the producer's running total of refused items.
    ///
    /// Only the producer writes `dropped_total`, and it keeps the total in
    /// its own field, so this is one plain store: no load, no
    /// read-modify-write, and no update can be lost.
    #[inline]
    pub(super) fn publish_dropped(&self, total: u64) {
        // Relaxed: a statistic, orders nothing (see the module doc).
        self.dropped_total.store(total, Ordering::Relaxed);
    }

    /// The recorded high-water mark of the depth.
    #[inline]
    pub(super) fn max_depth(&self) -> u64 {
        // Relaxed: a statistic, orders nothing (see the module doc).
        self.max_depth.load(Ordering::Relaxed)
    }

    /// Records `depth` as the new high-water mark: one plain store.
    ///
    /// Only the producer raises the mark (the caller checked that `depth`
    /// is above it), so no read-modify-write is needed; a reset racing with
    /// this store may be overwritten, which the reset contract allows.
    #[inline]
    pub(super) fn publish_max_depth(&self, depth: u64) {
        // Relaxed: a statistic, orders nothing (see the module doc).
        self.max_depth.store(depth, Ordering::Relaxed);
    }
}
