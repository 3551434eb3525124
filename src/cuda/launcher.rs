//! The CUDA backend's [`Launcher`]: mapped memory, prepared, and one kernel
//! launch (of one block per region for a striped group), each part taken
//! from the bridge's [`Reservation`] when it has one.

use std::sync::Arc;

use cudarc::driver::CudaContext;

use crate::backend::launch::{
    LaunchRequest, Launcher, ServedRegion, group_bytes, param_word, prepare, prepare_group,
    stripe_views,
};
use crate::backend::{Engine, SharedMemory};
use crate::buffer::{BufferMemory, Buffers};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::layout::LaunchArgs;

use super::module::KernelModule;
use super::stream::Stream;
use super::{
    CudaGroup, CudaKernel, DeviceBuffer, MappedMemory, Reservation, StripeEngine, context,
};

/// Launches on the CUDA backend.
pub(crate) struct CudaLauncher;

/// A kernel's CUDA image and how to launch it.
pub(crate) struct CudaImage<'a> {
    /// The image (fatbin, cubin or PTX).
    pub(crate) bytes: &'a [u8],
    /// The entry point.
    pub(crate) entry: &'a str,
    /// Blocks per launch of one bridge; `None`: one.
    pub(crate) grid: Option<u32>,
    /// Threads per block; `None`: the bridge builder's.
    pub(crate) block: Option<u32>,
}

/// `kernel`'s CUDA image.
///
/// # Errors
/// [`Error::InvalidArgument`] for a kernel without one (a Rust handler, a
/// user kernel built without nvcc); [`Error::KernelsNotBuilt`] for a
/// built-in kernel of a crate built without nvcc.
pub(crate) fn cuda_image(kernel: &Kernel) -> Result<CudaImage<'_>> {
    let builtin = |name, entry| -> Result<CudaImage<'_>> {
        Ok(CudaImage {
            bytes: crate::kernels::image(name)?.fatbin,
            entry,
            grid: None,
            block: None,
        })
    };
    match kernel {
        Kernel::Echo => builtin("echo", crate::kernels::ECHO_ENTRY),
        Kernel::ScaleF32 { .. } => builtin("scale", crate::kernels::SCALE_F32_ENTRY),
        Kernel::Custom {
            image,
            entry,
            grid,
            block,
        } => Ok(CudaImage {
            bytes: image,
            entry,
            grid: Some(*grid),
            block: Some(*block),
        }),
        Kernel::User(u) => Ok(CudaImage {
            bytes: u.fatbin().ok_or_else(|| {
                Error::InvalidArgument(format!("kernel {} has no CUDA image", u.entry()))
            })?,
            entry: u.entry(),
            grid: None,
            block: None,
        }),
        Kernel::RustHandler(_) => Err(Error::InvalidArgument(
            "a Rust handler runs on the host fallback only".into(),
        )),
    }
}

/// Where a launch takes what it needs: its own allocations, or a
/// reservation (falling back to its own while the device is idle).
struct Source<'a> {
    ctx: Arc<CudaContext>,
    reservation: Option<&'a Reservation>,
}

impl Source<'_> {
    /// Turns a refusal of a fresh allocation beside a reservation into the
    /// reservation's own error, which says what to reserve.
    fn exhausted(
        &self,
        what: &'static str,
        needed: usize,
        available: usize,
    ) -> impl FnOnce(Error) -> Error {
        let device = self.ctx.ordinal();
        let reserved = self.reservation.is_some();
        move |e| match e {
            Error::DeviceBusy { .. } if reserved => Error::ReservationExhausted {
                device,
                what,
                needed,
                available,
            },
            other => other,
        }
    }

    fn rings(&self, bytes: usize) -> Result<Arc<dyn SharedMemory>> {
        if let Some(r) = self.reservation
            && let Some(region) = r.rings(bytes)
        {
            return Ok(Arc::new(region));
        }
        let available = self.reservation.map_or(0, |r| r.free().ring_bytes);
        Ok(Arc::new(MappedMemory::new(&self.ctx, bytes).map_err(
            self.exhausted("bytes of ring memory", bytes, available),
        )?))
    }

    fn buffer(
        &self,
        index: usize,
        init: &crate::buffer::BufferInit,
    ) -> Result<Box<dyn BufferMemory>> {
        if let Some(r) = self.reservation
            && let Some(buffer) = r.buffer(index, init)?
        {
            return Ok(buffer);
        }
        let available = self.reservation.map_or(0, |r| r.free().buffer_bytes);
        Ok(Box::new(
            DeviceBuffer::new(&self.ctx, index, init).map_err(self.exhausted(
                "bytes of buffer memory",
                init.len(),
                available,
            ))?,
        ))
    }

    fn module(&self, image: &CudaImage<'_>) -> Result<Arc<KernelModule>> {
        if let Some(r) = self.reservation
            && let Some(module) = r.module(image.bytes, image.entry)
        {
            return Ok(module);
        }
        let module = Arc::new(
            KernelModule::load(&self.ctx, image.bytes, image.entry).map_err(self.exhausted(
                "loaded kernel modules for this kernel",
                1,
                0,
            ))?,
        );
        if let Some(r) = self.reservation {
            r.keep_module(image.bytes, image.entry, &module);
        }
        Ok(module)
    }

    fn stream(&self) -> Result<Stream> {
        if let Some(stream) = self.reservation.and_then(Reservation::stream) {
            return Ok(stream);
        }
        Stream::new(&self.ctx).map_err(self.exhausted("streams", 1, 0))
    }
}

