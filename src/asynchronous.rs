//! Async counterparts of the blocking calls: [`AsyncBridge`].
//!
//! Runtime-agnostic: the futures need only the [`Waker`] their executor
//! hands them (tokio, `futures::executor`, anything), and the crate depends
//! on no runtime.
//!
//! # Design
//!
//! - **Polling, not blocking.** A future's `poll` makes the non-blocking
//!   call ([`Bridge::try_send`], [`Bridge::try_recv`]); on `Full`/`Empty` it
//!   registers its waker and returns `Pending`. A message is taken only in
//!   the poll that returns `Ready`, so dropping a pending `send`, `recv` or
//!   `recv_batch` future loses nothing: the reply is still there for the
//!   next receive. Errors are the non-blocking calls', hence the blocking
//!   ones' (`try_recv` runs the watchdog, so [`Error::KernelHung`] and its
//!   kin surface), except `Full`/`Empty`, which mean "not yet".
//! - **Who wakes.** A per-[`AsyncBridge`] waker thread, started when a
//!   future first goes pending: it parks on a condvar while no waker is
//!   registered; otherwise it waits a backoff step (yields, then sleeps
//!   from 10 us doubling to a 200 us cap; back to the start whenever a
//!   future completed) and wakes every registered waker. Wakes may be
//!   spurious (the future polls again and re-registers), never missing:
//!   whatever a future registers is woken one step later. The thread ends
//!   when the last clone of the `AsyncBridge` is dropped.
//! - **The receive turn.** Async receivers (`recv`, `recv_batch`,
//!   `round_trip`) take a FIFO turn, an async lock a pending future can hold
//!   across `.await` (a `std` guard cannot be), and hand it on when they
//!   finish or are dropped. So async receives are served in the order they
//!   first polled, and concurrent async round trips take turns, each getting
//!   its own reply, as blocking ones do.
//! - **A cancelled round trip.** A round trip dropped after its request went
//!   out leaves its sequence number behind; the next holder of the turn
//!   first receives that reply (the next answer in K2H, reply or no-reply
//!   mark, since a round trip sends only with no reply outstanding; events
//!   before it are set aside for the receives) and discards it. Should a
//!   different reply come instead (a blocking receiver took the orphan), the
//!   holder keeps it: a `recv` or `recv_batch` returns it, a `round_trip`
//!   drops it and refuses with [`Error::InvalidArgument`], like the blocking
//!   `round_trip` with a reply outstanding. Until some async receive runs,
//!   that reply counts as outstanding (`stats().in_flight` includes it, a
//!   blocking `round_trip` refuses, a blocking `recv` returns it).
//! - **Events and no-reply marks** are handled as by the blocking calls
//!   (see [`Bridge::recv`]): `recv` and `recv_batch` return events like
//!   replies and consume no-reply marks silently; a `round_trip` sets the
//!   events it meets aside inside the bridge, for the next receives (a
//!   round trip dropped while pending loses none), and ends with
//!   [`Error::NoReply`] when its request is answered with nothing.
//! - **Order.** As for the blocking calls: sends awaited one after another
//!   go out in that order, replies come in request order, and receives
//!   hand them out in that order; of sends pending at once in different
//!   tasks, whichever polls first when room appears goes first.
//!
//! Mixing with blocking calls on the same bridge works, with two caveats: a
//! poll may wait for a direction's lock that a blocking call holds (a
//! blocking `recv` holds K2H while it waits), and a blocking receive that
//! runs while an async round trip is pending may take that round trip's
//! reply (the round trip then fails with [`Error::RingCorrupted`], without
//! marking the bridge dead). Async calls among themselves need no care.
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

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::bridge::Bridge;
use crate::error::{Error, Result, RingId};
use crate::layout::KIND_NO_REPLY;
use crate::message::{MessageEnvelope, MessageHeader};
use crate::sync::lock;

