//! The fallback's serving thread: the C++ serve loop of a kernel's host
//! entry (or the callback loop for a Rust handler) on a CPU thread.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::HostMemory;
use super::ffi;
use crate::backend::{Engine, poll_until};
use crate::error::{Error, Result};
use crate::layout::{LaunchArgs, MessageHeader};
use crate::ring::RegionLayout;
use crate::sync::lock;
use crate::user_kernel::{HostEntry, UserKernel};

use super::RustHandler;

/// Which handler the fallback's serve loop runs.
pub(crate) enum FallbackKernel {
    /// A kernel written in C++ (the built-ins and users' kernels), through
    /// the host entry its RB_KERNEL_ENTRY defines, or its emulation build.
    User(UserKernel),
    /// A handler written in Rust, called by the callback serve loop.
    Callback(RustHandler),
}

/// What the callback trampoline shares with the engine.
struct CallbackCtx {
    handler: RustHandler,
    panic: Mutex<Option<String>>,
}

/// Called by the C++ serve loop for every request when the handler is Rust.
extern "C" fn trampoline(
    ctx: *mut c_void,
    in_header: *const MessageHeader,
    in_payload: *const u8,
    out_header: *mut MessageHeader,
    out_payload: *mut u8,
    out_capacity: u32,
) -> i32 {
    // SAFETY: `ctx` is the `CallbackCtx` that `FallbackEngine::spawn` passed to
    // the serve loop; the serving thread holds an `Arc` of it until the loop
    // returns, so it outlives every call.
    let ctx = unsafe { &*(ctx as *const CallbackCtx) };
    // SAFETY: the serve loop passes a header it read from the request slot
    // (slot format) or built on its stack (lane format), readable and
    // aligned, and has checked that `len` fits the payload buffer: the slot
    // itself, ours until the loop releases it after this call, or (lane
    // format) the loop's own buffer of the request's lanes, alive for the call.
    let (header, input) = unsafe {
        let header = *in_header;
        let input = std::slice::from_raw_parts(in_payload, header.len as usize);
        (header, input)
    };
    // SAFETY: `out_payload` is `out_capacity` bytes: the reply slot's
    // payload (slot format), owned by the serve loop until it publishes the
    // slot after this call, or the loop's reply buffer (lane format), copied
    // to the lanes after this call; nothing else touches it meanwhile.
    let output = unsafe { std::slice::from_raw_parts_mut(out_payload, out_capacity as usize) };
    match catch_unwind(AssertUnwindSafe(|| (ctx.handler.0)(&header, input, output))) {
        Ok(Ok(n)) if n <= out_capacity as usize => {
            // SAFETY: `out_header` is the serve loop's reply header, ours
            // for the call as above.
            unsafe { (*out_header).len = n as u32 };
            0
        }
        Ok(Ok(n)) => {
            *lock(&ctx.panic) = Some(format!(
                "handler replied {n} bytes, more than the slot's {out_capacity}"
            ));
            ffi::HANDLER_PANICKED
        }
        Ok(Err(code)) => code.clamp(1, i32::MAX as u32) as i32,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            *lock(&ctx.panic) = Some(msg);
            ffi::HANDLER_PANICKED
        }
    }
}

/// The fallback's serving thread.
pub(crate) struct FallbackEngine {
    thread: Mutex<Option<JoinHandle<i32>>>,
    ctx: Option<Arc<CallbackCtx>>,
}

