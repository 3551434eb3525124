//! Which of this process's kernels may be running, per device, and the
//! driver calls that must not meet them.
//!
//! A persistent kernel never ends on its own, and some driver calls wait for
//! a device's running work (CUDA's "implicit synchronization"): made while
//! one of our kernels serves, they would wait forever. Each such call goes
//! through [`while_idle`], which runs it only if no kernel that it could wait
//! for may run, and returns [`Error::DeviceBusy`] otherwise.
//!
//! What a call can wait for decides its [`Scope`]:
//! - page-locking or freeing host memory ([`Scope::AllDevices`]): our pinned
//!   memory is `PORTABLE`, mapped into every context, so the call is assumed
//!   to wait for every device;
//! - allocating, filling or freeing device memory, loading or unloading a
//!   module ([`Scope::Device`]): the work of that device's context only.
//!
//! Kernels are counted from their launch until first seen finished or
//! faulted; a kernel left running when its handle was dropped stays counted
//! for good, and its context is marked ([`mark_leaked`]) so that the memory
//! it may still use is leaked rather than freed under it.

use std::sync::Mutex;

use cudarc::driver::CudaContext;

use super::context::bind;
use crate::error::{Error, Result};
use crate::sync::lock;

/// What a driver call may wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Running work on any device (page-locked host memory).
    AllDevices,
    /// Running work on this device (its memory and modules).
    Device(usize),
}

/// Kernels that may be running, indexed by device ordinal. The mutex is
/// also held across every call [`while_idle`] admits and every launch
/// ([`count_launch`]), so no launch slips between a check and the call it
/// allowed.
static RUNNING: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Contexts (as addresses of their `CUcontext`) on which a kernel was left
/// running when its handle was dropped.
static LEAKED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// How many counted kernels `scope` covers in `running`.
fn covered(running: &[usize], scope: Scope) -> usize {
    match scope {
        Scope::AllDevices => running.iter().sum(),
        Scope::Device(d) => running.get(d).copied().unwrap_or(0),
    }
}

/// Runs `f` (a driver call that may wait for running work in `scope`) only
/// if none of our kernels may run there, holding launches off meanwhile.
///
/// # Errors
/// [`Error::DeviceBusy`] with the count of such kernels, without running `f`.
pub(crate) fn while_idle<T>(scope: Scope, f: impl FnOnce() -> T) -> Result<T> {
    let running = lock(&RUNNING);
    match covered(&running, scope) {
        0 => Ok(f()),
        n => Err(Error::DeviceBusy { running: n }),
    }
}

/// Runs `launch` (which starts a kernel on `device`) with checks held off,
/// and counts the kernel if it returned `Ok`.
pub(crate) fn count_launch<T, E>(
    device: usize,
    launch: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let mut running = lock(&RUNNING);
    let launched = launch()?;
    if running.len() <= device {
        running.resize(device + 1, 0);
    }
    running[device] += 1;
    Ok(launched)
}

/// Takes one kernel on `device` out of the count (it finished or faulted).
/// The caller makes sure this happens once per counted kernel.
pub(crate) fn uncount(device: usize) {
    let mut running = lock(&RUNNING);
    if let Some(n) = running.get_mut(device) {
        *n = n.saturating_sub(1);
    }
}

/// Records that a kernel was abandoned while still running on `ctx`.
pub(crate) fn mark_leaked(ctx: &CudaContext) {
    let key = ctx.cu_ctx() as usize;
    let mut list = lock(&LEAKED);
    if !list.contains(&key) {
        list.push(key);
    }
}

/// Whether a kernel was abandoned while still running on `ctx`: its memory
/// must then be leaked, not freed (the kernel may still use it).
pub(crate) fn has_leaked(ctx: &CudaContext) -> bool {
    lock(&LEAKED).contains(&(ctx.cu_ctx() as usize))
}

/// Frees something with `free`, a driver call on `ctx` that may wait for
/// running work in `scope`, or leaks it with a warning naming `what`: when a
/// kernel was left running on `ctx` (it may still use it), or while one of
/// ours may run in `scope` (the call could wait for it forever). When `ctx`
/// cannot be made current (after a fault every call fails) it is leaked
/// silently: there is nothing else to do. `free`'s own errors are ignored
/// for the same reason.
pub(crate) fn free_or_leak(ctx: &CudaContext, scope: Scope, what: &str, free: impl FnOnce()) {
    if has_leaked(ctx) {
        eprintln!("ringbridge: leaking {what}: a kernel is still running on its context");
        return;
    }
    if bind(ctx).is_err() {
        return;
    }
    if let Err(Error::DeviceBusy { running }) = while_idle(scope, free) {
        eprintln!(
            "ringbridge: leaking {what}: {running} kernel(s) of this process may still run, \
             and freeing it would wait for them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-device bookkeeping, without a GPU: a kernel counted on one
    /// device refuses pinned-memory calls everywhere and device calls on
    /// its own device only. Uses ordinals no machine has, so it cannot meet
    /// a real kernel's count in this test process.
    #[test]
    fn a_running_kernel_blocks_its_device_and_pinned_memory_only() {
        const A: usize = 1000;
        const B: usize = 1001;
        assert_eq!(while_idle(Scope::Device(A), || 7).expect("idle"), 7);

        count_launch(A, || Ok::<_, ()>(())).expect("counted");
        assert!(matches!(
            while_idle(Scope::Device(A), || ()),
            Err(Error::DeviceBusy { running: 1 })
        ));
        assert!(while_idle(Scope::Device(B), || ()).is_ok());
        assert!(matches!(
            while_idle(Scope::AllDevices, || ()),
            Err(Error::DeviceBusy { running }) if running >= 1
        ));

        // A failed launch is not counted.
        assert_eq!(count_launch(B, || Err::<(), _>("no")), Err("no"));
        assert!(while_idle(Scope::Device(B), || ()).is_ok());

        uncount(A);
        assert!(while_idle(Scope::Device(A), || ()).is_ok());
        // Uncounting an idle device does not wrap below zero.
        uncount(A);
        uncount(usize::MAX);
        assert!(while_idle(Scope::Device(A), || ()).is_ok());
    }
}
