//! A lock-free, bounded, single-producer single-consumer queue.
//!
//! [`SpscQueue::new`] builds the queue and [`SpscQueue::split`] consumes it,
//! returning the only [`Producer`] and the only [`Consumer`]. Both are `Send`
//! (for `T: Send`) but not `Sync`, and the enqueue/dequeue methods take
//! `&mut self`, so the type system guarantees one producer and one consumer:
//! the soundness hole of the seed (`try_enqueue(&self)` on a `Sync` queue, so
//! two threads could enqueue into the same slot) cannot be written.
//!
//! ```
//! let (mut tx, mut rx) = ringbridge::SpscQueue::<u64>::new(1024).split();
//! tx.try_enqueue(7).unwrap();
//! assert_eq!(rx.try_dequeue().unwrap(), 7);
//! // a full queue gives the item back: Err(e) => e.into_inner()
//! for i in 0..1024 {
//!     tx.try_enqueue(i).unwrap();
//! }
//! assert!(tx.is_full());
//! match tx.try_enqueue(99) {
//!     Ok(()) => unreachable!("the queue is full"),
//!     Err(e) => assert_eq!(e.into_inner(), 99),
//! }
//! assert_eq!(tx.stats().dropped, 1);
//! assert_eq!(rx.try_dequeue().unwrap(), 0);
//! ```
//!
//! Across threads:
//!
//! ```
//! use ringbridge::SpscQueue;
//! let (mut tx, mut rx) = SpscQueue::<u64>::new(64).split();
//! let producer = std::thread::spawn(move || {
//!     for i in 0..10_000u64 {
//!         let mut item = i;
//!         while let Err(e) = tx.try_enqueue(item) {
//!             item = e.into_inner();
//!             std::hint::spin_loop();
//!         }
//!     }
//! });
//! let mut expected = 0;
//! while expected < 10_000 {
//!     if let Ok(v) = rx.try_dequeue() {
//!         assert_eq!(v, expected);
//!         expected += 1;
//!     }
//! }
//! producer.join().unwrap();
//! ```
//!
//! # Design
//!
//! - `head` (written only by the producer) and `tail` (written only by the
//!   consumer) are `u64` counters that only grow; an item's slot is
//!   `counter & mask`. The queue holds `head - tail` items. No CAS anywhere.
//! - The producer writes a slot, then Release-stores `head`; the consumer
//!   Acquire-loads `head`, so the slot's contents are visible to it. The
//!   consumer moves the item out, then Release-stores `tail`; the producer
//!   Acquire-loads `tail` before it reuses a slot, so the consumer's read
//!   happens before the producer's overwrite.
//! - Each half keeps its own counter in a plain field (it is the only
//!   writer, so it never needs to load it back) and a cached copy of the
//!   other half's counter, which it refreshes only when the cache says the
//!   queue is full (producer) or empty (consumer), and (producer only) when
//!   the depth may be at a new high for `max_depth`. While neither happens,
//!   a half works on its own cache lines and the slots only.
//! - Batch operations ([`Producer::push_slice`] / [`Consumer::pop_into`] for
//!   `Copy` items, [`Producer::push_iter`] / [`Consumer::pop_each`] for any
//!   item, without an intermediate buffer) move many items with one Release
//!   store.
//! - `head`, `tail`, the producer's statistics and the consumer's statistics
//!   each sit on their own [`CachePadded`] line. `enqueued` and `dequeued`
//!   are derived from `head` and `tail`, so the per-item paths write no
//!   statistics (see [`QueueStats`]).
//! - Items still queued when both halves are gone are dropped exactly once
//!   by the shared buffer's `Drop`.

mod cell;
mod consumer;
mod error;
mod producer;
mod stats;

use core::alloc::Layout;
use core::fmt;
use core::mem::size_of;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicBool, AtomicU64, Ordering};
use cell::Slot;
use stats::{ConsumerStats, ProducerStats};

pub use consumer::Consumer;
pub use error::{CapacityError, PopError, PushError};
pub use producer::Producer;
pub use stats::QueueStats;