/// Backoff steps the waker thread only yields for before it sleeps.
const YIELD_STEPS: u32 = 16;
/// Its first sleep; each step after doubles it, up to [`MAX_SLEEP`].
const MIN_SLEEP: Duration = Duration::from_micros(10);
/// The longest it sleeps between two rounds of wakes: bounds the latency a
/// long-waiting future sees on top of its reply's.
const MAX_SLEEP: Duration = Duration::from_micros(200);

/// A [`Bridge`] with async calls. Cheap to clone: clones share the bridge,
/// its receive turn and its waker thread; the bridge shuts down when the
/// last clone is dropped.
///
/// A wrapper rather than an extension trait on `Bridge`: the async calls
/// need per-bridge state (the receive turn, a cancelled round trip's
/// sequence number, the waker thread) that must live exactly as long as the
/// bridge, and a clonable owner gives tasks a `'static` handle (what
/// `tokio::spawn` asks for). The blocking calls stay at hand through
/// [`bridge`](Self::bridge).
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
    /// The receive turn and the cancelled round trip's sequence number.
    turn: Mutex<TurnState>,
    /// Shared with the waker thread, which must not keep the bridge alive.
    waker: Arc<WakerThread>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The thread holds only `waker`: tell it to end. The bridge itself
        // shuts down when the field drops, after this.
        self.waker.close();
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
    /// Wraps a launched bridge. Starts no thread yet: the waker thread
    /// starts when a future first has to wait.
    ///
    /// ```
    /// use ringbridge::{AsyncBridge, Backend, Bridge};
    /// let bridge = AsyncBridge::new(Bridge::builder().backend(Backend::Fallback).launch()?);
    /// let reply = futures::executor::block_on(bridge.round_trip(b"x"))?;
    /// assert_eq!(reply.payload, b"y");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn new(bridge: Bridge) -> Self {
        Self {
            shared: Arc::new(Shared {
                bridge,
                turn: Mutex::new(TurnState::default()),
                waker: Arc::new(WakerThread::default()),
            }),
        }
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
        Sending {
            shared: &self.shared,
            payload,
            done: false,
        }
    }

    /// Receives one reply or event, waiting (asynchronously) for it:
    /// [`Bridge::recv`] (events a round trip set aside first; no-reply marks
    /// consumed silently).
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
        Receiving {
            shared: &self.shared,
            turn: Turn::new(&self.shared),
            max: 1,
            f: ReplyInto(None),
            done: false,
        }
        .map_envelope()
    }

    /// Waits (asynchronously) for at least one reply, then hands up to
    /// `max` waiting replies to `f`, in order: [`Bridge::recv_batch`].
    /// Returns how many; `max == 0` returns 0 at once.
    ///
    /// Takes the replies one by one (each frees its slot), not with one
    /// store as the blocking call does. An error after some replies were
    /// handed out ends the batch early; the next call returns it (a dead
    /// bridge stays dead).
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
            turn: Turn::new(&self.shared),
            max,
            f: Each(f),
            done: false,
        }
    }

    /// Sends one request and waits (asynchronously) for its reply:
    /// [`Bridge::round_trip`], with its errors (among them
    /// [`Error::InvalidArgument`] while replies of plain sends are
    /// outstanding, and [`Error::NoReply`] for a request answered with
    /// nothing). Events met before the reply are set aside for the next
    /// receives, as the blocking call does.
    ///
    /// Concurrent async round trips on one bridge take turns, in the order
    /// they first polled; each gets its own reply. Dropped before its request
    /// went out, it has done nothing; dropped after, its reply is received
    /// and discarded by the next async receive (see the [module
    /// docs](self)).
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
        RoundTrip {
            shared: &self.shared,
            turn: Turn::new(&self.shared),
            payload,
            sent: None,
            done: false,
        }
    }
}

/// Registered wakers and the thread that wakes them.
#[derive(Default)]
struct WakerThread {
    state: Mutex<WakerState>,
    /// Signalled when the first waker is registered and on close.
    wake_up: Condvar,
    /// Bumped by every future that completes. RELAXED: a hint that resets
    /// the backoff (things are moving); it orders nothing.
    progress: AtomicU64,
}

