//! The library's one error type.

use std::time::Duration;

/// Which of a bridge's two rings an error is about.
///
/// ```
/// use ringbridge::error::RingId;
/// assert_eq!(RingId::H2k.to_string(), "H2K");
/// assert_eq!(format!("{} ring", RingId::K2h), "K2H ring");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingId {
    /// Host to kernel.
    H2k,
    /// Kernel to host.
    K2h,
}

impl std::fmt::Display for RingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RingId::H2k => "H2K",
            RingId::K2h => "K2H",
        })
    }
}

/// Every failure of the library. Nothing in ringbridge panics on bad input or
/// on a misbehaving kernel: it returns one of these.
///
/// ```
/// use ringbridge::{Backend, Bridge, Error};
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
/// let err = bridge.send(&[0; 33]).unwrap_err();
/// assert!(matches!(err, Error::PayloadTooLarge { len: 33, max: 32 }));
/// assert_eq!(
///     err.to_string(),
///     "payload of 33 bytes does not fit in a slot (at most 32 bytes)"
/// );
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ring capacity that is zero, too large, or cannot be allocated.
    #[error("invalid capacity {requested}: {reason}")]
    InvalidCapacity {
        /// What was asked for.
        requested: usize,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A slot size that is not a power of two, too small for the header, or too large.
    #[error("invalid slot size {requested} bytes: {reason}")]
    InvalidSlotSize {
        /// What was asked for.
        requested: usize,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A payload that does not fit in one slot.
    #[error("payload of {len} bytes does not fit in a slot (at most {max} bytes)")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload a slot holds.
        max: usize,
    },
    /// Any other argument that cannot be used.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// `try_send` found the H2K ring full.
    #[error("the H2K ring is full")]
    Full,
    /// `try_recv` found no reply waiting.
    #[error("no reply is waiting")]
    Empty,
    /// A bounded wait ran out.
    #[error("{op} timed out after {after:?}")]
    Timeout {
        /// The operation that waited.
        op: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// No CUDA driver could be loaded, or it reports no usable GPU.
    #[error("CUDA is not available: {0}")]
    CudaUnavailable(String),
    /// A CUDA bridge (or striped group) was launched while a kernel of this
    /// process may still be serving: pinning its memory, or loading its
    /// module, would wait for that kernel, forever. Shut the running bridge
    /// down (or drop it) first, or make a
    /// [`Reservation`](crate::cuda::Reservation) before the first launch and
    /// launch the later bridges from it.
    #[error(
        "{running} ringbridge CUDA kernel(s) of this process may still be running: a new bridge's \
         page-locked allocation, device allocation or module load would wait for them forever \
         (CUDA implicit synchronization): shut the running bridge down first, or launch the \
         later bridges from a ringbridge::cuda::Reservation made before the first launch"
    )]
    DeviceBusy {
        /// Kernels launched and not yet seen finished.
        running: usize,
    },
    /// The GPU cannot hold this launch's blocks beside the blocks of this
    /// process's kernels already running on it. A persistent kernel's
    /// blocks never leave their SMs, so the launch would wait, never
    /// starting; it is refused before anything is launched.
    #[error(
        "device {device} cannot hold {grid} more block(s) of {block} threads: this process's \
         running kernels already occupy {occupied_percent}% of its SMs and this launch needs \
         {needed_percent}% (persistent blocks never make room): stop a running bridge, or \
         launch fewer stripes or smaller blocks"
    )]
    DeviceFull {
        /// The device.
        device: usize,
        /// Blocks of the refused launch.
        grid: u32,
        /// Threads per block of the refused launch.
        block: u32,
        /// How much of the GPU this process's running kernels occupy.
        occupied_percent: u32,
        /// How much the refused launch needed.
        needed_percent: u32,
    },
    /// A bridge launched from a [`Reservation`](crate::cuda::Reservation)
    /// needed more than it has free, while a kernel of ours runs (so it
    /// could not be allocated or loaded outside it either).
    #[error(
        "the reservation on device {device} has {available} {what} free and this bridge needs \
         {needed}; with a kernel running, no more can be made: reserve more before the first \
         launch (ReservationBuilder::bridge, ::ring_bytes, ::buffer_bytes, ::streams, ::kernel), \
         or stop a bridge that holds some"
    )]
    ReservationExhausted {
        /// The reservation's device.
        device: usize,
        /// What ran out, e.g. `"bytes of ring memory"`.
        what: &'static str,
        /// How much the bridge needed.
        needed: usize,
        /// How much was free (in one piece).
        available: usize,
    },
    /// A device ordinal beyond the GPUs present.
    #[error("device {ordinal} does not exist ({count} CUDA device(s) found)")]
    DeviceOutOfRange {
        /// The ordinal asked for.
        ordinal: usize,
        /// How many devices there are.
        count: usize,
    },
    /// The crate was built without nvcc, so it carries no kernel images.
    #[error("kernels not compiled: {0}")]
    KernelsNotCompiled(String),
    /// A kernel image the driver would not load.
    #[error("invalid kernel image: {0}")]
    InvalidImage(String),
    /// A kernel image without the entry point asked for.
    #[error("kernel image has no entry point `{entry}`")]
    EntryNotFound {
        /// The entry point asked for.
        entry: String,
    },
    /// A block larger than the kernel entry was compiled for: its
    /// `__launch_bounds__` (`RB_MAX_BLOCK_THREADS`, or the bound of
    /// `RB_KERNEL_ENTRY_BOUNDED`), read back from the loaded image.
    #[error(
        "kernel entry `{entry}` is compiled for at most {max} threads per block, not {block}: \
         launch a smaller block or build it with a larger RB_MAX_BLOCK_THREADS"
    )]
    BlockTooLarge {
        /// The entry point.
        entry: String,
        /// The block size asked for.
        block: u32,
        /// The entry's bound.
        max: u32,
    },
    /// A kernel parameter larger than the launch carries
    /// ([`crate::layout::MAX_PARAM_SIZE`] bytes).
    #[error("kernel parameter of {size} bytes is larger than the {max} bytes a launch carries")]
    ParamTooLarge {
        /// The parameter's size.
        size: usize,
        /// The most a launch carries.
        max: usize,
    },
    /// A reply that a measurement's check (see [`crate::measure`]) refused.
    #[error("reply to message {index} failed the check: {what}")]
    CheckFailed {
        /// The message's index in the measurement (0 for the first one sent).
        index: u64,
        /// What the check said.
        what: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA call {call} failed: {message}")]
    Cuda {
        /// The driver call.
        call: &'static str,
        /// The driver's description.
        message: String,
    },
    /// The kernel faulted (trap, illegal address, ...): the stream reported an error.
    #[error("the kernel faulted: {0}")]
    KernelFault(String),
    /// The kernel stopped advancing its heartbeat.
    #[error("the kernel stopped making progress: no heartbeat for {stalled_for:?}")]
    KernelHung {
        /// How long the heartbeat stood still.
        stalled_for: Duration,
    },
    /// The kernel reported an error through the control block and stopped.
    #[error("the kernel failed: {what} (code {code}, detail {detail})")]
    KernelFailed {
        /// One of the `ERR_*` codes of [`crate::layout`].
        code: u64,
        /// The code's detail word.
        detail: u64,
        /// The code in words.
        what: &'static str,
    },
    /// The kernel (or fallback thread) is no longer running.
    #[error("the kernel is not running")]
    KernelExited,
    /// A host-side handler panicked (fallback backend).
    #[error("the handler panicked: {0}")]
    HandlerPanicked(String),
    /// Shared ring memory held a value the protocol cannot produce.
    #[error("{ring} ring corrupted: {what}")]
    RingCorrupted {
        /// Which ring.
        ring: RingId,
        /// What was wrong.
        what: String,
    },
    /// The kernel's handler reads a typed launch parameter
    /// (`rb_launch::param<T>()`) of `expected` bytes, and the launch gave
    /// `given` (set it with [`UserKernel::with_param`](crate::UserKernel::with_param)
    /// of the same type). Refused at launch, before any request is served.
    #[error(
        "the kernel reads a {expected}-byte parameter, but the launch gave {given} bytes; \
         pass the kernel's parameter type to `with_param`"
    )]
    ParamSize {
        /// `sizeof` the type the handler reads.
        expected: u64,
        /// Bytes the host sent.
        given: u64,
    },
    /// The bridge was shut down (or failed) and cannot be used any more.
    #[error("the bridge is shut down")]
    ShutDown,
    /// A measurement ([`crate::measure`]) whose request the
    /// kernel's handler answered with nothing (a
    /// [`KIND_NO_REPLY`](crate::layout::KIND_NO_REPLY) mark). The bridge
    /// stays usable: the request counts as answered.
    #[error(
        "the kernel's handler answered request {seq} with nothing (no reply); \
         a measurement needs a reply to every request"
    )]
    NoReply {
        /// The request's sequence number.
        seq: u64,
    },
    /// A bridge-owned buffer was read or written while the kernel may still
    /// run: the kernel's writes would race with the copy.
    #[error(
        "buffer {index} is in use: the kernel may still be running and writing it; \
         shut the bridge down (`shutdown`) before downloading or uploading its buffers"
    )]
    BufferInUse {
        /// The buffer's index.
        index: usize,
    },
    /// A thread the bridge needs (its call service thread) could not start.
    #[error("could not start a thread: {0}")]
    Thread(String),
    /// Memory for the rings, or a bridge-owned buffer, could not be allocated.
    #[error("could not allocate {bytes} bytes: {reason}")]
    Alloc {
        /// How much was asked for.
        bytes: usize,
        /// Why it failed.
        reason: String,
    },
}

/// `Result` with [`Error`].
///
/// ```
/// use ringbridge::{Backend, Bridge, Result};
/// fn reply_len(bridge: &Bridge, payload: &[u8]) -> Result<usize> {
///     Ok(bridge.round_trip(payload)?.payload.len())
/// }
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
/// assert_eq!(reply_len(&bridge, b"four")?, 4);
/// assert!(reply_len(&bridge, &[0; 100]).is_err());
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