/// A bounded SPSC queue of `T`, before it is [split](SpscQueue::split) into
/// its [`Producer`] and [`Consumer`].
///
/// The capacity is rounded up to a power of two, so that a slot index is a
/// mask of a counter.
///
/// ```
/// let (mut tx, mut rx) = ringbridge::SpscQueue::<u64>::new(1024).split();
/// tx.try_enqueue(7).unwrap();
/// assert_eq!(rx.try_dequeue().unwrap(), 7);
/// // a full queue gives the item back: Err(e) => e.into_inner()
/// let (mut tx, mut rx) = ringbridge::SpscQueue::<u64>::new(2).split();
/// tx.try_enqueue(1).unwrap();
/// tx.try_enqueue(2).unwrap();
/// let back = match tx.try_enqueue(3) {
///     Ok(()) => unreachable!("capacity 2 holds two items"),
///     Err(e) => e.into_inner(),
/// };
/// assert_eq!(back, 3);
/// assert_eq!(rx.try_dequeue().unwrap(), 1);
/// tx.try_enqueue(back).unwrap(); // room again
/// assert_eq!(rx.try_dequeue().unwrap(), 2);
/// assert_eq!(rx.try_dequeue().unwrap(), 3);
/// assert_eq!(rx.stats().dropped, 1);
/// ```
pub struct SpscQueue<T> {
    inner: Inner<T>,
}

/// What the two halves share (through an `Arc`).
///
/// `head`, `tail` and the two statistics blocks are each `CachePadded` (128
/// bytes, 128-aligned, as x86 prefetches lines in pairs), so the read-mostly
/// rest (`buffer`, `mask`, and the liveness flags, each written once) gets a
/// 128-byte block of its own and shares no line with anything written per
/// item. `repr(C)` pins that order.
#[repr(C)]
struct Inner<T> {
    /// Items ever enqueued; written only by the producer.
    head: CachePadded<AtomicU64>,
    /// Items ever dequeued; written only by the consumer.
    tail: CachePadded<AtomicU64>,
    /// `capacity` slots; slot `i & mask` holds item number `i` for
    /// `tail <= i < head`, and is uninitialised otherwise.
    buffer: Box<[Slot<T>]>,
    /// `capacity - 1`; `capacity` is a power of two.
    mask: u64,
    /// Cleared when the producer is dropped.
    producer_alive: AtomicBool,
    /// Cleared when the consumer is dropped.
    consumer_alive: AtomicBool,
    /// Written by the producer (and by resets).
    producer_stats: CachePadded<ProducerStats>,
    /// Written only by resets (`dequeued` is derived from `tail`).
    consumer_stats: CachePadded<ConsumerStats>,
}

