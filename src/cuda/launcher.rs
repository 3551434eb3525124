//! The CUDA backend's [`Launcher`]: mapped memory, prepared, and one kernel
//! launch (of one block per region for a striped group).

use std::sync::Arc;

use crate::backend::launch::{
    LaunchRequest, Launcher, ServedRegion, group_bytes, param_word, prepare, prepare_group,
    stripe_views,
};
use crate::backend::{Engine, SharedMemory};
use crate::bridge::Kernel;
use crate::buffer::{BufferMemory, Buffers};
use crate::error::{Error, Result};
use crate::layout::LaunchArgs;

use super::{CudaGroup, CudaKernel, DeviceBuffer, MappedMemory, StripeEngine, context};

/// Launches on the CUDA backend.
pub(crate) struct CudaLauncher;

impl Launcher for CudaLauncher {
    fn launch(
        &self,
        request: &LaunchRequest<'_>,
        launch_args: &mut LaunchArgs,
    ) -> Result<(Vec<ServedRegion>, Buffers)> {
        let (layout, stripes) = (request.layout, request.stripes);
        let param = param_word(launch_args);
        let built_in_block = request.block;
        let (image, entry, grid, block): (&[u8], &str, u32, u32) = match request.kernel {
            Kernel::Echo => (
                crate::kernels::image("echo")?.fatbin,
                crate::kernels::ECHO_ENTRY,
                1,
                built_in_block,
            ),
            Kernel::ScaleF32 { .. } => (
                crate::kernels::image("scale")?.fatbin,
                crate::kernels::SCALE_F32_ENTRY,
                1,
                built_in_block,
            ),
            Kernel::Custom {
                image,
                entry,
                grid,
                block,
            } => (image, entry.as_str(), *grid, *block),
            Kernel::User(u) => (
                u.fatbin().ok_or_else(|| {
                    Error::InvalidArgument(format!("kernel {} has no CUDA image", u.entry()))
                })?,
                u.entry(),
                1,
                built_in_block,
            ),
            Kernel::Host(_) => unreachable!("the bridge's builder launches it on the host only"),
        };
        let ctx = context(request.device)?;
        // Allocated and filled before the kernel runs: device allocations wait
        // for running work (DeviceBusy while one of ours may run).
        let buffers = Buffers::allocate(request.buffers, |i, init| {
            Ok(Box::new(DeviceBuffer::new(&ctx, i, init)?) as Box<dyn BufferMemory>)
        })?;
        buffers.describe(launch_args);
        let launch_args: &LaunchArgs = launch_args;
        let args = |base: u64| {
            [
                base,
                base + layout.h2k_offset as u64,
                base + layout.k2h_offset as u64,
            ]
        };
        if stripes == 1 {
            let mem = Arc::new(MappedMemory::new(&ctx, layout.total_bytes)?);
            prepare(layout, mem.words(), param, request.loop_config);
            let kernel = CudaKernel::launch(
                &ctx,
                image,
                entry,
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
        let bytes = group_bytes(layout, stripes)?;
        // Phase one: the whole group's memory, pinned and prepared, before any
        // kernel of it runs (a page-locked allocation waits for running work).
        let mem = MappedMemory::new(&ctx, bytes)?;
        prepare_group(layout, &mem, stripes, param, request.loop_config)?;
        // Phase two: one launch of `stripes` blocks, all given region 0.
        let kernel = CudaKernel::launch(
            &ctx,
            image,
            entry,
            stripes as u32,
            block,
            args(mem.device_address()),
            launch_args,
        )?;
        let group = Arc::new(CudaGroup::new(kernel, mem));
        let regions = stripe_views(layout, &group, stripes)?;
        let parts = regions
            .into_iter()
            .enumerate()
            .map(|(b, region)| {
                let engine = StripeEngine::new(&group, b * layout.stripe_stride())?;
                Ok((region, Box::new(engine) as Box<dyn Engine>))
            })
            .collect::<Result<_>>()?;
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
