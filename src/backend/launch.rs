//! What the backends share to launch a device half: the [`Launcher`] each
//! backend implements, what it is asked to launch ([`LaunchRequest`]), and
//! the preparation of a region's words before the device half starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::{Backend, Engine, SharedMemory, StripeMemory};
use crate::buffer::{BufferInit, Buffers};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::layout::LaunchArgs;
use crate::ring::{Control, RegionLayout};
use crate::wait::WaitPolicy;

/// What a bridge (or a striped group) asks its backend to launch.
pub(crate) struct LaunchRequest<'a> {
    /// The kernel to run.
    pub(crate) kernel: &'a Kernel,
    /// The CUDA device's ordinal.
    pub(crate) device: usize,
    /// The kernel's buffers, numbered in this order.
    pub(crate) buffers: &'a [BufferInit],
    /// Threads per block of a built-in or user kernel, for the layout's format.
    pub(crate) block: u32,
    /// The fallback backend only: run as an emulated block of this many threads.
    pub(crate) emulated_block: Option<u32>,
    /// The serve loop's settings written into each control block.
    pub(crate) loop_config: LoopConfig,
    /// Each region's layout.
    pub(crate) layout: &'a RegionLayout,
    /// Regions to launch (1: one bridge; more: a striped group).
    pub(crate) stripes: usize,
    /// CUDA only: what was reserved for it before any launch.
    pub(crate) reservation: Option<&'a crate::cuda::Reservation>,
}

/// A backend's way to launch a device half: each region's memory and the
/// engine serving it, in stripe order, and the kernel's buffers (described
/// into `args` before the device half starts).
pub(crate) trait Launcher: Sync {
    /// Launches `request`'s kernel with `args`.
    fn launch(
        &self,
        request: &LaunchRequest<'_>,
        args: &mut LaunchArgs,
    ) -> Result<(Vec<ServedRegion>, Buffers)>;
}

impl Backend {
    /// The launcher of this backend (`Auto` is resolved before: it has none
    /// of its own and launches on CUDA).
    pub(crate) fn launcher(self) -> &'static dyn Launcher {
        match self {
            Backend::Fallback => &crate::fallback::FallbackLauncher,
            Backend::Cuda | Backend::Auto => &crate::cuda::CudaLauncher,
        }
    }
}

/// One bridge's region and the engine serving it.
pub(crate) type ServedRegion = (Arc<dyn SharedMemory>, Box<dyn Engine>);

/// The control block's `param` word: the parameter's first 8 bytes.
pub(crate) fn param_word(args: &LaunchArgs) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&args.param[..8]);
    u64::from_le_bytes(first)
}

/// Writes the configuration both sides read before the device half starts
/// into one region's words.
pub(crate) fn prepare(
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
pub(crate) struct LoopConfig {
    pub(crate) check_interval: u64,
    pub(crate) wait_policy: WaitPolicy,
}

/// Prepares `stripes` regions of `group`, `layout.stripe_stride()` apart,
/// each as [`prepare`] does, and tells each the group's shape.
pub(crate) fn prepare_group<M: SharedMemory + ?Sized>(
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
pub(crate) fn stripe_views<M: SharedMemory + 'static>(
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
pub(crate) fn group_bytes(layout: &RegionLayout, stripes: usize) -> Result<usize> {
    let stride = layout.stripe_stride();
    stride.checked_mul(stripes).ok_or_else(|| Error::Alloc {
        bytes: usize::MAX,
        reason: format!("{stripes} regions of {stride} bytes overflow"),
    })
}

/// Asks every region's device half to stop (a group whose launch failed
/// half-way).
pub(crate) fn terminate_all(regions: &[Arc<dyn SharedMemory>]) {
    for region in regions {
        Control::new(Arc::clone(region)).request_terminate();
    }
}
