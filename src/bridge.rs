//! The user-facing bridge: launch a device half, send requests, receive replies.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{Backend, Engine, SharedMemory, StripeMemory};
use crate::buffer::{BufferInit, BufferMemory, Buffers, HostBuffer};
use crate::error::RingId;
use crate::error::{Error, Result};
use crate::fallback::{HostEngine, HostHandler, HostKernel};
use crate::layout::{
    KIND_ERROR, KIND_EVENT, KIND_NO_REPLY, KIND_REQUEST, LaunchArgs, STATUS_FAILED,
    STATUS_LAUNCHING, STATUS_STOPPED,
};
use crate::message::{MessageEnvelope, MessageHeader};
use crate::ring::{
    AUTO_LANES_MAX_SLOT_SIZE, Control, HostMemory, KernelReport, LaneConsumer, LaneProducer,
    RegionLayout, RingConsumer, RingProducer, RingRef, RingSpec, SlotFormat, describe_error,
};
use crate::sync::lock;
use crate::user_kernel::{HandlerTraits, UserKernel};
use crate::wait::{Doorbell, WaitPolicy};

/// What runs on the device side of a bridge.
///
/// ```
/// use ringbridge::{Backend, Bridge, Kernel};
/// use ringbridge::fallback::HostHandler;
/// let reverse = HostHandler::new(|_hdr, input, out| {
///     for (o, i) in out.iter_mut().zip(input.iter().rev()) { *o = *i; }
///     Ok(input.len())
/// });
/// let bridge = Bridge::builder()
///     .backend(Backend::Host)
///     .kernel(Kernel::Host(reverse))
///     .launch()?;
/// assert_eq!(bridge.round_trip(b"abc")?.payload, b"cba");
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub enum Kernel {
    /// Replies with the request's payload, every byte plus one (wrapping),
    /// its flags echoed and `correlation` set to the request's `seq`.
    #[default]
    Echo,
    /// Treats the payload as `f32`s and replies with each one times `factor`.
    /// A payload whose length is not a multiple of 4 gets an error reply
    /// with code 1.
    ScaleF32 {
        /// The factor.
        factor: f32,
    },
    /// A user's kernel image (cubin, fatbin or PTX) whose `entry` includes
    /// `kernels/ringbridge.cuh` and serves the rings (CUDA backend only).
    /// The entry takes `(rb_control*, rb_ring* h2k, rb_ring* k2h)`.
    Custom {
        /// The image's bytes.
        image: Arc<[u8]>,
        /// The entry point's name.
        entry: String,
        /// Blocks to launch (the built-in serve loop uses one).
        grid: u32,
        /// Threads per block.
        block: u32,
    },
    /// A Rust handler run by the fallback's serve loop (Host backend only).
    Host(HostHandler),
    /// A user's C++ kernel built by `ringbridge-build` for both backends: on
    /// CUDA from its fatbin (one block per bridge, the builder's block size),
    /// on the host from its host entry. Its handler is built from
    /// [`UserKernel::param_bytes`].
    User(UserKernel),
}

impl Kernel {
    fn needs_cuda(&self) -> bool {
        matches!(self, Kernel::Custom { .. })
    }
    fn needs_host(&self) -> bool {
        matches!(self, Kernel::Host(_))
    }
}

/// Whether `kernel` has a CUDA image, and if not, why.
fn cuda_image_of(kernel: &Kernel) -> std::result::Result<(), String> {
    match kernel {
        Kernel::User(u) if u.fatbin().is_none() => Err(format!(
            "kernel {} has no CUDA image ({})",
            u.entry(),
            u.no_fatbin_reason()
        )),
        Kernel::User(_) | Kernel::Custom { .. } => Ok(()),
        _ if !crate::kernels::KERNELS_COMPILED => Err(format!(
            "kernels not compiled ({})",
            crate::kernels::NOT_COMPILED_REASON
        )),
        _ => Ok(()),
    }
}

/// Why a kernel of these traits runs in the slot format only ("kernel X is
/// cooperative / sends messages"), or `None` when it runs in either.
fn slots_only(entry: &str, traits: HandlerTraits) -> Option<String> {
    let what = match (traits.cooperative, traits.sends) {
        (true, true) => "is cooperative and sends messages",
        (true, false) => "is cooperative",
        (false, true) => "sends messages",
        (false, false) => return None,
    };
    Some(format!("kernel {entry} {what}"))
}

/// Configures and launches a [`Bridge`].
///
/// ```
/// use ringbridge::{Backend, Bridge, Kernel};
/// let bridge = Bridge::builder()
///     .backend(Backend::Host)
///     .capacity(64)
///     .slot_size(64)
///     .kernel(Kernel::Echo)
///     .launch()?;
/// let reply = bridge.round_trip(b"abc")?;
/// assert_eq!(reply.payload, b"bcd");
/// bridge.shutdown()?;
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "call .launch() to start the bridge"]
pub struct BridgeBuilder {
    backend: Backend,
    device: usize,
    capacity: usize,
    slot_size: usize,
    format: SlotFormat,
    kernel: Kernel,
    /// Threads per block of a built-in kernel; `None`: per format.
    block: Option<u32>,
    /// Tests only: run the host backend as an emulated block of this many threads.
    emulated_block: Option<u32>,
    hang_timeout: Duration,
    launch_timeout: Duration,
    shutdown_timeout: Duration,
    check_interval: u64,
    wait_policy: WaitPolicy,
    /// The kernel's buffers, numbered in this order.
    buffers: Vec<BufferInit>,
}

/// Threads per block of a built-in kernel in the slot format, by default.
const DEFAULT_SLOTS_BLOCK: u32 = 1024;
/// Threads per block of a built-in kernel in the lane format, by default.
const DEFAULT_LANES_BLOCK: u32 = 128;

impl Default for BridgeBuilder {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            device: 0,
            capacity: 1024,
            slot_size: 64,
            format: SlotFormat::Auto,
            kernel: Kernel::Echo,
            block: None,
            emulated_block: None,
            hang_timeout: Duration::from_millis(500),
            launch_timeout: Duration::from_secs(20),
            shutdown_timeout: Duration::from_secs(2),
            check_interval: 1024,
            wait_policy: WaitPolicy::default(),
            buffers: Vec::new(),
        }
    }
}

