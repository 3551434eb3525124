//! Configuring a bridge: [`BridgeBuilder`], its validation, and the choice
//! of backend and ring shape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::backend::launch::{LaunchRequest, LoopConfig};
use crate::buffer::BufferInit;
use crate::calls::{CallRing, ServiceError, ServiceFn, Services};
use crate::cuda::Reservation;
use crate::error::{Error, Result};
use crate::layout::LaunchArgs;
use crate::ring::{AUTO_LANES_MAX_SLOT_SIZE, RegionLayout, RingSpec, SlotFormat};
use crate::user_kernel::HandlerTraits;
use crate::wait::WaitPolicy;

use super::launch::Launched;
use super::{Bridge, Kernel};

/// Whether `kernel` has a CUDA image, and if not, why.
pub(super) fn cuda_image_of(kernel: &Kernel) -> std::result::Result<(), String> {
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
pub(super) fn slots_only(entry: &str, traits: HandlerTraits) -> Option<String> {
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
///     .backend(Backend::Fallback)
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
    pub(super) backend: Backend,
    pub(super) device: usize,
    pub(super) capacity: usize,
    pub(super) slot_size: usize,
    pub(super) format: SlotFormat,
    pub(super) kernel: Kernel,
    /// Threads per block of a built-in kernel; `None`: per format.
    pub(super) block: Option<u32>,
    /// Tests only: run the fallback backend as an emulated block of this many threads.
    pub(super) emulated_block: Option<u32>,
    pub(super) hang_timeout: Duration,
    pub(super) launch_timeout: Duration,
    pub(super) shutdown_timeout: Duration,
    pub(super) check_interval: u64,
    pub(super) wait_policy: WaitPolicy,
    /// The kernel's buffers, numbered in this order.
    pub(super) buffers: Vec<BufferInit>,
    /// CUDA only: where the launch takes its memory, module and stream.
    pub(super) reservation: Option<Reservation>,
    /// The host services the kernel may call ([`crate::calls`]).
    pub(super) services: Services,
    /// An id registered twice, or the log's id: refused at launch.
    pub(super) bad_service: Option<u32>,
    /// The call ring: `None` picks (one for kernels that may call), or
    /// `Some(None)` for none.
    pub(super) call_ring: Option<Option<CallRing>>,
    pub(super) service_timeout: Duration,
}

/// How long a service may run before the bridge answers its call with
/// `CALL_TIMED_OUT`, by default.
pub(super) const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Threads per block of a built-in kernel in the slot format, by default.
pub(super) const DEFAULT_SLOTS_BLOCK: u32 = 1024;

/// Threads per block of a built-in kernel in the lane format, by default.
pub(super) const DEFAULT_LANES_BLOCK: u32 = 128;

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
            reservation: None,
            services: Services::default(),
            bad_service: None,
            call_ring: None,
            service_timeout: DEFAULT_SERVICE_TIMEOUT,
        }
    }
}

