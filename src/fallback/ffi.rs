//! The host fallback (`kernels/host/fallback.cpp`): the device half's C++
//! compiled for the CPU, linked into this library as `ringbridge_fallback`.
//!
//! [`RawHandlerFn`](crate::fallback::ffi::RawHandlerFn) is the C function
//! pointer a handler crosses as; the Rust closure type behind a
//! [`RustHandler`](crate::fallback::RustHandler) is
//! [`RustHandlerFn`](crate::fallback::RustHandlerFn).

use crate::layout::MessageHeader;
use core::ffi::c_void;

/// A handler in Rust, called on the fallback thread once per request.
///
/// Returns 0 to reply (set `out.len` and write that many bytes to
/// `out_payload`; `out.flags` defaults to the request's), a positive code
/// for an error reply (`KIND_ERROR`, the code in `flags`), a negative
/// code to stop the bridge with `ERR_HANDLER` (detail = `-code`), or
/// [`HANDLER_PANICKED`] to stop it with `ERR_HANDLER_PANICKED`. It must
/// not unwind: catch panics and return [`HANDLER_PANICKED`].
///
/// `in_payload` is readable for `len` rounded up to 16 bytes;
/// `out_payload` is writable for `out_capacity` bytes; both are 16-byte
/// aligned and point into the slots of the rings (slot format) or into
/// the serve loop's buffers (lane format).
pub type RawHandlerFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    input: *const MessageHeader,
    in_payload: *const u8,
    out: *mut MessageHeader,
    out_payload: *mut u8,
    out_capacity: u32,
) -> i32;

/// `handler_id` of the built-in echo handler ([`host_serve`],
/// `rb_emu_serve`).
pub const HANDLER_ECHO: u32 = 0;
/// `handler_id` of the built-in `f32` scale handler.
pub const HANDLER_SCALE_F32: u32 = 1;
/// `handler_id` that calls the [`RawHandlerFn`] passed along.
pub const HANDLER_CALLBACK: u32 = 2;
/// What a [`RawHandlerFn`] returns after catching a panic (`INT32_MIN`).
pub const HANDLER_PANICKED: i32 = crate::layout::HANDLER_PANICKED;
/// What the host entries return for a null or misaligned pointer (and
/// [`host_serve`] for an unknown `handler_id` or
/// [`HANDLER_CALLBACK`] without a function).
pub const SERVE_BAD_ARGUMENT: i32 = -1;

/// The host entry of the built-in kernel `handler_id` (echo or scale),
/// or `rb_host_serve_callback` with `handler` for [`HANDLER_CALLBACK`]:
/// the fallback's three ways in, by the ids the block emulation uses.
///
/// # Safety
/// As `rb_host_serve_callback` (this module's, crate-private).
pub unsafe fn host_serve(
    ctl: *mut c_void,
    h2k: *mut c_void,
    k2h: *mut c_void,
    handler_id: u32,
    handler: Option<RawHandlerFn>,
    fn_ctx: *mut c_void,
    block: u32,
) -> i32 {
    let entry = match handler_id {
        HANDLER_ECHO => crate::kernels::builtin::ringbridge_echo().host_entry(),
        HANDLER_SCALE_F32 => crate::kernels::builtin::ringbridge_scale_f32().host_entry(),
        HANDLER_CALLBACK => {
            let Some(f) = handler else {
                return SERVE_BAD_ARGUMENT;
            };
            // SAFETY: the caller's contract is this function's.
            return unsafe { rb_host_serve_callback(ctl, h2k, k2h, f, fn_ctx, block) };
        }
        _ => return SERVE_BAD_ARGUMENT,
    };
    // The built-ins read their parameter from the launch arguments: give
    // them the control block's `param` word, which the caller wrote.
    let mut args = crate::layout::LaunchArgs::default();
    // SAFETY: `ctl` points to a live, 128-byte aligned control block
    // (the caller's contract), whose `param` word is 8-byte aligned; it
    // is read once, atomically, as the serve loop reads it.
    let param = unsafe {
        let word = ctl
            .cast::<u8>()
            .add(core::mem::offset_of!(crate::layout::ControlBlock, param))
            .cast::<u64>();
        core::sync::atomic::AtomicU64::from_ptr(word).load(core::sync::atomic::Ordering::Relaxed)
    };
    args.param[..8].copy_from_slice(&param.to_le_bytes());
    args.param_size = 8;
    // SAFETY: a built-in host entry (ringbridge-build's constructor
    // guarantees it) under the caller's contract, which is the entry's;
    // `args` outlives the call.
    unsafe { entry(ctl, h2k, k2h, block, (&raw const args).cast()) }
}

unsafe extern "C" {
    /// Runs the serve loop with `handler` on the calling thread until
    /// `terminate` is set in the control block (returns
    /// `STATUS_STOPPED`) or an error stops it (returns `STATUS_FAILED`,
    /// with `error_code`/`error_detail` set), or returns
    /// [`SERVE_BAD_ARGUMENT`]. The built-in and users' kernels have host
    /// entries of their own ([`crate::user_kernel::HostEntry`], same
    /// contract without the handler).
    ///
    /// `block`: the block this thread plays in a striped group (0 for a
    /// plain bridge). Block `b` serves the region `b * stripe_stride`
    /// bytes after the one given, as block `b` of a striped launch does
    /// on the GPU, and returns `STATUS_LAUNCHING` at once when the group
    /// has no region `b` (control block's `stripes`).
    ///
    /// # Safety
    /// `ctl`, `h2k` and `k2h` point to a control block and two ring
    /// headers (each ring followed by `capacity * slot_size` bytes of
    /// slots), 128-byte aligned, valid until this returns, with the
    /// configuration words written before the call. For `block > 0`, the
    /// same holds for region `block` of the group those words describe.
    /// Other threads touch that memory only through atomics, following
    /// the ring protocol. `fn_ctx` is whatever `handler` expects.
    pub(crate) fn rb_host_serve_callback(
        ctl: *mut c_void,
        h2k: *mut c_void,
        k2h: *mut c_void,
        handler: RawHandlerFn,
        fn_ctx: *mut c_void,
        block: u32,
    ) -> i32;

    /// Parks the calling thread while the doorbell `word`'s low half holds
    /// `expected`, at most `timeout_ns` (it may return early, and returns
    /// at once when the word holds something else). A futex on the word's
    /// low half on Linux.
    ///
    /// # Safety
    /// `word` points to a doorbell word of a live control block.
    pub(crate) fn rb_host_doorbell_park(word: *mut u64, expected: u32, timeout_ns: u64);

    /// Wakes every thread parked on the doorbell `word`.
    ///
    /// # Safety
    /// As [`rb_host_doorbell_park`].
    pub(crate) fn rb_host_doorbell_wake(word: *mut u64);

    /// The serve loop's wake of the host's doorbell (`rb_wake_host`), for
    /// the tests of the doorbell protocol.
    ///
    /// # Safety
    /// `ctl` points to a live control block.
    #[cfg(test)]
    pub(crate) fn rb_host_doorbell_wake_host(ctl: *mut c_void);

}
