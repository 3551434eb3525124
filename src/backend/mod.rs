//! What the bridge needs from a backend: shared memory for the rings, a
//! running device half it can watch, and the launcher that starts one
//! (the crate-private `launch` module).

use crate::sync::AtomicU64;
use std::time::Duration;

use crate::error::Result;

#[cfg(not(loom))]
pub(crate) mod launch;

/// Which backend runs the device half.
///
/// Parsed from the names the command line takes (case-insensitive, with
/// `gpu` for `cuda`, and `host` (the fallback's name before) and `cpu` for
/// `fallback`, as aliases) and shown by those names.
///
/// ```
/// use ringbridge::{Backend, Error};
/// assert_eq!(Backend::default(), Backend::Auto);
/// assert_eq!("GPU".parse::<Backend>()?, Backend::Cuda);
/// assert_eq!("host".parse::<Backend>()?, Backend::Fallback); // its old name
/// assert_eq!(Backend::Fallback.to_string(), "fallback");
/// assert!(matches!("tpu".parse::<Backend>(), Err(Error::InvalidArgument(_))));
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// CUDA when a driver, a GPU and compiled kernels are present, else Fallback.
    #[default]
    Auto,
    /// A persistent kernel on a CUDA GPU.
    Cuda,
    /// The device half's C++ code compiled for the host, on a CPU thread.
    Fallback,
}

impl Backend {
    /// The name used on the command line and in JSON.
    ///
    /// ```
    /// use ringbridge::Backend;
    /// assert_eq!(Backend::Cuda.name(), "cuda");
    /// for b in [Backend::Auto, Backend::Cuda, Backend::Fallback] {
    ///     assert_eq!(b.name().parse::<Backend>()?, b);
    /// }
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Cuda => "cuda",
            Backend::Fallback => "fallback",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "cuda" | "gpu" => Ok(Backend::Cuda),
            "fallback" | "host" | "cpu" => Ok(Backend::Fallback),
            other => Err(crate::Error::InvalidArgument(format!(
                "unknown backend `{other}` (expected auto, cuda or fallback)"
            ))),
        }
    }
}

/// Memory that both the host and the device half can address: the control
/// block and both rings of one bridge, in one region.
///
/// # Safety
/// Implementors promise that `words()` covers `len_bytes()` bytes that stay
/// valid, 128-byte aligned and at the same address until the value is
/// dropped, and that the device half addresses byte `i` of it at
/// `device_address() + i`.
///
/// [`HostMemory`](crate::fallback::HostMemory), the fallback's memory, is one:
///
/// ```
/// use ringbridge::backend::SharedMemory;
/// use ringbridge::fallback::HostMemory;
/// use std::sync::atomic::Ordering;
/// let mem = HostMemory::new(4096)?;
/// assert_eq!(SharedMemory::len_bytes(&*mem), 4096);
/// assert_eq!(mem.words().len(), 512);
/// assert_eq!(mem.device_address() % 128, 0);
/// mem.words()[3].store(7, Ordering::Relaxed);
/// assert_eq!(mem.words()[3].load(Ordering::Relaxed), 7);
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub unsafe trait SharedMemory: Send + Sync {
    /// The whole region as 8-byte words. The host touches ring memory only
    /// through these atomics (and payloads through byte-wise atomic copies
    /// of them, see `src/ring/copy.rs`), so a misbehaving device half can
    /// never cause a data race in Rust's sense: at worst it makes the host
    /// read garbage, which the ring halves validate.
    fn words(&self) -> &[AtomicU64];
    /// The region's address as the device half sees it.
    fn device_address(&self) -> u64;
    /// The region's length in bytes.
    fn len_bytes(&self) -> usize {
        self.words().len() * 8
    }
}

