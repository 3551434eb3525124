//! Running a loaded entry point as a persistent kernel, and learning what
//! became of it.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaContext, DriverError, result, sys};

use super::context::bind;
use super::module::KernelModule;
use super::running::{Abandoned, abandon, count_launch, uncount};
use super::stream::Stream;
use super::{cuda_err, describe};
use crate::backend::Engine;
use crate::error::{Error, Result};
use crate::layout::LaunchArgs;

/// What `cuStreamQuery` said, with the cases `Drop` must tell apart.
enum State {
    /// The kernel is still running.
    Running,
    /// The kernel returned.
    Finished,
    /// The stream reported an error: the kernel is dead, the context broken.
    Faulted(String),
    /// The state could not be learnt (the context could not be made current).
    Unknown(Error),
}

/// A persistent kernel running on a non-blocking stream of its own.
///
/// # Dropping a running kernel
/// If the kernel has finished (or faulted) when this is dropped, its stream
/// and module are released (to the [`super::Reservation`] they came from,
/// if any). If it is **still running** (or its state cannot be learnt),
/// nothing is released: unloading a module under a running kernel is
/// undefined, and releasing the last reference to the primary context
/// destroys it, which waits for the device to go idle — forever, for a
/// persistent kernel. So the stream, the module and one reference to the
/// context are leaked on purpose, the context is marked
/// ([`super::running::mark_leaked`]) so that memory on it is leaked too
/// rather than freed under the kernel, and a warning is printed. Stop the
/// kernel first (through its control block), then drop this.
pub(crate) struct CudaKernel {
    /// The loaded entry point (shared with a reservation, or its own).
    module: Arc<KernelModule>,
    /// The kernel's stream; `None` only once leaked in `drop`.
    stream: Option<Stream>,
    /// Set once `cuStreamQuery` said the kernel finished.
    finished: AtomicBool,
    /// The first fault `cuStreamQuery` reported.
    fault: OnceLock<String>,
    /// Whether this kernel is in the running count (from its launch until
    /// it is first seen finished or faulted).
    counted: AtomicBool,
    /// The share of the GPU its blocks occupy, counted with it.
    share: f64,
}

impl CudaKernel {
    /// Loads `image` (a fatbin, a cubin, or PTX text) into `ctx`, looks up
    /// `entry`, and launches it on a new non-blocking stream: see
    /// [`Self::launch_loaded`].
    ///
    /// # Errors
    /// As [`KernelModule::load`], [`Stream::new`] and
    /// [`Self::launch_loaded`]: [`Error::DeviceBusy`] while another kernel
    /// of this process may run on the device.
    #[cfg(test)]
    pub(crate) fn launch(
        ctx: &Arc<CudaContext>,
        image: &[u8],
        entry: &str,
        grid: u32,
        block: u32,
        args: [u64; 3],
        launch_args: &LaunchArgs,
    ) -> Result<Self> {
        let module = Arc::new(KernelModule::load(ctx, image, entry)?);
        let stream = Stream::new(ctx)?;
        Self::launch_loaded(module, stream, grid, block, args, launch_args)
    }

