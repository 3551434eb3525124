//! What a [`super::Reservation`] holds ([`Inner`], shared with every bridge
//! taken from it) and the shares of it that bridges hold: a range of its
//! ring arena, a range of its buffer arena, and the buffer arena itself.
//! Below `reservation.rs`, which sizes and makes them.
//! Taking and giving back a share is bookkeeping only (no driver call that
//! waits), so either may happen while kernels of ours run.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, result, sys};

use super::MappedMemory;
use super::context::bind;
use super::module::KernelModule;
use super::running::{Scope, free_or_leak, has_leaked, while_idle};
use super::space::FreeSpace;
use super::stream::{Stream, StreamPool};
use super::{cuda_err, describe};
use crate::backend::SharedMemory;
use crate::buffer::{BUFFER_ALIGN, BufferInit, BufferMemory};
use crate::error::{Error, Result};
use crate::sync::lock;

/// Alignment of each ring region in the arena: a page, as a region of its
/// own would have.
pub(crate) const REGION_ALIGN: usize = 4096;

/// The shared part: dropped after every bridge that took from it.
pub(crate) struct Inner {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) rings: Option<MappedMemory>,
    pub(crate) ring_space: Mutex<FreeSpace>,
    pub(crate) buffers: Option<DeviceArena>,
    pub(crate) buffer_space: Mutex<FreeSpace>,
    pub(crate) streams: Arc<StreamPool>,
    /// Loaded entry points with the image bytes and name they came from.
    pub(crate) modules: Mutex<Vec<Loaded>>,
}

/// A loaded entry point: the image's bytes, the entry's name, the module.
pub(crate) type Loaded = (Arc<[u8]>, String, Arc<KernelModule>);

impl Inner {
    pub(crate) fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
}

/// One `cuMemAlloc` of a reservation's buffers, with a stream of its own for
/// the copies in and out of them, freed with the reservation.
pub(crate) struct DeviceArena {
    ctx: Arc<CudaContext>,
    base: sys::CUdeviceptr,
    bytes: usize,
    /// Copies go on this non-blocking stream, which waits for nothing but
    /// its own work (a copy on the legacy stream might wait for more).
    copies: Stream,
    /// One copy at a time on `copies`.
    copying: Mutex<()>,
}

