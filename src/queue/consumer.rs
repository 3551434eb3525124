//! The consuming half.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

use super::cell::read_slice;
use super::{Inner, PopError, QueueStats};
use crate::sync::{Arc, Ordering};

/// The consuming half of an [`SpscQueue`](super::SpscQueue), from
/// [`SpscQueue::split`](super::SpscQueue::split).
///
/// There is exactly one per queue. It is `Send` when `T` is, but not `Sync`,
/// and dequeueing takes `&mut self`:
///
/// ```compile_fail
/// fn assert_sync<S: Sync>() {}
/// assert_sync::<ringbridge::Consumer<u64>>();
/// ```
///
/// ```
/// fn assert_send<S: Send>() {}
/// assert_send::<ringbridge::Consumer<u64>>();
/// ```
pub struct Consumer<T> {
    /// The shared state.
    inner: Arc<Inner<T>>,
    /// Our own counter: the consumer is the only writer of `inner.tail`, so
    /// this is always its current value and is never loaded back.
    tail: u64,
    /// The producer's `head` as last loaded; it only lags the real one, so
    /// every item below it really is there.
    cached_head: u64,
    /// Makes the type `!Sync` (and keeps it `Send`).
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Consumer<T> {
    pub(super) fn new(inner: Arc<Inner<T>>) -> Self {
        Self {
            // Relaxed: `split` just built the queue on this thread.
            tail: inner.tail.load(Ordering::Relaxed),
            cached_head: inner.head.load(Ordering::Relaxed),
            inner,
            _not_sync: PhantomData,
        }
    }

    /// The capacity (a power of two).
    ///
    /// ```
    /// let (_tx, rx) = ringbridge::SpscQueue::<u8>::new(5).split();
    /// assert_eq!(rx.capacity(), 8);
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Loads the producer's `head` into the cache.
    #[inline]
    fn refresh_head(&mut self) -> u64 {
        // Acquire: pairs with the producer's Release store of `head`, so its
        // writes of every slot below `head` are visible before we read them.
        self.cached_head = self.inner.head.load(Ordering::Acquire);
        self.cached_head
    }

    /// The number of items in the queue right now (the producer may be adding
    /// some at the same time, so it can only grow until we dequeue): at least
    /// this many items can be dequeued.
    ///
    /// ```
    /// let (mut tx, rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// tx.try_enqueue(1).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot; no slot is read because of it (dequeueing does
        // its own Acquire load). `head >= tail`: our `tail` never passed a
        // `head` we loaded, and later loads never see an older `head`.
        (self.inner.head.load(Ordering::Relaxed) - self.tail) as usize
    }