impl BridgeBuilder {
    /// Which backend to use (default [`Backend::Auto`]).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.backend(), Backend::Host);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    /// CUDA device ordinal (default 0).
    ///
    /// With [`Backend::Auto`], a device that does not exist means the host
    /// fallback:
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let (backend, why) = Bridge::builder().device(usize::MAX).resolve_backend()?;
    /// assert_eq!(backend, Backend::Host);
    /// assert!(why.starts_with("no CUDA"), "{why}");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn device(mut self, ordinal: usize) -> Self {
        self.device = ordinal;
        self
    }
    /// Slots per ring, rounded up to a power of two (default 1024).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).capacity(10).launch()?;
    /// assert_eq!(bridge.spec().capacity(), 16);
    /// let zero = Bridge::builder().backend(Backend::Host).capacity(0).launch();
    /// assert!(matches!(zero, Err(Error::InvalidCapacity { requested: 0, .. })));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn capacity(mut self, slots: usize) -> Self {
        self.capacity = slots;
        self
    }
    /// Bytes per slot: a power of two of at least 64 (default 64, which
    /// carries 32 bytes of payload). See [`RingSpec::slot_size_for`].
    ///
    /// This sets the payload the bridge accepts, `bytes - 32`
    /// ([`Bridge::max_payload`]), whatever the [`format`](Self::format): in
    /// lane format the rings get lane slots large enough for that payload
    /// ([`RingSpec::lane_slot_size_for`]; see [`Bridge::spec`]).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).slot_size(256).launch()?;
    /// assert_eq!(bridge.max_payload(), 224);
    /// assert_eq!(bridge.round_trip(&[1; 224])?.payload, [2; 224]);
    /// let odd = Bridge::builder().backend(Backend::Host).slot_size(100).launch();
    /// assert!(matches!(odd, Err(Error::InvalidSlotSize { requested: 100, .. })));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn slot_size(mut self, bytes: usize) -> Self {
        self.slot_size = bytes;
        self
    }
    /// How slots carry messages (default [`SlotFormat::Auto`]: on CUDA,
    /// flagged lanes when the slot size is at most
    /// [`AUTO_LANES_MAX_SLOT_SIZE`], so payloads up to 96 bytes, and the
    /// kernel is a built-in one; slots otherwise, and always on the host
    /// fallback, where head-then-payload measured faster than lanes (fewer
    /// cache lines change hands). A custom image gets lanes only when asked
    /// for, and a [`Kernel::User`] whose handler is cooperative or sends
    /// messages of its own ([`UserKernel::traits`],
    /// [`HandlerTraits::needs_slots`]) never: it runs in the slot format
    /// only, and asking for lanes with it is [`Error::InvalidArgument`] at
    /// launch, before anything starts.) [`SlotFormat::Lanes`] carries at
    /// most 248 bytes and, on CUDA, needs a block of at least 32 threads.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use ringbridge::ring::SlotFormat;
    /// let auto = Bridge::builder().backend(Backend::Host).slot_size(128).launch()?;
    /// assert_eq!(auto.format(), SlotFormat::Slots);
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .slot_size(128)
    ///     .format(SlotFormat::Lanes)
    ///     .launch()?;
    /// assert_eq!(bridge.format(), SlotFormat::Lanes);
    /// assert_eq!(bridge.max_payload(), 96);
    /// assert_eq!(bridge.round_trip(&[7; 96])?.payload, vec![8; 96]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn format(mut self, format: SlotFormat) -> Self {
        self.format = format;
        self
    }
    /// What runs on the device side (default [`Kernel::Echo`]).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Kernel};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .kernel(Kernel::ScaleF32 { factor: 3.0 })
    ///     .launch()?;
    /// let reply = bridge.round_trip(&2.0f32.to_ne_bytes())?;
    /// assert_eq!(reply.payload, 6.0f32.to_ne_bytes());
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self
    }
    /// Threads per block for the built-in kernels (1 to 1024). Default: 1024
    /// in the slot format, where more threads keep more loads of mapped
    /// memory in flight, and 128 in the lane format, where each batch polls
    /// one slot per warp and a smaller block makes each round's barriers
    /// cheaper (measured: 2.8 us against 3.2 us p50 at 64 B on an H200).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).block_size(32).launch()?;
    /// assert_eq!(bridge.round_trip(&[5])?.payload, [6]);
    /// let none = Bridge::builder().backend(Backend::Host).block_size(0).launch();
    /// assert!(matches!(none, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn block_size(mut self, threads: u32) -> Self {
        self.block = Some(threads);
        self
    }
    /// A test mode for a kernel's handler without a GPU: on
    /// [`Backend::Host`], runs the serve loop and the handler as a block of
    /// `threads` (1 to 1024, at most the entry's bound) CPU threads that
    /// emulate a CUDA thread block (barriers, warp shuffle and votes), so
    /// the requests of one batch run concurrently, one per thread, as on the
    /// GPU: a race between in-flight requests or a missing `b.sync()` in a
    /// cooperative handler shows up in CI. The fallback proper serves them
    /// one after another on one thread and cannot show either.
    ///
    /// Works for the built-in kernels, a user's [`Kernel::User`] (from the
    /// emulation library ringbridge-build compiles beside its host build,
    /// loaded on the first use) and Rust handlers ([`Kernel::Host`]). Slow:
    /// a barrier is a futex round. One emulated block runs at a time per
    /// kernel library; no stripes.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Kernel};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .kernel(Kernel::Echo)
    ///     .emulate_block(64)
    ///     .launch()?;
    /// let replies: Vec<_> = (0u8..10).map(|i| bridge.round_trip(&[i])).collect::<Result<_, _>>()?;
    /// assert_eq!(replies[9].payload, [10]);
    /// bridge.shutdown()?;
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn emulate_block(mut self, threads: u32) -> Self {
        self.emulated_block = Some(threads);
        self
    }
    /// How long the kernel's heartbeat may stand still before waiting calls
    /// fail with [`Error::KernelHung`] (default 500 ms).
    ///
    /// A hang is a handler, or a batch, that makes no progress for this
    /// long. The serve loop beats after every batch that ends a millisecond
    /// or more after its last beat (on the fallback: its clock's tick, a few
    /// ms), and every `check_interval` turns when it has nothing to serve,
    /// so a stream through a slow handler is never taken for a hang however
    /// many requests a batch holds; a single batch whose handlers together
    /// run longer than this is.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .hang_timeout(Duration::from_secs(2))
    ///     .launch()?;
    /// assert_eq!(bridge.round_trip(&[0])?.payload, [1]);
    /// let zero = Bridge::builder().backend(Backend::Host).hang_timeout(Duration::ZERO).launch();
    /// assert!(matches!(zero, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn hang_timeout(mut self, timeout: Duration) -> Self {
        self.hang_timeout = timeout;
        self
    }
    /// How long `launch` waits for the kernel to start serving (default 20 s:
    /// the first launch on a GPU loads the module).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use ringbridge::layout::STATUS_RUNNING;
    /// use std::time::Duration;
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .launch_timeout(Duration::from_secs(5))
    ///     .launch()?;
    /// // `launch` returned: the device half is serving.
    /// assert_eq!(bridge.stats().kernel.status, STATUS_RUNNING);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn launch_timeout(mut self, timeout: Duration) -> Self {
        self.launch_timeout = timeout;
        self
    }
    /// How long `shutdown` waits for the kernel to stop (default 2 s).
    ///
    /// The kernel looks at the stop request after the batch it is serving,
    /// at most about a millisecond later (on the fallback: its clock's tick,
    /// a few ms), so it stops within one batch's handler time plus that,
    /// whatever the message size or how busy the stream is. A kernel with
    /// nothing to serve (or waiting for room in a full reply ring) looks at
    /// it every `check_interval` polls, and a backed-off fallback on every
    /// poll.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .shutdown_timeout(Duration::from_secs(5))
    ///     .launch()?;
    /// bridge.shutdown()?; // the fallback's thread stops well within 5 s
    /// assert!(matches!(bridge.send(&[1]), Err(Error::ShutDown)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
    /// How blocking calls, and the host fallback's serve thread, wait when
    /// there is nothing to do (default [`WaitPolicy::SpinThenPark`]: spin
    /// briefly, then sleep until woken). See [`WaitPolicy`].
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, WaitPolicy};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .wait_policy(WaitPolicy::SpinThenPark)
    ///     .launch()?;
    /// std::thread::sleep(Duration::from_millis(20)); // both sides park
    /// assert_eq!(bridge.round_trip(b"x")?.payload, b"y"); // and wake
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn wait_policy(mut self, policy: WaitPolicy) -> Self {
        self.wait_policy = policy;
        self
    }

    /// Adds a bridge-owned buffer (see [`crate::buffer`]): numbered 0, 1, ...
    /// in the order added, allocated and filled at launch (device memory on
    /// CUDA, host memory on the fallback), passed to the kernel in its
    /// launch arguments ([`LaunchArgs::buffers`]), readable and writable
    /// from the host with [`Bridge::download`] and [`Bridge::upload`] once
    /// the kernel stopped, and freed with the bridge.
    ///
    /// `launch` refuses more than [`MAX_BUFFERS`](crate::layout::MAX_BUFFERS)
    /// buffers, or one of zero bytes, with [`Error::InvalidArgument`]; a
    /// [`StripedBridge`](crate::StripedBridge) refuses buffers altogether.
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .buffer(BufferInit::from_pod(&[10u32, 20]))
    ///     .launch()?;
    /// assert_eq!(bridge.buffer_count(), 1);
    /// bridge.shutdown()?;
    /// assert_eq!(bridge.download_pod::<u32>(0)?, [10, 20]);
    ///
    /// let empty = Bridge::builder().backend(Backend::Host).buffer(BufferInit::zeroed(0)).launch();
    /// assert!(matches!(empty, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn buffer(mut self, init: BufferInit) -> Self {
        self.buffers.push(init);
        self
    }

    /// Why a [`StripedBridge`](crate::StripedBridge) cannot run this
    /// configuration, if it cannot.
    pub(crate) fn striping_refusal(&self) -> Option<String> {
        if let Kernel::User(u) = &self.kernel {
            if u.traits().sends {
                return Some(format!(
                    "kernel {} sends messages of its own, and a kernel that sends messages \
                     of its own cannot be striped: its events would break the stripes' \
                     round-robin order; use a Bridge",
                    u.entry()
                ));
            }
        }
        if !self.buffers.is_empty() {
            return Some(
                "a striped bridge takes no buffers (its stripes stop one by one, so none \
                 could tell when the others stopped using a shared buffer); use a Bridge"
                    .into(),
            );
        }
        None
    }

    /// Picks the backend `Auto` would use for this configuration, and why.
    ///
    /// Checks only; launches nothing. A kernel that the chosen backend cannot
    /// run is an error:
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error, Kernel};
    /// let (backend, why) = Bridge::builder().backend(Backend::Host).resolve_backend()?;
    /// assert_eq!((backend, why.as_str()), (Backend::Host, "host backend requested"));
    /// let custom = Kernel::Custom {
    ///     image: vec![0u8; 16].into(),
    ///     entry: "serve".into(),
    ///     grid: 1,
    ///     block: 32,
    /// };
    /// let r = Bridge::builder().backend(Backend::Host).kernel(custom).resolve_backend();
    /// assert!(matches!(r, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn resolve_backend(&self) -> Result<(Backend, String)> {
        match self.backend {
            Backend::Host if self.kernel.needs_cuda() => Err(Error::InvalidArgument(
                "a custom kernel image needs the CUDA backend".into(),
            )),
            Backend::Cuda if self.kernel.needs_host() => Err(Error::InvalidArgument(
                "a Rust host handler runs on the host backend only".into(),
            )),
            Backend::Host => Ok((Backend::Host, "host backend requested".into())),
            Backend::Cuda => match &self.kernel {
                Kernel::User(_) => match cuda_image_of(&self.kernel) {
                    Ok(()) => Ok((Backend::Cuda, "CUDA backend requested".into())),
                    Err(why) => Err(Error::InvalidArgument(why)),
                },
                _ => Ok((Backend::Cuda, "CUDA backend requested".into())),
            },
            Backend::Auto => {
                // Only the kernels that run on one backend alone decide by
                // kind; the others (built-ins, user kernels) by the machine.
                if self.kernel.needs_host() {
                    return Ok((Backend::Host, "the kernel is a Rust host handler".into()));
                }
                if self.kernel.needs_cuda() {
                    return Ok((Backend::Cuda, "a custom kernel image needs CUDA".into()));
                }
                match cuda_image_of(&self.kernel).and_then(|()| cuda_ready(self.device)) {
                    Ok(()) => Ok((Backend::Cuda, format!("CUDA device {} found", self.device))),
                    Err(why) => Ok((Backend::Host, format!("no CUDA: {why}"))),
                }
            }
        }
    }

    /// The rings' shape for `backend`, and the payload the bridge accepts.
    fn resolve_spec(&self, backend: Backend) -> Result<(RingSpec, usize)> {
        let slots = RingSpec::new(self.capacity, self.slot_size)?;
        let max_payload = slots.max_payload();
        let slots_only = match &self.kernel {
            Kernel::User(u) => slots_only(u.entry(), u.traits()),
            _ => None,
        };
        if !self.lanes_for(backend, slots_only)? {
            return Ok((slots, max_payload));
        }
        let lane_slot = RingSpec::lane_slot_size_for(max_payload).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the lane format carries at most 248 bytes; slot size {} carries {max_payload}",
                self.slot_size
            ))
        })?;
        Ok((RingSpec::lanes(self.capacity, lane_slot)?, max_payload))
    }

    /// Whether the rings are in the lane format on `backend`, for a kernel
    /// that runs in the slot format only when `slots_only` says why.
    fn lanes_for(&self, backend: Backend, slots_only: Option<String>) -> Result<bool> {
        Ok(match self.format {
            SlotFormat::Slots => false,
            SlotFormat::Lanes => {
                if let Some(why) = slots_only {
                    return Err(Error::InvalidArgument(format!(
                        "{why}: it runs in the slot format only, not in lanes"
                    )));
                }
                if backend == Backend::Cuda && self.block_threads() < 32 {
                    return Err(Error::InvalidArgument(format!(
                        "the lane format needs a block of at least 32 threads, not {}",
                        self.block_threads()
                    )));
                }
                true
            }
            SlotFormat::Auto => {
                backend == Backend::Cuda
                    && self.slot_size <= AUTO_LANES_MAX_SLOT_SIZE
                    && !matches!(self.kernel, Kernel::Custom { .. })
                    && slots_only.is_none()
                    && self.block_threads() >= 32
            }
        })
    }

    /// Threads per block of the kernel launched for `format` (`Slots` or
    /// `Lanes`; for `Auto`, before it is resolved: the larger default).
    fn block_threads_for(&self, format: SlotFormat) -> u32 {
        match (&self.kernel, self.block) {
            (Kernel::Custom { block, .. }, _) => *block,
            (_, Some(threads)) => threads,
            (_, None) if format == SlotFormat::Lanes => DEFAULT_LANES_BLOCK,
            (_, None) => DEFAULT_SLOTS_BLOCK,
        }
    }

    fn block_threads(&self) -> u32 {
        self.block_threads_for(self.format)
    }

    /// Allocates the rings, starts the device half and waits until it serves.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.send(b"x")?, 0);
    /// assert_eq!(bridge.recv()?.payload, b"y");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn launch(self) -> Result<Bridge> {
        self.launch_group(1)?
            .pop()
            .ok_or_else(|| Error::InvalidArgument("a group of one launched no bridge".into()))
    }

    /// Launches `stripes` bridges that share one allocation and one device
    /// half's launch: on CUDA one kernel of `stripes` blocks, block `b`
    /// serving bridge `b`'s rings; on the fallback one serving thread per
    /// bridge, playing block `b`. Everything is allocated before anything
    /// starts (see [`crate::striped`]). With `stripes == 1` this is
    /// [`launch`](Self::launch).
    pub(crate) fn launch_group(self, stripes: usize) -> Result<Vec<Bridge>> {
        RingSpec::new(self.capacity, self.slot_size)?;
        for threads in [self.block, self.emulated_block].into_iter().flatten() {
            if !(1..=1024).contains(&threads) {
                return Err(Error::InvalidArgument(format!(
                    "block size {threads} is not in 1..=1024"
                )));
            }
        }
        if self.hang_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "hang timeout must not be zero".into(),
            ));
        }
        if stripes == 0 || u32::try_from(stripes).is_err() {
            return Err(Error::InvalidArgument(format!(
                "{stripes} stripes: a group has at least one, and fewer than 2^32"
            )));
        }
        crate::buffer::check(&self.buffers)?;
        if stripes > 1 && !self.buffers.is_empty() {
            return Err(Error::InvalidArgument(
                "a striped group takes no buffers".into(),
            ));
        }
        if stripes > 1 && self.emulated_block.is_some() {
            return Err(Error::InvalidArgument(
                "the block emulation runs one block at a time: no stripes".into(),
            ));
        }
        let (backend, reason) = self.resolve_backend()?;
        let (spec, max_payload) = self.resolve_spec(backend)?;
        let layout = RegionLayout::new(spec)?;
        let mut args = self.launch_args();
        let (parts, buffers) = match backend {
            Backend::Host => launch_host(&self, &layout, &mut args, stripes)?,
            _ => launch_cuda(&self, &layout, &mut args, stripes)?,
        };
        let buffers = Arc::new(buffers);
        // From here on, dropping the bridges stops what was started.
        let bridges: Vec<Bridge> = parts
            .into_iter()
            .map(|(memory, engine)| {
                Bridge::assemble(
                    &self,
                    &layout,
                    Launched {
                        memory,
                        engine,
                        buffers: Arc::clone(&buffers),
                        args,
                    },
                    backend,
                    &reason,
                    max_payload,
                )
            })
            .collect();
        // One deadline for the whole group: its blocks start together.
        let deadline = Instant::now() + self.launch_timeout;
        for bridge in &bridges {
            bridge.wait_started(deadline, self.launch_timeout)?;
        }
        Ok(bridges)
    }
}

/// One bridge's region and the engine serving it.
type Part = (Arc<dyn SharedMemory>, Box<dyn Engine>);

/// What a launch made for one bridge.
struct Launched {
    memory: Arc<dyn SharedMemory>,
    engine: Box<dyn Engine>,
    /// The kernel's buffers (shared by the stripes of a group; a group
    /// has none).
    buffers: Arc<Buffers>,
    /// What the kernel was launched with.
    args: LaunchArgs,
}

/// Writes the configuration both sides read before the device half starts
/// into one region's words.
/// The control block's `param` word: the parameter's first 8 bytes.
fn param_word(args: &LaunchArgs) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&args.param[..8]);
    u64::from_le_bytes(first)
}