impl BridgeBuilder {
    /// Which backend to use (default [`Backend::Auto`]).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// assert_eq!(bridge.backend(), Backend::Fallback);
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
    /// assert_eq!(backend, Backend::Fallback);
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).capacity(10).launch()?;
    /// assert_eq!(bridge.spec().capacity(), 16);
    /// let zero = Bridge::builder().backend(Backend::Fallback).capacity(0).launch();
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).slot_size(256).launch()?;
    /// assert_eq!(bridge.max_payload(), 224);
    /// assert_eq!(bridge.round_trip(&[1; 224])?.payload, [2; 224]);
    /// let odd = Bridge::builder().backend(Backend::Fallback).slot_size(100).launch();
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
    /// messages of its own ([`UserKernel::traits`](crate::UserKernel::traits),
    /// [`HandlerTraits::needs_slots`]) never: it runs in the slot format
    /// only, and asking for lanes with it is [`Error::InvalidArgument`] at
    /// launch, before anything starts.) [`SlotFormat::Lanes`] carries at
    /// most 248 bytes and, on CUDA, needs a block of at least 32 threads.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use ringbridge::ring::SlotFormat;
    /// let auto = Bridge::builder().backend(Backend::Fallback).slot_size(128).launch()?;
    /// assert_eq!(auto.format(), SlotFormat::Slots);
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
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
    ///     .backend(Backend::Fallback)
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).block_size(32).launch()?;
    /// assert_eq!(bridge.round_trip(&[5])?.payload, [6]);
    /// let none = Bridge::builder().backend(Backend::Fallback).block_size(0).launch();
    /// assert!(matches!(none, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn block_size(mut self, threads: u32) -> Self {
        self.block = Some(threads);
        self
    }
    /// A test mode for a kernel's handler without a GPU: on
    /// [`Backend::Fallback`], runs the serve loop and the handler as a block of
    /// `threads` (1 to 1024, at most the entry's bound) CPU threads that
    /// emulate a CUDA thread block (barriers, warp shuffle and votes), so
    /// the requests of one batch run concurrently, one per thread, as on the
    /// GPU: a race between in-flight requests or a missing `b.sync()` in a
    /// cooperative handler shows up in CI. The fallback proper serves them
    /// one after another on one thread and cannot show either.
    ///
    /// Works for the built-in kernels, a user's [`Kernel::User`] (from the
    /// emulation library ringbridge-build compiles beside its host build,
    /// loaded on the first use) and Rust handlers ([`Kernel::RustHandler`]). Slow:
    /// a barrier is a futex round. One emulated block runs at a time per
    /// kernel library; no stripes.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Kernel};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
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
    ///     .backend(Backend::Fallback)
    ///     .hang_timeout(Duration::from_secs(2))
    ///     .launch()?;
    /// assert_eq!(bridge.round_trip(&[0])?.payload, [1]);
    /// let zero = Bridge::builder().backend(Backend::Fallback).hang_timeout(Duration::ZERO).launch();
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
    ///     .backend(Backend::Fallback)
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
    ///     .backend(Backend::Fallback)
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
    ///     .backend(Backend::Fallback)
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
    ///     .backend(Backend::Fallback)
    ///     .buffer(BufferInit::from_pod(&[10u32, 20]))
    ///     .launch()?;
    /// assert_eq!(bridge.buffer_count(), 1);
    /// bridge.shutdown()?;
    /// assert_eq!(bridge.download_pod::<u32>(0)?, [10, 20]);
    ///
    /// let empty = Bridge::builder().backend(Backend::Fallback).buffer(BufferInit::zeroed(0)).launch();
    /// assert!(matches!(empty, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn buffer(mut self, init: BufferInit) -> Self {
        self.buffers.push(init);
        self
    }

    /// Launches from `reservation` (CUDA): the rings, buffers, module and
    /// stream come from memory and modules prepared before any kernel ran,
    /// so the launch makes no driver call that would wait for another
    /// bridge's running kernel, and the bridge may launch while others
    /// serve (see [`Reservation`]). The device is the reservation's; a
    /// different [`device`](Self::device) is refused at launch. What the
    /// reservation lacks is made anew while the device is idle, and refused
    /// with [`Error::ReservationExhausted`] while a kernel of ours runs.
    /// The host fallback does not use it.
    ///
    /// ```no_run
    /// use ringbridge::{Backend, Bridge, cuda::Reservation};
    /// let builder = Bridge::builder().backend(Backend::Cuda);
    /// let reservation = Reservation::builder(0).bridge(&builder).bridge(&builder).reserve()?;
    /// let first = builder.clone().reservation(&reservation).launch()?;
    /// let second = builder.reservation(&reservation).launch()?; // while `first` serves
    /// drop(first);
    /// assert_eq!(second.round_trip(b"x")?.payload, b"y");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn reservation(mut self, reservation: &Reservation) -> Self {
        self.device = reservation.device();
        self.reservation = Some(reservation.clone());
        self
    }

    /// The buffers added so far.
    /// Registers a host service the kernel calls by `id` (`rb_call` in
    /// `kernels/ringbridge.cuh`): `f` turns the request's bytes into the
    /// answer's (at most the call ring's
    /// [`max_payload`](CallRing::max_payload)), or fails with a status the
    /// calling kernel thread gets. The bridge runs it on a thread of its
    /// own, one call at a time, in the order the kernel made them; a panic
    /// is caught and answered with `CALL_PANICKED`. It must not wait for
    /// this bridge's own replies (the kernel waits for it): such a wait
    /// ends only when the [service timeout](Self::service_timeout) answers
    /// the call for it.
    ///
    /// An id may be registered once; `u32::MAX` is the log's. Either
    /// mistake is [`Error::InvalidArgument`] at launch.
    ///
    /// ```
    /// use ringbridge::calls::ServiceError;
    /// use ringbridge::{Backend, Bridge, Error};
    /// let table = vec![10u64, 20, 30];
    /// let builder = Bridge::builder().backend(Backend::Fallback).service(1, move |req: &[u8]| {
    ///     let i = *req.first().ok_or("empty request")? as usize;
    ///     let v = table.get(i).ok_or_else(|| ServiceError::with_code(16, format!("no entry {i}")))?;
    ///     Ok(v.to_le_bytes().to_vec())
    /// });
    /// let bridge = builder.clone().launch()?;
    /// // twice the same id is refused
    /// let twice = builder.service(1, |_: &[u8]| Ok(Vec::new())).launch();
    /// assert!(matches!(twice, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn service<F>(mut self, id: u32, f: F) -> Self
    where
        F: Fn(&[u8]) -> std::result::Result<Vec<u8>, ServiceError> + Send + Sync + 'static,
    {
        let f: ServiceFn = Arc::new(f);
        if id == crate::layout::SERVICE_LOG || !self.services.insert(id, f) {
            self.bad_service.get_or_insert(id);
        }
        self
    }

    /// Registers a service over plain-old-data types: the kernel's typed
    /// `rb_call(id, const Req&, Ans&)`. A request of another size than
    /// `Req` is answered with `CALL_BAD_REQUEST` without calling `f`.
    ///
    /// ```
    /// use ringbridge::calls::ServiceError;
    /// use ringbridge::{Backend, Bridge};
    /// #[repr(C)]
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// struct Page { first: u64, count: u32, pad: u32 }
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .typed_service(2, |page: Page| -> Result<u64, ServiceError> {
    ///         Ok(page.first + u64::from(page.count))
    ///     })
    ///     .launch()?;
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn typed_service<Req, Ans, F>(self, id: u32, f: F) -> Self
    where
        Req: bytemuck::Pod,
        Ans: bytemuck::Pod,
        F: Fn(Req) -> std::result::Result<Ans, ServiceError> + Send + Sync + 'static,
    {
        self.service(id, move |bytes: &[u8]| {
            if bytes.len() != size_of::<Req>() {
                return Err(ServiceError::internal(
                    crate::layout::CALL_BAD_REQUEST,
                    format!(
                        "a request of {} bytes for a typed service of {}-byte requests",
                        bytes.len(),
                        size_of::<Req>()
                    ),
                ));
            }
            let request: Req = bytemuck::pod_read_unaligned(bytes);
            f(request).map(|answer| bytemuck::bytes_of(&answer).to_vec())
        })
    }

    /// The call ring's shape (default: [`CallRing::default`], 64 slots of
    /// 256 bytes, for a user's kernel or a bridge with services; none for a
    /// built-in kernel, which never calls).
    ///
    /// ```
    /// use ringbridge::calls::CallRing;
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .call_ring(CallRing::new(8, 1024)?)
    ///     .launch()?;
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn call_ring(mut self, ring: CallRing) -> Self {
        self.call_ring = Some(Some(ring));
        self
    }

    /// No call ring, and no service thread: the kernel's calls then return
    /// `RB_CALL_NO_RING` at once and its log lines are dropped. Registering
    /// a service as well is [`Error::InvalidArgument`] at launch.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).without_call_ring().launch()?;
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn without_call_ring(mut self) -> Self {
        self.call_ring = Some(None);
        self
    }

    /// How long a service may run before the bridge answers its call with
    /// `CALL_TIMED_OUT` and serves the next calls on a fresh thread
    /// (default 10 s; the late answer is dropped). While a service runs
    /// the bridge's hang watchdog does not count the kernel's silence.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .service_timeout(Duration::from_millis(250))
    ///     .launch()?;
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn service_timeout(mut self, timeout: Duration) -> Self {
        self.service_timeout = timeout;
        self
    }

    /// The call ring this configuration launches with, if any.
    pub(crate) fn resolved_call_ring(&self) -> Result<Option<CallRing>> {
        if let Some(id) = self.bad_service {
            return Err(Error::InvalidArgument(
                if id == crate::layout::SERVICE_LOG {
                    format!("service id {id} is the kernel log's")
                } else {
                    format!("service id {id} is registered twice")
                },
            ));
        }
        if self.service_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "the service timeout must not be zero".into(),
            ));
        }
        match self.call_ring {
            Some(None) if !self.services.is_empty() => Err(Error::InvalidArgument(
                "services are registered but the bridge has no call ring (without_call_ring)"
                    .into(),
            )),
            Some(ring) => Ok(ring),
            None => {
                let may_call = matches!(self.kernel, Kernel::User(_) | Kernel::Custom { .. });
                Ok((may_call || !self.services.is_empty()).then(CallRing::default))
            }
        }
    }

    pub(crate) fn buffer_inits(&self) -> &[BufferInit] {
        &self.buffers
    }

    /// The kernel to launch.
    pub(crate) fn kernel_ref(&self) -> &Kernel {
        &self.kernel
    }

    /// Why a [`StripedBridge`](crate::StripedBridge) cannot run this
    /// configuration, if it cannot.
    pub(crate) fn striping_refusal(&self) -> Option<String> {
        if let Kernel::User(u) = &self.kernel
            && u.traits().sends
        {
            return Some(format!(
                "kernel {} sends messages of its own, and a kernel that sends messages \
                     of its own cannot be striped: its events would break the stripes' \
                     round-robin order; use a Bridge",
                u.entry()
            ));
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
    /// let (backend, why) = Bridge::builder().backend(Backend::Fallback).resolve_backend()?;
    /// assert_eq!((backend, why.as_str()), (Backend::Fallback, "fallback backend requested"));
    /// let custom = Kernel::Custom {
    ///     image: vec![0u8; 16].into(),
    ///     entry: "serve".into(),
    ///     grid: 1,
    ///     block: 32,
    /// };
    /// let r = Bridge::builder().backend(Backend::Fallback).kernel(custom).resolve_backend();
    /// assert!(matches!(r, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn resolve_backend(&self) -> Result<(Backend, String)> {
        match self.backend {
            Backend::Fallback if self.kernel.needs_cuda() => Err(Error::InvalidArgument(
                "a custom kernel image needs the CUDA backend".into(),
            )),
            Backend::Cuda if self.kernel.needs_fallback() => Err(Error::InvalidArgument(
                "a Rust handler runs on the fallback backend only".into(),
            )),
            Backend::Fallback => Ok((Backend::Fallback, "fallback backend requested".into())),
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
                if self.kernel.needs_fallback() {
                    return Ok((Backend::Fallback, "the kernel is a Rust handler".into()));
                }
                if self.kernel.needs_cuda() {
                    return Ok((Backend::Cuda, "a custom kernel image needs CUDA".into()));
                }
                match cuda_image_of(&self.kernel)
                    .and_then(|()| crate::cuda::device_usable(self.device))
                {
                    Ok(()) => {
                        let simulated = crate::cuda::driver_library().is_some_and(|l| l.simulated);
                        let what = if simulated { " (simulated driver)" } else { "" };
                        Ok((
                            Backend::Cuda,
                            format!("CUDA device {} found{what}", self.device),
                        ))
                    }
                    Err(why) => Ok((Backend::Fallback, format!("no CUDA: {why}"))),
                }
            }
        }
    }

    /// The rings' shape for `backend`, and the payload the bridge accepts.
    pub(super) fn resolve_spec(&self, backend: Backend) -> Result<(RingSpec, usize)> {
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
    pub(super) fn lanes_for(&self, backend: Backend, slots_only: Option<String>) -> Result<bool> {
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
    pub(super) fn block_threads_for(&self, format: SlotFormat) -> u32 {
        match (&self.kernel, self.block) {
            (Kernel::Custom { block, .. }, _) => *block,
            (_, Some(threads)) => threads,
            (_, None) if format == SlotFormat::Lanes => DEFAULT_LANES_BLOCK,
            (_, None) => DEFAULT_SLOTS_BLOCK,
        }
    }

    pub(super) fn block_threads(&self) -> u32 {
        self.block_threads_for(self.format)
    }

    /// Allocates the rings, starts the device half and waits until it serves.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
        let Plan {
            backend,
            reason,
            layout,
            max_payload,
        } = self.plan(stripes)?;
        let mut args = self.launch_args();
        let request = LaunchRequest {
            kernel: &self.kernel,
            device: self.device,
            buffers: &self.buffers,
            block: self.block_threads_for(layout.spec.format()),
            emulated_block: self.emulated_block,
            loop_config: self.loop_config(),
            layout: &layout,
            stripes,
            reservation: self.reservation.as_ref(),
        };
        let (parts, buffers) = backend.launcher().launch(&request, &mut args)?;
        let buffers = Arc::new(buffers);
        // From here on, dropping the bridges stops what was started.
        let bridges: Vec<Bridge> = parts
            .into_iter()
            .enumerate()
            .map(|(stripe, (memory, engine))| {
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
                    stripe,
                )
            })
            .collect::<Result<_>>()?;
        // One deadline for the whole group: its blocks start together.
        let deadline = Instant::now() + self.launch_timeout;
        for bridge in &bridges {
            bridge.wait_started(deadline, self.launch_timeout)?;
        }
        Ok(bridges)
    }

    /// Checks the configuration for a group of `stripes` and resolves what
    /// it launches: the backend (and why), each region's layout, the
    /// largest payload.
    pub(crate) fn plan(&self, stripes: usize) -> Result<Plan> {
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
        if let Kernel::User(u) = &self.kernel {
            let sends = u.traits().max_sends;
            if self.capacity <= sends as usize {
                return Err(Error::InvalidArgument(format!(
                    "kernel {} may send {sends} messages per request (rb_max_sends), and K2H \
                     needs room for a reply and those: a capacity of at least {}, not {}",
                    u.entry(),
                    u64::from(sends) + 1,
                    self.capacity
                )));
            }
        }
        let (backend, reason) = self.resolve_backend()?;
        let (spec, max_payload) = self.resolve_spec(backend)?;
        let mut layout = RegionLayout::new(spec)?;
        if let Some(ring) = self.resolved_call_ring()? {
            layout = layout.with_call_ring(ring.slots(), ring.slot_size())?;
        }
        Ok(Plan {
            backend,
            reason,
            layout,
            max_payload,
        })
    }
}

/// A checked configuration, resolved ([`BridgeBuilder::plan`]).
pub(crate) struct Plan {
    pub(crate) backend: Backend,
    pub(crate) reason: String,
    pub(crate) layout: RegionLayout,
    pub(crate) max_payload: usize,
}

impl BridgeBuilder {
    /// What the kernel is launched with besides its rings: its parameter.
    pub(super) fn launch_args(&self) -> LaunchArgs {
        match &self.kernel {
            Kernel::ScaleF32 { factor } => crate::kernels::builtin::ringbridge_scale_f32()
                .with_param(factor.to_bits())
                .launch_args(),
            Kernel::User(u) => u.launch_args(),
            _ => LaunchArgs::default(),
        }
    }

    pub(super) fn loop_config(&self) -> LoopConfig {
        LoopConfig {
            check_interval: self.check_interval,
            wait_policy: self.wait_policy,
        }
    }
}
