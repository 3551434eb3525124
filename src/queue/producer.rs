//! The producing half.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

use super::cell::write_slice;
use super::{Inner, PushError, QueueStats};
use crate::sync::{Arc, Ordering};

/// The producing half of an [`SpscQueue`](super::SpscQueue), from
/// [`SpscQueue::split`](super::SpscQueue::split).
///
/// There is exactly one per queue. It is `Send` when `T` is, so it can move to
/// the producing thread, but it is not `Sync`, and enqueueing takes
/// `&mut self`, so two threads can never enqueue into the same queue:
///
/// ```compile_fail
/// fn assert_sync<S: Sync>() {}
/// assert_sync::<ringbridge::Producer<u64>>();
/// ```
///
/// ```
/// fn assert_send<S: Send>() {}
/// assert_send::<ringbridge::Producer<u64>>();
/// ```
pub struct Producer<T> {
    /// The shared state.
    inner: Arc<Inner<T>>,
    /// Our own counter: the producer is the only writer of `inner.head`, so
    /// this is always its current value and is never loaded back.
    head: u64,
    /// The consumer's `tail` as last loaded; it only lags the real one, so
    /// `head - cached_tail` over-estimates the depth and a slot it calls free
    /// really is free.
    cached_tail: u64,
    /// `capacity - 1`, copied out of `inner` to save an indirection.
    mask: u64,
    /// Items ever refused (`inner.producer_stats.dropped_total`): the
    /// producer is its only writer, so this copy is always its current
    /// value, and counting a refusal is one plain store of it (no load).
    dropped: u64,
    /// Makes the type `!Sync` (and keeps it `Send`).
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Producer<T> {
    pub(super) fn new(inner: Arc<Inner<T>>) -> Self {
        Self {
            mask: inner.mask,
            // Relaxed: `split` just built the queue on this thread.
            head: inner.head.load(Ordering::Relaxed),
            cached_tail: inner.tail.load(Ordering::Relaxed),
            dropped: inner.producer_stats.dropped_total.load(Ordering::Relaxed),
            inner,
            _not_sync: PhantomData,
        }
    }

    /// The capacity (a power of two).
    ///
    /// ```
    /// let (tx, _rx) = ringbridge::SpscQueue::<u8>::new(5).split();
    /// assert_eq!(tx.capacity(), 8);
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Loads the consumer's `tail` into the cache.
    #[inline]
    fn refresh_tail(&mut self) -> u64 {
        // Acquire: pairs with the consumer's Release store of `tail`, so its
        // reads of the slots it released happen before we overwrite them.
        self.cached_tail = self.inner.tail.load(Ordering::Acquire);
        self.cached_tail
    }

    /// Counts `n` refused items.
    #[inline]
    fn count_dropped(&mut self, n: u64) {
        self.dropped += n;
        self.inner.producer_stats.publish_dropped(self.dropped);
    }

    /// The number of items in the queue right now (the consumer may be
    /// taking some at the same time, so it can only shrink until we push).
    ///
    /// ```
    /// let (mut tx, _rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// tx.try_enqueue(1).unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot; no slot is accessed because of it (enqueueing
        // does its own Acquire load). `tail <= head` always holds, as the
        // consumer never passes a `head` it loaded.
        (self.head - self.inner.tail.load(Ordering::Relaxed)) as usize
    }

    /// Whether the queue is empty right now.
    ///
    /// ```
    /// let (tx, _rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// assert!(tx.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is full right now (it can only stop being full
    /// until we push, as the consumer takes items).
    ///
    /// ```
    /// let (mut tx, _rx) = ringbridge::SpscQueue::<u8>::new(1).split();
    /// tx.try_enqueue(1).unwrap();
    /// assert!(tx.is_full());
    /// ```
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// The number of free slots right now: at least this many items can be
    /// enqueued before the queue is full.
    ///
    /// ```
    /// let (mut tx, _rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// tx.try_enqueue(1).unwrap();
    /// assert_eq!(tx.slots(), 3);
    /// ```
    #[inline]
    pub fn slots(&self) -> usize {
        self.capacity() - self.len()
    }

