//! Errors of the queue.

use core::fmt;
use std::collections::TryReserveError;

/// Why [`SpscQueue::try_new`](super::SpscQueue::try_new) could not build a
/// queue.
///
/// ```
/// use ringbridge::queue::CapacityError;
/// use ringbridge::SpscQueue;
/// let err = SpscQueue::<u8>::try_new(usize::MAX).unwrap_err();
/// assert!(matches!(err, CapacityError::Overflow { .. }));
/// println!("{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// The requested capacity has no next power of two in `usize`.
    #[error("queue capacity {requested} cannot be rounded up to a power of two that fits in usize")]
    Overflow {
        /// The capacity asked for.
        requested: usize,
    },
    /// The buffer would be larger than `isize::MAX` bytes, the most any Rust
    /// allocation may hold.
    #[error("a queue of {capacity} slots of {elem_size} bytes each would exceed isize::MAX bytes")]
    TooLarge {
        /// The capacity after rounding up to a power of two.
        capacity: usize,
        /// `size_of::<T>()`.
        elem_size: usize,
    },
    /// The allocator could not provide the buffer.
    #[error("allocating a queue of {capacity} slots of {elem_size} bytes each failed")]
    Alloc {
        /// The capacity after rounding up to a power of two.
        capacity: usize,
        /// `size_of::<T>()`.
        elem_size: usize,
        /// What `Vec::try_reserve_exact` reported.
        #[source]
        source: TryReserveError,
    },
}

/// [`Producer::try_enqueue`](super::Producer::try_enqueue) found the queue
/// full; the item comes back inside the error.
///
/// ```
/// use ringbridge::SpscQueue;
/// let (mut tx, _rx) = SpscQueue::<String>::new(1).split();
/// tx.try_enqueue("a".to_string()).unwrap();
/// let err = tx.try_enqueue("b".to_string()).unwrap_err();
/// assert_eq!(err.to_string(), "queue is full");
/// assert_eq!(err.into_inner(), "b");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError<T> {
    /// The queue was full; here is the item that did not fit.
    #[error("queue is full")]
    Full(T),
}

impl<T> PushError<T> {
    /// The item that was not enqueued.
    ///
    /// ```
    /// use ringbridge::SpscQueue;
    /// use ringbridge::queue::PushError;
    /// let (mut tx, _rx) = SpscQueue::<Vec<u8>>::new(1).split();
    /// tx.try_enqueue(vec![1]).unwrap();
    /// let err: PushError<Vec<u8>> = tx.try_enqueue(vec![2, 3]).unwrap_err();
    /// assert_eq!(err.into_inner(), [2, 3]); // the same item, moved back
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) => item,
        }
    }
}

/// Does not require `T: Debug` (like `std::sync::mpsc::TrySendError`), so
/// `unwrap()` works for any item type.
impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
        }
    }
}

/// [`Consumer::try_dequeue`](super::Consumer::try_dequeue) found the queue
/// empty.
///
/// ```
/// use ringbridge::queue::PopError;
/// use ringbridge::SpscQueue;
/// let (_tx, mut rx) = SpscQueue::<u32>::new(4).split();
/// assert_eq!(rx.try_dequeue(), Err(PopError::Empty));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// No item was available.
    #[error("queue is empty")]
    Empty,
}
