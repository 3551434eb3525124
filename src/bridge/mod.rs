//! The user-facing bridge: launch a device half, send requests, receive replies.
//!
//! One job per file: this one holds [`Bridge`], its accessors, shutdown and
//! buffer copies; `builder` configures and validates ([`BridgeBuilder`]),
//! `launch` launches (memory, the words both sides read first, the
//! backend), `watchdog` detects a failed, stopped or hung kernel, `wait`
//! holds the blocking waits, `send` and `receive` the two directions'
//! paths ([`SendChunk`], the events set aside, the no-reply marks),
//! `round_trip` the calls that use both, and `stats` the counters
//! ([`BridgeStats`]).

mod builder;
mod events;
mod launch;
mod receive;
mod round_trip;
pub(crate) mod router;
mod send;
mod stats;
mod wait;
mod watchdog;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod receive_tests;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{Backend, Engine, SharedMemory};
use crate::buffer::Buffers;
use crate::error::{Error, Result};
use crate::layout::LaunchArgs;
use crate::ring::{Control, RingSpec, SlotFormat};
use crate::wait::Doorbell;

use receive::ReceiveState;
use send::H2kProducer;
use watchdog::Heartbeat;

pub use crate::kernel::Kernel;
pub use builder::BridgeBuilder;
pub use events::Events;
pub use send::SendChunk;
pub use stats::BridgeStats;

/// A running device half and the host ends of its two rings.
///
/// `Bridge` is `Sync`: one thread may send while another receives (each
/// direction has its own lock, so they never wait on each other).
///
/// ```
/// use ringbridge::{Backend, Bridge};
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
/// std::thread::scope(|s| {
///     s.spawn(|| for i in 0..100u8 { bridge.send(&[i]).unwrap(); });
///     for i in 0..100u8 {
///         assert_eq!(bridge.recv().unwrap().payload, [i.wrapping_add(1)]);
///     }
/// });
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub struct Bridge {
    h2k: Mutex<H2kProducer>,
    k2h: Mutex<ReceiveState>,
    state: BridgeState,
}

/// Everything of a bridge but its two directions: the device half (control
/// block, engine, memory, buffers), its settings, whether it is dead or
/// stopping, the watchdog's heartbeat tracking, and the counters copied out
/// for [`Bridge::stats`].
struct BridgeState {
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
    /// The watchdog's view of the kernel's heartbeat.
    heartbeat: Mutex<Heartbeat>,
    /// The error every later call returns once the bridge is dead.
    dead: Mutex<Option<Error>>,
    /// `dead.is_some()`, readable without the lock.
    is_dead: AtomicBool,
    /// The kernel is known to have stopped: its memory may be freed.
    stopped: AtomicBool,
    /// `shutdown` asked the kernel to stop: its exit is no failure.
    stopping: AtomicBool,
    /// A shutdown gave up on the kernel and leaked its memory: once.
    leaked: AtomicBool,
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
    /// Who waits for which answer or event ([`router`]).
    router: router::Router,
    /// The service thread of the call ring, when the region has one
    /// ([`crate::calls`]).
    calls: Option<crate::calls::server::CallServer>,
}

