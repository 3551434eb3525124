//! Launching a bridge: its memory, the words both sides read before the
//! device half starts, the backend's launch, and the wait until it serves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{Backend, Engine, SharedMemory, StripeMemory};
use crate::buffer::{BufferMemory, Buffers, HostBuffer};
use crate::error::{Error, Result, RingId};
use crate::fallback::{HostEngine, HostKernel};
use crate::layout::{LaunchArgs, STATUS_FAILED, STATUS_LAUNCHING};
use crate::ring::{
    Control, HostMemory, LaneConsumer, LaneProducer, RegionLayout, RingConsumer, RingProducer,
    RingRef, SlotFormat,
};
use crate::wait::{Doorbell, WaitPolicy};

use super::builder::BridgeBuilder;
use super::receive::{Rx, RxSide};
use super::send::Tx;
use super::watchdog::{Heartbeat, report_error};
use super::{Bridge, BridgeState, Kernel};

/// One bridge's region and the engine serving it.
pub(super) type ServedRegion = (Arc<dyn SharedMemory>, Box<dyn Engine>);

/// What a launch made for one bridge.
pub(super) struct Launched {
    pub(super) memory: Arc<dyn SharedMemory>,
    pub(super) engine: Box<dyn Engine>,
    /// The kernel's buffers (shared by the stripes of a group; a group
    /// has none).
    pub(super) buffers: Arc<Buffers>,
    /// What the kernel was launched with.
    pub(super) args: LaunchArgs,
}

/// Writes the configuration both sides read before the device half starts
/// into one region's words.
/// The control block's `param` word: the parameter's first 8 bytes.
pub(super) fn param_word(args: &LaunchArgs) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&args.param[..8]);
    u64::from_le_bytes(first)
}

pub(super) fn prepare(
    layout: &RegionLayout,
    words: &[AtomicU64],
    param: u64,
    loop_cfg: LoopConfig,
) {
    layout.init_words(words);
    // Relaxed: the launch or thread spawn that follows orders these writes
    // before the device half's first read.
    words[crate::word_of!(crate::layout::ControlBlock, param)].store(param, Ordering::Relaxed);
    words[crate::word_of!(crate::layout::ControlBlock, check_interval)]
        .store(loop_cfg.check_interval, Ordering::Relaxed);
    words[crate::word_of!(crate::layout::ControlBlock, wait_policy)]
        .store(loop_cfg.wait_policy.word(), Ordering::Relaxed);
}

/// The serve loop's settings that [`prepare`] writes into the control block.
#[derive(Clone, Copy)]
pub(super) struct LoopConfig {
    pub(super) check_interval: u64,
    pub(super) wait_policy: WaitPolicy,
}

/// Prepares `stripes` regions of `group`, `layout.stripe_stride()` apart,
/// each as [`prepare`] does, and tells each the group's shape.
pub(super) fn prepare_group<M: SharedMemory + ?Sized>(
    layout: &RegionLayout,
    group: &M,
    stripes: usize,
    param: u64,
    loop_cfg: LoopConfig,
) -> Result<()> {
    let stride = layout.stripe_stride();
    for b in 0..stripes {
        let first = b * stride / 8;
        let words = group
            .words()
            .get(first..first + layout.total_bytes / 8)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("region {b} lies outside the group's memory"))
            })?;
        prepare(layout, words, param, loop_cfg);
        // Relaxed: as in `prepare`.
        words[crate::word_of!(crate::layout::ControlBlock, stripes)]
            .store(stripes as u64, Ordering::Relaxed);
        words[crate::word_of!(crate::layout::ControlBlock, stripe_stride)]
            .store(stride as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Each region of a prepared group as a bridge's own memory.
pub(super) fn stripe_views<M: SharedMemory + 'static>(
    layout: &RegionLayout,
    group: &Arc<M>,
    stripes: usize,
) -> Result<Vec<Arc<dyn SharedMemory>>> {
    (0..stripes)
        .map(|b| {
            let view = StripeMemory::new(group, b, layout.stripe_stride(), layout.total_bytes)?;
            Ok(Arc::new(view) as Arc<dyn SharedMemory>)
        })
        .collect()
}