fn prepare(layout: &RegionLayout, words: &[AtomicU64], param: u64, loop_cfg: LoopConfig) {
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
struct LoopConfig {
    check_interval: u64,
    wait_policy: WaitPolicy,
}

impl BridgeBuilder {
    /// What the kernel is launched with besides its rings: its parameter.
    fn launch_args(&self) -> LaunchArgs {
        match &self.kernel {
            Kernel::ScaleF32 { factor } => {
                let mut args = LaunchArgs::default();
                args.param[..4].copy_from_slice(&factor.to_bits().to_le_bytes());
                args.param_size = 4;
                args
            }
            Kernel::User(u) => u.launch_args(),
            _ => LaunchArgs::default(),
        }
    }

    fn loop_config(&self) -> LoopConfig {
        LoopConfig {
            check_interval: self.check_interval,
            wait_policy: self.wait_policy,
        }
    }
}

/// Prepares `stripes` regions of `group`, `layout.stripe_stride()` apart,
/// each as [`prepare`] does, and tells each the group's shape.
fn prepare_group<M: SharedMemory + ?Sized>(
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
fn stripe_views<M: SharedMemory + 'static>(
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
fn group_bytes(layout: &RegionLayout, stripes: usize) -> Result<usize> {
    let stride = layout.stripe_stride();
    stride.checked_mul(stripes).ok_or_else(|| Error::Alloc {
        bytes: usize::MAX,
        reason: format!("{stripes} regions of {stride} bytes overflow"),
    })
}

/// Asks every region's device half to stop (a group whose launch failed
/// half-way).
fn terminate_all(regions: &[Arc<dyn SharedMemory>]) {
    for region in regions {
        Control::new(Arc::clone(region)).request_terminate();
    }
}

fn launch_host(
    b: &BridgeBuilder,
    layout: &RegionLayout,
    args: &mut LaunchArgs,
    stripes: usize,
) -> Result<(Vec<Part>, Buffers)> {
    let param = param_word(args);
    // Before the serve thread starts, which is given their addresses.
    let buffers = Buffers::allocate(&b.buffers, |i, init| {
        Ok(Box::new(HostBuffer::new(i, init)?) as Box<dyn BufferMemory>)
    })?;
    buffers.describe(args);
    let shared_args = Arc::new(*args);
    let kernel = || match b.kernel.clone() {
        Kernel::Echo => HostKernel::User(crate::kernels::builtin::ringbridge_echo()),
        Kernel::ScaleF32 { .. } => {
            HostKernel::User(crate::kernels::builtin::ringbridge_scale_f32())
        }
        Kernel::Host(h) => HostKernel::Callback(h),
        Kernel::User(u) => HostKernel::User(u),
        Kernel::Custom { .. } => unreachable!("resolve_backend rejects it"),
    };
    if stripes == 1 {
        let mem = HostMemory::new(layout.total_bytes)?;
        prepare(layout, mem.words(), param, b.loop_config());
        let engine = HostEngine::spawn(
            &mem,
            layout,
            kernel(),
            b.emulated_block,
            0,
            Arc::clone(&shared_args),
        )?;
        return Ok((vec![(mem, Box::new(engine))], buffers));
    }
    let bytes = group_bytes(layout, stripes)?;
    let group = HostMemory::new(bytes)?;
    prepare_group(layout, &*group, stripes, param, b.loop_config())?;
    let regions = stripe_views(layout, &group, stripes)?;
    let mut parts: Vec<Part> = Vec::with_capacity(stripes);
    for (block, region) in regions.iter().enumerate() {
        // Every thread gets region 0's addresses and serves region `block`,
        // exactly as block `block` of a striped launch does on the GPU.
        match HostEngine::spawn(
            &group,
            layout,
            kernel(),
            None,
            block as u32,
            Arc::clone(&shared_args),
        ) {
            Ok(engine) => parts.push((Arc::clone(region), Box::new(engine))),
            Err(e) => {
                terminate_all(&regions);
                return Err(e);
            }
        }
    }
    Ok((parts, buffers))
}

/// Whether the driver loads and has device `device` (the kernel's image is
/// [`cuda_image_of`]'s question).
fn cuda_ready(device: usize) -> std::result::Result<(), String> {
    crate::cuda::device_info(device)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn launch_cuda(
    b: &BridgeBuilder,
    layout: &RegionLayout,
    launch_args: &mut LaunchArgs,
    stripes: usize,
) -> Result<(Vec<Part>, Buffers)> {
    let param = param_word(launch_args);
    let built_in_block = b.block_threads_for(layout.spec.format());
    let (image, entry, grid, block): (&[u8], &str, u32, u32) = match &b.kernel {
        Kernel::Echo => (
            crate::kernels::image("echo")?.fatbin,
            crate::kernels::ECHO_ENTRY,
            1,
            built_in_block,
        ),
        Kernel::ScaleF32 { .. } => (
            crate::kernels::image("scale")?.fatbin,
            crate::kernels::SCALE_F32_ENTRY,
            1,
            built_in_block,
        ),
        Kernel::Custom {
            image,
            entry,
            grid,
            block,
        } => (image, entry.as_str(), *grid, *block),
        Kernel::User(u) => (
            u.fatbin().ok_or_else(|| {
                Error::InvalidArgument(format!("kernel {} has no CUDA image", u.entry()))
            })?,
            u.entry(),
            1,
            built_in_block,
        ),
        Kernel::Host(_) => unreachable!("resolve_backend rejects it"),
    };
    let ctx = crate::cuda::context(b.device)?;
    // Allocated and filled before the kernel runs: device allocations wait
    // for running work (DeviceBusy while one of ours may run).
    let buffers = Buffers::allocate(&b.buffers, |i, init| {
        Ok(Box::new(crate::cuda::DeviceBuffer::new(&ctx, i, init)?) as Box<dyn BufferMemory>)
    })?;
    buffers.describe(launch_args);
    let launch_args: &LaunchArgs = launch_args;
    let args = |base: u64| {
        [
            base,
            base + layout.h2k_offset as u64,
            base + layout.k2h_offset as u64,
        ]
    };
    if stripes == 1 {
        let mem = Arc::new(crate::cuda::MappedMemory::new(&ctx, layout.total_bytes)?);
        prepare(layout, mem.words(), param, b.loop_config());
        let kernel = crate::cuda::CudaKernel::launch(
            &ctx,
            image,
            entry,
            grid,
            block,
            args(mem.device_address()),
            launch_args,
        )?;
        return Ok((vec![(mem, Box::new(kernel))], buffers));
    }
    if grid != 1 {
        return Err(Error::InvalidArgument(format!(
            "a striped group launches one block per stripe: give the custom kernel a grid of 1, not {grid}"
        )));
    }
    let bytes = group_bytes(layout, stripes)?;
    // Phase one: the whole group's memory, pinned and prepared, before any
    // kernel of it runs (a page-locked allocation waits for running work).
    let mem = crate::cuda::MappedMemory::new(&ctx, bytes)?;
    prepare_group(layout, &mem, stripes, param, b.loop_config())?;
    // Phase two: one launch of `stripes` blocks, all given region 0.
    let kernel = crate::cuda::CudaKernel::launch(
        &ctx,
        image,
        entry,
        stripes as u32,
        block,
        args(mem.device_address()),
        launch_args,
    )?;
    let group = Arc::new(crate::cuda::CudaGroup::new(kernel, mem));
    let regions = stripe_views(layout, &group, stripes)?;
    let parts = regions
        .into_iter()
        .enumerate()
        .map(|(b, region)| {
            let engine = crate::cuda::StripeEngine::new(&group, b * layout.stripe_stride())?;
            Ok((region, Box::new(engine) as Box<dyn Engine>))
        })
        .collect::<Result<_>>()?;
    Ok((parts, buffers))
}

/// Counters of a bridge.
///
/// ```
/// use ringbridge::{Backend, Bridge};
/// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
/// bridge.send_batch(&[b"a", b"b"])?;
/// bridge.recv()?;
/// let stats = bridge.stats();
/// assert_eq!((stats.sent, stats.received, stats.in_flight), (2, 1, 1));
/// assert_eq!((stats.no_reply, stats.events), (0, 0));
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeStats {
    /// Requests published to H2K.
    pub sent: u64,
    /// Replies (results and error replies) taken from K2H.
    pub received: u64,
    /// Requests the kernel's handler answered with nothing: the
    /// [`KIND_NO_REPLY`] marks the receive calls consumed silently.
    pub no_reply: u64,
    /// Events (messages the kernel sent on its own, [`KIND_EVENT`]) taken
    /// from K2H, whether already returned or still set aside by a
    /// [`round_trip`](Bridge::round_trip). Events answer no request: they
    /// do not change `in_flight`.
    pub events: u64,
    /// Requests not answered yet: `sent - received - no_reply`.
    pub in_flight: u64,
    /// What the kernel last reported (counters as of its last heartbeat).
    pub kernel: KernelReport,
}

/// Heartbeat tracking, shared by every waiting call.
struct Watch {
    last_beat: u64,
    last_change: Instant,
    next_check: Instant,
}

impl Watch {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            last_beat: 0,
            last_change: now,
            next_check: now,
        }
    }
}

/// How often the watchdog looks at the kernel while a call waits or sends.
const CHECK_PERIOD: Duration = Duration::from_millis(1);

struct Core {
    control: Control,
    /// Dropped before `memory` and `buffers` (field order): a CUDA kernel
    /// still running when its handle drops marks its context, so that the
    /// memory and the buffers are leaked rather than freed under it.
    engine: Box<dyn Engine>,
    memory: Arc<dyn SharedMemory>,
    /// The kernel's buffers (see [`crate::buffer`]).
    buffers: Arc<Buffers>,
    /// What the kernel was launched with (its buffers' addresses included).
    launch_args: LaunchArgs,
    backend: Backend,
    backend_reason: String,
    spec: RingSpec,
    max_payload: usize,
    hang_timeout: Duration,
    shutdown_timeout: Duration,
    watch: Mutex<Watch>,
    /// The error every later call returns once the bridge is dead.
    dead: Mutex<Option<Error>>,
    /// `dead.is_some()`, readable without the lock.
    is_dead: AtomicBool,
    /// The kernel is known to have stopped: its memory may be freed.
    stopped: AtomicBool,
    /// `shutdown` asked the kernel to stop: its exit is no failure.
    stopping: AtomicBool,
    /// Requests published and replies released, copied out of the two
    /// directions after each change so that [`Bridge::stats`] never waits
    /// for a direction's lock (a `recv` holds it for its whole wait).
    /// RELAXED: statistics, they order nothing.
    sent: AtomicU64,
    received: AtomicU64,
    /// No-reply marks and events taken from K2H, copied out like `received`.
    /// RELAXED: statistics.
    no_reply: AtomicU64,
    events: AtomicU64,
    /// The wait policy, and the doorbells of a parking host fallback.
    doorbell: Doorbell,
}

impl Core {
    /// Records the bridge's death (the first cause wins) and returns it.
    fn fail(&self, e: Error) -> Error {
        let mut dead = lock(&self.dead);
        let first = dead.get_or_insert(e).clone();
        // Release/Acquire pair with `check_dead`: a thread that sees the flag
        // also finds the error in the mutex (the mutex orders it anyway).
        self.is_dead.store(true, Ordering::Release);
        first
    }

    fn check_dead(&self) -> Result<()> {
        if self.is_dead.load(Ordering::Acquire) {
            if let Some(e) = lock(&self.dead).clone() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The watchdog: looks at the engine and the heartbeat at most every
    /// [`CHECK_PERIOD`]. Cheap when not due (one `Instant::now`).
    fn check(&self, now: Instant) -> Result<()> {
        self.check_dead()?;
        let mut w = lock(&self.watch);
        if now < w.next_check {
            return Ok(());
        }
        w.next_check = now + CHECK_PERIOD;
        let report = self.control.report();
        match self.engine.poll() {
            Err(e) => return Err(self.fail(e)),
            Ok(true) => {
                // Release: pairs with `shutdown`'s acquire load, so whoever
                // sees the kernel stopped also sees what led to it here.
                self.stopped.store(true, Ordering::Release);
                return Err(self.fail(self.exit_error(&report)));
            }
            Ok(false) => {}
        }
        if report.status == STATUS_FAILED || report.status == STATUS_STOPPED {
            return Err(self.fail(self.exit_error(&report)));
        }
        if report.heartbeat != w.last_beat {
            w.last_beat = report.heartbeat;
            w.last_change = now;
        } else if now.duration_since(w.last_change) > self.hang_timeout {
            return Err(self.fail(Error::KernelHung {
                stalled_for: now.duration_since(w.last_change),
            }));
        }
        Ok(())
    }
}

impl Core {
    /// Copies the H2K direction's published count for [`Bridge::stats`].
    /// Called after every publish, so it also wakes a parked serve thread.
    fn count_sent(&self, tx: &Tx) {
        self.sent.store(tx.published(), Ordering::Relaxed);
        self.doorbell.wake_kernel();
    }

    /// Copies the K2H direction's counts for [`Bridge::stats`].
    fn count_received(&self, rx: &RxSide) {
        // Relaxed: statistics (see the fields).
        self.received.store(rx.replies(), Ordering::Relaxed);
        self.no_reply.store(rx.no_reply, Ordering::Relaxed);
        self.events.store(rx.events, Ordering::Relaxed);
    }

    /// Why a kernel that stopped is gone: a requested shutdown, or its error.
    fn exit_error(&self, report: &KernelReport) -> Error {
        // Acquire: pairs with the release store in `shutdown`.
        if self.stopping.load(Ordering::Acquire) && report.status != STATUS_FAILED {
            Error::ShutDown
        } else {
            exit_error(report)
        }
    }
}

fn exit_error(report: &KernelReport) -> Error {
    if report.status == STATUS_FAILED {
        Error::KernelFailed {
            code: report.error_code,
            detail: report.error_detail,
            what: describe_error(report.error_code),
        }
    } else {
        Error::KernelExited
    }
}

/// A running device half and the host ends of its two rings.
///
/// `Bridge` is `Sync`: one thread may send while another receives (each
/// direction has its own lock, so they never wait on each other).
///
/// ```
/// use ringbridge::{Backend, Bridge};
/// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
/// std::thread::scope(|s| {
///     s.spawn(|| for i in 0..100u8 { bridge.send(&[i]).unwrap(); });
///     for i in 0..100u8 {
///         assert_eq!(bridge.recv().unwrap().payload, [i.wrapping_add(1)]);
///     }
/// });
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub struct Bridge {
    tx: Mutex<Tx>,
    rx: Mutex<RxSide>,
    core: Core,
}

/// The host's H2K half, in the rings' format.
enum Tx {
    Slots(RingProducer),
    Lanes(LaneProducer),
}

impl Tx {
    fn write(&mut self, flags: u32, payload: &[u8]) -> Result<Option<u64>> {
        match self {
            Tx::Slots(p) => p.write(KIND_REQUEST, flags, 0, payload),
            Tx::Lanes(p) => p.write(KIND_REQUEST, flags, payload),
        }
    }
    /// Writes one request in place, unpublished (see
    /// [`SendChunk::write_with`]).
    fn write_with(
        &mut self,
        flags: u32,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<Option<u64>> {
        match self {
            Tx::Slots(p) => p.write_with(KIND_REQUEST, flags, 0, fill),
            Tx::Lanes(p) => p.stage_with(KIND_REQUEST, flags, fill),
        }
    }
    /// Forgets what `write_with` wrote since the last `publish`.
    fn discard(&mut self) {
        match self {
            Tx::Slots(p) => p.discard(),
            Tx::Lanes(p) => p.discard(),
        }
    }
    fn publish(&mut self) {
        match self {
            Tx::Slots(p) => p.publish(),
            Tx::Lanes(p) => p.publish(),
        }
    }
    fn try_push(&mut self, flags: u32, payload: &[u8]) -> Result<Option<u64>> {
        let seq = self.write(flags, payload)?;
        self.publish();
        Ok(seq)
    }
    fn free(&mut self, want: u64) -> Result<u64> {
        match self {
            Tx::Slots(p) => p.free(want),
            Tx::Lanes(p) => p.free(want),
        }
    }
    fn next_seq(&self) -> u64 {
        match self {
            Tx::Slots(p) => p.next_seq(),
            Tx::Lanes(p) => p.next_seq(),
        }
    }
    fn published(&self) -> u64 {
        match self {
            Tx::Slots(p) => p.published(),
            Tx::Lanes(p) => p.published(),
        }
    }
}

/// The host's K2H half, in the rings' format.
enum Rx {
    Slots(RingConsumer),
    Lanes(LaneConsumer),
}

impl Rx {
    fn read_with<R>(&mut self, f: impl FnOnce(&MessageHeader, &[u8]) -> R) -> Result<Option<R>> {
        match self {
            Rx::Slots(c) => c.read_with(f),
            Rx::Lanes(c) => c.read_with(f),
        }
    }
    fn release(&mut self) {
        match self {
            Rx::Slots(c) => c.release(),
            Rx::Lanes(c) => c.release(),
        }
    }
    fn try_pop_with<R>(&mut self, f: impl FnOnce(&MessageHeader, &[u8]) -> R) -> Result<Option<R>> {
        let out = self.read_with(f)?;
        self.release();
        Ok(out)
    }
    fn consumed(&self) -> u64 {
        match self {
            Rx::Slots(c) => c.consumed(),
            Rx::Lanes(c) => c.consumed(),
        }
    }
}

/// The host's K2H direction: the ring half, the events a round trip set
/// aside, and the counts of what it took.
struct RxSide {
    ring: Rx,
    /// Events a round trip read while it waited for its reply, oldest
    /// first: every receive call hands these out before reading the ring.
    set_aside: VecDeque<MessageEnvelope>,
    /// No-reply marks taken from the ring.
    no_reply: u64,
    /// Events taken from the ring (handed out or set aside).
    events: u64,
}

impl RxSide {
    fn new(ring: Rx) -> Self {
        Self {
            ring,
            set_aside: VecDeque::new(),
            no_reply: 0,
            events: 0,
        }
    }

    /// Requests answered so far: every K2H message taken but the events
    /// (each answer, reply or no-reply mark, answers one request).
    fn answered(&self) -> u64 {
        self.ring.consumed() - self.events
    }

    /// Replies (results and error replies) taken so far.
    fn replies(&self) -> u64 {
        self.answered() - self.no_reply
    }
}

/// What the next K2H message of a receive is.
enum Taken<R> {
    /// A reply or an event, handed to the caller's closure.
    Message(R),
    /// A no-reply mark (consumed silently, counted).
    NoReply,
}

/// When a blocking call gives up.
#[derive(Clone, Copy)]
enum Deadline {
    Never,
    At(Instant, Duration),
    Now,
}

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Deadline::At(Instant::now() + timeout, timeout)
    }
}

impl Bridge {
    /// A bridge over `memory`, served by `engine`, not yet known to serve.
    fn assemble(
        b: &BridgeBuilder,
        layout: &RegionLayout,
        launched: Launched,
        backend: Backend,
        reason: &str,
        max_payload: usize,
    ) -> Self {
        let Launched {
            memory,
            engine,
            buffers,
            args,
        } = launched;
        let control = Control::new(memory.clone());
        let doorbell = Doorbell::new(memory.clone(), b.wait_policy, backend);
        let h2k = RingRef::new(memory.clone(), layout, RingId::H2k);
        let k2h = RingRef::new(memory.clone(), layout, RingId::K2h);
        let (tx, rx) = match layout.spec.format() {
            SlotFormat::Lanes => (
                Tx::Lanes(LaneProducer::new(h2k)),
                Rx::Lanes(LaneConsumer::new(k2h)),
            ),
            _ => (
                Tx::Slots(RingProducer::new(h2k)),
                Rx::Slots(RingConsumer::new(k2h)),
            ),
        };
        Bridge {
            tx: Mutex::new(tx),
            rx: Mutex::new(RxSide::new(rx)),
            core: Core {
                control,
                engine,
                memory,
                buffers,
                launch_args: args,
                backend,
                backend_reason: reason.to_owned(),
                spec: layout.spec,
                max_payload,
                hang_timeout: b.hang_timeout,
                shutdown_timeout: b.shutdown_timeout,
                watch: Mutex::new(Watch::new()),
                dead: Mutex::new(None),
                is_dead: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
                no_reply: AtomicU64::new(0),
                events: AtomicU64::new(0),
                doorbell,
            },
        }
    }

    /// A builder with the defaults: Auto backend, device 0, 1024 slots of 64 bytes, echo kernel.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.spec().capacity(), 1024);
    /// assert_eq!(bridge.spec().slot_size(), 64);
    /// assert_eq!(bridge.max_payload(), 32);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn builder() -> BridgeBuilder {
        BridgeBuilder::default()
    }

    /// The backend this bridge runs on (never `Auto`).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.backend(), Backend::Host);
    /// assert_ne!(bridge.backend(), Backend::Auto);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn backend(&self) -> Backend {
        self.core.backend
    }

    /// Why that backend was chosen.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.backend_reason(), "host backend requested");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn backend_reason(&self) -> &str {
        &self.core.backend_reason
    }

    /// The rings' shape as allocated: in lane format its slot size is the
    /// lane slot's, which may exceed the builder's slot size (a 64-byte
    /// builder slot becomes a 128-byte lane slot).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use ringbridge::ring::SlotFormat;
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .capacity(8)
    ///     .format(SlotFormat::Lanes)
    ///     .launch()?;
    /// assert_eq!(bridge.spec().capacity(), 8);
    /// assert_eq!(bridge.spec().slot_size(), 128); // a lane slot for 32 bytes
    /// assert_eq!(bridge.max_payload(), 32);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn spec(&self) -> RingSpec {
        self.core.spec
    }

    /// How the rings' slots carry messages (`Slots` or `Lanes`, never `Auto`).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use ringbridge::ring::SlotFormat;
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.format(), SlotFormat::Slots); // Auto on the host fallback
    /// assert_eq!(bridge.format(), bridge.spec().format());
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn format(&self) -> SlotFormat {
        self.core.spec.format()
    }

    /// Largest payload one message carries: the builder's slot size minus
    /// 32, in either format.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).slot_size(128).launch()?;
    /// assert_eq!(bridge.max_payload(), 96);
    /// assert_eq!(bridge.round_trip(&[0; 96])?.payload.len(), 96);
    /// let err = bridge.send(&[0; 97]).unwrap_err();
    /// assert!(matches!(err, Error::PayloadTooLarge { len: 97, max: 96 }));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn max_payload(&self) -> usize {
        self.core.max_payload
    }

    /// Waits until the device half serves, fails, or `deadline` passes
    /// (`timeout` is what the caller allowed, for the error).
    fn wait_started(&self, deadline: Instant, timeout: Duration) -> Result<()> {
        loop {
            let report = self.core.control.report();
            if report.status == STATUS_FAILED {
                return Err(self.core.fail(exit_error(&report)));
            }
            if report.status != STATUS_LAUNCHING {
                return Ok(());
            }
            match self.core.engine.poll() {
                Err(e) => return Err(self.core.fail(e)),
                Ok(true) => {
                    // Release: as in `Core::check`.
                    self.core.stopped.store(true, Ordering::Release);
                    let report = self.core.control.report();
                    return Err(self.core.fail(exit_error(&report)));
                }
                Ok(false) => {}
            }
            if Instant::now() > deadline {
                return Err(self.core.fail(Error::Timeout {
                    op: "launch",
                    after: timeout,
                }));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.max_payload();
        if len > max {
            return Err(Error::PayloadTooLarge { len, max });
        }
        Ok(())
    }

    /// Waits until `attempt` returns `Some`, running the watchdog meanwhile.
    fn wait<T>(
        &self,
        deadline: Deadline,
        op: &'static str,
        mut attempt: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let mut waiter = self.core.doorbell.waiter();
        let mut spins = 0u32;
        loop {
            if let Some(v) = attempt()? {
                return Ok(v);
            }
            // Instant::now costs ~20 ns and the check takes a lock: look at
            // the clock every 64 spins, first after 16, so a reply that is
            // a few hundred nanoseconds away is not kept waiting behind a
            // check (a try-only call checks at once). A sleeping waiter
            // checks after every sleep.
            if spins % 64 == 16 || waiter.is_slow() || matches!(deadline, Deadline::Now) {
                let now = Instant::now();
                self.core.check(now)?;
                match deadline {
                    Deadline::Never => {}
                    Deadline::Now => {
                        return Err(if op == "send" {
                            Error::Full
                        } else {
                            Error::Empty
                        });
                    }
                    Deadline::At(at, after) if now >= at => {
                        return Err(Error::Timeout { op, after });
                    }
                    Deadline::At(..) => {}
                }
            }
            spins = spins.wrapping_add(1);
            waiter.snooze(match deadline {
                Deadline::At(at, _) => Some(at),
                _ => None,
            });
        }
    }

    fn send_inner(&self, flags: u32, payload: &[u8], deadline: Deadline) -> Result<u64> {
        self.check_len(payload.len())?;
        self.core.check_dead()?;
        let mut tx = lock(&self.tx);
        let seq = self.wait(deadline, "send", || {
            tx.try_push(flags, payload).map_err(|e| self.core.fail(e))
        })?;
        self.core.count_sent(&tx);
        Ok(seq)
    }

    /// Sends one request, waiting while the H2K ring is full. Returns its
    /// sequence number (the reply's `correlation`).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let first = bridge.send(b"one")?;
    /// let second = bridge.send(b"two")?;
    /// assert_eq!(second, first + 1);
    /// assert_eq!(bridge.recv()?.header.correlation, first);
    /// assert_eq!(bridge.recv()?.header.correlation, second);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send(&self, payload: &[u8]) -> Result<u64> {
        self.send_inner(0, payload, Deadline::Never)
    }

    /// Like [`send`](Self::send), with the header's `flags` word set.
    ///
    /// The echo kernel hands the flags back:
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// bridge.send_with_flags(0xbeef, b"f")?;
    /// let reply = bridge.recv()?;
    /// assert_eq!((reply.header.flags, reply.payload), (0xbeef, b"g".to_vec()));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send_with_flags(&self, flags: u32, payload: &[u8]) -> Result<u64> {
        self.send_inner(flags, payload, Deadline::Never)
    }

    /// Sends without waiting: [`Error::Full`] when the ring is full.
    ///
    /// With nothing received, the replies fill K2H, then the requests fill H2K:
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).capacity(4).launch()?;
    /// let err = loop {
    ///     if let Err(e) = bridge.try_send(b"x") {
    ///         break e;
    ///     }
    /// };
    /// assert!(matches!(err, Error::Full));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn try_send(&self, payload: &[u8]) -> Result<u64> {
        self.send_inner(0, payload, Deadline::Now)
    }

    /// Sends, waiting at most `timeout` for room.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder().backend(Backend::Host).capacity(2).launch()?;
    /// assert_eq!(bridge.send_timeout(b"a", Duration::from_secs(1))?, 0);
    /// // Receiving nothing fills both rings: then a send finds no room in time.
    /// let err = loop {
    ///     if let Err(e) = bridge.send_timeout(b"b", Duration::from_millis(1)) {
    ///         break e;
    ///     }
    /// };
    /// assert!(matches!(err, Error::Timeout { op: "send", .. }));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send_timeout(&self, payload: &[u8], timeout: Duration) -> Result<u64> {
        self.send_inner(0, payload, Deadline::after(timeout))
    }

    /// Sends a slice of plain values as one message.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Kernel};
    /// let bridge = Bridge::builder().backend(Backend::Host)
    ///     .kernel(Kernel::ScaleF32 { factor: 2.0 }).launch()?;
    /// bridge.send_pod(&[1.0f32, 2.5])?;
    /// assert_eq!(bridge.recv_pod::<f32>()?, vec![2.0, 5.0]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send_pod<T: bytemuck::NoUninit>(&self, values: &[T]) -> Result<u64> {
        self.send(bytemuck::cast_slice(values))
    }

    /// Sends every payload, waiting for room as needed; each run of
    /// messages that fits is published with one store. Returns the first
    /// message's sequence number.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// bridge.send(b"0")?;
    /// assert_eq!(bridge.send_batch(&[b"1", b"2", b"3"])?, 1);
    /// let replies: Vec<_> = (0..4).map(|_| bridge.recv().map(|r| r.payload)).collect::<Result<_, _>>()?;
    /// assert_eq!(replies, [b"1", b"2", b"3", b"4"]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<u64> {
        for p in payloads {
            self.check_len(p.as_ref().len())?;
        }
        self.core.check_dead()?;
        let mut tx = lock(&self.tx);
        let first = tx.next_seq();
        let mut next = 0;
        while next < payloads.len() {
            self.wait(Deadline::Never, "send", || {
                let mut wrote = 0;
                while next < payloads.len() {
                    match tx.write(0, payloads[next].as_ref()) {
                        Ok(Some(_)) => {
                            next += 1;
                            wrote += 1;
                        }
                        Ok(None) => break,
                        Err(e) => return Err(self.core.fail(e)),
                    }
                }
                tx.publish();
                self.core.count_sent(&tx);
                Ok((wrote > 0).then_some(()))
            })?;
        }
        Ok(first)
    }

    /// Reserves room for `count` requests in H2K, waiting for it, and holds
    /// the sending direction (other sends wait) until the returned
    /// [`SendChunk`] is published or dropped. Fill it in place with
    /// [`SendChunk::write_with`], then [`SendChunk::publish`] sends every
    /// request at once; a chunk dropped unpublished sends nothing.
    ///
    /// `count` larger than the ring's capacity is [`Error::InvalidArgument`];
    /// a bridge that dies while this waits returns its error, having
    /// reserved nothing.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).capacity(8).launch()?;
    /// let mut chunk = bridge.reserve(2)?;
    /// for word in [b"ab", b"cd"] {
    ///     chunk.write_with(|buf| {
    ///         buf[..2].copy_from_slice(word);
    ///         2
    ///     })?;
    /// }
    /// assert_eq!(chunk.publish()?, 0); // the first request's sequence number
    /// assert_eq!(bridge.recv()?.payload, b"bc");
    /// assert_eq!(bridge.recv()?.payload, b"de");
    /// assert!(matches!(bridge.reserve(9), Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn reserve(&self, count: usize) -> Result<SendChunk<'_>> {
        let capacity = self.core.spec.capacity();
        if count > capacity {
            return Err(Error::InvalidArgument(format!(
                "a reservation of {count} slots in a ring of {capacity}"
            )));
        }
        self.core.check_dead()?;
        let mut tx = lock(&self.tx);
        self.wait(Deadline::Never, "send", || {
            let free = tx.free(count as u64).map_err(|e| self.core.fail(e))?;
            Ok((free >= count as u64).then_some(()))
        })?;
        let first = tx.next_seq();
        Ok(SendChunk {
            bridge: self,
            tx,
            reserved: count,
            written: 0,
            first,
        })
    }

    /// Sends `count` requests written in place: `fill(i, buf)` writes
    /// request `i`'s payload at the start of `buf` (the bridge's
    /// [`max_payload`](Self::max_payload) bytes) and returns its length.
    /// Waits for room for all of them ([`reserve`](Self::reserve)), then
    /// publishes them together. Returns the first one's sequence number.
    ///
    /// In the slot format `buf` is the slot's payload area itself, holding
    /// whatever an earlier message there left (write every byte you count);
    /// in the lane format, whose slots interleave payload words with tags,
    /// it is a zeroed staging buffer on the stack, copied into the lanes.
    ///
    /// All or nothing: a length beyond `max_payload` is
    /// [`Error::PayloadTooLarge`] and `count` beyond the ring's capacity
    /// [`Error::InvalidArgument`]; then no request is sent.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let first = bridge.send_in_place(3, |i, buf| {
    ///     buf[0] = i as u8;
    ///     1
    /// })?;
    /// let mut got = Vec::new();
    /// while got.len() < 3 {
    ///     bridge.recv_batch(8, |h, p| got.push((h.correlation - first, p[0])))?;
    /// }
    /// assert_eq!(got, [(0, 1), (1, 2), (2, 3)]);
    /// let err = bridge.send_in_place(2, |i, buf| if i == 0 { 1 } else { buf.len() + 1 });
    /// assert!(matches!(err, Err(Error::PayloadTooLarge { len: 33, max: 32 })));
    /// assert_eq!(bridge.stats().sent, 3); // the first of those two was not sent either
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send_in_place(
        &self,
        count: usize,
        mut fill: impl FnMut(usize, &mut [u8]) -> usize,
    ) -> Result<u64> {
        let mut chunk = self.reserve(count)?;
        for i in 0..count {
            chunk.write_with(|buf| fill(i, buf))?;
        }
        chunk.publish()
    }

    fn recv_inner<R>(
        &self,
        deadline: Deadline,
        f: impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<R> {
        let mut rx = lock(&self.rx);
        self.recv_locked(&mut rx, deadline, f)
    }

    /// [`recv_inner`](Self::recv_inner) with the K2H direction already held:
    /// the next event set aside, else the next reply or event of the ring
    /// (no-reply marks are consumed on the way).
    fn recv_locked<R>(
        &self,
        rx: &mut RxSide,
        deadline: Deadline,
        mut f: impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<R> {
        if let Some(event) = rx.set_aside.pop_front() {
            return Ok(f(&event.header, &event.payload));
        }
        // Replies already published are handed out even after the kernel
        // stopped or died: the watchdog only runs when the ring is empty.
        let out = self.wait(deadline, "recv", || self.pop_message(rx, &mut f));
        self.core.count_received(rx);
        out
    }

    /// Takes the ring's next reply or event and hands it to `f`, consuming
    /// (and counting) the no-reply marks before it. `Ok(None)`: nothing
    /// (more) there. The caller copies the counts out
    /// ([`Core::count_received`]).
    fn pop_message<R>(
        &self,
        rx: &mut RxSide,
        f: &mut impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        loop {
            match self.pop_one(rx, &mut *f)? {
                None => return Ok(None),
                Some(Taken::NoReply) => {}
                Some(Taken::Message(out)) => return Ok(Some(out)),
            }
        }
    }

    /// Takes the ring's next message (reply, event or no-reply mark) and
    /// frees its slot: a reply or an event goes to `f`, a mark is counted.
    fn pop_one<R>(
        &self,
        rx: &mut RxSide,
        f: &mut impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<Taken<R>>> {
        let out = self.read_one(rx, false, f)?;
        rx.ring.release();
        Ok(out)
    }

    /// [`pop_one`](Self::pop_one) without freeing the slot (see
    /// [`Rx::release`]); with `marks`, a no-reply mark goes to `f` too (as
    /// a [`Taken::Message`]). A ring error kills the bridge.
    fn read_one<R>(
        &self,
        rx: &mut RxSide,
        marks: bool,
        f: &mut impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<Taken<R>>> {
        let got = rx.ring.read_with(|h, p| {
            let out = (h.kind != KIND_NO_REPLY || marks).then(|| f(h, p));
            (h.kind, out)
        });
        match got {
            Ok(None) => Ok(None),
            Ok(Some((kind, out))) => {
                rx.no_reply += u64::from(kind == KIND_NO_REPLY);
                rx.events += u64::from(kind == KIND_EVENT);
                Ok(Some(out.map_or(Taken::NoReply, Taken::Message)))
            }
            Err(e) => {
                rx.ring.release();
                self.core.count_received(rx);
                Err(self.core.fail(e))
            }
        }
    }

    /// Takes ring messages until the next answer to a request (a reply, an
    /// error reply or a no-reply mark), which goes to `f`; the events before
    /// it are set aside, in order, for the next receive calls. `Ok(None)`:
    /// no answer there yet.
    fn pop_answer<R>(
        &self,
        rx: &mut RxSide,
        f: &mut impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        loop {
            let got = rx.ring.try_pop_with(|h, p| {
                if h.kind == KIND_EVENT {
                    Err(envelope(h, p))
                } else {
                    Ok((h.kind == KIND_NO_REPLY, f(h, p)))
                }
            });
            match got.map_err(|e| self.core.fail(e))? {
                None => return Ok(None),
                Some(Err(event)) => {
                    rx.events += 1;
                    rx.set_aside.push_back(event);
                }
                Some(Ok((mark, out))) => {
                    rx.no_reply += u64::from(mark);
                    return Ok(Some(out));
                }
            }
        }
    }

    /// The next answer to a request, waiting for it, handed to `f` with its
    /// kind (a no-reply mark too: `f` sees [`KIND_NO_REPLY`]); events before
    /// it are set aside. For the measurements ([`crate::measure`]).
    pub(crate) fn recv_answer<R>(
        &self,
        mut f: impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<R> {
        let mut rx = lock(&self.rx);
        let out = self.wait(Deadline::Never, "recv", || self.pop_answer(&mut rx, &mut f));
        self.core.count_received(&rx);
        out
    }

    /// [`recv_answer`](Self::recv_answer) without waiting, as an envelope
    /// ([`Error::Empty`] when no answer is there), for the async round
    /// trips ([`crate::asynchronous`]).
    pub(crate) fn try_recv_answer(&self) -> Result<MessageEnvelope> {
        let mut rx = lock(&self.rx);
        let out = self.wait(Deadline::Now, "recv", || {
            self.pop_answer(&mut rx, &mut envelope)
        });
        self.core.count_received(&rx);
        out
    }

    /// Receives one reply, or event, waiting for it.
    ///
    /// # What the receive calls return, in which order
    /// Every receive call ([`recv`](Self::recv), [`try_recv`](Self::try_recv),
    /// [`recv_timeout`](Self::recv_timeout), [`recv_with`](Self::recv_with),
    /// [`recv_pod`](Self::recv_pod), [`recv_batch`](Self::recv_batch), and
    /// the async ones) returns the K2H messages in K2H order: replies and
    /// error replies, and events, the messages a kernel sends on its own
    /// ([`MessageEnvelope::is_event`]). The one exception: events that a
    /// [`round_trip`](Self::round_trip) met while it waited for its reply
    /// are set aside, and returned before any later message.
    ///
    /// A request the kernel's handler answered with nothing leaves a
    /// no-reply mark ([`KIND_NO_REPLY`]) in K2H; the receive calls consume
    /// it silently (never returned) and count it
    /// ([`BridgeStats::no_reply`]), so the request counts as answered.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let seq = bridge.send(&[41])?;
    /// let reply = bridge.recv()?;
    /// assert_eq!((reply.header.correlation, reply.payload), (seq, vec![42]));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv(&self) -> Result<MessageEnvelope> {
        self.recv_inner(Deadline::Never, envelope)
    }

    /// Receives without waiting: [`Error::Empty`] when no reply is there.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert!(matches!(bridge.try_recv(), Err(Error::Empty)));
    /// bridge.send(&[1])?;
    /// let reply = loop {
    ///     match bridge.try_recv() {
    ///         Err(Error::Empty) => continue, // not answered yet
    ///         other => break other?,
    ///     }
    /// };
    /// assert_eq!(reply.payload, [2]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn try_recv(&self) -> Result<MessageEnvelope> {
        self.recv_inner(Deadline::Now, envelope)
    }

    /// Receives, waiting at most `timeout`.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let err = bridge.recv_timeout(Duration::from_millis(1)).unwrap_err();
    /// assert!(matches!(err, Error::Timeout { op: "recv", .. }));
    /// bridge.send(&[9])?;
    /// assert_eq!(bridge.recv_timeout(Duration::from_secs(5))?.payload, [10]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<MessageEnvelope> {
        self.recv_inner(Deadline::after(timeout), envelope)
    }

    /// Receives one reply and hands it to `f` without allocating.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let seq = bridge.send(&[1, 2, 3])?;
    /// let (correlation, sum) = bridge.recv_with(|h, p| (h.correlation, p.iter().sum::<u8>()))?;
    /// assert_eq!((correlation, sum), (seq, 2 + 3 + 4));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv_with<R>(&self, f: impl FnOnce(&MessageHeader, &[u8]) -> R) -> Result<R> {
        let mut f = Some(f);
        self.recv_inner(Deadline::Never, |h, p| {
            (f.take().expect("called once"))(h, p)
        })
    }

    /// Receives one reply as plain values (copied, so alignment does not matter).
    ///
    /// An error reply, or a reply that is not whole values, is
    /// [`Error::InvalidArgument`]:
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error, Kernel};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .kernel(Kernel::ScaleF32 { factor: 0.5 })
    ///     .launch()?;
    /// bridge.send(&[0; 3])?; // not whole f32s: an error reply
    /// assert!(matches!(bridge.recv_pod::<f32>(), Err(Error::InvalidArgument(_))));
    /// bridge.send_pod(&[8.0f32])?;
    /// assert_eq!(bridge.recv_pod::<f32>()?, [4.0]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv_pod<T: bytemuck::AnyBitPattern + bytemuck::NoUninit>(&self) -> Result<Vec<T>> {
        let mut rx = lock(&self.rx);
        let got = self.recv_locked(&mut rx, Deadline::Never, |h, p| {
            if h.kind == KIND_EVENT {
                // Not a reply: put back below, for the next receive.
                Err(envelope(h, p))
            } else if h.kind == KIND_ERROR {
                Ok(Err(Error::InvalidArgument(format!(
                    "the handler answered request {} with error code {}",
                    h.correlation, h.flags
                ))))
            } else if p.len() % std::mem::size_of::<T>() != 0 {
                Ok(Err(Error::InvalidArgument(format!(
                    "a reply of {} bytes is not a whole number of {}-byte values",
                    p.len(),
                    std::mem::size_of::<T>()
                ))))
            } else {
                Ok(Ok(bytemuck::pod_collect_to_vec(p)))
            }
        })?;
        match got {
            Ok(values) => values,
            Err(event) => {
                let what = format!(
                    "the next message is event {} ({} bytes, flags {:#x}), not a reply: \
                     receive it with `recv` (it is kept for the next receive)",
                    event.header.correlation, event.header.len, event.header.flags
                );
                // Still holding K2H: nothing came between, so putting it
                // back in front keeps K2H order.
                rx.set_aside.push_front(event);
                Err(Error::InvalidArgument(what))
            }
        }
    }

    /// Waits for at least one message, then hands up to `max` waiting
    /// replies and events to `f`, in K2H order (the events a
    /// [`round_trip`](Self::round_trip) set aside first), freeing their
    /// slots with one store. Returns how many; no-reply marks are consumed
    /// on the way and not counted.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// bridge.send_batch(&[[1u8], [2], [3]])?;
    /// let mut got = Vec::new();
    /// while got.len() < 3 {
    ///     let n = bridge.recv_batch(8, |_, p| got.push(p[0]))?;
    ///     assert!(n >= 1);
    /// }
    /// assert_eq!(got, [2, 3, 4]);
    /// assert_eq!(bridge.recv_batch(0, |_, _| unreachable!())?, 0);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv_batch(&self, max: usize, f: impl FnMut(&MessageHeader, &[u8])) -> Result<usize> {
        self.recv_batch_inner(max, false, f)
    }

    /// [`recv_batch`](Self::recv_batch); with `marks`, no-reply marks are
    /// handed to `f` too (kind [`KIND_NO_REPLY`]) and counted in the result,
    /// for the measurements, which must see every request answered.
    pub(crate) fn recv_batch_inner(
        &self,
        max: usize,
        marks: bool,
        mut f: impl FnMut(&MessageHeader, &[u8]),
    ) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        let mut rx = lock(&self.rx);
        let mut n = 0;
        while n < max {
            let Some(event) = rx.set_aside.pop_front() else {
                break;
            };
            f(&event.header, &event.payload);
            n += 1;
        }
        let mut pass = |rx: &mut RxSide, n: &mut usize| -> Result<()> {
            while *n < max {
                match self.read_one(rx, marks, &mut f)? {
                    None => break,
                    Some(Taken::Message(())) => *n += 1,
                    Some(Taken::NoReply) => {}
                }
            }
            rx.ring.release();
            self.core.count_received(rx);
            Ok(())
        };
        if n > 0 {
            // Something to hand out already: take what else is there, no wait.
            pass(&mut rx, &mut n)?;
            return Ok(n);
        }
        self.wait(Deadline::Never, "recv", || {
            pass(&mut rx, &mut n)?;
            Ok((n > 0).then_some(n))
        })
    }

    /// Sends one request and waits for its reply.
    ///
    /// Safe to call from several threads at once: round trips take turns,
    /// each gets its own reply. It needs no other reply outstanding (that
    /// one would arrive first): with requests of plain [`send`](Self::send)s
    /// still unanswered, it returns [`Error::InvalidArgument`] before
    /// sending, and the bridge stays usable. Plain sends from other threads
    /// while a round trip waits are fine: their replies come after its own.
    ///
    /// Events the kernel sends before the reply are not lost: the round
    /// trip sets them aside, in order, and the next receive calls
    /// ([`recv`](Self::recv) and its kin, [`recv_batch`](Self::recv_batch),
    /// the async ones) return them first, before anything later in K2H. A
    /// request the handler answers with nothing is [`Error::NoReply`] (the
    /// bridge stays usable; one-way requests are for [`send`](Self::send)).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let reply = bridge.round_trip(&[1, 2, 3])?;
    /// assert_eq!(reply.payload, [2, 3, 4]);
    /// bridge.send(b"unanswered")?;
    /// assert!(matches!(bridge.round_trip(b"x"), Err(Error::InvalidArgument(_))));
    /// bridge.recv()?;
    /// assert_eq!(bridge.round_trip(&[9])?.payload, [10]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn round_trip(&self, payload: &[u8]) -> Result<MessageEnvelope> {
        self.check_len(payload.len())?;
        self.core.check_dead()?;
        // K2H first, for the whole round trip: no other receiver can take
        // this reply, and concurrent round trips wait here for their turn.
        let mut rx = lock(&self.rx);
        let outstanding = |rx: &RxSide| {
            let sent = self.core.sent.load(Ordering::Relaxed);
            sent.saturating_sub(rx.answered())
        };
        // H2K without blocking on it: a `send_batch` holding it may itself
        // wait for room that only a receiver (held off by us) would free.
        // Its first published request makes `outstanding` non-zero, and
        // then this call gives up instead.
        let mut tx = loop {
            let in_flight = outstanding(&rx);
            if in_flight != 0 {
                return Err(replies_outstanding(in_flight));
            }
            match self.tx.try_lock() {
                Ok(tx) => break tx,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => std::thread::yield_now(),
            }
        };
        let seq = self.send_round_trip_request(&mut tx, &rx, payload, Deadline::Never)?;
        drop(tx);
        let answer = self.wait(Deadline::Never, "recv", || {
            self.pop_answer(&mut rx, &mut envelope)
        });
        self.core.count_received(&rx);
        let reply = answer?;
        if reply.header.correlation != seq {
            return Err(self.core.fail(Error::RingCorrupted {
                ring: RingId::K2h,
                what: format!(
                    "reply answers request {} instead of {seq}",
                    reply.header.correlation
                ),
            }));
        }
        if reply.header.kind == KIND_NO_REPLY {
            return Err(Error::NoReply { seq });
        }
        Ok(reply)
    }

    /// The bridge's counters.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.stats().sent, 0);
    /// bridge.round_trip(b"x")?;
    /// let stats = bridge.stats();
    /// assert_eq!((stats.sent, stats.received, stats.in_flight), (1, 1, 0));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    ///
    /// Never waits: the counters are copies the sending and receiving calls
    /// update, so a monitoring thread can read them while another thread
    /// blocks in [`recv`](Self::recv). Read while messages move, `sent` and
    /// `received` may be from moments a few nanoseconds apart.
    pub fn stats(&self) -> BridgeStats {
        // Independent copies: a reply can be counted a moment before
        // the sender counts its request, hence the saturating difference.
        let sent = self.core.sent.load(Ordering::Relaxed);
        let received = self.core.received.load(Ordering::Relaxed);
        let no_reply = self.core.no_reply.load(Ordering::Relaxed);
        BridgeStats {
            sent,
            received,
            no_reply,
            events: self.core.events.load(Ordering::Relaxed),
            in_flight: sent.saturating_sub(received + no_reply),
            kernel: self.core.control.report(),
        }
    }

    /// Asks the kernel to stop and waits (at most the shutdown timeout) until
    /// it has. Idempotent.
    ///
    /// Replies (and events) the kernel published before it stopped stay
    /// receivable: `recv`, `try_recv` and `recv_batch` hand them out in
    /// order, then
    /// return [`Error::ShutDown`]. Requests it had not answered are never
    /// answered (`stats().in_flight` counts them once the replies are
    /// drained). Every send after a shutdown returns [`Error::ShutDown`].
    ///
    /// If the kernel does not stop in time, its ring memory and its buffers
    /// are leaked (never freed under a running kernel) and [`Error::Timeout`]
    /// is returned.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// bridge.shutdown()?;
    /// bridge.shutdown()?; // idempotent
    /// assert!(matches!(bridge.round_trip(b"late"), Err(Error::ShutDown)));
    /// assert!(matches!(bridge.try_recv(), Err(Error::ShutDown)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn shutdown(&self) -> Result<()> {
        // Acquire: pairs with the release stores of `stopped` (here, in
        // `Core::check` and in `wait_started`), after the engine said the
        // kernel is gone.
        if self.core.stopped.load(Ordering::Acquire) {
            self.core.fail(Error::ShutDown);
            return Ok(());
        }
        // Release: a waiting call that sees the kernel gone after this
        // reports a shutdown, not a failure.
        self.core.stopping.store(true, Ordering::Release);
        self.core.control.request_terminate();
        // A parked serve thread sees the request now, not at its next
        // timed wake-up.
        self.core.doorbell.wake_kernel();
        let timeout = self.core.shutdown_timeout;
        // A fault while stopping still means the kernel no longer runs.
        let stopped = self.core.engine.wait_finished(timeout).unwrap_or(true);
        if stopped {
            self.core.stopped.store(true, Ordering::Release);
            self.core.fail(Error::ShutDown);
            Ok(())
        } else {
            self.core.fail(Error::ShutDown);
            // Never free memory a kernel may still touch: leak one reference
            // to the rings and one to the buffers.
            std::mem::forget(Arc::clone(&self.core.memory));
            std::mem::forget(Arc::clone(&self.core.buffers));
            eprintln!(
                "ringbridge: the kernel did not stop within {timeout:?}; its ring memory and \
                 buffers are leaked"
            );
            Err(Error::Timeout {
                op: "shutdown",
                after: timeout,
            })
        }
    }

    /// How many bridge-owned buffers the kernel was given
    /// ([`BridgeBuilder::buffer`]).
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.buffer_count(), 0);
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .buffer(BufferInit::zeroed(8))
    ///     .buffer(BufferInit::zeroed(8))
    ///     .launch()?;
    /// assert_eq!(bridge.buffer_count(), 2);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn buffer_count(&self) -> usize {
        self.core.buffers.len()
    }

    /// A copy of buffer `index`'s bytes (the whole buffer).
    ///
    /// Only once the kernel no longer runs: after [`shutdown`](Self::shutdown)
    /// returned `Ok` (also the way to stop a kernel that failed), or once the
    /// kernel is seen to have stopped on its own. Before that the kernel may
    /// be writing the buffer, and a copy would race with it:
    /// [`Error::BufferInUse`]. An index beyond the buffers is
    /// [`Error::InvalidArgument`]; a failed device copy is the CUDA error.
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .buffer(BufferInit::from_bytes(vec![1, 2, 3]))
    ///     .launch()?;
    /// let err = bridge.download(0).unwrap_err();
    /// assert!(matches!(err, Error::BufferInUse { index: 0 }));
    /// assert!(err.to_string().contains("shut the bridge down"), "{err}");
    /// bridge.shutdown()?;
    /// assert_eq!(bridge.download(0)?, [1, 2, 3]);
    /// assert!(matches!(bridge.download(1), Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn download(&self, index: usize) -> Result<Vec<u8>> {
        self.core.buffers.get(index)?;
        self.buffers_free(index)?;
        self.core.buffers.download(index)
    }

    /// Buffer `index` as plain values (copied), as [`download`](Self::download)
    /// does; a buffer that is not a whole number of `T`s is
    /// [`Error::InvalidArgument`].
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .buffer(BufferInit::from_pod(&[1.5f64, -2.0]))
    ///     .launch()?;
    /// bridge.shutdown()?;
    /// assert_eq!(bridge.download_pod::<f64>(0)?, [1.5, -2.0]);
    /// assert_eq!(bridge.download_pod::<u32>(0)?.len(), 4);
    /// assert!(matches!(bridge.download_pod::<[u8; 3]>(0), Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn download_pod<T: bytemuck::Pod>(&self, index: usize) -> Result<Vec<T>> {
        let bytes = self.download(index)?;
        let size = std::mem::size_of::<T>();
        if size == 0 || bytes.len() % size != 0 {
            return Err(Error::InvalidArgument(format!(
                "buffer {index} of {} bytes is not a whole number of {size}-byte values",
                bytes.len()
            )));
        }
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Copies `bytes` over the start of buffer `index` (the whole buffer or
    /// a prefix; the rest keeps its bytes), under the conditions of
    /// [`download`](Self::download); more bytes than the buffer holds is
    /// [`Error::InvalidArgument`].
    ///
    /// The kernel has stopped, so what is uploaded is for the host to read
    /// back (for example a buffer reused between measurements of one
    /// bridge's lifetime), not for the kernel.
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Host)
    ///     .buffer(BufferInit::zeroed(4))
    ///     .launch()?;
    /// assert!(matches!(bridge.upload(0, b"ab"), Err(Error::BufferInUse { index: 0 })));
    /// bridge.shutdown()?;
    /// bridge.upload(0, b"ab")?;
    /// assert_eq!(bridge.download(0)?, [b'a', b'b', 0, 0]);
    /// assert!(matches!(bridge.upload(0, b"12345"), Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn upload(&self, index: usize, bytes: &[u8]) -> Result<()> {
        self.core.buffers.get(index)?;
        self.buffers_free(index)?;
        self.core.buffers.upload(index, bytes)
    }

    /// `Ok` when the kernel is known to run no more, so the host may copy
    /// buffer `index`; [`Error::BufferInUse`] otherwise.
    fn buffers_free(&self, index: usize) -> Result<()> {
        // `wait_finished` with no time to wait: on the fallback it joins a
        // finished serve thread, which orders all its writes to the buffers
        // before our copy; on CUDA, a stream seen finished has completed
        // the kernel's writes.
        match self.core.engine.wait_finished(Duration::ZERO) {
            Ok(true) => {
                // Release: as in `Core::check`.
                self.core.stopped.store(true, Ordering::Release);
                Ok(())
            }
            // A fault or a broken context: the kernel no longer runs once
            // `shutdown` said so. Acquire: pairs with its release store.
            Err(_) if self.core.stopped.load(Ordering::Acquire) => Ok(()),
            Ok(false) | Err(_) => Err(Error::BufferInUse { index }),
        }
    }

    /// Tests only, not a stable API: what the kernel was launched with (its
    /// parameter, its buffers' addresses and sizes).
    #[doc(hidden)]
    pub fn launch_args(&self) -> &LaunchArgs {
        &self.core.launch_args
    }

    /// A round trip's first half without waiting, for the async calls
    /// ([`crate::asynchronous`]): sends `payload` as
    /// [`round_trip`](Self::round_trip) would and returns its sequence
    /// number. `Ok(None)`: another caller holds a direction, try later;
    /// [`Error::Full`]: no room; [`Error::InvalidArgument`]: replies are
    /// outstanding (checked with both directions held, as `round_trip` does).
    pub(crate) fn try_start_round_trip(&self, payload: &[u8]) -> Result<Option<u64>> {
        self.check_len(payload.len())?;
        self.core.check_dead()?;
        // Never waits for a lock: a blocking call may hold one for long.
        macro_rules! try_hold {
            ($m:expr) => {
                match $m.try_lock() {
                    Ok(guard) => guard,
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
                }
            };
        }
        let rx = try_hold!(self.rx);
        let mut tx = try_hold!(self.tx);
        self.send_round_trip_request(&mut tx, &rx, payload, Deadline::Now)
            .map(Some)
    }

    /// A round trip's request, sent with both directions held (so `sent`
    /// and `consumed` cannot move): refused while replies are outstanding.
    fn send_round_trip_request(
        &self,
        tx: &mut Tx,
        rx: &RxSide,
        payload: &[u8],
        deadline: Deadline,
    ) -> Result<u64> {
        let in_flight = tx.published().saturating_sub(rx.answered());
        if in_flight != 0 {
            return Err(replies_outstanding(in_flight));
        }
        let seq = self.wait(deadline, "send", || {
            tx.try_push(0, payload).map_err(|e| self.core.fail(e))
        })?;
        self.core.count_sent(tx);
        Ok(seq)
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("backend", &self.core.backend)
            .field("spec", &self.core.spec)
            .field("max_payload", &self.core.max_payload)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Errors are reported by `shutdown` itself (a warning on timeout).
        let _ = self.shutdown();
    }
}