/// A running device half (a persistent kernel, or the fallback's thread).
#[cfg_attr(loom, allow(dead_code))] // loom builds model the rings alone
pub(crate) trait Engine: Send + Sync {
    /// Cheap check, called at a low rate while a caller waits.
    /// `Ok(true)`: the device half has finished (for any reason);
    /// `Ok(false)`: still running; `Err`: it faulted (the error says how).
    fn poll(&self) -> Result<bool>;
    /// Waits up to `timeout` for the device half to finish.
    /// `Ok(true)` once it has; `Ok(false)` if it is still running.
    ///
    /// By default polls every 100 µs and never blocks in the driver, so a
    /// hung kernel cannot hang the caller.
    fn wait_finished(&self, timeout: Duration) -> Result<bool> {
        poll_until(timeout, || self.poll())
    }
}

/// Calls `poll` every 100 µs until it returns `Ok(true)` (then `Ok(true)`),
/// an error (returned as is), or `timeout` has passed (`Ok(false)`; `poll`
/// is called at least once). For waiting on a device half without ever
/// blocking in a driver call, so a hung kernel cannot hang the caller.
///
/// ```
/// use std::time::Duration;
/// let mut calls = 0;
/// let done = ringbridge::backend::poll_until(Duration::from_secs(5), || {
///     calls += 1;
///     Ok(calls == 3)
/// });
/// assert!(matches!(done, Ok(true)));
/// assert!(matches!(ringbridge::backend::poll_until(Duration::ZERO, || Ok(false)), Ok(false)));
/// ```
pub fn poll_until(timeout: Duration, mut poll: impl FnMut() -> Result<bool>) -> Result<bool> {
    const POLL_INTERVAL: Duration = Duration::from_micros(100);
    let start = std::time::Instant::now();
    loop {
        if poll()? {
            return Ok(true);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Ok(false);
        }
        std::thread::sleep(POLL_INTERVAL.min(timeout.saturating_sub(elapsed)));
    }
}

/// Region `index` of a striped group's memory, as one bridge's own memory:
/// the words `[first, first + len)` of the group's allocation, which the
/// view keeps alive.
#[cfg(not(loom))]
pub(crate) struct StripeMemory<M: SharedMemory> {
    group: std::sync::Arc<M>,
    /// First word of the region.
    first: usize,
    /// Words in the region.
    len: usize,
}

#[cfg(not(loom))]
impl<M: SharedMemory> StripeMemory<M> {
    /// Region `index` of `group`, regions `stride` bytes apart, `bytes` long.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when the
    /// stride is not a multiple of [`LINE`](crate::layout::LINE), or the
    /// region does not lie inside the group.
    pub(crate) fn new(
        group: &std::sync::Arc<M>,
        index: usize,
        stride: usize,
        bytes: usize,
    ) -> Result<Self> {
        let line = crate::layout::LINE;
        let start = index.checked_mul(stride);
        let len = bytes.div_ceil(8);
        let end = start.and_then(|s| s.checked_add(len * 8));
        match (start, end) {
            (Some(start), Some(end)) if stride.is_multiple_of(line) && end <= group.len_bytes() => {
                Ok(Self {
                    group: std::sync::Arc::clone(group),
                    first: start / 8,
                    len,
                })
            }
            _ => Err(crate::Error::InvalidArgument(format!(
                "region {index} ({bytes} bytes, {stride} apart) lies outside a group of {} bytes",
                group.len_bytes()
            ))),
        }
    }
}

// SAFETY: the words are a sub-slice of the group's, which the `Arc` keeps
// valid and unmoved for as long as this view lives; the region starts a
// multiple of `LINE` bytes (the stride, checked in `new`) after the group's
// 128-byte aligned start, so it is 128-byte aligned too; and the device
// addresses the group linearly, so the region's byte `i` is at the group's
// device address plus the region's offset plus `i`.
#[cfg(not(loom))]
unsafe impl<M: SharedMemory> SharedMemory for StripeMemory<M> {
    fn words(&self) -> &[AtomicU64] {
        &self.group.words()[self.first..self.first + self.len]
    }

    fn device_address(&self) -> u64 {
        self.group.device_address() + (self.first * 8) as u64
    }
}
