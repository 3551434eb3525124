//! A kernel image loaded into a context, with its entry point looked up.

use std::ffi::CString;
use std::sync::Arc;

use cudarc::driver::{CudaContext, DriverError, result, sys};

use super::context::bind;
use super::running::{Scope, free_or_leak, while_idle};
use super::{cuda_err, describe};
use crate::error::{Error, Result};

/// Largest block the hardware accepts.
const MAX_BLOCK: u32 = 1024;

/// A loaded module and one entry point of it.
///
/// Loading and unloading may allocate or free device memory, which waits for
/// the device's running work, and with lazy loading (CUDA's default since
/// 12.2) the entry's code is loaded by `cuModuleGetFunction`, not by
/// `cuModuleLoadData`: both happen here, through [`while_idle`], so a module
/// loaded before a kernel runs needs no such call later. Dropped, it is
/// unloaded while no kernel of ours runs on its device, and leaked (with a
/// warning) otherwise.
pub(crate) struct KernelModule {
    ctx: Arc<CudaContext>,
    module: sys::CUmodule,
    function: sys::CUfunction,
    entry: String,
}

// SAFETY: the raw handles are only passed to driver calls, which are thread
// safe, after making the owning context current (`bind`); the module is
// unloaded only in `drop`, which has exclusive access.
unsafe impl Send for KernelModule {}
// SAFETY: see `Send`: `&self` methods only read the handles.
unsafe impl Sync for KernelModule {}

/// Driver errors that mean "this image cannot be loaded", as opposed to a
/// failure of the driver or context.
fn is_image_error(err: DriverError) -> bool {
    use sys::CUresult::*;
    matches!(
        err.0,
        CUDA_ERROR_INVALID_IMAGE
            | CUDA_ERROR_INVALID_PTX
            | CUDA_ERROR_NO_BINARY_FOR_GPU
            | CUDA_ERROR_UNSUPPORTED_PTX_VERSION
            | CUDA_ERROR_JIT_COMPILER_NOT_FOUND
            | CUDA_ERROR_JIT_COMPILATION_DISABLED
            | CUDA_ERROR_INVALID_SOURCE
            | CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND
            | CUDA_ERROR_SHARED_OBJECT_INIT_FAILED
            | CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC
    )
}

impl KernelModule {
    /// Loads `image` (a fatbin, a cubin, or PTX text) into `ctx` and looks
    /// up (so loads) `entry`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an entry name containing NUL;
    /// [`Error::DeviceBusy`] while a kernel of ours may run on `device`;
    /// [`Error::InvalidImage`] for an empty image or one the driver rejects;
    /// [`Error::EntryNotFound`] when it has no such entry; [`Error::Cuda`]
    /// when another driver call fails.
    pub(crate) fn load(ctx: &Arc<CudaContext>, image: &[u8], entry: &str) -> Result<Self> {
        let device = ctx.ordinal();
        if image.is_empty() {
            return Err(Error::InvalidImage("the image is empty".into()));
        }
        let entry_c = CString::new(entry).map_err(|_| {
            Error::InvalidArgument(format!("entry point name {entry:?} contains a NUL byte"))
        })?;
        // `cuModuleLoadData` reads PTX up to a NUL and binaries by their own
        // headers, which want 8-byte alignment: copy the image into an
        // 8-byte aligned, zero-padded buffer with at least one trailing NUL.
        let mut aligned = vec![0u64; image.len() / 8 + 1];
        bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..image.len()].copy_from_slice(image);

