//! Async counterparts of the blocking calls: [`AsyncBridge`].
//!
//! Runtime-agnostic: the futures need only the [`Waker`] their executor
//! hands them (tokio, `futures::executor`, anything), and the crate depends
//! on no runtime.
//!
//! # Design
//!
//! - **Polling, not blocking.** A future's `poll` makes non-blocking calls;
//!   when it must wait it registers its waker and returns `Pending`. A
//!   message is taken only in the poll that returns `Ready`, so dropping a
//!   pending `send`, `recv` or `recv_batch` loses nothing. Errors are the
//!   blocking calls' (the watchdog runs, so [`Error::KernelHung`] and its
//!   kin surface).
//! - **Round trips pipeline.** Each registers its request for routing
//!   before it publishes it, as the blocking [`Bridge::round_trip`] does;
//!   whoever reads K2H moves the answer to it and wakes its task. Any number
//!   may be in flight at once. One dropped after its request went out
//!   abandons it: the answer is dropped when it comes, and costs the
//!   others nothing.
//! - **A round trip looks for itself first.** Without its answer, its poll
//!   reads K2H (when nobody else does) and asks the executor to poll it
//!   again, a bounded number of times: the executor polls its other ready
//!   tasks in between, so under load the answer is usually there by then
//!   and nobody pays a thread's wake-up. Only then does it count as waiting
//!   for the dispatcher.
//! - **Who reads K2H for waiting tasks.** A per-[`AsyncBridge`] dispatcher
//!   thread, started when a future first has to wait for it. While tasks wait for
//!   answers, events or replies it holds K2H and waits on it with the
//!   bridge's [`WaitPolicy`](crate::WaitPolicy) (parked on the doorbell on
//!   the host fallback under the parking policies), routes what comes and
//!   wakes the tasks it belongs to; with nobody waiting it sleeps on a
//!   condition variable. So an idle `AsyncBridge` with pending calls costs
//!   what an idle blocking `recv` costs. A send waiting for H2K room is
//!   polled again every 100 us or so. The thread ends when the last clone
//!   of the `AsyncBridge` is dropped.
//! - **Plain receives** (`recv`, `recv_batch`) return the replies of plain
//!   sends and the events (when nobody subscribed to them, see
//!   [`AsyncBridge::events`]) in K2H order, as [`Bridge::recv`] does, never
//!   a round trip's answer; no-reply marks of plain sends are consumed
//!   silently.
//!
//! Mixing with blocking calls on the same bridge is defined: every reader
//! routes, so each answer reaches its caller whichever side reads it. One
//! caveat: while async calls wait, the dispatcher holds K2H, so a blocking
//! receive on another thread waits for its next message to arrive before
//! it gets K2H (it then finds its own).
//!
//! ```
//! use ringbridge::{AsyncBridge, Backend, Bridge};
//! let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
//! futures::executor::block_on(async {
//!     assert_eq!(bridge.round_trip(b"abc").await?.payload, b"bcd");
//!     let seq = bridge.send(&[1]).await?;
//!     assert_eq!(bridge.recv().await?.header.correlation, seq);
//!     Ok::<(), ringbridge::Error>(())
//! })?;
//! # Ok::<(), ringbridge::Error>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::bridge::Bridge;
use crate::bridge::router::Wake;
use crate::error::{Error, Result};
use crate::message::{MessageEnvelope, MessageHeader};
use crate::sync::lock;

/// How long the dispatcher waits on K2H before it wakes the sends waiting
/// for H2K room (a full H2K frees no doorbell).
const SEND_POLL: Duration = Duration::from_micros(100);

/// How many times a round trip with no answer yet asks its executor to
/// poll it again (after the other ready tasks) before it leaves the
/// waiting to the dispatcher. Enough for a loaded executor's turn to bring
/// the answer; an idle one spends a few microseconds on them. 32 against 0,
/// 8, 16 and 64 in docs/performance.md ("Many callers").
const LOOKS: u32 = 32;