    /// Enqueues `item`, or gives it back inside the error if the queue is
    /// full (and counts one `dropped`).
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<u64>::new(1).split();
    /// tx.try_enqueue(7).unwrap();
    /// let item = tx.try_enqueue(8).unwrap_err().into_inner();
    /// assert_eq!(item, 8);
    /// assert_eq!(rx.try_dequeue(), Ok(7));
    /// assert_eq!(tx.stats().dropped, 1);
    /// ```
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] holding `item` if there is no free slot.
    #[inline]
    pub fn try_enqueue(&mut self, item: T) -> Result<(), PushError<T>> {
        if self.head - self.cached_tail > self.mask && self.head - self.refresh_tail() > self.mask {
            self.count_dropped(1);
            return Err(PushError::Full(item));
        }
        // SAFETY: item `head` is outside `[tail, head)`, so its slot is
        // empty: `head - tail < capacity` (checked above against a `tail`
        // no newer than the real one, loaded with Acquire so the consumer's
        // read of this slot's previous item happened before this write). We
        // are the only producer (`&mut self` on the unique `Producer`), and
        // the consumer does not touch the slot until we publish `head + 1`.
        unsafe { self.inner.slot(self.head).write(item) };
        self.head += 1;
        raise_max_depth(&self.inner, self.head, &mut self.cached_tail);
        // Release: publishes the slot write above to the consumer's Acquire
        // load of `head`.
        self.inner.head.store(self.head, Ordering::Release);
        Ok(())
    }

    /// Enqueues as many items from the front of `items` as fit and returns
    /// how many that was; each item that did not fit counts one `dropped`.
    /// The batch is published with one Release store.
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<u32>::new(4).split();
    /// assert_eq!(tx.push_slice(&[1, 2, 3]), 3);
    /// assert_eq!(tx.push_slice(&[4, 5, 6]), 1); // only one slot left
    /// let mut out = [0; 8];
    /// assert_eq!(rx.pop_into(&mut out), 4);
    /// assert_eq!(out[..4], [1, 2, 3, 4]);
    /// assert_eq!(tx.stats().dropped, 2);
    /// ```
    #[inline]
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        let capacity = self.capacity();
        let mut free = capacity - (self.head - self.cached_tail) as usize;
        if free < items.len() {
            free = capacity - (self.head - self.refresh_tail()) as usize;
        }
        let n = free.min(items.len());
        if n < items.len() {
            self.count_dropped((items.len() - n) as u64);
        }
        if n == 0 {
            return 0;
        }
        let (first, second) = self.inner.slots(self.head, n);
        let (src_first, src_second) = items[..n].split_at(first.len());
        // SAFETY: items `head .. head + n` are outside `[tail, head)` because
        // `n <= capacity - (head - tail)` for a `tail` no newer than the real
        // one (Acquire-loaded, so the consumer is done with these slots). We
        // are the only producer, the consumer does not look at them before we
        // publish, and the lengths match by construction of `slots`.
        unsafe {
            write_slice(first, src_first);
            write_slice(second, src_second);
        }
        self.head += n as u64;
        raise_max_depth(&self.inner, self.head, &mut self.cached_tail);
        // Release: publishes all `n` slot writes above to the consumer's
        // Acquire load of `head`.
        self.inner.head.store(self.head, Ordering::Release);
        n
    }

    /// Moves items from `items` straight into free slots, as many as fit
    /// (for any `T`, no intermediate buffer), and returns how many that was.
    /// The batch is published with one Release store.
    ///
    /// Only items the queue has room for are taken from the iterator; pass
    /// `&mut iter` to keep the rest. Nothing is counted as `dropped`, as no
    /// item is refused. If the iterator panics, the items taken before the
    /// panic are published.
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbridge::SpscQueue::<String>::new(4).split();
    /// let mut words = ["a", "b", "c", "d", "e", "f"].into_iter().map(String::from);
    /// assert_eq!(tx.push_iter(&mut words), 4);
    /// assert_eq!(words.next().as_deref(), Some("e")); // not taken, not lost
    /// let mut got = Vec::new();
    /// assert_eq!(rx.pop_each(usize::MAX, |s| got.push(s)), 4);
    /// assert_eq!(got, ["a", "b", "c", "d"]);
    /// ```
    #[inline]
    pub fn push_iter<I>(&mut self, items: I) -> usize
    where
        I: IntoIterator<Item = T>,
    {
        let mut items = items.into_iter();
        let capacity = self.capacity();
        let mut free = capacity - (self.head - self.cached_tail) as usize;
        // Refresh unless the cached view already has room for everything
        // the iterator says it may yield.
        if items.size_hint().1.is_none_or(|most| free < most) {
            free = capacity - (self.head - self.refresh_tail()) as usize;
        }
        if free == 0 {
            return 0;
        }
        let start = self.head;
        let (first, second) = self.inner.slots(start, free);
        let publish = Publish {
            inner: &self.inner,
            start,
            head: &mut self.head,
            cached_tail: &mut self.cached_tail,
        };
        for slot in first.iter().chain(second) {
            let Some(item) = items.next() else { break };
            // SAFETY: the slot belongs to items `head .. head + free`, which
            // are outside `[tail, head)` because `free <= capacity - (head -
            // tail)` for a `tail` no newer than the real one (Acquire-loaded,
            // so the consumer is done with these slots). We are the only
            // producer and the consumer does not look at the slot before we
            // publish it.
            unsafe { slot.write(item) };
            *publish.head += 1;
        }
        let n = (*publish.head - start) as usize;
        // `publish` raises `max_depth` and stores `head` (also on unwind).
        drop(publish);
        n
    }

    /// A snapshot of the queue's statistics.
    ///
    /// ```
    /// let (mut tx, _rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// tx.try_enqueue(1).unwrap();
    /// assert_eq!(tx.stats().enqueued, 1);
    /// ```
    pub fn stats(&self) -> QueueStats {
        // Relaxed: statistics order nothing.
        self.inner
            .snapshot(self.head, self.inner.tail.load(Ordering::Relaxed))
    }

    /// Resets the statistics: `enqueued`, `dequeued` and `dropped` restart at
    /// zero and `max_depth` at the current depth (`depth` is not a counter and
    /// is unchanged). Either half may reset; a reset racing with the other
    /// half's operations may count them on either side of it.
    ///
    /// ```
    /// let (mut tx, _rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// tx.try_enqueue(1).unwrap();
    /// tx.reset_stats();
    /// let s = tx.stats();
    /// assert_eq!((s.enqueued, s.depth, s.max_depth), (0, 1, 1));
    /// ```
    pub fn reset_stats(&self) {
        // Relaxed: statistics order nothing.
        self.inner
            .reset_stats(self.head, self.inner.tail.load(Ordering::Relaxed));
    }

    /// Whether the [`Consumer`](super::Consumer) has been dropped (nothing
    /// enqueued from now on will be dequeued; it is dropped with the queue).
    ///
    /// ```
    /// let (tx, rx) = ringbridge::SpscQueue::<u8>::new(4).split();
    /// assert!(!tx.is_abandoned());
    /// drop(rx);
    /// assert!(tx.is_abandoned());
    /// ```
    #[inline]
    pub fn is_abandoned(&self) -> bool {
        // Acquire: pairs with the Release store in `Consumer::drop`, so once
        // we see `false`, everything the consumer did (its last `tail` store
        // in particular) is visible to us.
        !self.inner.consumer_alive.load(Ordering::Acquire)
    }
}