    /// Launches `module`'s entry on `stream` with grid `(grid, 1, 1)`,
    /// block `(block, 1, 1)`, no dynamic shared memory, and the three device
    /// addresses `args` (control block, H2K ring, K2H ring) as its `u64`
    /// parameters, then `launch_args` (an `RB_KERNEL_ENTRY`'s fourth
    /// parameter). Makes no driver call that waits for running work, so it
    /// may run beside other kernels of ours.
    ///
    /// The grid must fit beside the blocks of this process's kernels
    /// already running on the device: a persistent kernel's blocks never
    /// leave their SMs, so a grid that does not fit would never start.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] or [`Error::BlockTooLarge`] for a shape
    /// the entry or the GPU cannot run ([`KernelModule::check_shape`]);
    /// [`Error::DeviceFull`] when it does not fit beside our running
    /// kernels; [`Error::Cuda`] when the launch fails.
    pub(crate) fn launch_loaded(
        module: Arc<KernelModule>,
        stream: Stream,
        grid: u32,
        block: u32,
        args: [u64; 3],
        launch_args: &LaunchArgs,
    ) -> Result<Self> {
        let holds = module.check_shape(grid, block)?;
        let share = f64::from(grid) / holds as f64;
        let device = module.context().ordinal();
        let mut params = args;
        let mut launch_args = *launch_args;
        let mut param_ptrs: [*mut c_void; 4] = [
            (&raw mut params[0]).cast(),
            (&raw mut params[1]).cast(),
            (&raw mut params[2]).cast(),
            (&raw mut launch_args).cast(),
        ];
        bind(module.context()).map_err(cuda_err("cuCtxSetCurrent"))?;
        // Launched and counted under the running-count lock, so no call that
        // found the device idle is still under way once the kernel runs.
        count_launch(device, share, |occupied| {
            // Shares are fractions of SM capacity, each exact for its own
            // block shape; the tolerance absorbs their rounding only.
            if occupied + share > 1.0 + 1e-9 {
                return Err(Error::DeviceFull {
                    device,
                    grid,
                    block,
                    occupied_percent: (occupied * 100.0).ceil() as u32,
                    needed_percent: (share * 100.0).ceil() as u32,
                });
            }
            // SAFETY: the function comes from `module`, which stays loaded
            // (this kernel holds it); the stream belongs to the current
            // context; an RB_KERNEL_ENTRY takes three 8-byte pointers and an
            // `rb_args` (the layout of `LaunchArgs`, static_asserted in
            // ringbridge.cuh), and `param_ptrs` points at three live `u64`s
            // and a live `LaunchArgs`, which the driver copies before
            // returning. A kernel declaring only the three pointers reads
            // only those: the driver copies as many parameters as the kernel
            // declares.
            unsafe {
                result::launch_kernel(
                    module.function(),
                    (grid, 1, 1),
                    (block, 1, 1),
                    0,
                    stream.raw(),
                    &mut param_ptrs,
                )
            }
            .map_err(cuda_err("cuLaunchKernel"))
        })?;
        Ok(Self {
            module,
            stream: Some(stream),
            finished: AtomicBool::new(false),
            fault: OnceLock::new(),
            counted: AtomicBool::new(true),
            share,
        })
    }

    fn ctx(&self) -> &Arc<CudaContext> {
        self.module.context()
    }

    /// Asks the stream what became of the kernel, without blocking.
    fn state(&self) -> State {
        if let Some(fault) = self.fault.get() {
            return State::Faulted(fault.clone());
        }
        // Acquire: pairs with the release store below; a kernel seen
        // finished stays finished.
        if self.finished.load(Ordering::Acquire) {
            return State::Finished;
        }
        let Some(stream) = &self.stream else {
            return State::Running;
        };
        if let Err(e) = bind(self.ctx()) {
            return State::Unknown(cuda_err("cuCtxSetCurrent")(e));
        }
        // SAFETY: the stream belongs to the current context and lives as
        // long as `self`; `cuStreamQuery` never blocks.
        match unsafe { sys::cuStreamQuery(stream.raw()) } {
            sys::CUresult::CUDA_SUCCESS => {
                // Release: pairs with the acquire load above.
                self.finished.store(true, Ordering::Release);
                self.uncount();
                State::Finished
            }
            sys::CUresult::CUDA_ERROR_NOT_READY => State::Running,
            code => {
                let fault = self.fault.get_or_init(|| describe(DriverError(code)));
                // A faulted kernel runs no more (its context is broken).
                self.uncount();
                State::Faulted(fault.clone())
            }
        }
    }

    /// Takes this kernel out of the running count, once.
    fn uncount(&self) {
        // Relaxed: the swap alone makes this happen once; the count itself
        // is guarded by its own lock.
        if self.counted.swap(false, Ordering::Relaxed) {
            uncount(self.ctx().ordinal(), self.share);
        }
    }
}

impl Engine for CudaKernel {
    /// `cuStreamQuery`: `Ok(true)` once the kernel returned, `Ok(false)` while
    /// it runs, `Err(KernelFault)` with the driver's name and text after a
    /// trap, illegal address, etc. Never blocks.
    fn poll(&self) -> Result<bool> {
        match self.state() {
            State::Running => Ok(false),
            State::Finished => Ok(true),
            State::Faulted(what) => Err(Error::KernelFault(what)),
            State::Unknown(err) => Err(err),
        }
    }
}

impl Drop for CudaKernel {
    fn drop(&mut self) {
        match self.state() {
            // The stream and module are released by their own drops (the
            // stream first: a field of `self`, the module after it if this
            // held its last reference).
            State::Finished | State::Faulted(_) => {}
            State::Running | State::Unknown(_) => {
                eprintln!(
                    "ringbridge: a CUDA kernel is still running (or not yet resident) while its \
                     handle is dropped; keeping its stream, module, context and ring memory \
                     until it is seen finished"
                );
                let counted = self
                    .counted
                    .swap(false, Ordering::Relaxed)
                    .then(|| (self.ctx().ordinal(), self.share));
                if let Some(stream) = self.stream.take() {
                    abandon(
                        Box::new(Running {
                            stream,
                            module: Arc::clone(&self.module),
                        }),
                        counted,
                    );
                }
            }
        }
    }
}