impl DeviceArena {
    /// `bytes` (> 0) of device memory on `ctx`.
    ///
    /// # Errors
    /// [`Error::DeviceBusy`] while a kernel of ours may run on the device;
    /// [`Error::Alloc`] when the device has no room; [`Error::Cuda`].
    pub(crate) fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Result<Self> {
        let bytes = bytes.next_multiple_of(BUFFER_ALIGN);
        let copies = Stream::new(ctx)?;
        bind(ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // SAFETY: the context is current and `bytes` is non-zero.
        let base = while_idle(Scope::Device(ctx.ordinal()), || unsafe {
            result::malloc_sync(bytes)
        })?
        .map_err(|e| Error::Alloc {
            bytes,
            reason: format!(
                "reserving buffer memory: cuMemAlloc failed: {}",
                describe(e)
            ),
        })?;
        Ok(Self {
            ctx: Arc::clone(ctx),
            base,
            bytes,
            copies,
            copying: Mutex::new(()),
        })
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    /// Copies `src` to `base + offset` (`Some`), or zeroes `len` bytes there
    /// (`None`), and waits for it. Zeroes are copied from the host rather
    /// than set with `cuMemsetD8`: the programming guide lists a device
    /// memory set among the operations that synchronise implicitly, a
    /// host-to-device copy on a non-blocking stream it does not.
    fn fill(&self, offset: usize, len: usize, src: Option<&[u8]>) -> Result<()> {
        let zeroes;
        let bytes = match src {
            Some(bytes) => bytes,
            None => {
                zeroes = vec![0u8; len];
                &zeroes
            }
        };
        let _turn = lock(&self.copying);
        bind(&self.ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // SAFETY: `base + offset .. + bytes.len()` lies in this arena (the
        // caller's range), which no kernel uses while its bridge fills or
        // reads it; `bytes` lives until the stream is synchronised below.
        unsafe { result::memcpy_htod_async(self.base + offset as u64, bytes, self.copies.raw()) }
            .map_err(cuda_err("cuMemcpyHtoDAsync"))?;
        self.copies.synchronize()
    }

    /// Copies `out.len()` bytes from `base + offset` into `out`.
    fn read(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let _turn = lock(&self.copying);
        bind(&self.ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // SAFETY: as in `fill`; `out` stays borrowed until the stream is
        // synchronised.
        unsafe { result::memcpy_dtoh_async(out, self.base + offset as u64, self.copies.raw()) }
            .map_err(cuda_err("cuMemcpyDtoHAsync"))?;
        self.copies.synchronize()
    }
}

impl Drop for DeviceArena {
    fn drop(&mut self) {
        let what = format!("{} bytes of reserved buffer memory", self.bytes);
        free_or_leak(&self.ctx, Scope::Device(self.ctx.ordinal()), &what, || {
            // SAFETY: allocated in `new`, freed once; every bridge that used
            // it is gone (each held the reservation).
            let _ = unsafe { result::free_sync(self.base) };
        });
    }
}

/// A range of a reservation's ring arena, zeroed when taken, given back
/// when dropped (unless a kernel was left running on its context: then it
/// stays taken, as the kernel may still use it).
pub(crate) struct ReservedRegion {
    inner: Arc<Inner>,
    offset: usize,
    bytes: usize,
}

impl ReservedRegion {
    /// `bytes` of the arena, zeroed, or `None` when no free range holds them.
    pub(crate) fn take(inner: &Arc<Inner>, bytes: usize) -> Option<Self> {
        let arena = inner.rings.as_ref()?;
        let bytes = bytes.max(1).next_multiple_of(REGION_ALIGN);
        let offset = lock(&inner.ring_space).take(bytes, REGION_ALIGN)?;
        let region = Self {
            inner: Arc::clone(inner),
            offset,
            bytes,
        };
        // Relaxed: nothing runs on the range yet; the kernel that will learns
        // of it through its launch, which orders these stores before it.
        for word in region.words() {
            word.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        debug_assert!(arena.len_bytes() >= offset + bytes);
        Some(region)
    }
}

// SAFETY: `words()` is a sub-slice of the arena's words (page-aligned,
// pinned, mapped, alive while `inner` is), `offset..offset + bytes`, which
// no other share overlaps (`FreeSpace` hands each byte out once); the
// device address is the arena's plus `offset`, the mapping being linear.
unsafe impl SharedMemory for ReservedRegion {
    fn words(&self) -> &[AtomicU64] {
        let arena = self.inner.rings.as_ref().map_or(&[][..], |m| m.words());
        &arena[self.offset / 8..(self.offset + self.bytes) / 8]
    }

    fn device_address(&self) -> u64 {
        self.inner
            .rings
            .as_ref()
            .map_or(0, |m| m.device_address() + self.offset as u64)
    }
}

impl Drop for ReservedRegion {
    fn drop(&mut self) {
        if !has_leaked(self.inner.context()) {
            lock(&self.inner.ring_space).give(self.offset, self.bytes);
        }
    }
}

/// A range of a reservation's buffer arena holding one bridge buffer.
pub(crate) struct ReservedBuffer {
    inner: Arc<Inner>,
    offset: usize,
    bytes: usize,
}

/// The arena range a buffer of `bytes` takes: whole [`BUFFER_ALIGN`] units.
pub(crate) fn buffer_span(bytes: usize) -> usize {
    bytes.max(1).next_multiple_of(BUFFER_ALIGN)
}

impl ReservedBuffer {
    /// Buffer `index` filled as `init` says, or `Ok(None)` when the arena
    /// has no room.
    ///
    /// # Errors
    /// [`Error::Cuda`] when filling fails.
    pub(crate) fn take(
        inner: &Arc<Inner>,
        index: usize,
        init: &BufferInit,
    ) -> Result<Option<Self>> {
        let Some(arena) = inner.buffers.as_ref() else {
            return Ok(None);
        };
        let bytes = init.len();
        let Some(offset) = lock(&inner.buffer_space).take(buffer_span(bytes), BUFFER_ALIGN) else {
            return Ok(None);
        };
        // From here on, `Drop` gives the range back on every error path.
        let buffer = Self {
            inner: Arc::clone(inner),
            offset,
            bytes,
        };
        arena
            .fill(offset, bytes, init.contents())
            .map_err(|e| Error::Alloc {
                bytes,
                reason: format!("buffer {index}: filling reserved memory failed: {e}"),
            })?;
        Ok(Some(buffer))
    }

    fn arena(&self) -> Result<&DeviceArena> {
        self.inner
            .buffers
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("the reservation has no buffer arena".into()))
    }
}

impl BufferMemory for ReservedBuffer {
    fn address(&self) -> u64 {
        self.inner.buffers.as_ref().map_or(0, |a| a.base) + self.offset as u64
    }

    fn len(&self) -> usize {
        self.bytes
    }

    fn read(&self, out: &mut [u8]) -> Result<()> {
        let n = out.len().min(self.bytes);
        self.arena()?.read(self.offset, &mut out[..n])
    }

    fn write(&self, src: &[u8]) -> Result<()> {
        crate::buffer::check_fits(src.len(), self.bytes)?;
        self.arena()?.fill(self.offset, src.len(), Some(src))
    }
}

impl Drop for ReservedBuffer {
    fn drop(&mut self) {
        if !has_leaked(self.inner.context()) {
            lock(&self.inner.buffer_space).give(self.offset, buffer_span(self.bytes));
        }
    }
}
