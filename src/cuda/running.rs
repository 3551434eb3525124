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
//! faulted, with the share of the GPU their blocks occupy (a persistent
//! kernel's blocks never leave their SMs, so a launch that does not fit
//! beside them would never start: [`count_launch`] lets the launcher refuse
//! it). A kernel left running when its handle was dropped is *abandoned*
//! ([`abandon`]): it stays counted, and its context refuses frees (the
//! memory it may still use is leaked rather than freed under it), until a
//! later check sees it finished ([`reap`]): then it is uncounted and what it
//! kept is released, so one stuck launch does not refuse every later bridge
//! for good.

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

/// What runs on one device: counted kernels and the share of the GPU their
/// blocks occupy (1.0: every SM full).
#[derive(Clone, Copy, Default)]
struct Load {
    kernels: usize,
    share: f64,
}

/// Kernels that may be running, indexed by device ordinal. The mutex is
/// also held across every call [`while_idle`] admits and every launch
/// ([`count_launch`]), so no launch slips between a check and the call it
/// allowed.
static RUNNING: Mutex<Vec<Load>> = Mutex::new(Vec::new());

/// A kernel whose handle was dropped while it may still run, with what it
/// uses (its stream, module and a context reference), kept until it is seen
/// finished.
pub(crate) trait Abandoned: Send {
    /// Whether the kernel has finished or faulted (never blocks).
    fn finished(&mut self) -> bool;
    /// Its context, as the address of its `CUcontext`.
    fn context_key(&self) -> usize;
}

/// An abandoned kernel, with the device and share it is counted with
/// (`None`: not counted any more).
type Kept = (Box<dyn Abandoned>, Option<(usize, f64)>);

/// The abandoned kernels not yet seen finished.
static ABANDONED: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

/// How many counted kernels `scope` covers in `running`.
fn covered(running: &[Load], scope: Scope) -> usize {
    match scope {
        Scope::AllDevices => running.iter().map(|l| l.kernels).sum(),
        Scope::Device(d) => running.get(d).map_or(0, |l| l.kernels),
    }
}

/// Runs `f` (a driver call that may wait for running work in `scope`) only
/// if none of our kernels may run there, holding launches off meanwhile.
///
/// # Errors
/// [`Error::DeviceBusy`] with the count of such kernels, without running `f`.
pub(crate) fn while_idle<T>(scope: Scope, f: impl FnOnce() -> T) -> Result<T> {
    reap();
    let running = lock(&RUNNING);
    match covered(&running, scope) {
        0 => Ok(f()),
        n => Err(Error::DeviceBusy { running: n }),
    }
}

/// Runs `launch` (which starts a kernel on `device` occupying `share` of
/// the GPU) with checks held off, handing it the share this process's
/// running kernels already occupy there, and counts the kernel if it
/// returned `Ok`.
pub(crate) fn count_launch<T, E>(
    device: usize,
    share: f64,
    launch: impl FnOnce(f64) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    reap();
    let mut running = lock(&RUNNING);
    if running.len() <= device {
        running.resize(device + 1, Load::default());
    }
    let launched = launch(running[device].share)?;
    running[device].kernels += 1;
    running[device].share += share;
    Ok(launched)
}

/// Takes one kernel on `device`, occupying `share`, out of the count (it
/// finished or faulted). The caller makes sure this happens once per
/// counted kernel.
pub(crate) fn uncount(device: usize, share: f64) {
    let mut running = lock(&RUNNING);
    if let Some(load) = running.get_mut(device) {
        load.kernels = load.kernels.saturating_sub(1);
        load.share = if load.kernels == 0 {
            0.0 // no rounding left behind
        } else {
            (load.share - share).max(0.0)
        };
    }
}

/// Keeps `kernel` (counted on `counted`'s device with its share, if
/// `Some`) until it is seen finished; its context refuses frees meanwhile.
pub(crate) fn abandon(kernel: Box<dyn Abandoned>, counted: Option<(usize, f64)>) {
    lock(&ABANDONED).push((kernel, counted));
}