/// Room for some requests in a bridge's H2K, reserved by
/// [`Bridge::reserve`], filled in place and published together.
///
/// It holds the bridge's sending direction: other sends wait until it is
/// published or dropped. Dropped unpublished, it sends nothing, whatever was
/// written into it.
///
/// ```
/// use ringbridge::{Backend, Bridge};
/// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
/// let mut chunk = bridge.reserve(4)?;
/// assert_eq!((chunk.len(), chunk.written()), (4, 0));
/// chunk.write_with(|buf| { buf[0] = 7; 1 })?;
/// drop(chunk); // nothing is sent
/// assert_eq!(bridge.stats().sent, 0);
/// assert_eq!(bridge.send(&[1])?, 0); // its position is free again
/// # Ok::<(), ringbridge::Error>(())
/// ```
///
/// The buffer a writer gets lives only during its call:
///
/// ```compile_fail
/// use ringbridge::{Backend, Bridge};
/// let bridge = Bridge::builder().backend(Backend::Host).launch().unwrap();
/// let mut chunk = bridge.reserve(1).unwrap();
/// let mut kept: &mut [u8] = &mut [];
/// chunk.write_with(|buf| { kept = buf; 0 }).unwrap();
/// chunk.publish().unwrap();
/// kept[0] = 1; // the slot is the device's now
/// ```
///
/// and a published chunk is gone:
///
/// ```compile_fail
/// use ringbridge::{Backend, Bridge};
/// let bridge = Bridge::builder().backend(Backend::Host).launch().unwrap();
/// let mut chunk = bridge.reserve(1).unwrap();
/// chunk.write_with(|_| 0).unwrap();
/// chunk.publish().unwrap();
/// chunk.write_with(|_| 0).unwrap();
/// ```
#[must_use = "a chunk sends nothing unless published"]
pub struct SendChunk<'a> {
    bridge: &'a Bridge,
    tx: std::sync::MutexGuard<'a, Tx>,
    reserved: usize,
    written: usize,
    first: u64,
}

