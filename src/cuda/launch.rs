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
    //! These need a GPU; without one (or without a driver) they return at
    //! once. The `#[ignore]`d ones break the process's primary context (a
    //! fault is sticky) or leak on purpose: run each alone, e.g.
    //! `cargo test --lib cuda::launch::tests::gpu_trap -- --ignored --exact`.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::backend::SharedMemory;
    use crate::cuda::{MappedMemory, context, device_count};

    /// Hand-written PTX (checked with ptxas 13.0 for sm_75 and sm_90):
    /// `rb_test_spin` writes `k2h[0] = 1`, spins until `ctl[0] != 0`, then
    /// writes `k2h[0] = h2k[0] + 2`; `rb_test_trap` traps;
    /// `rb_test_bad_address` stores to address 8.
    const TEST_PTX: &str = r#"
.version 7.0
.target sm_75
.address_size 64

.visible .entry rb_test_spin(.param .u64 p_ctl, .param .u64 p_h2k, .param .u64 p_k2h)
{
	.reg .pred 	%p<2>;
	.reg .b64 	%rd<8>;
	ld.param.u64 	%rd1, [p_ctl];
	ld.param.u64 	%rd2, [p_h2k];
	ld.param.u64 	%rd3, [p_k2h];
	cvta.to.global.u64 	%rd1, %rd1;
	cvta.to.global.u64 	%rd2, %rd2;
	cvta.to.global.u64 	%rd3, %rd3;
	mov.u64 	%rd4, 1;
	st.volatile.global.u64 	[%rd3], %rd4;
	membar.sys;
$L_spin:
	ld.volatile.global.u64 	%rd5, [%rd1];
	setp.eq.s64 	%p1, %rd5, 0;
	@%p1 bra 	$L_spin;
	ld.volatile.global.u64 	%rd6, [%rd2];
	add.s64 	%rd7, %rd6, 2;
	st.volatile.global.u64 	[%rd3], %rd7;
	membar.sys;
	ret;
}

.visible .entry rb_test_trap(.param .u64 p_ctl, .param .u64 p_h2k, .param .u64 p_k2h)
{
	trap;
	ret;
}