    /// Whether the queue is empty right now.
    ///
    /// ```
    /// let (_tx, rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// assert!(rx.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is full right now.
    ///
    /// ```
    /// let (mut tx, rx) = ringbridge::SpscQueue::<u8>::new(1).split();
    /// tx.try_enqueue(1).unwrap();
    /// assert!(rx.is_full());
    /// ```
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Dequeues the oldest item, or [`PopError::Empty`].
    ///
    /// ```
    /// use ringbridge::queue::PopError;
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<u64>::new(4).split();
    /// tx.try_enqueue(7).unwrap();
    /// assert_eq!(rx.try_dequeue(), Ok(7));
    /// assert_eq!(rx.try_dequeue(), Err(PopError::Empty));
    /// ```
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] if there is no item.
    #[inline]
    pub fn try_dequeue(&mut self) -> Result<T, PopError> {
        if self.tail == self.cached_head && self.tail == self.refresh_head() {
            return Err(PopError::Empty);
        }
        // SAFETY: `tail < head` for a `head` no newer than the real one, so
        // item `tail` is in `[tail, head)`: its slot is initialised, and the
        // Acquire load of `head` that showed it made the producer's write
        // visible. The producer does not touch the slot until we publish
        // `tail + 1`, and we are the only consumer (`&mut self` on the unique
        // `Consumer`); advancing `tail` below marks the slot empty, so the
        // moved-out value is never read or dropped again.
        let item = unsafe { self.inner.slot(self.tail).read() };
        self.tail += 1;
        // Release: our read of the slot happens before the producer's
        // Acquire load of `tail` that lets it reuse the slot.
        self.inner.tail.store(self.tail, Ordering::Release);
        Ok(item)
    }

    /// Dequeues up to `out.len()` items into the front of `out` and returns
    /// how many that was (`0` when the queue is empty). The slots are released
    /// with one Release store.
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<u8>::new(8).split();
    /// tx.push_slice(b"hello");
    /// let mut buf = [0u8; 3];
    /// assert_eq!(rx.pop_into(&mut buf), 3);
    /// assert_eq!(&buf, b"hel");
    /// assert_eq!(rx.pop_into(&mut buf), 2);
    /// assert_eq!(&buf[..2], b"lo");
    /// assert_eq!(rx.pop_into(&mut buf), 0);
    /// ```
    #[inline]
    pub fn pop_into(&mut self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        let mut available = (self.cached_head - self.tail) as usize;
        if available < out.len() {
            available = (self.refresh_head() - self.tail) as usize;
        }
        let n = available.min(out.len());
        if n == 0 {
            return 0;
        }
        let (first, second) = self.inner.slots(self.tail, n);
        let (dst_first, dst_second) = out[..n].split_at_mut(first.len());
        // SAFETY: items `tail .. tail + n` are in `[tail, head)` for a `head`
        // no newer than the real one (Acquire-loaded, so their writes are
        // visible); the producer leaves them alone until we publish the new
        // `tail`; the lengths match by construction of `slots`.
        unsafe {
            read_slice(first, dst_first);
            read_slice(second, dst_second);
        }
        self.tail += n as u64;
        // Release: our reads of all `n` slots happen before the producer's
        // Acquire load of `tail` that lets it reuse them.
        self.inner.tail.store(self.tail, Ordering::Release);
        n
    }

    /// Moves up to `max` items out of the queue, oldest first, handing each to
    /// `f` straight from its slot (for any `T`, no intermediate buffer), and
    /// returns how many that was. The slots are released with one Release
    /// store.
    ///
    /// If `f` panics, the items handed over so far (the one it panicked on
    /// included) count as dequeued; the rest stay queued.
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<u64>::new(8).split();
    /// tx.push_iter(0..5);
    /// let mut sum = 0;
    /// assert_eq!(rx.pop_each(3, |v| sum += v), 3);
    /// assert_eq!(sum, 0 + 1 + 2);
    /// assert_eq!(rx.pop_each(usize::MAX, |v| sum += v), 2);
    /// assert_eq!(sum, 10);
    /// ```
    #[inline]
    pub fn pop_each<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(T),
    {
        let mut available = (self.cached_head - self.tail) as usize;
        if available < max {
            available = (self.refresh_head() - self.tail) as usize;
        }
        let n = available.min(max);
        if n == 0 {
            return 0;
        }
        let (first, second) = self.inner.slots(self.tail, n);
        let release = ReleaseSlots {
            inner: &self.inner,
            tail: &mut self.tail,
        };
        for slot in first.iter().chain(second) {
            // SAFETY: the slot holds item `tail` with `tail < tail + n <=
            // head` for a `head` no newer than the real one (Acquire-loaded,
            // so its write is visible); the producer leaves it alone until we
            // publish a `tail` past it. The count is advanced before `f` runs,
            // so even if `f` panics the moved-out item is never read again.
            let item = unsafe { slot.read() };
            *release.tail += 1;
            f(item);
        }
        // `release` stores `tail` here (also on unwind).
        drop(release);
        n
    }

    /// A snapshot of the queue's statistics.
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// tx.try_enqueue(1).unwrap();
    /// rx.try_dequeue().unwrap();
    /// assert_eq!(rx.stats().dequeued, 1);
    /// ```
    pub fn stats(&self) -> QueueStats {
        // Relaxed: statistics order nothing.
        self.inner
            .snapshot(self.inner.head.load(Ordering::Relaxed), self.tail)
    }

    /// Resets the statistics (see [`Producer::reset_stats`](super::Producer::reset_stats)).
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// tx.try_enqueue(1).unwrap();
    /// rx.try_dequeue().unwrap();
    /// rx.reset_stats();
    /// assert_eq!(rx.stats(), ringbridge::QueueStats::default());
    /// ```
    pub fn reset_stats(&self) {
        // Relaxed: statistics order nothing.
        self.inner
            .reset_stats(self.inner.head.load(Ordering::Relaxed), self.tail);
    }

    /// Whether the [`Producer`](super::Producer) has been dropped. Once this
    /// returns `true`, every item it enqueued is visible: dequeue until
    /// empty and nothing will be missed.
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// tx.try_enqueue(1).unwrap();
    /// assert!(!rx.is_abandoned());
    /// drop(tx);
    /// assert!(rx.is_abandoned());
    /// assert_eq!(rx.try_dequeue(), Ok(1)); // still there
    /// ```
    #[inline]
    pub fn is_abandoned(&self) -> bool {
        // Acquire: pairs with the Release store in `Producer::drop`, so the
        // producer's last Release store of `head` happens before this load;
        // our next Acquire load of `head` therefore sees its final value.
        !self.inner.producer_alive.load(Ordering::Acquire)
    }
}

/// Releases the slots a batch consumed, also when the batch is cut short by a
/// panic: Release-stores `tail` on drop.
struct ReleaseSlots<'a, T> {
    inner: &'a Inner<T>,
    /// The consumer's own counter, advanced once per item taken.
    tail: &'a mut u64,
}

impl<T> Drop for ReleaseSlots<'_, T> {
    fn drop(&mut self) {
        // Release: our reads of every slot taken happen before the
        // producer's Acquire load of `tail` that lets it reuse them.
        self.inner.tail.store(*self.tail, Ordering::Release);
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Release: everything we did happens before a producer's Acquire load
        // that sees the flag cleared.
        self.inner.consumer_alive.store(false, Ordering::Release);
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
