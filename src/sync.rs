//! Atomics and helpers that loom replaces under `--cfg loom`, and the
//! crate's one way of taking a `std` lock.

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Tells the processor this thread is spinning.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Locks `m`, ignoring poison. A poisoned lock only means another thread
/// panicked while holding it; what this crate's locks guard stays usable
/// then (the ring halves keep no invariant a panic could break half-way that
/// the validation would not catch; the others hold plain counters, a
/// message, a thread handle, or nothing), so carry on.
#[cfg(not(loom))]
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