/// What an abandoned kernel keeps: its stream (where `cuStreamQuery` tells
/// when it ends) and its module, which holds a reference to the context
/// (releasing the last one would destroy the context, waiting for the
/// kernel).
struct Running {
    stream: Stream,
    module: Arc<KernelModule>,
}

impl Abandoned for Running {
    fn finished(&mut self) -> bool {
        let ctx = self.module.context();
        // The caller's current context is put back: it may be about to make
        // a call on another one.
        let before = result::ctx::get_current().ok().flatten();
        if bind(ctx).is_err() {
            return false;
        }
        // SAFETY: the stream belongs to `ctx`, now current, and lives in
        // `self`; `cuStreamQuery` never blocks.
        let code = unsafe { sys::cuStreamQuery(self.stream.raw()) };
        if let Some(prev) = before.filter(|&p| p != ctx.cu_ctx()) {
            // SAFETY: `prev` was current on this thread a moment ago, and
            // the caller that made it current keeps its context alive.
            let _ = unsafe { result::ctx::set_current(prev) };
        }
        code != sys::CUresult::CUDA_ERROR_NOT_READY
    }

    fn context_key(&self) -> usize {
        self.module.context().cu_ctx() as usize
    }
}

#[cfg(test)]
mod tests {
    //! These need a CUDA driver and device: a GPU, or the simulated driver
    //! (`scripts/sim-driver.sh`), which runs the built-in echo kernel through
    //! its host twin. Without one (or without compiled kernels) they return
    //! at once. Faults (trap, illegal address) are tested end to end, each
    //! in a process of its own, by `tests/cuda_faults.rs`.

    use std::time::{Duration, Instant};

    use super::*;
    use crate::backend::SharedMemory;
    use crate::backend::launch::{LoopConfig, prepare};
    use crate::cuda::{MappedMemory, context, device_count};
    use crate::layout::{STATUS_LAUNCHING, STATUS_RUNNING};
    use crate::ring::{Control, RegionLayout, RingSpec};

    /// One GPU test at a time: a running test kernel makes every other
    /// test's pinned allocation `DeviceBusy`, and the harness runs tests on
    /// parallel threads.
    static GPU_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The context of device 0, the echo kernel's image and this process's
    /// GPU turn (hold all for the whole test), or `None` without a device
    /// or compiled kernels.
    fn gpu() -> Option<(
        Arc<CudaContext>,
        &'static [u8],
        std::sync::MutexGuard<'static, ()>,
    )> {
        let image = crate::kernels::image("echo").ok()?.fatbin;
        match device_count() {
            Ok(n) if n > 0 => {
                let turn = crate::sync::lock(&GPU_TURN);
                let simulated = crate::cuda::driver_library().is_some_and(|l| l.simulated);
                eprintln!(
                    "on {}",
                    if simulated {
                        "the simulated driver"
                    } else {
                        "a GPU"
                    }
                );
                Some((context(0).expect("context of device 0"), image, turn))
            }
            _ => None,
        }
    }

    /// A prepared echo region in mapped memory.
    fn region(ctx: &Arc<CudaContext>) -> (RegionLayout, Arc<MappedMemory>) {
        let layout = RegionLayout::new(RingSpec::new(16, 128).expect("spec")).expect("layout");
        let mem = Arc::new(MappedMemory::new(ctx, layout.total_bytes).expect("mapped memory"));
        let config = LoopConfig {
            check_interval: 64,
            wait_policy: crate::WaitPolicy::default(),
        };
        prepare(&layout, mem.words(), 0, config);
        (layout, mem)
    }

    fn args(layout: &RegionLayout, mem: &MappedMemory) -> [u64; 3] {
        let base = mem.device_address();
        [
            base,
            base + layout.h2k_offset as u64,
            base + layout.k2h_offset as u64,
        ]
    }

    /// The echo kernel on one block of 32 threads over `mem`.
    fn launch_echo(
        ctx: &Arc<CudaContext>,
        image: &[u8],
        layout: &RegionLayout,
        mem: &MappedMemory,
    ) -> Result<CudaKernel> {
        CudaKernel::launch(
            ctx,
            image,
            crate::kernels::ECHO_ENTRY,
            1,
            32,
            args(layout, mem),
            &LaunchArgs::default(),
        )
    }