/// A [`Bridge`] with async calls. Cheap to clone: clones share the bridge
/// and its dispatcher thread; the bridge shuts down when the last clone is
/// dropped.
///
/// A wrapper rather than an extension trait on `Bridge`: the async calls
/// need per-bridge state (the dispatcher and the wakers it serves) that
/// must live exactly as long as the bridge, and a clonable owner gives
/// tasks a `'static` handle (what `tokio::spawn` asks for). The blocking
/// calls stay at hand through [`bridge`](Self::bridge).
///
/// ```
/// use ringbridge::{AsyncBridge, Backend, Bridge};
/// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
/// let other = bridge.clone();
/// let worker = std::thread::spawn(move || {
///     futures::executor::block_on(other.round_trip(&[41])).map(|r| r.payload)
/// });
/// assert_eq!(worker.join().unwrap()?, [42]);
/// assert_eq!(bridge.bridge().stats().received, 1);
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone)]
pub struct AsyncBridge {
    shared: Arc<Shared>,
}

struct Shared {
    bridge: Bridge,
    /// Shared with the dispatcher thread, which must not keep the bridge
    /// alive: it holds this and a weak reference to the `Shared`.
    dispatcher: Arc<Dispatcher>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The bridge itself shuts down when the field drops, after this.
        self.dispatcher.close();
    }
}

impl std::fmt::Debug for AsyncBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncBridge")
            .field("bridge", &self.shared.bridge)
            .finish_non_exhaustive()
    }
}

impl From<Bridge> for AsyncBridge {
    /// Same as [`AsyncBridge::new`].
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge: AsyncBridge = Bridge::builder().backend(Backend::Fallback).launch()?.into();
    /// assert_eq!(bridge.bridge().backend(), Backend::Fallback);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    fn from(bridge: Bridge) -> Self {
        Self::new(bridge)
    }
}

