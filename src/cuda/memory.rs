//! Pinned, device-mapped host memory: the bytes a bridge's rings live in.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use cudarc::driver::{CudaContext, result, sys};

use super::context::bind;
use super::running::{Scope, free_or_leak, while_idle};
use super::{cuda_err, describe};
use crate::backend::SharedMemory;
use crate::error::{Error, Result};
use crate::layout::LINE;

/// Allocation granularity: sizes are rounded up to whole pages.
const PAGE: usize = 4096;

/// Page-locked host memory that the GPU addresses directly over `PCIe`
/// (`cuMemHostAlloc` with `DEVICEMAP | PORTABLE`).
///
/// Never write-combined: the host reads the K2H ring and the control block,
/// and host reads of write-combined memory are uncached and very slow.
///
/// Dropping it frees the memory with `cuMemFreeHost`, unless a kernel was
/// left running on the same context (see [`super::CudaKernel`]), or any
/// kernel this process launched may still run: then the memory is leaked,
/// because that kernel may still use it, and freeing would wait for it.
///
/// Owners must drop the kernel that uses this memory *before* the memory.
pub(crate) struct MappedMemory {
    /// Keeps the context (and so the allocation) alive.
    ctx: Arc<CudaContext>,
    /// The region's first word in the host's address space.
    host: NonNull<AtomicU64>,
    /// Length in bytes, a multiple of [`PAGE`].
    bytes: usize,
    /// The region's first byte in the device's address space.
    device: u64,
}

// SAFETY: `MappedMemory` owns its allocation exclusively; the raw pointer is
// only turned into `&[AtomicU64]`, which is itself `Send + Sync`, and the host
// never touches the memory any other way. The driver calls made on it
// (`cuMemFreeHost`) may be issued from any thread once the context is made
// current there, which `Drop` does. `Arc<CudaContext>` is `Send + Sync`.
unsafe impl Send for MappedMemory {}
// SAFETY: see `Send`: shared access only hands out atomics.
unsafe impl Sync for MappedMemory {}

impl MappedMemory {
    /// Allocates `bytes` (rounded up to a whole page, at least one page),
    /// zeroed, mapped into the device's address space of `ctx`.
    ///
    /// # Errors
    /// [`Error::DeviceBusy`] while a kernel this process launched may still
    /// run (the allocation would wait for it, forever for a persistent one); [`Error::Alloc`] when the
    /// memory cannot be allocated or is not suitably aligned; [`Error::Cuda`]
    /// when the context cannot be made current or the device address cannot
    /// be obtained.
    pub(crate) fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Result<Self> {
        let alloc_err = |reason: String| Error::Alloc { bytes, reason };
        let rounded = bytes
            .max(1)
            .checked_next_multiple_of(PAGE)
            .filter(|&n| isize::try_from(n).is_ok())
            .ok_or_else(|| alloc_err("size overflows".into()))?;
        bind(ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        // A page-locked allocation waits for the device's running work
        // (CUDA's implicit synchronization), and a persistent kernel of ours
        // never ends on its own: a typed error instead of waiting forever.
        // SAFETY: the driver is loaded (a context exists) and the context is
        // current. The returned memory is uninitialised; it is zeroed below
        // before anything reads it.
        let raw = while_idle(Scope::AllDevices, || unsafe {
            result::malloc_host(rounded, flags)
        })?
        .map_err(|e| alloc_err(format!("cuMemHostAlloc failed: {}", describe(e))))?;
        let Some(host) = NonNull::new(raw.cast::<AtomicU64>()) else {
            return Err(alloc_err("cuMemHostAlloc returned a null pointer".into()));
        };
        // From here on, `mem`'s `Drop` frees the allocation on every error path.
        let mut mem = Self {
            ctx: Arc::clone(ctx),
            host,
            bytes: rounded,
            device: 0,
        };
        if !(host.as_ptr() as usize).is_multiple_of(LINE) {
            return Err(alloc_err(format!(
                "cuMemHostAlloc returned {:p}, which is not {LINE}-byte aligned",
                host.as_ptr()
            )));
        }
        // SAFETY: `host` points to `rounded` writable bytes that nothing else
        // references yet (no kernel knows the address).
        unsafe { std::ptr::write_bytes(host.as_ptr().cast::<u8>(), 0, rounded) };
        let mut device: sys::CUdeviceptr = 0;
        // SAFETY: `host` was returned by `cuMemHostAlloc` with DEVICEMAP in
        // the current context; `device` is a live, writable out-parameter;
        // flags must be 0.
        unsafe { sys::cuMemHostGetDevicePointer_v2(&raw mut device, raw, 0) }
            .result()
            .map_err(cuda_err("cuMemHostGetDevicePointer_v2"))?;
        if !device.is_multiple_of(LINE as u64) {
            return Err(alloc_err(format!(
                "device address {device:#x} is not {LINE}-byte aligned"
            )));
        }
        mem.device = device;
        Ok(mem)
    }
}

// SAFETY: `words()` covers all `bytes` of the allocation, which is at least
// 128-byte aligned (checked in `new`), zeroed, page-locked (never moves) and
// freed only in `drop`; `cuMemHostGetDevicePointer_v2` gives the device
// address of its first byte, and the mapping is linear.
unsafe impl SharedMemory for MappedMemory {
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `AtomicU64` has the size and alignment of `u64`; the memory
        // is 128-byte (so 8-byte) aligned, `bytes` long (a multiple of 8),
        // initialised (zeroed in `new`), and valid for as long as `self`
        // lives. The host touches it through these atomics, except for the
        // `&mut [u8]` `RingProducer::write_with` makes over an H2K slot the
        // protocol gives to the host alone (its SAFETY comment; see
        // docs/architecture.md, "Shared memory is not trusted"); what the
        // device writes concurrently is seen as atomic loads.
        unsafe { std::slice::from_raw_parts(self.host.as_ptr(), self.bytes / 8) }
    }

    fn device_address(&self) -> u64 {
        self.device
    }

    fn len_bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for MappedMemory {
    fn drop(&mut self) {
        // Freeing page-locked memory waits for the device's running work,
        // like pinning it; a kernel left running on the context may still
        // use it: either way it is leaked instead (`free_or_leak`).
        let what = format!("{} bytes of mapped memory", self.bytes);
        free_or_leak(&self.ctx, Scope::AllDevices, &what, || {
            // SAFETY: `host` was returned by `cuMemHostAlloc` and is freed
            // only here; nothing can use `words()` after `drop`.
            let _ = unsafe { result::free_host(self.host.as_ptr().cast()) };
        });
    }
}