    /// The control block of the region in `mem`.
    fn control(mem: &Arc<MappedMemory>) -> Control {
        Control::new(Arc::clone(mem) as Arc<dyn SharedMemory>)
    }

    /// Waits until the kernel says it serves.
    fn wait_running(mem: &Arc<MappedMemory>) {
        let control = control(mem);
        let start = Instant::now();
        while control.report().status == STATUS_LAUNCHING {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "kernel never started"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        assert_eq!(control.report().status, STATUS_RUNNING);
    }

    #[test]
    fn gpu_mapped_memory() {
        let Some((ctx, _, _turn)) = gpu() else { return };
        let mem = MappedMemory::new(&ctx, 1000).expect("mapped memory");
        assert_eq!(mem.len_bytes(), 4096);
        assert_eq!(mem.words().len(), 512);
        assert_eq!(mem.words().as_ptr() as usize % 128, 0);
        assert_eq!(mem.device_address() % 128, 0);
        assert!(mem.words().iter().all(|w| w.load(Ordering::Relaxed) == 0));
        assert_eq!(
            MappedMemory::new(&ctx, 0).expect("one page").len_bytes(),
            4096
        );
        assert!(matches!(
            MappedMemory::new(&ctx, usize::MAX),
            Err(Error::Alloc { .. })
        ));
    }

    #[test]
    fn gpu_launch_rejects_bad_arguments() {
        let Some((ctx, image, _turn)) = gpu() else {
            return;
        };
        let (layout, mem) = region(&ctx);
        let a = args(&layout, &mem);
        let launch = |image: &[u8], entry: &str, grid, block| {
            CudaKernel::launch(&ctx, image, entry, grid, block, a, &LaunchArgs::default())
                .map(|_| ())
        };
        let echo = crate::kernels::ECHO_ENTRY;
        assert!(matches!(
            launch(image, echo, 0, 32),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            launch(image, echo, 1, 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            launch(image, echo, 1, 1025),
            Err(Error::InvalidArgument(_))
        ));
        // No GPU holds a million resident blocks of 1024 threads.
        assert!(matches!(
            launch(image, echo, 1_000_000, 1024),
            Err(Error::InvalidArgument(m)) if m.contains("at once")
        ));
        assert!(matches!(
            launch(image, "rb\0x", 1, 32),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            launch(b"", echo, 1, 32),
            Err(Error::InvalidImage(_))
        ));
        assert!(matches!(
            launch(b"this is not PTX", echo, 1, 32),
            Err(Error::InvalidImage(_))
        ));
        assert!(matches!(
            launch(image, "no_such_kernel", 1, 32),
            Err(Error::EntryNotFound { entry }) if entry == "no_such_kernel"
        ));
    }

    #[test]
    fn gpu_echo_kernel_runs_and_finishes() {
        let Some((ctx, image, _turn)) = gpu() else {
            return;
        };
        let (layout, mem) = region(&ctx);
        let kernel = launch_echo(&ctx, image, &layout, &mem).expect("launch");
        wait_running(&mem);
        assert!(!kernel.poll().expect("poll"));
        assert!(
            !kernel
                .wait_finished(Duration::from_millis(5))
                .expect("wait")
        );
        control(&mem).request_terminate();
        assert!(kernel.wait_finished(Duration::from_secs(30)).expect("wait"));
        assert!(kernel.poll().expect("poll"));
        drop(kernel);
        drop(mem);
    }

    /// A kernel whose handle is dropped while it runs is abandoned, not
    /// waited for: its context refuses frees and its device new work until
    /// it is seen finished; then both are released (once it ended, the
    /// next check sees it).
    #[test]
    fn gpu_drop_while_running_abandons_until_it_ends() {
        let Some((ctx, image, _turn)) = gpu() else {
            return;
        };
        let (layout, mem) = region(&ctx);
        let kernel = launch_echo(&ctx, image, &layout, &mem).expect("launch");
        wait_running(&mem);
        let start = Instant::now();
        drop(kernel);
        assert!(start.elapsed() < Duration::from_secs(1), "a drop blocked");
        assert!(crate::cuda::running::has_leaked(&ctx));
        assert!(matches!(
            MappedMemory::new(&ctx, 4096),
            Err(Error::DeviceBusy { .. })
        ));
        control(&mem).request_terminate();
        let start = Instant::now();
        while crate::cuda::running::has_leaked(&ctx) {
            assert!(start.elapsed() < Duration::from_secs(30), "never released");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(MappedMemory::new(&ctx, 4096).expect("the device takes new work"));
        drop(mem);
    }
}