impl AsyncBridge {
    /// Wraps a launched bridge. Starts no thread yet: the dispatcher starts
    /// when a future first has to wait.
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// let reply = futures::executor::block_on(bridge.round_trip(b"x"))?;
    /// assert_eq!(reply.payload, b"y");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn new(bridge: Bridge) -> Self {
        let shared = Arc::new_cyclic(|me| Shared {
            bridge,
            dispatcher: Arc::new(Dispatcher {
                shared: me.clone(),
                busy: AtomicBool::new(false),
                has_receivers: AtomicBool::new(false),
                has_senders: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                state: Mutex::default(),
                wake_up: Condvar::new(),
            }),
        });
        Self { shared }
    }

    /// The bridge, for its blocking calls, [`stats`](Bridge::stats) and
    /// [`shutdown`](Bridge::shutdown).
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge, Error};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// bridge.bridge().shutdown()?;
    /// let late = futures::executor::block_on(bridge.send(b"late"));
    /// assert!(matches!(late, Err(Error::ShutDown)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn bridge(&self) -> &Bridge {
        &self.shared.bridge
    }

    /// Sends one request, waiting (asynchronously) while the H2K ring is
    /// full: [`Bridge::send`]. Returns its sequence number.
    ///
    /// Dropped while pending, it has sent nothing.
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// futures::executor::block_on(async {
    ///     let first = bridge.send(b"one").await?;
    ///     assert_eq!(bridge.send(b"two").await?, first + 1);
    ///     assert_eq!(bridge.recv().await?.payload, b"pof");
    ///     assert_eq!(bridge.recv().await?.payload, b"uxp");
    ///     Ok::<(), ringbridge::Error>(())
    /// })?;
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send<'a>(&'a self, payload: &'a [u8]) -> impl Future<Output = Result<u64>> + Send + 'a {
        self.send_with_flags(0, payload)
    }

    /// [`send`](Self::send) with the request header's `flags` word set (an
    /// opcode, say).
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// futures::executor::block_on(async {
    ///     bridge.send_with_flags(9, b"a").await?;
    ///     assert_eq!(bridge.recv().await?.header.flags, 9); // the echo kernel echoes the flags
    ///     Ok::<(), ringbridge::Error>(())
    /// })?;
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send_with_flags<'a>(
        &'a self,
        flags: u32,
        payload: &'a [u8],
    ) -> impl Future<Output = Result<u64>> + Send + 'a {
        let shared = &*self.shared;
        let mut done = false;
        std::future::poll_fn(move |cx| {
            if done {
                return polled_after_completion();
            }
            match shared.bridge.try_send_with_flags(flags, payload) {
                Err(Error::Full) => {
                    shared.dispatcher.wait_for_room(cx.waker());
                    Poll::Pending
                }
                out => {
                    done = true;
                    Poll::Ready(out)
                }
            }
        })
    }

    /// Receives one reply or event, waiting (asynchronously) for it:
    /// [`Bridge::recv`] (no-reply marks consumed silently; round trips'
    /// answers never returned).
    ///
    /// Dropped while pending, it has taken nothing: the reply goes to the
    /// next receive.
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// let seq = bridge.bridge().send(&[41])?; // a blocking send works too
    /// let reply = futures::executor::block_on(bridge.recv())?;
    /// assert_eq!((reply.header.correlation, reply.payload), (seq, vec![42]));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv(&self) -> impl Future<Output = Result<MessageEnvelope>> + Send + '_ {
        let shared = &self.shared;
        let mut done = false;
        std::future::poll_fn(move |cx| {
            if done {
                return polled_after_completion();
            }
            let mut got = None;
            let mut keep = |h: &MessageHeader, p: &[u8]| {
                got = Some(MessageEnvelope {
                    header: *h,
                    payload: p.to_vec(),
                })
            };
            let out = poll_receive(shared, cx, 1, &mut keep);
            out.map(|n| {
                done = true;
                n.map(|_| got.take().expect("one message with Ok(1)"))
            })
        })
    }

    /// Waits (asynchronously) for at least one reply, then hands up to
    /// `max` waiting replies to `f`, in order: [`Bridge::recv_batch`].
    /// Returns how many; `max == 0` returns 0 at once.
    ///
    /// An error after some replies were handed out ends the batch early;
    /// the next call returns it (a dead bridge stays dead).
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// bridge.bridge().send_batch(&[[1u8], [2], [3]])?;
    /// let mut got = Vec::new();
    /// futures::executor::block_on(async {
    ///     while got.len() < 3 {
    ///         bridge.recv_batch(8, |_, p| got.push(p[0])).await?;
    ///     }
    ///     Ok::<(), ringbridge::Error>(())
    /// })?;
    /// assert_eq!(got, [2, 3, 4]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv_batch<'a, F>(&'a self, max: usize, f: F) -> impl Future<Output = Result<usize>> + 'a
    where
        F: FnMut(&MessageHeader, &[u8]) + 'a,
    {
        Receiving {
            shared: &self.shared,
            max,
            f,
            done: false,
        }
    }

    /// Sends one request and waits (asynchronously) for its answer:
    /// [`Bridge::round_trip`] (a no-reply answer and an error reply are
    /// `Ok` too; see there).
    ///
    /// Any number of async round trips may be in flight on one bridge;
    /// each gets its own answer. Dropped before its request went out, it
    /// has done nothing; dropped after, its answer is dropped when it comes.
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// let requests = [[10u8], [20], [30], [40]];
    /// let replies = futures::executor::block_on(futures::future::join_all(
    ///     requests.iter().map(|r| bridge.round_trip(r)),
    /// ));
    /// let payloads: Vec<_> = replies.into_iter().map(|r| r.map(|r| r.payload)).collect::<Result<_, _>>()?;
    /// assert_eq!(payloads, [[11], [21], [31], [41]]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn round_trip<'a>(
        &'a self,
        payload: &'a [u8],
    ) -> impl Future<Output = Result<MessageEnvelope>> + Send + 'a {
        self.round_trip_with_flags(0, payload)
    }

    /// [`round_trip`](Self::round_trip) with the request header's `flags`
    /// word set.
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// let reply = futures::executor::block_on(bridge.round_trip_with_flags(3, b"a"))?;
    /// assert_eq!((reply.header.flags, reply.payload), (3, b"b".to_vec()));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn round_trip_with_flags<'a>(
        &'a self,
        flags: u32,
        payload: &'a [u8],
    ) -> impl Future<Output = Result<MessageEnvelope>> + Send + 'a {
        RoundTrip {
            shared: &self.shared,
            flags,
            payload,
            sent: None,
            looks: 0,
            done: false,
        }
    }

    /// Subscribes to the kernel's events (see [`Events`](crate::Events)):
    /// an owned handle a task can keep.
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge, Error};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// let events = bridge.events();
    /// bridge.bridge().shutdown()?;
    /// assert!(matches!(futures::executor::block_on(events.recv()), Err(Error::ShutDown)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn events(&self) -> AsyncEvents {
        self.shared.bridge.router().subscribe();
        AsyncEvents {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Asks the kernel to stop and waits (asynchronously) until it has:
    /// [`Bridge::shutdown`], run on a thread of its own so that no executor
    /// thread blocks. Every pending call of this bridge ends with
    /// [`Error::ShutDown`].
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge, Error};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// futures::executor::block_on(bridge.shutdown())?;
    /// assert!(matches!(futures::executor::block_on(bridge.round_trip(b"x")), Err(Error::ShutDown)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn shutdown(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let slot: Arc<Mutex<ShutdownSlot>> = Arc::default();
        let shared = Arc::clone(&self.shared);
        let done = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name("ringbridge-shutdown".into())
            .spawn(move || {
                let out = shared.bridge.shutdown();
                let waker = {
                    let mut s = lock(&done);
                    s.0 = Some(out);
                    s.1.take()
                };
                // The thread's clone of the bridge goes before the wake: the
                // caller may drop the last one right after.
                drop(shared);
                if let Some(w) = waker {
                    w.wake();
                }
            });
        if let Err(e) = spawned {
            lock(&slot).0 = Some(Err(Error::InvalidArgument(format!(
                "could not start the shutdown thread: {e}"
            ))));
        }
        std::future::poll_fn(move |cx| {
            let mut s = lock(&slot);
            match s.0.take() {
                Some(out) => Poll::Ready(out),
                None => {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

/// What the shutdown thread hands its future: the outcome, and whom to wake.
type ShutdownSlot = (Option<Result<()>>, Option<Waker>);

/// An owned subscription to an [`AsyncBridge`]'s events: see
/// [`Events`](crate::Events) and [`AsyncBridge::events`].
pub struct AsyncEvents {
    shared: Arc<Shared>,
}

impl AsyncEvents {
    /// The next event, waiting (asynchronously) for it.
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// let events = bridge.events();
    /// let next = events.recv(); // pending until the kernel sends one
    /// drop(next);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv(&self) -> impl Future<Output = Result<MessageEnvelope>> + Send + '_ {
        let shared = &*self.shared;
        std::future::poll_fn(move |cx| {
            let bridge = &shared.bridge;
            let wake = || Wake::Task(cx.waker().clone());
            if let Some(event) = bridge.router().take_event(Some(wake())) {
                return Poll::Ready(Ok(event));
            }
            if let Err(e) = shared.read_now() {
                // What was published before the bridge died is still handed out.
                return Poll::Ready(bridge.router().take_event(Some(wake())).ok_or(e));
            }
            if let Some(event) = bridge.router().take_event(Some(wake())) {
                return Poll::Ready(Ok(event));
            }
            shared.dispatcher.kick();
            Poll::Pending
        })
    }
}

impl Drop for AsyncEvents {
    fn drop(&mut self) {
        self.shared.bridge.router().unsubscribe();
    }
}

impl std::fmt::Debug for AsyncEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncEvents").finish_non_exhaustive()
    }
}

impl Shared {
    /// Reads K2H once if nobody else does, routing what is there: `Err`
    /// only when the bridge is dead (or dies now).
    fn read_now(&self) -> Result<()> {
        if let Some(mut rx) = self.bridge.try_rx()
            && self.bridge.drain(&mut rx, false)? > 0
        {
            return Ok(());
        }
        // Only the flag: the dispatcher runs the watchdog while tasks wait.
        self.bridge.check_dead()
    }
}

/// The dispatcher: the thread that reads K2H while tasks wait, and the
/// wakers it serves.
struct Dispatcher {
    shared: Weak<Shared>,
    /// Serving a turn, not asleep on `wake_up`: a round trip that raised
    /// the router's task demand need not kick it. SeqCst: see
    /// `Router::task_demand`.
    busy: AtomicBool,
    /// Mirrors of `state`'s lists and flag, for the checks made while the
    /// dispatcher waits on K2H (no lock per poll). Relaxed: hints; every
    /// decision they feed is looked at again under the lock, or within one
    /// poll of the wait.
    has_receivers: AtomicBool,
    has_senders: AtomicBool,
    closed: AtomicBool,
    state: Mutex<DispatchState>,
    /// Signalled when work comes to an idle dispatcher, and on close.
    wake_up: Condvar,
}

#[derive(Default)]
struct DispatchState {
    /// Plain receives waiting for a message.
    receivers: Vec<Waker>,
    /// Sends waiting for H2K room.
    senders: Vec<Waker>,
    /// Round trips or event subscribers asked for a look at K2H.
    kicked: bool,
    started: bool,
    /// Asleep on `wake_up`.
    idle: bool,
    closed: bool,
}

impl DispatchState {
    fn has_work(&self) -> bool {
        self.kicked || !self.receivers.is_empty() || !self.senders.is_empty()
    }
}

fn add_waker(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

impl Dispatcher {
    fn wait_for_room(self: &Arc<Self>, waker: &Waker) {
        self.with_work(|s| add_waker(&mut s.senders, waker));
    }

    fn wait_for_message(self: &Arc<Self>, waker: &Waker) {
        self.with_work(|s| add_waker(&mut s.receivers, waker));
    }

    /// A round trip or a subscriber waits (the router's task demand is
    /// raised): a busy dispatcher looks at the demand before it sleeps, an
    /// idle one is woken.
    fn kick(self: &Arc<Self>) {
        if self.busy.load(Ordering::SeqCst) {
            return;
        }
        self.with_work(|s| s.kicked = true);
    }

    fn with_work(self: &Arc<Self>, add: impl FnOnce(&mut DispatchState)) {
        let mut s = lock(&self.state);
        add(&mut s);
        self.has_senders
            .store(!s.senders.is_empty(), Ordering::Relaxed);
        self.has_receivers
            .store(!s.receivers.is_empty(), Ordering::Relaxed);
        if s.closed {
            // No future outlives its `AsyncBridge`; be safe anyway.
            let wakers = std::mem::take(&mut s.receivers);
            drop(s);
            wakers.into_iter().for_each(Waker::wake);
            return;
        }
        if !s.started {
            let me = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("ringbridge-async".into())
                .spawn(move || me.run());
            match spawned {
                Ok(_) => s.started = true,
                // Without a thread, wake at once: the future polls again (a
                // busy wait, but never a hang); the next registration retries.
                Err(_) => {
                    let mut wakers = std::mem::take(&mut s.receivers);
                    wakers.append(&mut s.senders);
                    drop(s);
                    wakers.into_iter().for_each(Waker::wake);
                }
            }
        } else if s.idle {
            s.idle = false;
            self.wake_up.notify_one();
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let wakers = {
            let mut s = lock(&self.state);
            s.closed = true;
            let mut w = std::mem::take(&mut s.receivers);
            w.append(&mut s.senders);
            w
        };
        self.wake_up.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    fn run(&self) {
        loop {
            {
                let mut s = lock(&self.state);
                loop {
                    if s.closed {
                        return;
                    }
                    if s.has_work() {
                        break;
                    }
                    // Going to sleep: say so, then look at the router's
                    // demand once more (see `busy`).
                    self.busy.store(false, Ordering::SeqCst);
                    if self.demand() {
                        break;
                    }
                    s.idle = true;
                    s = self.wake_up.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                self.busy.store(true, Ordering::SeqCst);
                s.idle = false;
                s.kicked = false;
            }
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            self.serve(&shared);
            // Dropped here, between turns: if it is the last reference, the
            // bridge shuts down on this thread, and the next turn ends.
        }
    }

    /// Whether tasks wait for answers or events of a live bridge.
    fn demand(&self) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|s| s.bridge.router().tasks_waiting() && s.bridge.check_dead().is_ok())
    }

    /// One turn: reads K2H while tasks wait (or until sends waiting for
    /// room are due a look), then wakes whom it concerns.
    fn serve(&self, shared: &Shared) {
        let bridge = &shared.bridge;
        let router = bridge.router();
        let receivers = || self.has_receivers.load(Ordering::Relaxed);
        let mut result = Ok(0);
        if router.tasks_waiting() || receivers() {
            // Sends waiting for room get a look every SEND_POLL: no
            // doorbell says when H2K frees up.
            // (A send that starts waiting after this turn began is looked
            // at when the wait next wakes: a park lasts 10 ms at most.)
            let senders = || self.has_senders.load(Ordering::Relaxed);
            let patience = senders().then_some(SEND_POLL);
            let started = std::time::Instant::now();
            result = bridge.dispatch(patience, receivers, || {
                self.closed.load(Ordering::Relaxed)
                    || (!router.tasks_waiting() && !receivers())
                    || (senders() && started.elapsed() >= SEND_POLL)
            });
        } else {
            // Only sends wait: a look at H2K every step.
            std::thread::sleep(SEND_POLL);
        }
        let wakers = {
            let mut s = lock(&self.state);
            let mut w = std::mem::take(&mut s.senders);
            w.append(&mut s.receivers);
            self.has_senders.store(false, Ordering::Relaxed);
            self.has_receivers.store(false, Ordering::Relaxed);
            w
        };
        wakers.into_iter().for_each(Waker::wake);
        if result.is_err() {
            // Dead: every waiter was woken to meet the error; wait for new
            // work rather than spin on the error.
            router.wake_all();
            let mut s = lock(&self.state);
            s.kicked = false;
        }
    }
}

/// What a future polled again after it completed returns (instead of
/// sending or receiving once more).
fn polled_after_completion<T>() -> Poll<Result<T>> {
    Poll::Ready(Err(Error::InvalidArgument(
        "a ringbridge future polled after it completed".into(),
    )))
}

/// [`AsyncBridge::recv_batch`]'s future.
struct Receiving<'a, F> {
    shared: &'a Arc<Shared>,
    max: usize,
    f: F,
    done: bool,
}

// Nothing in it is pinned: the closure is only ever called through `&mut`.
impl<F> Unpin for Receiving<'_, F> {}

impl<F: FnMut(&MessageHeader, &[u8])> Future for Receiving<'_, F> {
    type Output = Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        let this = self.get_mut();
        if this.done {
            return polled_after_completion();
        }
        if this.max == 0 {
            this.done = true;
            return Poll::Ready(Ok(0));
        }
        let out = poll_receive(this.shared, cx, this.max, &mut this.f);
        this.done = out.is_ready();
        out
    }
}