impl FallbackEngine {
    /// Starts the serve loop on a new thread. The thread owns a clone of the
    /// memory's `Arc`, so the rings outlive it even if it never returns.
    ///
    /// `emulated_block`: `None` runs the fallback proper (a block of one
    /// thread); `Some(n)` runs the GPU's block-parallel loops on `n` threads
    /// emulating a CUDA block (tests only, see
    /// [`BridgeBuilder::emulate_block`](crate::BridgeBuilder::emulate_block)).
    ///
    /// `block`: the block this thread plays in a striped group laid out in
    /// `mem` (0 for a bridge of its own): it is handed region 0's addresses
    /// and serves region `block`, as a GPU block of a striped launch does.
    pub(crate) fn spawn(
        mem: &Arc<HostMemory>,
        layout: &RegionLayout,
        kernel: FallbackKernel,
        emulated_block: Option<u32>,
        block: u32,
        args: Arc<LaunchArgs>,
    ) -> Result<Self> {
        // The emulation picks the built-in handlers by id; the fallback
        // proper calls a kernel's host entry (or the callback loop).
        // What the thread runs: a host entry, an emulation entry (a block
        // of `n` threads), or the callback serve loop (either way).
        enum Run {
            Entry(HostEntry),
            Emulated(crate::emulation::KernelEntry, u32),
            Callback(Option<crate::emulation::CallbackEntry>),
        }
        // The emulation library's copy this block runs in: the thread drops
        // it when the block returns (never, if it hangs: see
        // crate::emulation).
        let mut lease = None;
        let (run, ctx) = match kernel {
            FallbackKernel::User(k) => match emulated_block {
                None => (Run::Entry(k.host_entry()), None),
                Some(n) => {
                    let lib = k.emulation_library().ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "kernel {} has no block emulation library (built with \
                             Kernels::block_emulation(false), or its build failed: see the \
                             build's warnings)",
                            k.entry()
                        ))
                    })?;
                    // Race-check mode runs the ThreadSanitizer build instead.
                    let lib = if crate::race_check::active() {
                        crate::race_check::library_for(lib, k.entry())?
                    } else {
                        lib.to_owned()
                    };
                    let (entry, leased) = crate::emulation::kernel_entry(&lib, k.entry())?;
                    lease = Some(leased);
                    (Run::Emulated(entry, n), None)
                }
            },
            FallbackKernel::Callback(handler) => {
                let emulated = match emulated_block {
                    Some(_) => {
                        let (entry, leased) = crate::emulation::callback_entry()?;
                        lease = Some(leased);
                        Some(entry)
                    }
                    None => None,
                };
                let ctx = Arc::new(CallbackCtx {
                    handler,
                    panic: Mutex::new(None),
                });
                (Run::Callback(emulated), Some(ctx))
            }
        };
        let mem = Arc::clone(mem);
        let h2k = layout.h2k_offset;
        let k2h = layout.k2h_offset;
        let thread_ctx = ctx.clone();
        let thread = std::thread::Builder::new()
            .name("ringbridge-fallback".into())
            .spawn(move || {
                let base = mem.as_mut_ptr();
                let cb_ctx: *mut c_void = match &thread_ctx {
                    Some(c) => Arc::as_ptr(c) as *mut c_void,
                    None => std::ptr::null_mut(),
                };
                let ctl: *mut c_void = base.cast();
                // SAFETY: both offsets lie inside `mem` (the layout placed
                // the rings there), so the pointers stay in its allocation.
                let (h2k, k2h): (*mut c_void, *mut c_void) =
                    unsafe { (base.add(h2k).cast(), base.add(k2h).cast()) };
                // SAFETY: the three pointers address the control block and
                // the two rings inside `mem`, which this closure keeps alive
                // until the call returns; the layout was initialised before
                // spawning (the spawn orders those writes before this call);
                // `cb_ctx` points into `thread_ctx`, alive for the call too.
                // For `block > 0`, the group's configuration (written before
                // spawning too) places region `block` inside `mem` as well.
                // A host entry (from ringbridge-build's generated
                // constructor) and an emulation entry (loaded from the
                // library built from the same source) have the same
                // contract without a handler, and `args`, which this closure
                // also keeps alive, is the LaunchArgs they read. The
                // emulated block serves one region (no stripes: the builder
                // refuses them), as block 0.
                let args_ptr: *const c_void = Arc::as_ptr(&args).cast();
                // SAFETY: as said above, for each of the four ways in.
                let status = unsafe {
                    match run {
                        Run::Entry(entry) => entry(ctl, h2k, k2h, block, args_ptr),
                        Run::Emulated(entry, n) => entry(ctl, h2k, k2h, args_ptr, n),
                        Run::Callback(Some(emulated)) => emulated(
                            ctl,
                            h2k,
                            k2h,
                            trampoline,
                            cb_ctx,
                            emulated_block.unwrap_or(1),
                        ),
                        Run::Callback(None) => {
                            ffi::rb_host_serve_callback(ctl, h2k, k2h, trampoline, cb_ctx, block)
                        }
                    }
                };
                drop(lease);
                drop(thread_ctx);
                drop(args);
                drop(mem);
                status
            })
            .map_err(|e| {
                Error::InvalidArgument(format!("cannot start the fallback thread: {e}"))
            })?;
        Ok(Self {
            thread: Mutex::new(Some(thread)),
            ctx,
        })
    }

    fn panic_message(&self) -> Option<String> {
        let ctx = self.ctx.as_ref()?;
        lock(&ctx.panic).clone()
    }
}

impl Engine for FallbackEngine {
    fn poll(&self) -> Result<bool> {
        if let Some(msg) = self.panic_message() {
            return Err(Error::HandlerPanicked(msg));
        }
        let guard = lock(&self.thread);
        Ok(guard.as_ref().is_none_or(|t| t.is_finished()))
    }

    fn wait_finished(&self, timeout: Duration) -> Result<bool> {
        // A panic is reported by `poll`; here only "finished" matters.
        let finished = poll_until(timeout, || {
            Ok(lock(&self.thread).as_ref().is_none_or(|t| t.is_finished()))
        })?;
        if finished && let Some(t) = lock(&self.thread).take() {
            // The serve loop cannot panic (handler panics are caught in
            // the trampoline); a join error is still not ours to
            // propagate as a panic.
            let _ = t.join();
        }
        Ok(finished)
    }
}