#[derive(Default)]
struct WakerState {
    wakers: Vec<Waker>,
    started: bool,
    closed: bool,
}

impl WakerThread {
    /// Wakes `waker` one backoff step from now.
    fn register(self: &Arc<Self>, waker: &Waker) {
        let mut s = lock(&self.state);
        if s.closed {
            // No future outlives its `AsyncBridge`; be safe anyway.
            waker.wake_by_ref();
            return;
        }
        if !s.wakers.iter().any(|w| w.will_wake(waker)) {
            s.wakers.push(waker.clone());
        }
        if !s.started {
            let me = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("ringbridge-async".into())
                .spawn(move || me.run());
            // Without a thread, wake at once: the future polls again (a
            // busy wait, but never a hang); the next registration retries.
            match spawned {
                Ok(_) => s.started = true,
                Err(_) => {
                    let wakers = std::mem::take(&mut s.wakers);
                    drop(s);
                    wakers.into_iter().for_each(Waker::wake);
                }
            }
        } else if s.wakers.len() == 1 {
            self.wake_up.notify_one();
        }
    }

    fn completed(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    fn close(&self) {
        let wakers = {
            let mut s = lock(&self.state);
            s.closed = true;
            std::mem::take(&mut s.wakers)
        };
        self.wake_up.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    fn run(&self) {
        let mut step = 0u32;
        let mut seen = self.progress.load(Ordering::Relaxed);
        loop {
            {
                let mut s = lock(&self.state);
                while s.wakers.is_empty() && !s.closed {
                    // Nothing pending: no busy thread. Start fast again.
                    step = 0;
                    s = self.wake_up.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                if s.closed {
                    return;
                }
            }
            if step < YIELD_STEPS {
                std::thread::yield_now();
            } else {
                let doublings = (step - YIELD_STEPS).min(16);
                std::thread::sleep((MIN_SLEEP * (1 << doublings)).min(MAX_SLEEP));
            }
            step = step.saturating_add(1);
            let now = self.progress.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                step = 0;
            }
            let wakers = std::mem::take(&mut lock(&self.state).wakers);
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}

/// The receive turn's queue, and what a cancelled round trip left behind.
#[derive(Default)]
struct TurnState {
    holder: Option<u64>,
    /// Tickets waiting, first come first served, with their wakers.
    waiting: VecDeque<(u64, Waker)>,
    next_ticket: u64,
    /// Sequence number of a round trip dropped after sending: its reply is
    /// the next in K2H, for the next holder to discard.
    orphan: Option<u64>,
}

/// One future's place in the receive turn: none, waiting, or holding.
/// Dropping it gives the place up and, if the turn is free, wakes the next.
struct Turn<'a> {
    shared: &'a Shared,
    ticket: Option<u64>,
    held: bool,
}

impl<'a> Turn<'a> {
    fn new(shared: &'a Shared) -> Self {
        Self {
            shared,
            ticket: None,
            held: false,
        }
    }

    fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.held {
            return Poll::Ready(());
        }
        let mut t = lock(&self.shared.turn);
        let me = *self.ticket.get_or_insert_with(|| {
            t.next_ticket += 1;
            t.next_ticket
        });
        let front = t.waiting.front().map(|(id, _)| *id);
        if t.holder.is_none() && front.is_none_or(|id| id == me) {
            if front == Some(me) {
                t.waiting.pop_front();
            }
            t.holder = Some(me);
            self.held = true;
            return Poll::Ready(());
        }
        match t.waiting.iter_mut().find(|(id, _)| *id == me) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => t.waiting.push_back((me, cx.waker().clone())),
        }
        Poll::Pending
    }

    /// Gives the place up; `orphan`: the sequence number of a request whose
    /// reply nobody will take, for the next holder to discard.
    fn release(&mut self, orphan: Option<u64>) {
        let Some(me) = self.ticket.take() else {
            return;
        };
        let mut t = lock(&self.shared.turn);
        if std::mem::take(&mut self.held) {
            t.holder = None;
            if orphan.is_some() {
                t.orphan = orphan;
            }
        } else {
            t.waiting.retain(|(id, _)| *id != me);
        }
        let next = t.waiting.front().filter(|_| t.holder.is_none());
        let next = next.map(|(_, w)| w.clone());
        // Woken outside the lock: a waker may run executor code.
        drop(t);
        if let Some(next) = next {
            next.wake();
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.release(None);
    }
}

impl Shared {
    /// For the turn's holder: receives and discards a cancelled round trip's
    /// reply, if one is due. `Ready(Ok(Some(r)))`: the reply that came is not
    /// that one (a blocking receiver took it): the holder keeps `r`.
    fn poll_orphan(&self, cx: &mut Context<'_>) -> Poll<Result<Option<MessageEnvelope>>> {
        // Only the holder reads or clears it, and a holder sets it only as it
        // lets go: stable while we hold the turn.
        let Some(seq) = lock(&self.turn).orphan else {
            return Poll::Ready(Ok(None));
        };
        match self.bridge.try_recv_answer() {
            Ok(answer) => {
                lock(&self.turn).orphan = None;
                // Another request's no-reply mark is counted already, and
                // nobody would receive it: dropped as well.
                let keep = answer.header.correlation != seq && answer.header.kind != KIND_NO_REPLY;
                Poll::Ready(Ok(keep.then_some(answer)))
            }
            Err(Error::Empty) => {
                self.waker.register(cx.waker());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// [`AsyncBridge::send`]'s future.
struct Sending<'a> {
    shared: &'a Shared,
    payload: &'a [u8],
    done: bool,
}

/// What a future polled again after it completed returns (instead of
/// sending or receiving once more).
fn polled_after_completion<T>() -> Poll<Result<T>> {
    Poll::Ready(Err(Error::InvalidArgument(
        "a ringbridge future polled after it completed".into(),
    )))
}

impl Future for Sending<'_> {
    type Output = Result<u64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        if self.done {
            return polled_after_completion();
        }
        match self.shared.bridge.try_send(self.payload) {
            Err(Error::Full) => {
                self.shared.waker.register(cx.waker());
                Poll::Pending
            }
            out => {
                self.done = true;
                self.shared.waker.completed();
                Poll::Ready(out)
            }
        }
    }
}

/// What a [`Receiving`] does with each reply.
trait Sink {
    fn take(&mut self, reply: MessageEnvelope);
}

/// Keeps the one reply of a `recv`.
struct ReplyInto(Option<MessageEnvelope>);

impl Sink for ReplyInto {
    fn take(&mut self, reply: MessageEnvelope) {
        self.0 = Some(reply);
    }
}

/// Hands each reply of a `recv_batch` to the caller's closure.
struct Each<F>(F);

impl<F: FnMut(&MessageHeader, &[u8])> Sink for Each<F> {
    fn take(&mut self, reply: MessageEnvelope) {
        (self.0)(&reply.header, &reply.payload)
    }
}

/// [`AsyncBridge::recv`]'s and [`AsyncBridge::recv_batch`]'s future.
struct Receiving<'a, S> {
    shared: &'a Shared,
    turn: Turn<'a>,
    max: usize,
    f: S,
    done: bool,
}

// Nothing in it is pinned: the closure is only ever called through `&mut`.
impl<S> Unpin for Receiving<'_, S> {}

impl<S: Sink> Future for Receiving<'_, S> {
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
        if this.turn.poll_acquire(cx).is_pending() {
            return Poll::Pending;
        }
        let mut n = 0;
        match this.shared.poll_orphan(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return this.finish(Err(e)),
            Poll::Ready(Ok(Some(reply))) => {
                this.f.take(reply);
                n = 1;
            }
            Poll::Ready(Ok(None)) => {}
        }
        while n < this.max {
            match this.shared.bridge.try_recv() {
                Ok(reply) => {
                    this.f.take(reply);
                    n += 1;
                }
                Err(Error::Empty) if n == 0 => {
                    this.shared.waker.register(cx.waker());
                    return Poll::Pending;
                }
                // The next call reports an error (a dead bridge stays dead).
                Err(_) if n > 0 => break,
                Err(e) => return this.finish(Err(e)),
            }
        }
        this.finish(Ok(n))
    }
}