/// One poll of a plain receive: up to `max` messages to `f`, or `Pending`
/// with the waker registered with the dispatcher.
fn poll_receive(
    shared: &Arc<Shared>,
    cx: &mut Context<'_>,
    max: usize,
    f: &mut dyn FnMut(&MessageHeader, &[u8]),
) -> Poll<Result<usize>> {
    let bridge = &shared.bridge;
    if let Some(mut rx) = bridge.try_rx() {
        match bridge.recv_now(&mut rx, max, f) {
            Ok(0) => {}
            out => return Poll::Ready(out),
        }
    }
    // Whoever reads K2H now sets our message aside; the dispatcher wakes
    // us after its turn.
    shared.dispatcher.wait_for_message(cx.waker());
    Poll::Pending
}

/// [`AsyncBridge::round_trip`]'s future.
struct RoundTrip<'a> {
    shared: &'a Arc<Shared>,
    flags: u32,
    payload: &'a [u8],
    /// The request's sequence number, once sent.
    sent: Option<u64>,
    /// Polls that found no answer and asked to be polled again.
    looks: u32,
    done: bool,
}

impl Future for RoundTrip<'_> {
    type Output = Result<MessageEnvelope>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return polled_after_completion();
        }
        let shared = this.shared;
        let bridge = &shared.bridge;
        let router = bridge.router();
        let (seq, just_sent) = match this.sent {
            Some(seq) => (seq, false),
            None => {
                let wake = Wake::Task(cx.waker().clone());
                match bridge.try_send_registered(this.flags, this.payload, wake) {
                    Ok(Some(seq)) => {
                        this.sent = Some(seq);
                        (seq, true)
                    }
                    // Another caller is publishing (briefly): poll again
                    // at the executor's next turn.
                    Ok(None) => {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    // No room: the dispatcher looks again for us.
                    Err(Error::Full) => {
                        shared.dispatcher.wait_for_room(cx.waker());
                        return Poll::Pending;
                    }
                    Err(e) => return this.finish(Err(e)),
                }
            }
        };
        // Just sent, the answer is hardly routed yet: straight to reading.
        if !just_sent && let Some(answer) = router.take(seq, None) {
            return this.finish(Ok(answer));
        }
        // Nobody reading K2H: look ourselves (no thread hop on a quick answer).
        let read = shared.read_now();
        let looking = this.looks < LOOKS;
        if let Some(answer) = router.take(seq, (!looking).then(|| cx.waker())) {
            return this.finish(Ok(answer));
        }
        if let Err(e) = read {
            return this.finish(Err(e));
        }
        if looking {
            // Polled again after the executor's other ready tasks: under
            // load the answer is usually there by then, and reading it here
            // costs no thread a wake-up.
            this.looks += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Registered as waiting for the dispatcher (above): start it.
        shared.dispatcher.kick();
        Poll::Pending
    }
}

impl RoundTrip<'_> {
    fn finish(&mut self, out: Result<MessageEnvelope>) -> Poll<Result<MessageEnvelope>> {
        self.done = true;
        self.sent = None;
        Poll::Ready(out)
    }
}

impl Drop for RoundTrip<'_> {
    fn drop(&mut self) {
        // Sent and not answered: the answer is dropped when it comes.
        if let Some(seq) = self.sent.take() {
            self.shared.bridge.router().abandon(seq);
        }
    }
}