/// Looks at every abandoned kernel once: those seen finished are uncounted
/// (under the lock) and released (outside it: releasing frees driver
/// objects, which checks again).
pub(crate) fn reap() {
    let done = {
        let mut list = lock(&ABANDONED);
        let mut done = Vec::new();
        let mut i = 0;
        while i < list.len() {
            if list[i].0.finished() {
                let (kernel, counted) = list.swap_remove(i);
                // Uncounted before the list lock goes (lock order: this
                // list, then the count), so no check sees it gone from the
                // list but still counted.
                if let Some((device, share)) = counted {
                    uncount(device, share);
                }
                done.push(kernel);
            } else {
                i += 1;
            }
        }
        done
    };
    drop(done);
}

/// Whether a kernel abandoned while running on `ctx` may still run: its
/// memory must then be leaked, not freed (the kernel may still use it).
pub(crate) fn has_leaked(ctx: &CudaContext) -> bool {
    abandoned_on(ctx.cu_ctx() as usize)
}

/// [`has_leaked`] by context key.
fn abandoned_on(key: usize) -> bool {
    reap();
    lock(&ABANDONED).iter().any(|(k, _)| k.context_key() == key)
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

        count_launch(A, 0.25, |load| {
            assert_eq!(load, 0.0);
            Ok::<_, ()>(())
        })
        .expect("counted");
        count_launch(A, 0.5, |load| {
            assert_eq!(load, 0.25, "the launcher sees what already runs");
            Ok::<_, ()>(())
        })
        .expect("counted");
        uncount(A, 0.5);
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
        assert_eq!(count_launch(B, 1.0, |_| Err::<(), _>("no")), Err("no"));
        assert!(while_idle(Scope::Device(B), || ()).is_ok());

        uncount(A, 0.25);
        assert!(while_idle(Scope::Device(A), || ()).is_ok());
        // Uncounting an idle device does not wrap below zero.
        uncount(A, 0.25);
        uncount(usize::MAX, 1.0);
        assert!(while_idle(Scope::Device(A), || ()).is_ok());
        count_launch(A, 0.1, |load| {
            assert_eq!(load, 0.0, "an idle device holds no share");
            Ok::<_, ()>(())
        })
        .expect("counted");
        uncount(A, 0.1);
    }

    /// An abandoned kernel keeps its device busy and its context's memory
    /// leaked until it is seen finished; then both are released.
    #[test]
    fn an_abandoned_kernel_is_released_once_seen_finished() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        const D: usize = 1002;
        const KEY: usize = 0xdead_0000;
        struct Fake(Arc<AtomicBool>, Arc<AtomicUsize>);
        impl Abandoned for Fake {
            fn finished(&mut self) -> bool {
                self.0.load(Ordering::SeqCst)
            }
            fn context_key(&self) -> usize {
                KEY
            }
        }
        impl Drop for Fake {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (done, dropped) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        count_launch(D, 0.5, |_| Ok::<_, ()>(())).expect("counted");
        abandon(
            Box::new(Fake(Arc::clone(&done), Arc::clone(&dropped))),
            Some((D, 0.5)),
        );
        assert!(abandoned_on(KEY));
        assert!(matches!(
            while_idle(Scope::Device(D), || ()),
            Err(Error::DeviceBusy { running: 1 })
        ));
        assert_eq!(dropped.load(Ordering::SeqCst), 0, "kept while it may run");
        done.store(true, Ordering::SeqCst);
        assert!(while_idle(Scope::Device(D), || ()).is_ok());
        assert!(!abandoned_on(KEY));
        // Another test's check may have taken it from the list first and be
        // releasing it on its own thread: wait for that, briefly.
        let start = std::time::Instant::now();
        while dropped.load(Ordering::SeqCst) == 0 && start.elapsed().as_secs() < 5 {
            std::thread::yield_now();
        }
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "released once");
    }
}