.visible .entry rb_test_bad_address(.param .u64 p_ctl, .param .u64 p_h2k, .param .u64 p_k2h)
{
	.reg .b64 	%rd<2>;
	mov.u64 	%rd1, 8;
	st.volatile.global.u64 	[%rd1], %rd1;
	ret;
}
"#;

    /// Word indices of the three "pointers" the test kernels get.
    const CTL: usize = 0;
    const H2K: usize = 16;
    const K2H: usize = 32;

    /// One GPU test at a time: a running test kernel makes every other
    /// test's pinned allocation `DeviceBusy`, and the harness runs tests on
    /// parallel threads.
    static GPU_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The context of device 0 and this process's GPU turn (hold both for
    /// the whole test), or `None` without a GPU.
    fn gpu() -> Option<(Arc<CudaContext>, std::sync::MutexGuard<'static, ()>)> {
        if crate::cuda::driver_library().is_some_and(|l| l.simulated) {
            // Hand-written PTX has no host twin for the simulator to run;
            // the same paths run there through tests/bridge_cuda.rs and
            // tests/cuda_faults.rs.
            eprintln!("skipped on the simulated driver: hand-written PTX needs a card");
            return None;
        }
        match device_count() {
            Ok(n) if n > 0 => {
                let turn = crate::sync::lock(&GPU_TURN);
                Some((context(0).expect("context of device 0"), turn))
            }
            _ => None,
        }
    }

    fn args(mem: &MappedMemory) -> [u64; 3] {
        let base = mem.device_address();
        [base, base + 8 * H2K as u64, base + 8 * K2H as u64]
    }

    /// `rb_test_spin` on one block of 32 threads over `mem`.
    fn launch_spin(ctx: &Arc<CudaContext>, mem: &MappedMemory) -> Result<CudaKernel> {
        CudaKernel::launch(
            ctx,
            TEST_PTX.as_bytes(),
            "rb_test_spin",
            1,
            32,
            args(mem),
            &LaunchArgs::default(),
        )
    }

    fn wait_for(word: &AtomicU64, value: u64, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if word.load(Ordering::Acquire) == value {
                return true;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        false
    }

    #[test]
    fn gpu_mapped_memory() {
        let Some((ctx, _turn)) = gpu() else { return };
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
        let Some((ctx, _turn)) = gpu() else { return };
        let mem = MappedMemory::new(&ctx, 4096).expect("mapped memory");
        let a = args(&mem);
        let ptx = TEST_PTX.as_bytes();
        let launch = |image: &[u8], entry: &str, grid, block| {
            CudaKernel::launch(&ctx, image, entry, grid, block, a, &LaunchArgs::default())
                .map(|_| ())
        };
        assert!(matches!(
            launch(ptx, "rb_test_spin", 0, 32),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            launch(ptx, "rb_test_spin", 1, 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            launch(ptx, "rb_test_spin", 1, 1025),
            Err(Error::InvalidArgument(_))
        ));
        // No GPU holds a million resident blocks of 1024 threads.
        assert!(matches!(
            launch(ptx, "rb_test_spin", 1_000_000, 1024),
            Err(Error::InvalidArgument(m)) if m.contains("at once")
        ));
        assert!(matches!(
            launch(ptx, "rb\0x", 1, 32),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            launch(b"", "rb_test_spin", 1, 32),
            Err(Error::InvalidImage(_))
        ));
        assert!(matches!(
            launch(b"this is not PTX", "rb_test_spin", 1, 32),
            Err(Error::InvalidImage(_))
        ));
        assert!(matches!(
            launch(ptx, "no_such_kernel", 1, 32),
            Err(Error::EntryNotFound { entry }) if entry == "no_such_kernel"
        ));
    }

    #[test]
    fn gpu_spin_kernel_runs_and_finishes() {
        let Some((ctx, _turn)) = gpu() else { return };
        let mem = MappedMemory::new(&ctx, 4096).expect("mapped memory");
        let words = mem.words();
        let kernel = launch_spin(&ctx, &mem).expect("launch");
        assert!(
            wait_for(&words[K2H], 1, Duration::from_secs(10)),
            "kernel never started"
        );
        assert!(!kernel.poll().expect("poll"));
        assert!(
            !kernel
                .wait_finished(Duration::from_millis(5))
                .expect("wait")
        );
        words[H2K].store(40, Ordering::Release);
        words[CTL].store(1, Ordering::Release);
        assert!(kernel.wait_finished(Duration::from_secs(10)).expect("wait"));
        assert!(kernel.poll().expect("poll"));
        assert_eq!(words[K2H].load(Ordering::Acquire), 42);
        drop(kernel);
        drop(mem);
    }

    fn fault_test(entry: &str) {
        let Some((ctx, _turn)) = gpu() else { return };
        let mem = MappedMemory::new(&ctx, 4096).expect("mapped memory");
        let kernel = CudaKernel::launch(
            &ctx,
            TEST_PTX.as_bytes(),
            entry,
            1,
            1,
            args(&mem),
            &LaunchArgs::default(),
        )
        .expect("launch");
        let err = kernel
            .wait_finished(Duration::from_secs(10))
            .expect_err("a fault");
        let Error::KernelFault(what) = &err else {
            panic!("expected KernelFault, got {err:?}");
        };
        assert!(what.starts_with("CUDA_ERROR_"), "{what}");
        assert!(matches!(kernel.poll(), Err(Error::KernelFault(_))));
        eprintln!("{entry}: {err}");
        // Neither drop may panic or block on the broken context.
        drop(kernel);
        drop(mem);
    }

    #[test]
    #[ignore = "breaks the process's CUDA context: run alone"]
    fn gpu_trap_is_a_kernel_fault() {
        fault_test("rb_test_trap");
    }

    #[test]
    #[ignore = "breaks the process's CUDA context: run alone"]
    fn gpu_bad_address_is_a_kernel_fault() {
        fault_test("rb_test_bad_address");
    }

    #[test]
    #[ignore = "leaks a running kernel on purpose: run alone"]
    fn gpu_drop_while_running_leaks_instead_of_blocking() {
        let Some((ctx, _turn)) = gpu() else { return };
        let mem = MappedMemory::new(&ctx, 4096).expect("mapped memory");
        let words = mem.words();
        let kernel = launch_spin(&ctx, &mem).expect("launch");
        assert!(
            wait_for(&words[K2H], 1, Duration::from_secs(10)),
            "kernel never started"
        );
        let start = Instant::now();
        drop(kernel);
        assert!(crate::cuda::running::has_leaked(&ctx));
        words[CTL].store(1, Ordering::Release);
        drop(mem); // leaked, not freed: the kernel may still read it
        drop(ctx);
        assert!(start.elapsed() < Duration::from_secs(1), "a drop blocked");
    }
}