// SAFETY: `Inner` owns `T`s (moving it to another thread moves them), hence
// `T: Send`. It contains `UnsafeCell`s, but every slot access is governed by
// the head/tail protocol: a slot is written only by the unique `Producer` while
// it is outside `[tail, head)`, and read only by the unique `Consumer` while it
// is inside, with Release/Acquire on head/tail ordering the two. Sharing
// `&Inner` between the two halves on different threads therefore never gives
// two threads simultaneous access to one slot, and only moves `T`s between
// threads (never shares `&T`), so `T: Send` is enough for `Sync` too.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: see the `Send` impl just above.
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T> SpscQueue<T> {
    /// A queue holding up to `capacity` items, rounded up to the next power of
    /// two (`0` rounds to `1`).
    ///
    /// ```
    /// use ringbridge::SpscQueue;
    /// assert_eq!(SpscQueue::<u8>::new(0).capacity(), 1);
    /// assert_eq!(SpscQueue::<u8>::new(3).capacity(), 4);
    /// assert_eq!(SpscQueue::<u8>::new(1024).capacity(), 1024);
    /// ```
    ///
    /// # Panics
    ///
    /// Like `Vec::with_capacity`: if the rounded capacity overflows `usize`,
    /// if the buffer would exceed `isize::MAX` bytes, or if the allocation
    /// fails. Use [`SpscQueue::try_new`] to get these as errors.
    pub fn new(capacity: usize) -> Self {
        match Self::try_new(capacity) {
            Ok(queue) => queue,
            Err(e) => panic!("SpscQueue::new({capacity}): {e}"),
        }
    }

    /// Like [`SpscQueue::new`], but an impossible capacity is an error
    /// instead of a panic.
    ///
    /// ```
    /// use ringbridge::queue::CapacityError;
    /// use ringbridge::SpscQueue;
    /// assert!(matches!(
    ///     SpscQueue::<u8>::try_new(usize::MAX),
    ///     Err(CapacityError::Overflow { .. })
    /// ));
    /// assert!(matches!(
    ///     SpscQueue::<[u8; 1 << 20]>::try_new(1 << 50),
    ///     Err(CapacityError::TooLarge { .. })
    /// ));
    /// assert_eq!(SpscQueue::<u8>::try_new(5)?.capacity(), 8);
    /// # Ok::<(), CapacityError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`CapacityError::Overflow`] if `capacity` has no next power of two in
    /// `usize`, [`CapacityError::TooLarge`] if the buffer would exceed
    /// `isize::MAX` bytes, [`CapacityError::Alloc`] if the allocator refuses.
    pub fn try_new(capacity: usize) -> Result<Self, CapacityError> {
        let rounded = capacity
            .checked_next_power_of_two()
            .ok_or(CapacityError::Overflow {
                requested: capacity,
            })?;
        let elem_size = size_of::<T>();
        // `Layout::array` fails exactly when `rounded * size_of::<Slot<T>>()`
        // overflows or exceeds `isize::MAX`.
        if Layout::array::<Slot<T>>(rounded).is_err() {
            return Err(CapacityError::TooLarge {
                capacity: rounded,
                elem_size,
            });
        }
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(rounded)
            .map_err(|source| CapacityError::Alloc {
                capacity: rounded,
                elem_size,
                source,
            })?;
        cell::fill_empty(&mut slots, rounded);
        Ok(Self {
            inner: Inner {
                head: CachePadded::new(AtomicU64::new(0)),
                tail: CachePadded::new(AtomicU64::new(0)),
                producer_stats: CachePadded::new(ProducerStats::default()),
                consumer_stats: CachePadded::new(ConsumerStats::default()),
                producer_alive: AtomicBool::new(true),
                consumer_alive: AtomicBool::new(true),
                buffer: slots.into_boxed_slice(),
                // `usize` is at most 64 bits on every supported target.
                mask: rounded as u64 - 1,
            },
        })
    }

    /// The capacity (a power of two).
    ///
    /// ```
    /// assert_eq!(ringbridge::SpscQueue::<u8>::new(100).capacity(), 128);
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The statistics (all zero: nothing can be enqueued before the split).
    ///
    /// ```
    /// let q = ringbridge::SpscQueue::<u8>::new(4);
    /// assert_eq!(q.stats(), ringbridge::QueueStats::default());
    /// ```
    pub fn stats(&self) -> QueueStats {
        // Relaxed: statistics order nothing (and before the split no other
        // thread can hold the queue).
        self.inner.snapshot(
            self.inner.head.load(Ordering::Relaxed),
            self.inner.tail.load(Ordering::Relaxed),
        )
    }

    /// Resets the statistics (see [`Producer::reset_stats`]).
    ///
    /// Before the split nothing can be enqueued, so there is nothing to
    /// reset yet: the statistics stay zero, and so they are after the split.
    ///
    /// ```
    /// use ringbridge::{QueueStats, SpscQueue};
    /// let q = SpscQueue::<u8>::new(4);
    /// q.reset_stats();
    /// assert_eq!(q.stats(), QueueStats::default());
    /// let (mut tx, rx) = q.split();
    /// tx.try_enqueue(1).unwrap();
    /// assert_eq!((rx.stats().enqueued, rx.stats().depth), (1, 1));
    /// ```
    pub fn reset_stats(&self) {
        // Relaxed: statistics order nothing.
        self.inner.reset_stats(
            self.inner.head.load(Ordering::Relaxed),
            self.inner.tail.load(Ordering::Relaxed),
        );
    }

    /// Consumes the queue and returns its only producer and only consumer.
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<&str>::new(4).split();
    /// tx.try_enqueue("hi").unwrap();
    /// assert_eq!(rx.try_dequeue(), Ok("hi"));
    /// ```
    pub fn split(self) -> (Producer<T>, Consumer<T>) {
        let inner = crate::sync::Arc::new(self.inner);
        (
            Producer::new(crate::sync::Arc::clone(&inner)),
            Consumer::new(inner),
        )
    }
}