impl Bridge {
    /// A builder with the defaults: Auto backend, device 0, 1024 slots of
    /// 64 bytes (payloads of up to 32 bytes: set [`slot_size`](BridgeBuilder::slot_size)
    /// for larger ones), echo kernel.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// assert_eq!(bridge.backend(), Backend::Fallback);
    /// assert_ne!(bridge.backend(), Backend::Auto);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn backend(&self) -> Backend {
        self.state.backend
    }

    /// Why that backend was chosen.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// assert_eq!(bridge.backend_reason(), "fallback backend requested");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn backend_reason(&self) -> &str {
        &self.state.backend_reason
    }

    /// The rings' shape as allocated: in lane format its slot size is the
    /// lane slot's, which may exceed the builder's slot size (a 64-byte
    /// builder slot becomes a 128-byte lane slot).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use ringbridge::ring::SlotFormat;
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .capacity(8)
    ///     .format(SlotFormat::Lanes)
    ///     .launch()?;
    /// assert_eq!(bridge.spec().capacity(), 8);
    /// assert_eq!(bridge.spec().slot_size(), 128); // a lane slot for 32 bytes
    /// assert_eq!(bridge.max_payload(), 32);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn spec(&self) -> RingSpec {
        self.state.spec
    }

    /// How the rings' slots carry messages (`Slots` or `Lanes`, never `Auto`).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use ringbridge::ring::SlotFormat;
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// assert_eq!(bridge.format(), SlotFormat::Slots); // Auto on the host fallback
    /// assert_eq!(bridge.format(), bridge.spec().format());
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn format(&self) -> SlotFormat {
        self.state.spec.format()
    }

    /// Largest payload one message carries: the builder's slot size minus
    /// 32, in either format.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).slot_size(128).launch()?;
    /// assert_eq!(bridge.max_payload(), 96);
    /// assert_eq!(bridge.round_trip(&[0; 96])?.payload.len(), 96);
    /// let err = bridge.send(&[0; 97]).unwrap_err();
    /// assert!(matches!(err, Error::PayloadTooLarge { len: 97, max: 96 }));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn max_payload(&self) -> usize {
        self.state.max_payload
    }

    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.max_payload();
        if len > max {
            return Err(Error::PayloadTooLarge { len, max });
        }
        Ok(())
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// bridge.shutdown()?;
    /// bridge.shutdown()?; // idempotent
    /// assert!(matches!(bridge.round_trip(b"late"), Err(Error::ShutDown)));
    /// assert!(matches!(bridge.try_recv(), Err(Error::ShutDown)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn shutdown(&self) -> Result<()> {
        // Acquire: pairs with the release stores of `stopped` (here, in
        // `BridgeState::check` and in `wait_started`), after the engine said the
        // kernel is gone.
        if self.state.stopped.load(Ordering::Acquire) {
            self.state.fail(Error::ShutDown);
            return Ok(());
        }
        // Release: a waiting call that sees the kernel gone after this
        // reports a shutdown, not a failure.
        self.state.stopping.store(true, Ordering::Release);
        // Calls the kernel makes from now on are answered at once, with an
        // error, so that a kernel finishing its batch is not held up.
        if let Some(calls) = &self.state.calls {
            calls.begin_shutdown();
        }
        self.state.control.request_terminate();
        // A parked serve thread sees the request now, not at its next
        // timed wake-up.
        self.state.doorbell.wake_kernel();
        let timeout = self.state.shutdown_timeout;
        // A fault while stopping still means the kernel no longer runs. A
        // kernel already given up on is not waited for again.
        let wait = if self.state.leaked.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            timeout
        };
        let stopped = self.state.engine.wait_finished(wait).unwrap_or(true);
        // The kernel is gone, or given up on: nobody is left to call.
        if let Some(calls) = &self.state.calls {
            calls.stop();
        }
        if stopped {
            self.state.stopped.store(true, Ordering::Release);
            self.state.fail(Error::ShutDown);
            Ok(())
        } else {
            self.state.fail(Error::ShutDown);
            // Relaxed: only this bridge's own shutdown calls read it, and a
            // second one must not leak (or warn) again.
            if !self.state.leaked.swap(true, Ordering::Relaxed) {
                // Never free memory a kernel may still touch: leak one
                // reference to the rings and one to the buffers.
                std::mem::forget(Arc::clone(&self.state.memory));
                std::mem::forget(Arc::clone(&self.state.buffers));
                eprintln!(
                    "ringbridge: the kernel did not stop within {timeout:?}; its ring memory \
                     and buffers are leaked"
                );
            }
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// assert_eq!(bridge.buffer_count(), 0);
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .buffer(BufferInit::zeroed(8))
    ///     .buffer(BufferInit::zeroed(8))
    ///     .launch()?;
    /// assert_eq!(bridge.buffer_count(), 2);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn buffer_count(&self) -> usize {
        self.state.buffers.len()
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
    ///     .backend(Backend::Fallback)
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
        self.state.buffers.get(index)?;
        self.buffers_free(index)?;
        self.state.buffers.download(index)
    }

    /// Buffer `index` as plain values (copied), as [`download`](Self::download)
    /// does; a buffer that is not a whole number of `T`s is
    /// [`Error::InvalidArgument`].
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
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
    ///     .backend(Backend::Fallback)
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
        self.state.buffers.get(index)?;
        self.buffers_free(index)?;
        self.state.buffers.upload(index, bytes)
    }

    /// `Ok` when the kernel is known to run no more, so the host may copy
    /// buffer `index`; [`Error::BufferInUse`] otherwise.
    fn buffers_free(&self, index: usize) -> Result<()> {
        // `wait_finished` with no time to wait: on the fallback it joins a
        // finished serve thread, which orders all its writes to the buffers
        // before our copy; on CUDA, a stream seen finished has completed
        // the kernel's writes.
        match self.state.engine.wait_finished(Duration::ZERO) {
            Ok(true) => {
                // Release: as in `BridgeState::check`.
                self.state.stopped.store(true, Ordering::Release);
                Ok(())
            }
            // A fault or a broken context: the kernel no longer runs once
            // `shutdown` said so. Acquire: pairs with its release store.
            Err(_) if self.state.stopped.load(Ordering::Acquire) => Ok(()),
            Ok(false) | Err(_) => Err(Error::BufferInUse { index }),
        }
    }

    /// Tests only, not a stable API: what the kernel was launched with (its
    /// parameter, its buffers' addresses and sizes).
    #[doc(hidden)]
    pub fn launch_args(&self) -> &LaunchArgs {
        &self.state.launch_args
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("backend", &self.state.backend)
            .field("spec", &self.state.spec)
            .field("max_payload", &self.state.max_payload)
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