impl SendChunk<'_> {
    /// Requests reserved.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// assert_eq!(bridge.reserve(3)?.len(), 3);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.reserved
    }

    /// Whether it reserved no request (publishing it sends nothing).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let chunk = bridge.reserve(0)?;
    /// assert!(chunk.is_empty());
    /// chunk.publish()?;
    /// assert_eq!(bridge.stats().sent, 0);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.reserved == 0
    }

    /// Requests written so far.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let mut chunk = bridge.reserve(2)?;
    /// chunk.write(b"x")?;
    /// assert_eq!(chunk.written(), 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn written(&self) -> usize {
        self.written
    }

    /// The sequence number the first request of the chunk gets (the next
    /// ones follow it).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// bridge.send(b"a")?;
    /// let mut chunk = bridge.reserve(1)?;
    /// assert_eq!(chunk.first_seq(), 1);
    /// assert_eq!(chunk.write(b"b")?, 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn first_seq(&self) -> u64 {
        self.first
    }

    /// Writes the next request in place: `fill` gets the bridge's
    /// [`max_payload`](Bridge::max_payload) bytes to write the payload at
    /// their start and returns its length. Returns the request's sequence
    /// number. It is sent only when the chunk is published.
    ///
    /// In the slot format `buf` is the slot's payload area itself, holding
    /// whatever an earlier message there left (write every byte you count);
    /// in the lane format, whose slots interleave payload words with tags,
    /// it is a zeroed staging buffer on the stack, copied into the lanes.
    ///
    /// Errors leave the chunk as it was, still publishable: a length beyond
    /// `max_payload` is [`Error::PayloadTooLarge`] (that request is not
    /// written), and a chunk already holding every request it reserved is
    /// [`Error::InvalidArgument`] (`fill` is not called).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let mut chunk = bridge.reserve(1)?;
    /// let err = chunk.write_with(|buf| buf.len() + 1).unwrap_err();
    /// assert!(matches!(err, Error::PayloadTooLarge { len: 33, max: 32 }));
    /// chunk.write_with(|buf| { buf[..2].copy_from_slice(b"ok"); 2 })?;
    /// assert!(matches!(chunk.write_with(|_| 0), Err(Error::InvalidArgument(_))));
    /// chunk.publish()?;
    /// assert_eq!(bridge.recv()?.payload, b"pl");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn write_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<u64> {
        if self.written == self.reserved {
            return Err(Error::InvalidArgument(format!(
                "all {} requests of the chunk are written",
                self.reserved
            )));
        }
        let max = self.bridge.max_payload();
        let mut returned = 0;
        // The ring half's area may be larger than the bridge's limit (a lane
        // slot rounds up): a length beyond the limit is passed on as one
        // beyond any area, which the ring half refuses, writing nothing.
        let written = self.tx.write_with(0, |area| {
            returned = fill(&mut area[..max]);
            if returned > max { usize::MAX } else { returned }
        });
        match written {
            Ok(Some(seq)) => {
                self.written += 1;
                Ok(seq)
            }
            Err(Error::PayloadTooLarge { .. }) => {
                Err(Error::PayloadTooLarge { len: returned, max })
            }
            // The room was seen before and only grows: a ring that now
            // says full was changed behind our back.
            Ok(None) => Err(self.bridge.core.fail(Error::RingCorrupted {
                ring: RingId::H2k,
                what: "no room where room was reserved".into(),
            })),
            Err(e) => Err(self.bridge.core.fail(e)),
        }
    }

    /// Writes the next request, a copy of `payload` (see
    /// [`write_with`](Self::write_with)).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let mut chunk = bridge.reserve(1)?;
    /// assert!(matches!(chunk.write(&[0; 33]), Err(Error::PayloadTooLarge { .. })));
    /// chunk.write(b"hi")?;
    /// chunk.publish()?;
    /// assert_eq!(bridge.recv()?.payload, b"ij");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn write(&mut self, payload: &[u8]) -> Result<u64> {
        self.bridge.check_len(payload.len())?;
        self.write_with(|buf| {
            buf[..payload.len()].copy_from_slice(payload);
            payload.len()
        })
    }

    /// Publishes every request of the chunk at once (in the slot format one
    /// release store of `head`; in the lane format each message's lane
    /// tags) and returns the first one's sequence number.
    ///
    /// Every reserved request must be written: otherwise, and if the bridge
    /// died meanwhile, it returns an error and sends nothing.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Host).launch()?;
    /// let mut chunk = bridge.reserve(2)?;
    /// chunk.write(b"a")?;
    /// assert!(matches!(chunk.publish(), Err(Error::InvalidArgument(_))));
    /// assert_eq!(bridge.stats().sent, 0);
    /// let mut chunk = bridge.reserve(2)?;
    /// chunk.write(b"a")?;
    /// chunk.write(b"b")?;
    /// assert_eq!(chunk.publish()?, 0);
    /// assert_eq!(bridge.stats().sent, 2);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn publish(mut self) -> Result<u64> {
        if self.written != self.reserved {
            return Err(Error::InvalidArgument(format!(
                "{} of the {} reserved requests written; nothing sent",
                self.written, self.reserved
            )));
        }
        self.bridge.core.check_dead()?;
        self.tx.publish();
        self.written = 0;
        self.bridge.core.count_sent(&self.tx);
        Ok(self.first)
    }

    /// Writes `payloads` (each checked by the caller against
    /// `max_payload`), exactly the reserved count, and publishes them.
    pub(crate) fn send_all<'p>(
        mut self,
        payloads: impl ExactSizeIterator<Item = &'p [u8]>,
    ) -> Result<()> {
        if payloads.len() != self.reserved {
            return Err(Error::InvalidArgument(format!(
                "{} requests in room reserved for {}",
                payloads.len(),
                self.reserved
            )));
        }
        for p in payloads {
            self.write(p)?;
        }
        self.publish().map(|_| ())
    }
}

