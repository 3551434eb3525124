//! Device memory for a bridge-owned buffer ([`crate::buffer`]).

use std::sync::Arc;

use cudarc::driver::{CudaContext, result, sys};

use super::context::bind;
use super::running::{Scope, free_or_leak, while_idle};
use super::{cuda_err, describe};
use crate::buffer::{BUFFER_ALIGN, BufferInit, BufferMemory};
use crate::error::{Error, Result};

/// `cuMemAlloc`ed device memory, filled at allocation, freed on drop.
///
/// Allocating, filling (`cuMemsetD8` / `cuMemcpyHtoD`) and freeing device
/// memory may wait for the device's running work (CUDA's implicit
/// synchronization), so each goes through
/// [`while_idle`] (for this device): [`Error::DeviceBusy`] rather than a wait
/// forever on a persistent kernel. The bridge allocates its buffers before
/// it launches its kernel and drops them after the kernel stopped; if the
/// kernel was left running (its context marked, see
/// [`super::CudaKernel`]), or another kernel of this process may run when
/// the buffer is dropped, the memory is leaked instead, with a warning.
pub(crate) struct DeviceBuffer {
    /// Keeps the context (and so the allocation) alive.
    ctx: Arc<CudaContext>,
    ptr: sys::CUdeviceptr,
    bytes: usize,
}

impl DeviceBuffer {
    /// Allocates and fills buffer `index` as `init` says, on `ctx`'s device.
    ///
    /// # Errors
    /// [`Error::DeviceBusy`] while a kernel of this process may run;
    /// [`Error::Alloc`] when the device has no room (or returns memory not
    /// [`BUFFER_ALIGN`]-byte aligned); [`Error::Cuda`] when another driver
    /// call fails; [`Error::InvalidArgument`] for zero bytes.
    pub(crate) fn new(ctx: &Arc<CudaContext>, index: usize, init: &BufferInit) -> Result<Self> {
        let bytes = init.len();
        if bytes == 0 {
            return Err(Error::InvalidArgument(format!(
                "buffer {index} has zero bytes"
            )));
        }
        bind(ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        let ptr = while_idle(
            Scope::Device(ctx.ordinal()),
            || -> Result<sys::CUdeviceptr> {
                // SAFETY: the context is current (bound above, on this thread)
                // and `bytes` is non-zero.
                let ptr = unsafe { result::malloc_sync(bytes) }.map_err(|e| Error::Alloc {
                    bytes,
                    reason: format!("buffer {index}: cuMemAlloc failed: {}", describe(e)),
                })?;
                // SAFETY: `ptr` is `bytes` bytes of device memory just
                // allocated in the current context, which no kernel knows yet;
                // `contents` is exactly `bytes` long (`BufferInit`'s invariant).
                let filled = unsafe {
                    match init.contents() {
                        Some(contents) => result::memcpy_htod_sync(ptr, contents),
                        None => result::memset_d8_sync(ptr, 0, bytes),
                    }
                };
                if let Err(e) = filled {
                    // SAFETY: `ptr` was allocated above and is freed once, here;
                    // nothing else has it.
                    let _ = unsafe { result::free_sync(ptr) };
                    return Err(cuda_err("cuMemcpyHtoD/cuMemsetD8")(e));
                }
                Ok(ptr)
            },
        )??;
        // From here on, `Drop` frees it on every error path.
        let buffer = Self {
            ctx: Arc::clone(ctx),
            ptr,
            bytes,
        };
        if ptr % BUFFER_ALIGN as u64 != 0 {
            return Err(Error::Alloc {
                bytes,
                reason: format!(
                    "buffer {index}: cuMemAlloc returned {ptr:#x}, not {BUFFER_ALIGN}-byte aligned"
                ),
            });
        }
        Ok(buffer)
    }
}

impl BufferMemory for DeviceBuffer {
    fn address(&self) -> u64 {
        self.ptr
    }

    fn len(&self) -> usize {
        self.bytes
    }

    fn read(&self, out: &mut [u8]) -> Result<()> {
        let n = out.len().min(self.bytes);
        bind(&self.ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // A synchronous copy on the legacy default stream: it waits for
        // that stream's work only, never for the kernels' own non-blocking
        // streams, so another bridge's running kernel cannot hold it up.
        // SAFETY: the context is current; `ptr` is `bytes >= n` bytes of
        // device memory of it, which no kernel writes any more (the caller's
        // contract); `out[..n]` is a live, writable host slice.
        unsafe { result::memcpy_dtoh_sync(&mut out[..n], self.ptr) }
            .map_err(cuda_err("cuMemcpyDtoH"))
    }

    fn write(&self, src: &[u8]) -> Result<()> {
        crate::buffer::check_fits(src.len(), self.bytes)?;
        bind(&self.ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // SAFETY: as in `read`; `src.len() <= bytes`, and no kernel reads
        // or writes the buffer any more.
        unsafe { result::memcpy_htod_sync(self.ptr, src) }.map_err(cuda_err("cuMemcpyHtoD"))
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        let what = format!("a {}-byte device buffer", self.bytes);
        free_or_leak(&self.ctx, Scope::Device(self.ctx.ordinal()), &what, || {
            // SAFETY: `ptr` was returned by `cuMemAlloc` in this context and
            // is freed only here; the kernel that used it has stopped.
            let _ = unsafe { result::free_sync(self.ptr) };
        });
    }
}