/// Bytes of a group of `stripes` regions.
pub(super) fn group_bytes(layout: &RegionLayout, stripes: usize) -> Result<usize> {
    let stride = layout.stripe_stride();
    stride.checked_mul(stripes).ok_or_else(|| Error::Alloc {
        bytes: usize::MAX,
        reason: format!("{stripes} regions of {stride} bytes overflow"),
    })
}

/// Asks every region's device half to stop (a group whose launch failed
/// half-way).
pub(super) fn terminate_all(regions: &[Arc<dyn SharedMemory>]) {
    for region in regions {
        Control::new(Arc::clone(region)).request_terminate();
    }
}

pub(super) fn launch_host(
    b: &BridgeBuilder,
    layout: &RegionLayout,
    args: &mut LaunchArgs,
    stripes: usize,
) -> Result<(Vec<ServedRegion>, Buffers)> {
    let param = param_word(args);
    // Before the serve thread starts, which is given their addresses.
    let buffers = Buffers::allocate(&b.buffers, |i, init| {
        Ok(Box::new(HostBuffer::new(i, init)?) as Box<dyn BufferMemory>)
    })?;
    buffers.describe(args);
    let shared_args = Arc::new(*args);
    let kernel = || match b.kernel.clone() {
        Kernel::Echo => HostKernel::User(crate::kernels::builtin::ringbridge_echo()),
        Kernel::ScaleF32 { .. } => {
            HostKernel::User(crate::kernels::builtin::ringbridge_scale_f32())
        }
        Kernel::Host(h) => HostKernel::Callback(h),
        Kernel::User(u) => HostKernel::User(u),
        Kernel::Custom { .. } => unreachable!("resolve_backend rejects it"),
    };
    if stripes == 1 {
        let mem = HostMemory::new(layout.total_bytes)?;
        prepare(layout, mem.words(), param, b.loop_config());
        let engine = HostEngine::spawn(
            &mem,
            layout,
            kernel(),
            b.emulated_block,
            0,
            Arc::clone(&shared_args),
        )?;
        return Ok((vec![(mem, Box::new(engine))], buffers));
    }
    let bytes = group_bytes(layout, stripes)?;
    let group = HostMemory::new(bytes)?;
    prepare_group(layout, &*group, stripes, param, b.loop_config())?;
    let regions = stripe_views(layout, &group, stripes)?;
    let mut parts: Vec<ServedRegion> = Vec::with_capacity(stripes);
    for (block, region) in regions.iter().enumerate() {
        // Every thread gets region 0's addresses and serves region `block`,
        // exactly as block `block` of a striped launch does on the GPU.
        match HostEngine::spawn(
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

/// Whether the driver loads and has device `device` (the kernel's image is
/// [`cuda_image_of`]'s question).
pub(super) fn cuda_ready(device: usize) -> std::result::Result<(), String> {
    crate::cuda::device_info(device)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub(super) fn launch_cuda(
    b: &BridgeBuilder,
    layout: &RegionLayout,
    launch_args: &mut LaunchArgs,
    stripes: usize,
) -> Result<(Vec<ServedRegion>, Buffers)> {
    let param = param_word(launch_args);
    let built_in_block = b.block_threads_for(layout.spec.format());
    let (image, entry, grid, block): (&[u8], &str, u32, u32) = match &b.kernel {
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
        Kernel::Host(_) => unreachable!("resolve_backend rejects it"),
    };
    let ctx = crate::cuda::context(b.device)?;
    // Allocated and filled before the kernel runs: device allocations wait
    // for running work (DeviceBusy while one of ours may run).
    let buffers = Buffers::allocate(&b.buffers, |i, init| {
        Ok(Box::new(crate::cuda::DeviceBuffer::new(&ctx, i, init)?) as Box<dyn BufferMemory>)
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
        let mem = Arc::new(crate::cuda::MappedMemory::new(&ctx, layout.total_bytes)?);
        prepare(layout, mem.words(), param, b.loop_config());
        let kernel = crate::cuda::CudaKernel::launch(
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
    let mem = crate::cuda::MappedMemory::new(&ctx, bytes)?;
    prepare_group(layout, &mem, stripes, param, b.loop_config())?;
    // Phase two: one launch of `stripes` blocks, all given region 0.
    let kernel = crate::cuda::CudaKernel::launch(
        &ctx,
        image,
        entry,
        stripes as u32,
        block,
        args(mem.device_address()),
        launch_args,
    )?;
    let group = Arc::new(crate::cuda::CudaGroup::new(kernel, mem));
    let regions = stripe_views(layout, &group, stripes)?;
    let parts = regions
        .into_iter()
        .enumerate()
        .map(|(b, region)| {
            let engine = crate::cuda::StripeEngine::new(&group, b * layout.stripe_stride())?;
            Ok((region, Box::new(engine) as Box<dyn Engine>))
        })
        .collect::<Result<_>>()?;
    Ok((parts, buffers))
}

impl Bridge {
    /// A bridge over `memory`, served by `engine`, not yet known to serve.
    pub(super) fn assemble(
        b: &BridgeBuilder,
        layout: &RegionLayout,
        launched: Launched,
        backend: Backend,
        reason: &str,
        max_payload: usize,
    ) -> Self {
        let Launched {
            memory,
            engine,
            buffers,
            args,
        } = launched;
        let control = Control::new(memory.clone());
        let doorbell = Doorbell::new(memory.clone(), b.wait_policy, backend);
        let h2k = RingRef::new(memory.clone(), layout, RingId::H2k);
        let k2h = RingRef::new(memory.clone(), layout, RingId::K2h);
        let (tx, rx) = match layout.spec.format() {
            SlotFormat::Lanes => (
                Tx::Lanes(LaneProducer::new(h2k)),
                Rx::Lanes(LaneConsumer::new(k2h)),
            ),
            _ => (
                Tx::Slots(RingProducer::new(h2k)),
                Rx::Slots(RingConsumer::new(k2h)),
            ),
        };
        Bridge {
            tx: Mutex::new(tx),
            rx: Mutex::new(RxSide::new(rx)),
            state: BridgeState {
                control,
                engine,
                memory,
                buffers,
                launch_args: args,
                backend,
                backend_reason: reason.to_owned(),
                spec: layout.spec,
                max_payload,
                hang_timeout: b.hang_timeout,
                shutdown_timeout: b.shutdown_timeout,
                heartbeat: Mutex::new(Heartbeat::new()),
                dead: Mutex::new(None),
                is_dead: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
                no_reply: AtomicU64::new(0),
                events: AtomicU64::new(0),
                doorbell,
            },
        }
    }

    /// Waits until the device half serves, fails, or `deadline` passes
    /// (`timeout` is what the caller allowed, for the error).
    pub(super) fn wait_started(&self, deadline: Instant, timeout: Duration) -> Result<()> {
        loop {
            let report = self.state.control.report();
            if report.status == STATUS_FAILED {
                return Err(self.state.fail(report_error(&report)));
            }
            if report.status != STATUS_LAUNCHING {
                return Ok(());
            }
            match self.state.engine.poll() {
                Err(e) => return Err(self.state.fail(e)),
                Ok(true) => {
                    // Release: as in `BridgeState::check`.
                    self.state.stopped.store(true, Ordering::Release);
                    let report = self.state.control.report();
                    return Err(self.state.fail(report_error(&report)));
                }
                Ok(false) => {}
            }
            if Instant::now() > deadline {
                return Err(self.state.fail(Error::Timeout {
                    op: "launch",
                    after: timeout,
                }));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}