        bind(ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        let (module, function) = while_idle(Scope::Device(device), || {
            // SAFETY: the context is current; `aligned` is a complete image
            // followed by NUL bytes and outlives the call (the driver copies
            // it).
            let module =
                unsafe { result::module::load_data(aligned.as_ptr().cast()) }.map_err(|e| {
                    if is_image_error(e) {
                        Error::InvalidImage(describe(e))
                    } else {
                        cuda_err("cuModuleLoadData")(e)
                    }
                })?;
            // SAFETY: `module` was just loaded in the current context.
            match unsafe { result::module::get_function(module, entry_c) } {
                Ok(function) => Ok((module, function)),
                Err(e) => {
                    // Unloaded here, still under the idle check (a `Drop`
                    // would take the device lock a second time).
                    // SAFETY: loaded above, unloaded once; nothing runs it.
                    let _ = unsafe { result::module::unload(module) };
                    Err(if e.0 == sys::CUresult::CUDA_ERROR_NOT_FOUND {
                        Error::EntryNotFound {
                            entry: entry.to_owned(),
                        }
                    } else {
                        cuda_err("cuModuleGetFunction")(e)
                    })
                }
            }
        })??;
        Ok(Self {
            ctx: Arc::clone(ctx),
            module,
            function,
            entry: entry.to_owned(),
        })
    }

    /// The entry point.
    pub(crate) fn function(&self) -> sys::CUfunction {
        self.function
    }

    /// The context the module is loaded in.
    pub(crate) fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Checks that `grid` blocks of `block` threads of this entry can run,
    /// all at once, on the empty GPU (a block of a persistent kernel waiting
    /// for a free SM would wait for good), and returns how many such blocks
    /// the GPU holds at once: [`super::launch`] weighs that against what
    /// this process's running kernels already occupy.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `grid == 0`, a block outside
    /// `1..=1024`, or a grid larger than the GPU holds at once;
    /// [`Error::BlockTooLarge`] past the entry's `__launch_bounds__`;
    /// [`Error::Cuda`] when a query fails.
    pub(crate) fn check_shape(&self, grid: u32, block: u32) -> Result<u64> {
        if grid == 0 {
            return Err(Error::InvalidArgument(
                "grid must be at least 1 block".into(),
            ));
        }
        if !(1..=MAX_BLOCK).contains(&block) {
            return Err(Error::InvalidArgument(format!(
                "block of {block} threads (expected 1 to {MAX_BLOCK})"
            )));
        }
        bind(&self.ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // An entry compiled with `__launch_bounds__(n)` (RB_KERNEL_ENTRY:
        // RB_MAX_BLOCK_THREADS) cannot launch more than n threads per block;
        // the driver would fail the launch with a bare "invalid value".
        // SAFETY: `function` comes from `module`, loaded and current.
        let max = unsafe {
            result::function::get_function_attribute(
                self.function,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
            )
        }
        .map_err(cuda_err("cuFuncGetAttribute"))?;
        if i64::from(block) > i64::from(max) {
            return Err(Error::BlockTooLarge {
                entry: self.entry.clone(),
                block,
                max: u32::try_from(max).unwrap_or(0),
            });
        }
        // SAFETY: `function` comes from `module`, loaded and current.
        let per_sm = unsafe {
            result::occupancy::max_active_block_per_multiprocessor(self.function, block as i32, 0)
        }
        .map_err(cuda_err("cuOccupancyMaxActiveBlocksPerMultiprocessor"))?;
        let sms = self
            .ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(cuda_err("cuDeviceGetAttribute"))?;
        let fits = u64::try_from(per_sm).unwrap_or(0) * u64::try_from(sms).unwrap_or(0);
        if u64::from(grid) > fits {
            return Err(Error::InvalidArgument(format!(
                "{grid} blocks of {block} threads cannot all run at once on this GPU \
                 ({sms} SMs, {per_sm} such block(s) each): a persistent kernel needs every \
                 block resident"
            )));
        }
        Ok(fits)
    }
}

impl Drop for KernelModule {
    fn drop(&mut self) {
        let what = format!("the module of `{}`", self.entry);
        free_or_leak(&self.ctx, Scope::Device(self.ctx.ordinal()), &what, || {
            // SAFETY: the module was loaded here and is unloaded once; its
            // owners drop it only after every kernel of it stopped (a kernel
            // left running keeps its module alive for good).
            let _ = unsafe { result::module::unload(self.module) };
        });
    }
}