/// Publishes the items a batch wrote, also when the batch is cut short by a
/// panic: on drop, raises `max_depth` if needed, then Release-stores `head`.
struct Publish<'a, T> {
    inner: &'a Inner<T>,
    /// `head` before the batch: if it has not moved, there is nothing to do.
    start: u64,
    /// The producer's own counter, advanced once per item written.
    head: &'a mut u64,
    /// The producer's cached `tail`.
    cached_tail: &'a mut u64,
}

impl<T> Drop for Publish<'_, T> {
    fn drop(&mut self) {
        if *self.head == self.start {
            return;
        }
        raise_max_depth(self.inner, *self.head, self.cached_tail);
        // Release: publishes every slot written before it to the consumer's
        // Acquire load of `head`.
        self.inner.head.store(*self.head, Ordering::Release);
    }
}

/// Raises the `max_depth` statistic if the depth may have passed it.
///
/// Called with `head` already advanced past the new items but before they
/// are published, so the consumer cannot have taken them yet and the depth
/// counted includes them (it is at least 1).
///
/// `head - cached_tail` is an upper bound on the real depth, so while it
/// does not exceed the recorded maximum there is nothing to do and the
/// consumer's cache line is left alone. Otherwise `tail` is reloaded (which
/// also refreshes the cache) and a new high is stored, a plain store (no
/// read-modify-write). The statistic is therefore exact, yet `tail` is loaded
/// only when the depth may be at a new high.
///
/// The recorded maximum is loaded from the shared statistics rather than
/// kept in the producer, because a reset by the consumer lowers it and the
/// producer must record the next high after that; the load hits the
/// producer's own cache line (nothing but resets and this function writes
/// it), so it costs no coherence traffic.
#[inline]
fn raise_max_depth<T>(inner: &Inner<T>, head: u64, cached_tail: &mut u64) {
    let stats = &inner.producer_stats;
    let max = stats.max_depth();
    if head - *cached_tail > max {
        // Acquire, as every load of `tail` that refreshes the cache: the
        // cache later decides which slots are free to overwrite.
        *cached_tail = inner.tail.load(Ordering::Acquire);
        let depth = head - *cached_tail;
        // Only the producer raises the maximum, so `max` is still current
        // unless a reset ran in between, and a reset racing with enqueues is
        // approximate by contract (see `reset_stats`): a store cannot lose
        // a higher value that matters.
        if depth > max {
            stats.publish_max_depth(depth);
        }
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Release: everything we did, the last Release store of `head`
        // included, happens before a consumer's Acquire load that sees the
        // flag cleared; so a consumer that sees us gone and then drains the
        // queue finds every item we enqueued.
        self.inner.producer_alive.store(false, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
