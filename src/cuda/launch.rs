//! Loading a kernel image and running its persistent kernel.

use std::ffi::{CString, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, DriverError, result, sys};

use super::context::{bind, mark_running_kernel_leaked};
use super::{cuda_err, describe};
use crate::backend::Engine;
use crate::error::{Error, Result};
use crate::layout::LaunchArgs;
use crate::sync::lock;

/// Largest block the hardware accepts.
const MAX_BLOCK: u32 = 1024;

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

/// Kernels this process launched that may still be running: launched and
/// not yet seen finished or faulted (a leaked one stays counted for good).
/// A persistent kernel never finishes on its own, and the driver makes a
/// page-locked allocation and a free wait for the device's running work
/// (CUDA's "implicit synchronization"), so either, made while one of our
/// kernels serves, would wait forever: see [`while_no_kernel_runs`].
/// RELAXED everywhere: the count is read and changed under [`DEVICE_LOCK`]
/// (the uncounting too, see `uncount`), whose lock and unlock order it.
static MAYBE_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Held while a kernel is launched (and counted), and while memory is pinned
/// or freed after the count was found zero: so no launch can slip between
/// that check and the driver call it allows.
static DEVICE_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` (a driver call that waits for the device's running work, such
/// as pinning or freeing host memory) only if no kernel of this process may
/// be running, with launches held off meanwhile.
///
/// # Errors
/// [`Error::DeviceBusy`] with the count of such kernels, without running `f`.
pub(crate) fn while_no_kernel_runs<T>(f: impl FnOnce() -> T) -> Result<T> {
    let _lock = lock(&DEVICE_LOCK);
    // Relaxed: every change of the count happens under the device lock we
    // hold, and the lock orders them.
    match MAYBE_RUNNING.load(Ordering::Relaxed) {
        0 => Ok(f()),
        running => Err(Error::DeviceBusy { running }),
    }
}

/// A persistent kernel running on a non-blocking stream of its own.
///
/// # Dropping a running kernel
/// If the kernel has finished (or faulted) when this is dropped, its stream
/// is destroyed, its module unloaded and its context reference released.
/// If it is **still running** (or its state cannot be learnt), nothing is
/// released: unloading a module under a running kernel is undefined, and
/// releasing the last reference to the primary context destroys it, which
/// waits for the device to go idle — forever, for a persistent kernel. So the
/// stream, the module and one reference to the context are leaked on
/// purpose, the context is marked so that [`super::MappedMemory`] on it is
/// leaked too rather than freed under the kernel, and a warning is printed.
/// Stop the kernel first (through its control block), then drop this.
pub(crate) struct CudaKernel {
    /// The context the module and stream belong to.
    ctx: Arc<CudaContext>,
    /// The loaded image; unloaded in `drop` unless the kernel still runs.
    module: sys::CUmodule,
    /// The kernel's own stream (null until created).
    stream: sys::CUstream,
    /// Whether `cuLaunchKernel` succeeded (before that, nothing runs).
    launched: bool,
    /// Set once `cuStreamQuery` said the kernel finished.
    finished: AtomicBool,
    /// The first fault `cuStreamQuery` reported.
    fault: OnceLock<String>,
    /// Whether this kernel is in [`MAYBE_RUNNING`] (from its launch until it
    /// is first seen finished or faulted).
    counted: AtomicBool,
}

// SAFETY: the raw `CUmodule` and `CUstream` handles are only passed to driver
// calls, which are thread safe, after making the owning context current on
// the calling thread (`bind`); they are destroyed only in `drop`, which has
// exclusive access. The remaining fields are `Send + Sync` themselves.
unsafe impl Send for CudaKernel {}
// SAFETY: see `Send`: `&self` methods only query the stream (`cuStreamQuery`)
// and update atomics / a `OnceLock`.
unsafe impl Sync for CudaKernel {}

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

impl CudaKernel {
    /// Loads `image` (a fatbin, a cubin, or PTX text) into `ctx`, looks up
    /// `entry`, and launches it on a new non-blocking stream with grid
    /// `(grid, 1, 1)`, block `(block, 1, 1)`, no dynamic shared memory, and
    /// the three device addresses `args` (control block, H2K ring, K2H ring)
    /// as its `u64` parameters, then `launch_args` (an `RB_KERNEL_ENTRY`'s
    /// fourth parameter).
    ///
    /// The stream is `CU_STREAM_NON_BLOCKING`, so the kernel never
    /// serialises with the legacy default stream or any other work.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `grid == 0`, a block outside
    /// `1..=1024`, an entry name containing NUL, or a grid larger than the
    /// GPU holds at once (every block of a persistent kernel must be
    /// resident: a block waiting for a free SM would wait forever);
    /// [`Error::DeviceBusy`] while another kernel of this process may run;
    /// [`Error::InvalidImage`] for an empty image or one the driver rejects;
    /// [`Error::EntryNotFound`] when it has no such entry;
    /// [`Error::Cuda`] when another driver call fails (including the launch).
    pub(crate) fn launch(
        ctx: &Arc<CudaContext>,
        image: &[u8],
        entry: &str,
        grid: u32,
        block: u32,
        args: [u64; 3],
        launch_args: &LaunchArgs,
    ) -> Result<Self> {
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
        // Loading may allocate device memory for the module's globals, which
        // can wait for running work like pinning does: only while none of
        // our kernels runs (`DeviceBusy` otherwise).
        // SAFETY: the context is current; `aligned` is a complete image
        // followed by NUL bytes and outlives the call (the driver copies it).
        let module =
            while_no_kernel_runs(|| unsafe { result::module::load_data(aligned.as_ptr().cast()) })?
                .map_err(|e| {
                    if is_image_error(e) {
                        Error::InvalidImage(describe(e))
                    } else {
                        cuda_err("cuModuleLoadData")(e)
                    }
                })?;

        // From here on, `kernel`'s `Drop` releases what exists on every error
        // path (nothing runs until `launched` is set).
        let mut kernel = Self {
            ctx: Arc::clone(ctx),
            module,
            stream: std::ptr::null_mut(),
            launched: false,
            finished: AtomicBool::new(false),
            fault: OnceLock::new(),
            counted: AtomicBool::new(false),
        };

        // SAFETY: `module` is loaded and not unloaded while `kernel` lives.
        let function = unsafe { result::module::get_function(module, entry_c) }.map_err(|e| {
            if e.0 == sys::CUresult::CUDA_ERROR_NOT_FOUND {
                Error::EntryNotFound {
                    entry: entry.to_owned(),
                }
            } else {
                cuda_err("cuModuleGetFunction")(e)
            }
        })?;

        // An entry compiled with `__launch_bounds__(n)` (RB_KERNEL_ENTRY:
        // RB_MAX_BLOCK_THREADS) cannot launch more than n threads per block;
        // the driver would fail the launch with a bare "invalid value".
        // Untested on a GPU so far (none on the machine this was written on).
        // SAFETY: `function` comes from `module`, loaded and current.
        let max = unsafe {
            result::function::get_function_attribute(
                function,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
            )
        }
        .map_err(cuda_err("cuFuncGetAttribute"))?;
        if i64::from(block) > i64::from(max) {
            return Err(Error::BlockTooLarge {
                entry: entry.to_owned(),
                block,
                max: u32::try_from(max).unwrap_or(0),
            });
        }

        if grid > 1 {
            // The blocks of a persistent kernel serve side by side and never
            // end on their own: a block that waits for a free SM would wait
            // for good. Refuse a grid the GPU cannot hold all at once.
            // SAFETY: `function` comes from `module`, loaded and current.
            let per_sm = unsafe {
                result::occupancy::max_active_block_per_multiprocessor(function, block as i32, 0)
            }
            .map_err(cuda_err("cuOccupancyMaxActiveBlocksPerMultiprocessor"))?;
            let sms = ctx
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
        }

        kernel.stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(cuda_err("cuStreamCreate"))?;

        let mut params = args;
        let mut launch_args = *launch_args;
        let mut param_ptrs: [*mut c_void; 4] = [
            (&raw mut params[0]).cast(),
            (&raw mut params[1]).cast(),
            (&raw mut params[2]).cast(),
            (&raw mut launch_args).cast(),
        ];
        // Launched and counted under the lock, so no pinning or freeing that
        // found the count zero is still under way once the kernel runs.
        let _lock = lock(&DEVICE_LOCK);
        // SAFETY: `function` comes from `module`, which stays loaded; the
        // stream belongs to the current context; an RB_KERNEL_ENTRY takes
        // three 8-byte pointers and an `rb_args` (the layout of
        // `LaunchArgs`, static_asserted in ringbridge.cuh), and `param_ptrs`
        // points at three live `u64`s and a live `LaunchArgs`, which the
        // driver copies before returning. A kernel declaring only the three
        // pointers reads only those: the driver copies as many parameters as
        // the kernel declares.
        unsafe {
            result::launch_kernel(
                function,
                (grid, 1, 1),
                (block, 1, 1),
                0,
                kernel.stream,
                &mut param_ptrs,
            )
        }
        .map_err(cuda_err("cuLaunchKernel"))?;
        kernel.launched = true;
        // Relaxed: the count changes only under the device lock, held here
        // since before the launch; `counted` only matters to `uncount`.
        MAYBE_RUNNING.fetch_add(1, Ordering::Relaxed);
        kernel.counted.store(true, Ordering::Relaxed);
        Ok(kernel)
    }

    /// Asks the stream what became of the kernel, without blocking.
    fn state(&self) -> State {
        if let Some(fault) = self.fault.get() {
            return State::Faulted(fault.clone());
        }
        // Acquire: pairs with the release store below; a kernel seen
        // finished stays finished.
        if self.finished.load(Ordering::Acquire) || !self.launched {
            return State::Finished;
        }
        if let Err(e) = bind(&self.ctx) {
            return State::Unknown(cuda_err("cuCtxSetCurrent")(e));
        }
        // SAFETY: the stream was created in this context and is destroyed
        // only in `drop`; `cuStreamQuery` never blocks.
        match unsafe { sys::cuStreamQuery(self.stream) } {
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

    /// Takes this kernel out of [`MAYBE_RUNNING`], once.
    fn uncount(&self) {
        // Relaxed: the swap alone makes this happen once; the count itself
        // changes under the device lock.
        if self.counted.swap(false, Ordering::Relaxed) {
            let _lock = lock(&DEVICE_LOCK);
            MAYBE_RUNNING.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Destroys the stream and unloads the module, ignoring errors (after a
    /// fault the context returns its sticky error from every call).
    fn release(&mut self) {
        if bind(&self.ctx).is_err() {
            return;
        }
        if !self.stream.is_null() {
            // SAFETY: the stream was created here and is destroyed once; the
            // kernel on it is no longer running (or never started).
            let _ = unsafe { result::stream::destroy(self.stream) };
            self.stream = std::ptr::null_mut();
        }
        if !self.module.is_null() {
            // Unloading frees the module's device memory, which can wait for
            // running work: while another kernel of ours may run, the module
            // is leaked instead.
            // SAFETY: the module was loaded here and is unloaded once; no
            // kernel of it runs any more.
            let unloaded = while_no_kernel_runs(|| unsafe { result::module::unload(self.module) });
            if let Err(Error::DeviceBusy { running }) = unloaded {
                eprintln!(
                    "ringbridge: leaking a kernel module: {running} kernel(s) of this process \
                     may still run, and unloading could wait for them"
                );
            }
            self.module = std::ptr::null_mut();
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
            State::Finished | State::Faulted(_) => self.release(),
            State::Running | State::Unknown(_) => {
                eprintln!(
                    "ringbridge: a CUDA kernel is still running while its handle is dropped; \
                     leaking its stream, module, context and ring memory"
                );
                mark_running_kernel_leaked(&self.ctx);
                // Keep the primary context retained for good: releasing the
                // last reference would destroy it, waiting on the kernel.
                std::mem::forget(Arc::clone(&self.ctx));
            }
        }
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
        assert!(crate::cuda::context::has_leaked_running_kernel(&ctx));
        words[CTL].store(1, Ordering::Release);
        drop(mem); // leaked, not freed: the kernel may still read it
        drop(ctx);
        assert!(start.elapsed() < Duration::from_secs(1), "a drop blocked");
    }
}
