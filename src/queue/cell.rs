//! One slot of the ring: an `UnsafeCell<MaybeUninit<T>>`.
//!
//! Normally this is `core::cell::UnsafeCell`; under `cfg(loom)` it is
//! `loom::cell::UnsafeCell`, so that loom checks every slot access against
//! the happens-before order the atomics establish (a read of a slot that the
//! producer is still writing is reported as a data race).

#[cfg(not(loom))]
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

#[cfg(loom)]
use loom::cell::UnsafeCell;

/// A slot: uninitialised, or holding one item owned by the queue.
///
/// Outside loom it is `repr(transparent)` over `UnsafeCell<MaybeUninit<T>>`,
/// hence has the layout of `T`, so a run of slots can be copied with one
/// `copy_nonoverlapping` (see [`write_slice`] and [`read_slice`]).
#[cfg_attr(not(loom), repr(transparent))]
pub(super) struct Slot<T> {
    cell: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    /// An empty (uninitialised) slot (outside loom, `fill_empty` makes
    /// slots without writing anything).
    #[cfg(loom)]
    pub(super) fn new() -> Self {
        Self {
            cell: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Moves `value` into the slot, overwriting (not dropping) what was there.
    ///
    /// # Safety
    /// The caller has exclusive access to the slot (no other thread reads or
    /// writes it concurrently), and the slot holds no item that still needs
    /// dropping.
    #[inline]
    pub(super) unsafe fn write(&self, value: T) {
        #[cfg(not(loom))]
        // SAFETY: exclusive access is the caller's contract; `get` points at
        // a valid `MaybeUninit<T>`, which any value may overwrite.
        unsafe {
            self.cell.get().write(MaybeUninit::new(value));
        }
        #[cfg(loom)]
        // SAFETY: as above; loom checks the exclusivity claim.
        self.cell
            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
    }

    /// Moves the item out of the slot, leaving it logically uninitialised.
    ///
    /// # Safety
    /// The slot holds an initialised item, no other thread writes it
    /// concurrently, and the caller treats the slot as empty afterwards (it
    /// must not be read or dropped again before the next `write`).
    #[inline]
    pub(super) unsafe fn read(&self) -> T {
        #[cfg(not(loom))]
        // SAFETY: the slot is initialised and not written concurrently (the
        // caller's contract); reading moves ownership out, and the caller
        // promises not to use the old bits again.
        unsafe {
            self.cell.get().read().assume_init()
        }
        #[cfg(loom)]
        // SAFETY: as above; loom checks that no write is concurrent.
        self.cell.with(|p| unsafe { p.read().assume_init() })
    }

    /// Drops the item in the slot in place.
    ///
    /// # Safety
    /// As for [`Slot::read`].
    pub(super) unsafe fn drop_in_place(&self) {
        #[cfg(not(loom))]
        // SAFETY: the slot is initialised and exclusively ours (caller's
        // contract), so dropping its value once is sound.
        unsafe {
            (*self.cell.get()).assume_init_drop();
        }
        #[cfg(loom)]
        // SAFETY: as above.
        self.cell.with_mut(|p| unsafe { (*p).assume_init_drop() });
    }
}

/// Fills the empty `slots` (with room reserved for `n`) with `n` empty slots.
pub(super) fn fill_empty<T>(slots: &mut Vec<Slot<T>>, n: usize) {
    debug_assert!(slots.is_empty() && slots.capacity() >= n);
    #[cfg(not(loom))]
    // SAFETY: `n <= capacity` (reserved by the caller), and a `Slot<T>` is an
    // `UnsafeCell<MaybeUninit<T>>`, for which any bytes, initialised or not,
    // are a valid value: there is nothing to write. (This takes O(1) time
    // even for a huge queue of zero-sized items.)
    unsafe {
        slots.set_len(n);
    }
    #[cfg(loom)]
    // Loom's cell carries tracking state, so each slot must be built.
    slots.extend((0..n).map(|_| Slot::new()));
}

/// Copies `src` into the slots `dst` (equal lengths).
///
/// # Safety
/// `dst.len() == src.len()`, and the caller has exclusive access to every slot
/// of `dst` and none of them holds an item (with `T: Copy` nothing needs
/// dropping anyway, but a reader must not be looking at them).
#[inline]
pub(super) unsafe fn write_slice<T: Copy>(dst: &[Slot<T>], src: &[T]) {
    debug_assert_eq!(dst.len(), src.len());
    if src.is_empty() {
        // The usual second run of a batch that does not wrap: skip the call.
        return;
    }
    #[cfg(not(loom))]
    // SAFETY: `Slot<T>` is `repr(transparent)` over
    // `UnsafeCell<MaybeUninit<T>>`, which has the layout of `T`, so the slots
    // are `dst.len()` consecutive `T`-sized, `T`-aligned places. `raw_get`
    // gives a pointer that may write through the `UnsafeCell`s (interior
    // mutability), exclusivity is the caller's contract, and `src` (a `&[T]`)
    // cannot overlap slots we were given exclusive access to.
    unsafe {
        let base = UnsafeCell::raw_get(dst.as_ptr().cast::<UnsafeCell<MaybeUninit<T>>>());
        core::ptr::copy_nonoverlapping(src.as_ptr(), base.cast::<T>(), src.len());
    }
    #[cfg(loom)]
    for (slot, &item) in dst.iter().zip(src) {
        // SAFETY: the caller's contract, slot by slot.
        unsafe { slot.write(item) };
    }
}

/// Copies the items in the slots `src` into `dst` (equal lengths); the slots
/// are empty afterwards (`T: Copy`, so nothing is left to drop).
///
/// # Safety
/// `dst.len() == src.len()`, every slot of `src` holds an initialised item and
/// no other thread writes any of them concurrently.
#[inline]
pub(super) unsafe fn read_slice<T: Copy>(src: &[Slot<T>], dst: &mut [T]) {
    debug_assert_eq!(dst.len(), src.len());
    if dst.is_empty() {
        // The usual second run of a batch that does not wrap: skip the call.
        return;
    }
    #[cfg(not(loom))]
    // SAFETY: layout as in `write_slice`; the slots are initialised and not
    // written concurrently (caller's contract); `dst` is a `&mut [T]`, so it
    // cannot overlap the queue's slots.
    unsafe {
        let base = UnsafeCell::raw_get(src.as_ptr().cast::<UnsafeCell<MaybeUninit<T>>>());
        core::ptr::copy_nonoverlapping(base.cast::<T>().cast_const(), dst.as_mut_ptr(), dst.len());
    }
    #[cfg(loom)]
    for (slot, out) in src.iter().zip(dst) {
        // SAFETY: the caller's contract, slot by slot.
        *out = unsafe { slot.read() };
    }
}