impl<S> Receiving<'_, S> {
    fn finish<T>(&mut self, out: Result<T>) -> Poll<Result<T>> {
        self.done = true;
        self.turn.release(None);
        self.shared.waker.completed();
        Poll::Ready(out)
    }
}

impl<'a> Receiving<'a, ReplyInto> {
    /// The `recv` future: one reply, as an envelope.
    fn map_envelope(mut self) -> impl Future<Output = Result<MessageEnvelope>> + Send + 'a {
        std::future::poll_fn(move |cx| {
            Pin::new(&mut self).poll(cx).map(|n| {
                // `Ok` only with the reply kept: a second `Ready` is an error.
                n.map(|_| self.f.0.take().expect("a reply with Ok(1)"))
            })
        })
    }
}

/// [`AsyncBridge::round_trip`]'s future.
struct RoundTrip<'a> {
    shared: &'a Shared,
    turn: Turn<'a>,
    payload: &'a [u8],
    /// The request's sequence number, once sent.
    sent: Option<u64>,
    done: bool,
}

impl Future for RoundTrip<'_> {
    type Output = Result<MessageEnvelope>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return polled_after_completion();
        }
        let bridge = &this.shared.bridge;
        let max = bridge.max_payload();
        if this.payload.len() > max {
            let len = this.payload.len();
            return this.finish(Err(Error::PayloadTooLarge { len, max }));
        }
        if this.turn.poll_acquire(cx).is_pending() {
            return Poll::Pending;
        }
        let seq = match this.sent {
            Some(seq) => seq,
            None => {
                match this.shared.poll_orphan(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return this.finish(Err(e)),
                    Poll::Ready(Ok(Some(other))) => {
                        return this.finish(Err(Error::InvalidArgument(format!(
                            "round_trip found reply {} outstanding (taken and dropped); \
                             do not receive elsewhere while async round trips run",
                            other.header.correlation
                        ))));
                    }
                    Poll::Ready(Ok(None)) => {}
                }
                match bridge.try_start_round_trip(this.payload) {
                    Ok(Some(seq)) => {
                        this.sent = Some(seq);
                        seq
                    }
                    // A direction busy, or no room: try again next step.
                    Ok(None) | Err(Error::Full) => {
                        this.shared.waker.register(cx.waker());
                        return Poll::Pending;
                    }
                    Err(e) => return this.finish(Err(e)),
                }
            }
        };
        // The next answer, the events before it set aside in the bridge (a
        // dropped future loses none of them).
        match bridge.try_recv_answer() {
            Ok(answer)
                if answer.header.correlation == seq && answer.header.kind == KIND_NO_REPLY =>
            {
                this.finish(Err(Error::NoReply { seq }))
            }
            Ok(reply) if reply.header.correlation == seq => this.finish(Ok(reply)),
            Ok(reply) => this.finish(Err(Error::RingCorrupted {
                ring: RingId::K2h,
                what: format!(
                    "reply answers request {} instead of {seq} (another receiver took it?)",
                    reply.header.correlation
                ),
            })),
            Err(Error::Empty) => {
                this.shared.waker.register(cx.waker());
                Poll::Pending
            }
            Err(e) => this.finish(Err(e)),
        }
    }
}

impl RoundTrip<'_> {
    fn finish(&mut self, out: Result<MessageEnvelope>) -> Poll<Result<MessageEnvelope>> {
        self.done = true;
        self.sent = None;
        self.turn.release(None);
        self.shared.waker.completed();
        Poll::Ready(out)
    }
}

impl Drop for RoundTrip<'_> {
    fn drop(&mut self) {
        // Sent and not answered: the reply is the next in K2H; whoever
        // holds the turn next discards it.
        self.turn.release(self.sent.take());
    }
}