impl<T> fmt::Debug for SpscQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpscQueue")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<T> Inner<T> {
    /// The number of slots.
    #[inline]
    fn capacity(&self) -> usize {
        self.buffer.len()
    }

    /// The slot of item number `counter`.
    #[inline]
    fn slot(&self, counter: u64) -> &Slot<T> {
        let index = (counter & self.mask) as usize;
        // SAFETY: `buffer.len() == mask + 1`, so `counter & mask` is in bounds.
        unsafe { self.buffer.get_unchecked(index) }
    }

    /// Up to two runs of slots covering items `from .. from + n` (the second
    /// run is empty unless the range wraps past the end of the buffer).
    ///
    /// `n` must not exceed the capacity.
    #[inline]
    fn slots(&self, from: u64, n: usize) -> (&[Slot<T>], &[Slot<T>]) {
        debug_assert!(n <= self.capacity());
        let start = (from & self.mask) as usize;
        let first = n.min(self.capacity() - start);
        (
            &self.buffer[start..start + first],
            &self.buffer[..n - first],
        )
    }

    /// A statistics snapshot, given the counters as the caller knows them.
    fn snapshot(&self, head: u64, tail: u64) -> QueueStats {
        // Relaxed loads throughout: statistics order nothing (see the `stats`
        // module).
        let p = &self.producer_stats;
        let c = &self.consumer_stats;
        QueueStats {
            enqueued: head.saturating_sub(p.enqueued_base.load(Ordering::Relaxed)),
            dequeued: tail.saturating_sub(c.dequeued_base.load(Ordering::Relaxed)),
            dropped: p
                .dropped_total
                .load(Ordering::Relaxed)
                .saturating_sub(p.dropped_base.load(Ordering::Relaxed)),
            depth: head.saturating_sub(tail),
            max_depth: p.max_depth.load(Ordering::Relaxed),
        }
    }

    /// Resets the statistics, given the counters as the caller knows them.
    fn reset_stats(&self, head: u64, tail: u64) {
        // Relaxed stores: statistics order nothing (see the `stats` module).
        // A reset that races with the other half's operations may count an
        // item on either side of it; nothing depends on that.
        let p = &self.producer_stats;
        p.enqueued_base.store(head, Ordering::Relaxed);
        p.dropped_base
            .store(p.dropped_total.load(Ordering::Relaxed), Ordering::Relaxed);
        p.max_depth
            .store(head.saturating_sub(tail), Ordering::Relaxed);
        self.consumer_stats
            .dequeued_base
            .store(tail, Ordering::Relaxed);
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        if !core::mem::needs_drop::<T>() {
            return;
        }
        // Relaxed is enough: we hold `&mut self`, i.e. the last `Arc` is
        // gone, and `Arc`'s drop already made every write of both halves
        // (slot writes and counter stores) happen before this point.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        for counter in tail..head {
            // SAFETY: items `tail..head` were enqueued and never dequeued, so
            // their slots are initialised; no half is left to touch them, and
            // each is dropped once (each counter in the range maps to a
            // different slot because `head - tail <= capacity`).
            unsafe { self.slot(counter).drop_in_place() };
        }
    }
}