impl Drop for SendChunk<'_> {
    fn drop(&mut self) {
        // Whatever was written and not published goes: nothing of it was
        // made visible to the device half.
        self.tx.discard();
    }
}

impl std::fmt::Debug for SendChunk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendChunk")
            .field("reserved", &self.reserved)
            .field("written", &self.written)
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

/// Why a round trip was refused before sending.
fn replies_outstanding(in_flight: u64) -> Error {
    Error::InvalidArgument(format!(
        "round_trip with {in_flight} reply(ies) outstanding; receive them first"
    ))
}

fn envelope(h: &MessageHeader, p: &[u8]) -> MessageEnvelope {
    MessageEnvelope {
        header: *h,
        payload: p.to_vec(),
    }
}

/// A bridge whose device half the test plays by hand, through the ring
/// halves of the other side: no serve loop, so a test can put any K2H
/// message (events, no-reply marks) in front of the bridge's receive paths.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use crate::layout::KIND_REPLY;

    /// "Finishes" as soon as the bridge asks it to stop.
    struct FakeEngine(Control);

    impl Engine for FakeEngine {
        fn poll(&self) -> Result<bool> {
            Ok(self.0.terminate_requested())
        }
    }

    /// The device's ends of a fake bridge's rings.
    pub(crate) struct Device {
        pub(crate) h2k: RingConsumer,
        pub(crate) k2h: RingProducer,
    }

    impl Device {
        /// Takes the next request, waiting for it: its `seq`.
        pub(crate) fn request(&mut self) -> u64 {
            loop {
                if let Some(seq) = self.h2k.try_pop_with(|h, _| h.seq).unwrap() {
                    return seq;
                }
                std::thread::yield_now();
            }
        }

        /// The next request's `seq`, or `None` when none comes within
        /// `idle`.
        pub(crate) fn request_within(&mut self, idle: Duration) -> Option<u64> {
            let deadline = Instant::now() + idle;
            while Instant::now() < deadline {
                if let Some(seq) = self.h2k.try_pop_with(|h, _| h.seq).unwrap() {
                    return Some(seq);
                }
                std::thread::yield_now();
            }
            None
        }

        /// Publishes one K2H message, waiting for room (at most 10 s: then
        /// the test fails instead of hanging).
        pub(crate) fn push(&mut self, kind: u32, flags: u32, correlation: u64, payload: &[u8]) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self
                .k2h
                .try_push(kind, flags, correlation, payload)
                .unwrap()
                .is_none()
            {
                assert!(Instant::now() < deadline, "K2H stayed full");
                std::thread::yield_now();
            }
        }

        pub(crate) fn reply(&mut self, correlation: u64, payload: &[u8]) {
            self.push(KIND_REPLY, 0, correlation, payload);
        }

        pub(crate) fn no_reply(&mut self, correlation: u64) {
            self.push(KIND_NO_REPLY, 0, correlation, &[]);
        }

        pub(crate) fn event(&mut self, number: u64, payload: &[u8]) {
            self.push(KIND_EVENT, 0, number, payload);
        }
    }

    /// A slot-format bridge of 16 slots of 64 bytes, and its device ends.
    pub(crate) fn bridge() -> (Bridge, Device) {
        let layout = RegionLayout::new(RingSpec::new(16, 64).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        let (_, h2k) = layout.ring_pair(&mem, RingId::H2k);
        let (k2h, _) = layout.ring_pair(&mem, RingId::K2h);
        let builder = Bridge::builder()
            .backend(Backend::Host)
            // No heartbeat here: never take the quiet device for a hang.
            .hang_timeout(Duration::from_secs(3600))
            // No doorbell rung by the test: never park on it.
            .wait_policy(WaitPolicy::Backoff);
        let bridge = Bridge::assemble(
            &builder,
            &layout,
            Launched {
                memory: mem.clone(),
                engine: Box::new(FakeEngine(layout.control(&mem))),
                buffers: Arc::new(Buffers::none()),
                args: LaunchArgs::default(),
            },
            Backend::Host,
            "fake",
            layout.spec.max_payload(),
        );
        (bridge, Device { h2k, k2h })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;
    use crate::layout::RingHeader;

    /// A group's regions lie one stride apart in one allocation, and each is
    /// its own stripe's: corrupting stripe 1's K2H head fails stripe 1 alone.
    #[test]
    fn each_group_region_belongs_to_its_stripe() {
        let bridges = Bridge::builder()
            .backend(Backend::Host)
            .capacity(4)
            .launch_group(3)
            .unwrap();
        for b in &bridges {
            assert_eq!(b.round_trip(b"a").unwrap().payload, b"b");
        }
        let layout = RegionLayout::new(bridges[1].spec()).unwrap();
        let base = |i: usize| bridges[i].core.memory.device_address();
        assert_eq!(base(1) - base(0), layout.stripe_stride() as u64);
        assert_eq!(base(2) - base(1), layout.stripe_stride() as u64);

        // Relaxed: the kernel of stripe 1 is idle and the host validates
        // whatever it reads; this only has to land.
        let head = layout.k2h_offset / 8 + crate::word_of!(RingHeader, head);
        bridges[1].core.memory.words()[head].store(1000, Relaxed);
        let err = bridges[1].recv().unwrap_err();
        assert!(
            matches!(
                err,
                Error::RingCorrupted {
                    ring: RingId::K2h,
                    ..
                }
            ),
            "{err:?}"
        );
        for i in [0, 2] {
            assert_eq!(bridges[i].round_trip(b"y").unwrap().payload, b"z");
        }
    }
}

/// The receive paths against K2H messages a kernel's handler leaves when it
/// answers with nothing (no-reply marks) or sends on its own (events), on
/// [`fake`] bridges.
#[cfg(test)]
mod receive_tests {
    use super::*;
    use crate::layout::KIND_REPLY;

    fn kinds(stats: BridgeStats) -> (u64, u64, u64, u64, u64) {
        (
            stats.sent,
            stats.received,
            stats.no_reply,
            stats.events,
            stats.in_flight,
        )
    }

    /// No-reply marks are never returned, but counted as answers.
    #[test]
    fn no_reply_marks_are_consumed_silently_and_counted() {
        let (bridge, mut dev) = fake::bridge();
        for _ in 0..3 {
            bridge.send(b"q").unwrap();
        }
        for _ in 0..3 {
            dev.request();
        }
        dev.no_reply(0);
        dev.reply(1, b"one");
        dev.no_reply(2);
        let r = bridge.recv().unwrap();
        assert_eq!((r.header.correlation, r.payload), (1, b"one".to_vec()));
        assert_eq!(kinds(bridge.stats()), (3, 1, 1, 0, 1));
        // The mark left: nothing to return, yet the request is answered.
        assert!(matches!(bridge.try_recv(), Err(Error::Empty)));
        assert_eq!(kinds(bridge.stats()), (3, 1, 2, 0, 0));
        // A round trip is allowed again (nothing outstanding).
        let seq = bridge.send(b"x").unwrap();
        dev.request();
        dev.no_reply(seq);
        let err = bridge.recv_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(matches!(err, Error::Timeout { op: "recv", .. }), "{err:?}");
        assert_eq!(kinds(bridge.stats()), (4, 1, 3, 0, 0));
        for _ in 0..2 {
            bridge.send(b"x").unwrap();
            dev.request();
        }
        dev.no_reply(4);
        dev.reply(5, b"five");
        assert_eq!(
            bridge.recv_with(|h, p| (h.correlation, p.len())).unwrap(),
            (5, 4)
        );
    }

    /// Events come back like replies, in K2H order, and answer no request.
    #[test]
    fn events_are_returned_in_order_and_do_not_answer_requests() {
        let (bridge, mut dev) = fake::bridge();
        let seq = bridge.send(b"q").unwrap();
        dev.request();
        dev.event(0, b"e0");
        dev.reply(seq, b"r");
        dev.event(1, b"e1");
        let m = bridge.recv().unwrap();
        assert!(m.is_event() && !m.is_reply());
        assert_eq!((m.event_seq(), m.payload.as_slice()), (Some(0), &b"e0"[..]));
        assert_eq!(kinds(bridge.stats()), (1, 0, 0, 1, 1));
        let m = bridge.recv().unwrap();
        assert!(m.is_reply() && m.event_seq().is_none());
        let m = bridge.recv().unwrap();
        assert_eq!((m.event_seq(), m.header.seq), (Some(1), 2));
        assert_eq!(kinds(bridge.stats()), (1, 1, 0, 2, 0));
    }

    /// A round trip keeps the events it meets, in order, for the next
    /// receives, which return them before anything later in K2H.
    #[test]
    fn a_round_trip_sets_events_aside_for_the_next_receives() {
        let (bridge, mut dev) = fake::bridge();
        std::thread::scope(|s| {
            s.spawn(|| {
                let seq = dev.request();
                dev.event(0, b"a");
                dev.event(1, b"b");
                dev.reply(seq, b"reply");
                dev.event(2, b"c");
                let seq = dev.request();
                dev.reply(seq, b"second");
            });
            let reply = bridge.round_trip(b"x").unwrap();
            assert_eq!(reply.payload, b"reply");
            assert_eq!(kinds(bridge.stats()), (1, 1, 0, 2, 0));
            // Still set aside: a second round trip adds nothing before them.
            assert_eq!(bridge.round_trip(b"y").unwrap().payload, b"second");
        });
        // The set-aside events first (try_recv too), then the ring's.
        let got = [
            bridge.try_recv().unwrap(),
            bridge.recv().unwrap(),
            bridge.recv_timeout(Duration::from_secs(5)).unwrap(),
        ];
        let numbers: Vec<_> = got.iter().map(MessageEnvelope::event_seq).collect();
        assert_eq!(numbers, [Some(0), Some(1), Some(2)]);
        assert_eq!(kinds(bridge.stats()), (2, 2, 0, 3, 0));
        assert!(matches!(bridge.try_recv(), Err(Error::Empty)));
    }

    /// `recv_batch` hands out the set-aside events first, then the ring's
    /// messages, passing no-reply marks over uncounted.
    #[test]
    fn recv_batch_honours_the_set_aside_events_and_skips_marks() {
        let (bridge, mut dev) = fake::bridge();
        std::thread::scope(|s| {
            s.spawn(|| {
                let seq = dev.request();
                dev.event(0, b"a");
                dev.reply(seq, b"r");
            });
            bridge.round_trip(b"x").unwrap();
        });
        for _ in 0..2 {
            bridge.send(b"q").unwrap();
            dev.request();
        }
        dev.no_reply(1);
        dev.event(1, b"b");
        dev.reply(2, b"s");
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = bridge
                .recv_batch(8, |h, p| got.push((h.kind, h.correlation, p.to_vec())))
                .unwrap();
            assert!(n >= 1);
        }
        assert_eq!(
            got,
            [
                (KIND_EVENT, 0, b"a".to_vec()),
                (KIND_EVENT, 1, b"b".to_vec()),
                (KIND_REPLY, 2, b"s".to_vec()),
            ]
        );
        assert_eq!(kinds(bridge.stats()), (3, 2, 1, 2, 0));
        // max bounds the set-aside events too.
        std::thread::scope(|s| {
            s.spawn(|| {
                let seq = dev.request();
                dev.event(2, b"c");
                dev.event(3, b"d");
                dev.reply(seq, b"r");
            });
            bridge.round_trip(b"x").unwrap();
        });
        let mut got = Vec::new();
        assert_eq!(
            bridge
                .recv_batch(1, |h, _| got.push(h.correlation))
                .unwrap(),
            1
        );
        assert_eq!(
            bridge
                .recv_batch(8, |h, _| got.push(h.correlation))
                .unwrap(),
            1
        );
        assert_eq!(got, [2, 3]);
    }

    /// A round trip answered with nothing is a typed error; the bridge goes on.
    #[test]
    fn a_round_trip_answered_with_nothing_is_no_reply() {
        let (bridge, mut dev) = fake::bridge();
        std::thread::scope(|s| {
            s.spawn(|| {
                let seq = dev.request();
                dev.event(0, b"e");
                dev.no_reply(seq);
                let seq = dev.request();
                dev.reply(seq, b"ok");
            });
            let err = bridge.round_trip(b"one-way").unwrap_err();
            assert!(matches!(err, Error::NoReply { seq: 0 }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("request 0") && text.contains("`send`"),
                "{text}"
            );
            assert_eq!(bridge.round_trip(b"x").unwrap().payload, b"ok");
        });
        assert_eq!(kinds(bridge.stats()), (2, 1, 1, 1, 0));
        assert_eq!(bridge.recv().unwrap().event_seq(), Some(0));
    }

    /// `recv_pod` does not turn an event into values: it says so and keeps
    /// the event for the next receive.
    #[test]
    fn recv_pod_leaves_an_event_in_place() {
        let (bridge, mut dev) = fake::bridge();
        bridge.send(b"q").unwrap();
        dev.request();
        dev.no_reply(0);
        dev.event(0, &[1, 0, 0, 0]);
        bridge.send(b"q").unwrap();
        dev.request();
        dev.reply(1, &7u32.to_ne_bytes());
        let err = bridge.recv_pod::<u32>().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(w) if w.contains("event 0")),
            "{err:?}"
        );
        assert_eq!(bridge.recv().unwrap().event_seq(), Some(0));
        assert_eq!(bridge.recv_pod::<u32>().unwrap(), [7]);
    }

    /// The async calls follow the same rules: events set aside by an async
    /// round trip (even one dropped while pending) reach the next receives;
    /// a request answered with nothing is `NoReply`.
    #[test]
    fn async_round_trips_set_events_aside_and_report_no_reply() {
        use crate::AsyncBridge;
        use std::future::Future;
        use std::task::Context;

        let (bridge, mut dev) = fake::bridge();
        let bridge = AsyncBridge::new(bridge);
        std::thread::scope(|s| {
            s.spawn(|| {
                let seq = dev.request();
                dev.event(0, b"a");
                dev.reply(seq, b"r");
                let seq = dev.request();
                dev.event(1, b"b");
                dev.no_reply(seq);
            });
            let reply = futures::executor::block_on(bridge.round_trip(b"x")).unwrap();
            assert_eq!(reply.payload, b"r");
            let err = futures::executor::block_on(bridge.round_trip(b"y")).unwrap_err();
            assert!(matches!(err, Error::NoReply { seq: 1 }), "{err:?}");
        });
        let got = futures::executor::block_on(bridge.recv()).unwrap();
        assert_eq!(got.event_seq(), Some(0));
        let got = futures::executor::block_on(bridge.recv()).unwrap();
        assert_eq!(got.event_seq(), Some(1));

        // A round trip polled until its request is out and an event came,
        // then dropped: the event is kept, the orphaned reply discarded.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(bridge.round_trip(b"z"));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let seq = dev.request();
        dev.event(2, b"c");
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
        dev.reply(seq, b"orphan");
        dev.event(3, b"d");
        let mut got = Vec::new();
        futures::executor::block_on(async {
            while got.len() < 2 {
                bridge
                    .recv_batch(8, |h, _| got.push(h.correlation))
                    .await
                    .unwrap();
            }
        });
        assert_eq!(got, [2, 3]);
        let stats = bridge.bridge().stats();
        assert_eq!((stats.received, stats.events, stats.in_flight), (2, 4, 0));
    }

    /// The lane format carries no-reply marks too (never events).
    #[test]
    fn lane_bridges_consume_no_reply_marks() {
        let layout = RegionLayout::new(RingSpec::lanes(8, 128).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        let (mut k2h, _) = layout.lane_pair(&mem, RingId::K2h);
        let rx = RingRef::new(mem.clone(), &layout, RingId::K2h);
        let mut side = RxSide::new(Rx::Lanes(LaneConsumer::new(rx)));
        k2h.try_push(KIND_NO_REPLY, 0, b"").unwrap().unwrap();
        k2h.try_push(KIND_REPLY, 0, b"r").unwrap().unwrap();
        let (bridge, _dev) = fake::bridge();
        let got = bridge
            .pop_message(&mut side, &mut |h: &MessageHeader, p: &[u8]| {
                (h.correlation, p.to_vec())
            })
            .unwrap();
        assert_eq!(got, Some((1, b"r".to_vec())));
        assert_eq!((side.no_reply, side.events, side.answered()), (1, 0, 2));
    }

    /// Format selection by a user kernel's traits.
    #[test]
    fn kernels_that_send_or_cooperate_run_in_slots_only() {
        let sends = HandlerTraits {
            sends: true,
            ..HandlerTraits::default()
        };
        let both = HandlerTraits {
            cooperative: true,
            ..sends
        };
        assert_eq!(slots_only("k", HandlerTraits::default()), None);
        assert_eq!(slots_only("k", sends).unwrap(), "kernel k sends messages");
        assert_eq!(
            slots_only("k", both).unwrap(),
            "kernel k is cooperative and sends messages"
        );
        let chunkwise = HandlerTraits {
            chunkwise: true,
            ..HandlerTraits::default()
        };
        assert_eq!(slots_only("k", chunkwise), None);

        let b = Bridge::builder().slot_size(64);
        let why = || slots_only("k", sends);
        // Auto: lanes on CUDA for a small slot, unless the kernel needs slots.
        assert!(b.lanes_for(Backend::Cuda, None).unwrap());
        assert!(!b.lanes_for(Backend::Cuda, why()).unwrap());
        assert!(!b.lanes_for(Backend::Host, None).unwrap());
        // Asked for lanes: refused for such a kernel, on either backend.
        let lanes = b.clone().format(SlotFormat::Lanes);
        for backend in [Backend::Cuda, Backend::Host] {
            assert!(lanes.lanes_for(backend, None).unwrap());
            let err = lanes.lanes_for(backend, why()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(w)
                    if w.contains("kernel k sends messages") && w.contains("slot format only")),
                "{err:?}"
            );
        }
        let slots = b.format(SlotFormat::Slots);
        assert!(!slots.lanes_for(Backend::Cuda, why()).unwrap());
    }
}
