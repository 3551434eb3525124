//! Ring memory in ordinary host memory, for the fallback backend and tests.

use crate::backend::SharedMemory;
use crate::error::{Error, Result};
use crate::sync::{Arc, AtomicU64};

/// Page-aligned, zeroed host memory for a bridge's region (the fallback's
/// counterpart of CUDA's pinned, device-mapped memory).
///
/// ```
/// use ringbridge::fallback::HostMemory;
/// let mem = HostMemory::new(1000).unwrap();
/// assert_eq!(mem.len_bytes(), 1000usize.next_multiple_of(4096));
/// ```
pub struct HostMemory {
    #[cfg(not(loom))]
    ptr: std::ptr::NonNull<AtomicU64>,
    #[cfg(not(loom))]
    layout: std::alloc::Layout,
    #[cfg(loom)]
    words: Box<[AtomicU64]>,
}

const PAGE: usize = 4096;

impl HostMemory {
    /// Allocates `bytes` (rounded up to a whole page), zeroed.
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use ringbridge::Error;
    /// use ringbridge::backend::SharedMemory;
    /// use ringbridge::fallback::HostMemory;
    /// let mem = HostMemory::new(0)?; // at least one page
    /// assert_eq!(mem.len_bytes(), 4096);
    /// assert!(mem.words().iter().all(|w| w.load(Ordering::Relaxed) == 0));
    /// assert_eq!(mem.device_address() % 4096, 0); // page aligned
    /// assert!(matches!(HostMemory::new(usize::MAX), Err(Error::Alloc { .. })));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn new(bytes: usize) -> Result<Arc<Self>> {
        let alloc_err = |reason: &str| Error::Alloc {
            bytes,
            reason: reason.to_string(),
        };
        // Loom tracks every atomic: model only the bytes asked for.
        let unit = if cfg!(loom) { 8 } else { PAGE };
        let rounded = bytes
            .max(1)
            .checked_next_multiple_of(unit)
            .ok_or_else(|| alloc_err("size overflows"))?;
        #[cfg(not(loom))]
        {
            let layout = std::alloc::Layout::from_size_align(rounded, PAGE)
                .map_err(|_| alloc_err("size overflows"))?;
            // SAFETY: `layout` has a non-zero size.
            let raw = unsafe { std::alloc::alloc_zeroed(layout) };
            let ptr = std::ptr::NonNull::new(raw.cast::<AtomicU64>())
                .ok_or_else(|| alloc_err("out of memory"))?;
            Ok(Arc::new(Self { ptr, layout }))
        }
        #[cfg(loom)]
        {
            let words = (0..rounded / 8).map(|_| AtomicU64::new(0)).collect();
            Ok(Arc::new(Self { words }))
        }
    }

    /// Bytes in the region (a whole number of pages).
    ///
    /// ```
    /// use ringbridge::fallback::HostMemory;
    /// assert_eq!(HostMemory::new(4096)?.len_bytes(), 4096);
    /// assert_eq!(HostMemory::new(4097)?.len_bytes(), 8192);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn len_bytes(&self) -> usize {
        SharedMemory::len_bytes(self)
    }

    /// The region's first byte, for handing to the C++ device half.
    #[cfg(not(loom))]
    pub(crate) fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }
}

// SAFETY: `words()` covers the whole allocation, which is page aligned (so
// 128-byte aligned) and lives, unmoved, until `drop`; the device half (a host
// thread) addresses it at the same addresses the host uses.
unsafe impl SharedMemory for HostMemory {
    fn words(&self) -> &[AtomicU64] {
        #[cfg(not(loom))]
        {
            // SAFETY: the allocation is `layout.size()` bytes, zeroed, 4096-byte
            // aligned and owned by `self`; `AtomicU64` has the size and
            // alignment of `u64` and zero is a valid value; all access goes
            // through the atomics, so shared references are fine.
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size() / 8) }
        }
        #[cfg(loom)]
        {
            &self.words
        }
    }

    fn device_address(&self) -> u64 {
        self.words().as_ptr() as u64
    }
}

#[cfg(not(loom))]
impl Drop for HostMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed only here. The
        // bridge keeps the `Arc` alive (or leaks it) while a device half may
        // still run, so nothing touches the memory after this.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}

// SAFETY: the memory is only accessed through `AtomicU64`s (by Rust) and by
// the device half under the ring protocol, so sharing it between threads is
// what it is for; the raw pointer is owned.
#[cfg(not(loom))]
unsafe impl Send for HostMemory {}
// SAFETY: as above.
#[cfg(not(loom))]
unsafe impl Sync for HostMemory {}
