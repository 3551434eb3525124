//! The fallback backend's [`Launcher`]: the fallback's memory, prepared, and
//! one serve thread per region.

use std::sync::Arc;

use crate::backend::SharedMemory;
use crate::backend::launch::{
    LaunchRequest, Launcher, ServedRegion, group_bytes, param_word, prepare, prepare_group,
    stripe_views, terminate_all,
};
use crate::buffer::{BufferMemory, Buffers, HostBuffer};
use crate::error::Result;
use crate::fallback::HostMemory;
use crate::kernel::Kernel;
use crate::layout::LaunchArgs;

use super::{FallbackEngine, FallbackKernel};

/// Launches on the fallback backend: the fallback's serve loop on CPU threads.
pub(crate) struct FallbackLauncher;

impl Launcher for FallbackLauncher {
    fn launch(
        &self,
        request: &LaunchRequest<'_>,
        args: &mut LaunchArgs,
    ) -> Result<(Vec<ServedRegion>, Buffers)> {
        let (layout, stripes) = (request.layout, request.stripes);
        let param = param_word(args);
        // Before the serve thread starts, which is given their addresses.
        let buffers = Buffers::allocate(request.buffers, |i, init| {
            Ok(Box::new(HostBuffer::new(i, init)?) as Box<dyn BufferMemory>)
        })?;
        buffers.describe(args);
        let shared_args = Arc::new(*args);
        let kernel = || match request.kernel.clone() {
            Kernel::Echo => FallbackKernel::User(crate::kernels::builtin::ringbridge_echo()),
            Kernel::ScaleF32 { .. } => {
                FallbackKernel::User(crate::kernels::builtin::ringbridge_scale_f32())
            }
            Kernel::RustHandler(h) => FallbackKernel::Callback(h),
            Kernel::User(u) => FallbackKernel::User(u),
            Kernel::Custom { .. } => unreachable!("the bridge's builder launches it on CUDA only"),
        };
        if stripes == 1 {
            let mem = HostMemory::new(layout.total_bytes)?;
            prepare(layout, mem.words(), param, request.loop_config);
            let engine = FallbackEngine::spawn(
                &mem,
                layout,
                kernel(),
                request.emulated_block,
                0,
                Arc::clone(&shared_args),
            )?;
            return Ok((vec![(mem, Box::new(engine))], buffers));
        }
        let bytes = group_bytes(layout, stripes)?;
        let group = HostMemory::new(bytes)?;
        prepare_group(layout, &*group, stripes, param, request.loop_config)?;
        let regions = stripe_views(layout, &group, stripes)?;
        let mut parts: Vec<ServedRegion> = Vec::with_capacity(stripes);
        for (block, region) in regions.iter().enumerate() {
            // Every thread gets region 0's addresses and serves region `block`,
            // exactly as block `block` of a striped launch does on the GPU.
            match FallbackEngine::spawn(
                &group,
                layout,
                kernel(),
                None,
                block as u32,
                Arc::clone(&shared_args),
            ) {
                Ok(engine) => parts.push((Arc::clone(region), Box::new(engine))),
                Err(e) => {
                    terminate_all(&regions);
                    return Err(e);
                }
            }
        }
        Ok((parts, buffers))
    }
}