impl Launcher for CudaLauncher {
    fn launch(
        &self,
        request: &LaunchRequest<'_>,
        launch_args: &mut LaunchArgs,
    ) -> Result<(Vec<ServedRegion>, Buffers)> {
        let (layout, stripes) = (request.layout, request.stripes);
        let param = param_word(launch_args);
        let image = cuda_image(request.kernel)?;
        let grid = image.grid.unwrap_or(1);
        let block = image.block.unwrap_or(request.block);
        if let Some(r) = request.reservation
            && r.device() != request.device
        {
            return Err(Error::InvalidArgument(format!(
                "the bridge is for device {} but its reservation is on device {}",
                request.device,
                r.device()
            )));
        }
        let source = Source {
            ctx: match request.reservation {
                Some(r) => Arc::clone(r.context()),
                None => context(request.device)?,
            },
            reservation: request.reservation,
        };
        // Everything is allocated, filled and loaded before the kernel runs:
        // without a reservation, those calls would wait for a running kernel
        // (DeviceBusy while one of ours may run).
        let buffers = Buffers::allocate(request.buffers, |i, init| source.buffer(i, init))?;
        buffers.describe(launch_args);
        let launch_args: &LaunchArgs = launch_args;
        let args = |base: u64| {
            [
                base,
                base + layout.h2k_offset as u64,
                base + layout.k2h_offset as u64,
            ]
        };
        let module = source.module(&image)?;
        if stripes == 1 {
            let mem = source.rings(layout.total_bytes)?;
            prepare(layout, mem.words(), param, request.loop_config);
            let stream = source.stream()?;
            let kernel = CudaKernel::launch_loaded(
                module,
                stream,
                grid,
                block,
                args(mem.device_address()),
                launch_args,
            )?;
            return Ok((vec![(mem, Box::new(kernel))], buffers));
        }
        if grid != 1 {
            return Err(Error::InvalidArgument(format!(
                "a striped group launches one block per stripe: give the custom kernel a grid of 1, not {grid}"
            )));
        }
        // Phase one: the whole group's memory, prepared, and every stripe's
        // view and engine, before any kernel of it runs (so nothing can fail
        // between the launch and the bridges that would stop it). Phase
        // two: one launch of `stripes` blocks, all given region 0 (block b
        // serves region b).
        let mem = source.rings(group_bytes(layout, stripes)?)?;
        prepare_group(layout, &*mem, stripes, param, request.loop_config)?;
        let group = Arc::new(CudaGroup::new(Arc::clone(&mem)));
        let regions = stripe_views(layout, &group, stripes)?;
        let parts: Vec<ServedRegion> = regions
            .into_iter()
            .enumerate()
            .map(|(b, region)| {
                let engine = StripeEngine::new(&group, b * layout.stripe_stride())?;
                Ok((region, Box::new(engine) as Box<dyn Engine>))
            })
            .collect::<Result<_>>()?;
        let stream = source.stream()?;
        let kernel = CudaKernel::launch_loaded(
            module,
            stream,
            stripes as u32,
            block,
            args(mem.device_address()),
            launch_args,
        )?;
        group.launched(kernel);
        Ok((parts, buffers))
    }
}

/// Whether the driver loads and has device `device`, and if not, why (the
/// kernel's image is the bridge builder's question).
pub(crate) fn device_usable(device: usize) -> std::result::Result<(), String> {
    super::device_info(device)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
