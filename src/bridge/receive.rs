//! The receiving paths: K2H's host half, the messages a round trip's
//! reading set aside for the receive calls, and the no-reply marks the
//! receive calls consume. Every read routes what belongs to a round trip
//! or an event subscriber to it first ([`super::router`]).

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::{KIND_ERROR, KIND_EVENT, KIND_NO_REPLY};
use crate::message::{MessageEnvelope, MessageHeader};
use crate::ring::{LaneConsumer, RingConsumer};
use crate::sync::lock;

use super::Bridge;
use super::router::Routed;
use super::wait::Deadline;

/// The host's K2H half, in the rings' format.
pub(super) enum K2hConsumer {
    Slots(RingConsumer),
    Lanes(LaneConsumer),
}

impl K2hConsumer {
    pub(super) fn read_with<R>(
        &mut self,
        f: impl FnOnce(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        match self {
            K2hConsumer::Slots(c) => c.read_with(f),
            K2hConsumer::Lanes(c) => c.read_with(f),
        }
    }
    pub(super) fn release(&mut self) {
        match self {
            K2hConsumer::Slots(c) => c.release(),
            K2hConsumer::Lanes(c) => c.release(),
        }
    }
    pub(super) fn try_pop_with<R>(
        &mut self,
        f: impl FnOnce(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        match self {
            K2hConsumer::Slots(c) => c.try_pop_with(f),
            K2hConsumer::Lanes(c) => c.try_pop_with(f),
        }
    }
    pub(super) fn consumed(&self) -> u64 {
        match self {
            K2hConsumer::Slots(c) => c.consumed(),
            K2hConsumer::Lanes(c) => c.consumed(),
        }
    }
}

/// The host's K2H direction: the ring half, the events a round trip set
/// aside, and the counts of what it took.
pub(crate) struct ReceiveState {
    pub(super) ring: K2hConsumer,
    /// Replies and events nobody routed away that a round trip (or a
    /// sender reclaiming room) read while it waited, oldest first: every
    /// receive call hands these out before reading the ring. Only through
    /// `set_aside`, `put_back` and `take_set_aside`, which keep
    /// `held_replies`.
    set_aside: VecDeque<MessageEnvelope>,
    /// The replies among `set_aside`: taken from the ring but not yet
    /// received by anyone, so not counted as received.
    held_replies: u64,
    /// No-reply marks taken from the ring.
    pub(super) no_reply: u64,
    /// Events taken from the ring (handed out or set aside).
    pub(super) events: u64,
}

impl ReceiveState {
    pub(super) fn new(ring: K2hConsumer) -> Self {
        Self {
            ring,
            set_aside: VecDeque::new(),
            held_replies: 0,
            no_reply: 0,
            events: 0,
        }
    }

    /// Requests answered so far: every K2H message taken but the events
    /// (each answer, reply or no-reply mark, answers one request).
    pub(super) fn answered(&self) -> u64 {
        self.ring.consumed() - self.events
    }

    /// Hands up to `max` of the messages set aside to `f`, oldest first;
    /// returns how many.
    pub(super) fn hand_out_set_aside(
        &mut self,
        max: usize,
        mut f: impl FnMut(&MessageHeader, &[u8]),
    ) -> usize {
        let mut n = 0;
        while n < max {
            let Some(m) = self.take_set_aside() else {
                break;
            };
            f(&m.header, &m.payload);
            n += 1;
        }
        n
    }

    /// Sets a message aside for the receive calls, after the others.
    pub(super) fn set_aside(&mut self, m: MessageEnvelope) {
        self.held_replies += u64::from(m.header.kind != KIND_EVENT);
        self.set_aside.push_back(m);
    }

    /// Puts a message back in front of those set aside (it was the next).
    pub(super) fn put_back(&mut self, m: MessageEnvelope) {
        self.held_replies += u64::from(m.header.kind != KIND_EVENT);
        self.set_aside.push_front(m);
    }

    /// The oldest message set aside.
    pub(super) fn take_set_aside(&mut self) -> Option<MessageEnvelope> {
        let m = self.set_aside.pop_front()?;
        self.held_replies -= u64::from(m.header.kind != KIND_EVENT);
        Some(m)
    }

    /// The oldest reply set aside (a sender reclaiming room holds one), the
    /// events set aside staying so: it is older than anything in the ring,
    /// so it is the next answer.
    pub(super) fn take_held_reply(&mut self) -> Option<MessageEnvelope> {
        if self.held_replies == 0 {
            return None;
        }
        let i = self
            .set_aside
            .iter()
            .position(|m| m.header.kind != KIND_EVENT)?;
        self.held_replies -= 1;
        self.set_aside.remove(i)
    }

    /// Whether nothing is set aside.
    pub(super) fn nothing_set_aside(&self) -> bool {
        self.set_aside.is_empty()
    }

    /// Replies (results and error replies) received so far: taken from the
    /// ring, and not held among the messages set aside.
    pub(super) fn replies(&self) -> u64 {
        self.answered() - self.no_reply - self.held_replies
    }
}

/// What the next K2H message of a receive is.
pub(super) enum Received<R> {
    /// A reply or an event, handed to the caller's closure.
    Message(R),
    /// A no-reply mark (consumed silently, counted).
    NoReply,
    /// Routed to a round trip or an event subscriber.
    Routed,
}

/// The K2H direction, held: whoever holds it reads the ring for everyone.
/// Letting go hands it to the first round trip asleep waiting for it.
pub(crate) struct RxGuard<'a> {
    guard: Option<MutexGuard<'a, ReceiveState>>,
    bridge: &'a Bridge,
}

impl Deref for RxGuard<'_> {
    type Target = ReceiveState;
    fn deref(&self) -> &ReceiveState {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl DerefMut for RxGuard<'_> {
    fn deref_mut(&mut self) -> &mut ReceiveState {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for RxGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.bridge.state.router.hand_over();
    }
}

impl Bridge {
    /// Holds K2H, waiting for it.
    pub(super) fn rx(&self) -> RxGuard<'_> {
        RxGuard {
            guard: Some(lock(&self.k2h)),
            bridge: self,
        }
    }

    /// Holds K2H if nobody else does.
    pub(crate) fn try_rx(&self) -> Option<RxGuard<'_>> {
        let guard = match self.k2h.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(RxGuard {
            guard: Some(guard),
            bridge: self,
        })
    }

    pub(super) fn recv_inner<R>(
        &self,
        deadline: Deadline,
        f: impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<R> {
        let mut rx = self.rx();
        self.recv_locked(&mut rx, deadline, f)
    }

    /// Reads everything K2H holds now, routing answers and subscribed
    /// events away and setting the rest aside for the receive calls (no-reply
    /// marks of plain sends are counted and dropped). With `one_plain`, stops
    /// after setting one message aside (a sender reclaiming room must not
    /// read a ring nobody receives from into memory). Returns how many
    /// messages it took.
    pub(crate) fn drain(&self, rx: &mut ReceiveState, one_plain: bool) -> Result<usize> {
        let mut n = 0;
        let out = loop {
            match self.read_one(rx, false, &mut envelope) {
                Ok(None) => break Ok(n),
                Ok(Some(got)) => {
                    n += 1;
                    if let Received::Message(m) = got {
                        rx.set_aside(m);
                        if one_plain {
                            break Ok(n);
                        }
                    }
                }
                Err(e) => break Err(e),
            }
        };
        rx.ring.release();
        self.state.count_received(rx);
        out
    }

    /// For the async dispatcher ([`crate::asynchronous`]): holds K2H and
    /// reads it, routing as [`drain`](Self::drain) does, waiting with the
    /// bridge's policy until it took something or `stop` says to.
    ///
    /// It holds K2H only while it reads: between two looks a task's own
    /// poll may read K2H instead (routing from an executor's thread wakes
    /// the tasks there, without a hop through this one). Gives up after
    /// `patience` (`Ok(0)`), if given.
    ///
    /// `plain_waiting`: whether receive calls wait (async ones, which this
    /// wakes): then a message someone else set aside for them (a sender
    /// reclaiming room does) ends the wait too, as one it took would.
    pub(crate) fn dispatch(
        &self,
        patience: Option<Duration>,
        plain_waiting: impl Fn() -> bool,
        mut stop: impl FnMut() -> bool,
    ) -> Result<usize> {
        let deadline = patience.map_or(Deadline::Never, Deadline::after);
        let out = self.wait(deadline, "recv", || {
            let n = match self.try_rx() {
                Some(mut rx) => {
                    let n = self.drain(&mut rx, false)?;
                    if n == 0 && !rx.nothing_set_aside() && plain_waiting() {
                        return Ok(Some(0));
                    }
                    n
                }
                None => 0,
            };
            Ok((n > 0 || stop()).then_some(n))
        });
        match out {
            Err(Error::Timeout { .. }) => Ok(0),
            other => other,
        }
    }

    /// Without waiting: hands up to `max` messages (set aside first, then
    /// the ring's) to `f`, as [`recv_batch`](Self::recv_batch) does.
    /// `Ok(0)`: nothing there; `Err`: the bridge is dead and nothing is left.
    pub(crate) fn recv_now(
        &self,
        rx: &mut ReceiveState,
        max: usize,
        f: &mut dyn FnMut(&MessageHeader, &[u8]),
    ) -> Result<usize> {
        let mut n = rx.hand_out_set_aside(max, &mut *f);
        let out = self.wait(Deadline::Now, "recv", || {
            while n < max {
                match self.read_one(rx, false, &mut |h: &MessageHeader, p: &[u8]| f(h, p))? {
                    None => break,
                    Some(Received::Message(())) => n += 1,
                    Some(Received::NoReply | Received::Routed) => {}
                }
            }
            Ok((n > 0).then_some(n))
        });
        rx.ring.release();
        self.state.count_received(rx);
        match out {
            Err(Error::Empty) => Ok(0),
            Err(_) if n > 0 => Ok(n),
            other => other,
        }
    }

    /// `Ok` unless the bridge is known to be dead (the flag only: the
    /// watchdog runs in the waits).
    pub(crate) fn check_dead(&self) -> Result<()> {
        self.state.check_dead()
    }

    /// The routing table, for the async calls.
    pub(crate) fn router(&self) -> &super::router::Router {
        &self.state.router
    }

    /// For a sender waiting for H2K room: if nobody reads K2H and nothing is
    /// set aside yet, frees the K2H slots of no-reply marks and routed
    /// answers (the kernel stalls on a full K2H, and with it H2K), stopping
    /// at the first message a receive call must hand out.
    pub(super) fn reclaim_room(&self) -> Result<()> {
        let Some(mut rx) = self.try_rx() else {
            return Ok(());
        };
        if rx.nothing_set_aside() {
            self.drain(&mut rx, true)?;
        }
        Ok(())
    }

    /// [`recv_inner`](Self::recv_inner) with the K2H direction already held:
    /// the next event set aside, else the next reply or event of the ring
    /// (no-reply marks are consumed on the way).
    pub(super) fn recv_locked<R>(
        &self,
        rx: &mut ReceiveState,
        deadline: Deadline,
        mut f: impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<R> {
        if let Some(held) = rx.take_set_aside() {
            self.state.count_received(rx);
            return Ok(f(&held.header, &held.payload));
        }
        // Replies already published are handed out even after the kernel
        // stopped or died: the watchdog only runs when the ring is empty.
        let out = self.wait(deadline, "recv", || self.pop_message(rx, &mut f));
        self.state.count_received(rx);
        out
    }

    /// Takes the ring's next reply or event and hands it to `f`, consuming
    /// (and counting) the no-reply marks before it. `Ok(None)`: nothing
    /// (more) there. The caller copies the counts out
    /// ([`BridgeState::count_received`]).
    pub(super) fn pop_message<R>(
        &self,
        rx: &mut ReceiveState,
        f: &mut impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        loop {
            match self.pop_one(rx, &mut *f)? {
                None => return Ok(None),
                Some(Received::NoReply | Received::Routed) => {}
                Some(Received::Message(out)) => return Ok(Some(out)),
            }
        }
    }

    /// Takes the ring's next message (reply, event or no-reply mark) and
    /// frees its slot: a reply or an event goes to `f`, a mark is counted.
    pub(super) fn pop_one<R>(
        &self,
        rx: &mut ReceiveState,
        f: &mut impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<Received<R>>> {
        let out = self.read_one(rx, false, f)?;
        rx.ring.release();
        Ok(out)
    }

    /// [`pop_one`](Self::pop_one) without freeing the slot (see
    /// [`K2hConsumer::release`]); with `marks`, a no-reply mark goes to `f` too (as
    /// a [`Received::Message`]). A ring error kills the bridge.
    pub(super) fn read_one<R>(
        &self,
        rx: &mut ReceiveState,
        marks: bool,
        f: &mut impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<Received<R>>> {
        let router = &self.state.router;
        let mut wakes = Vec::new();
        let got = rx.ring.read_with(|h, p| {
            if router.route(h, p, &mut wakes) == Routed::Away {
                return (h.kind, Some(Received::Routed));
            }
            let out = (h.kind != KIND_NO_REPLY || marks).then(|| Received::Message(f(h, p)));
            (h.kind, out)
        });
        match got {
            Ok(None) => Ok(None),
            Ok(Some((kind, out))) => {
                rx.no_reply += u64::from(kind == KIND_NO_REPLY);
                rx.events += u64::from(kind == KIND_EVENT);
                if !wakes.is_empty() {
                    // Freed and counted before the callers wake (outside
                    // the router's lock: a waker may run executor code).
                    rx.ring.release();
                    self.state.count_received(rx);
                    wakes.into_iter().for_each(super::router::Wake::wake);
                }
                Ok(Some(out.unwrap_or(Received::NoReply)))
            }
            Err(e) => {
                rx.ring.release();
                self.state.count_received(rx);
                Err(self.state.fail(e))
            }
        }
    }

    /// Takes ring messages until the next answer to a request (a reply, an
    /// error reply or a no-reply mark), which goes to `f`; the events before
    /// it are set aside, in order, for the next receive calls. `Ok(None)`:
    /// no answer there yet.
    pub(super) fn pop_answer<R>(
        &self,
        rx: &mut ReceiveState,
        f: &mut impl FnMut(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        // A reply a sender set aside while reclaiming room is the next
        // answer (set aside are only replies and events, never marks).
        if let Some(held) = rx.take_held_reply() {
            return Ok(Some(f(&held.header, &held.payload)));
        }
        loop {
            let got = rx.ring.try_pop_with(|h, p| {
                if h.kind == KIND_EVENT {
                    Err(envelope(h, p))
                } else {
                    Ok((h.kind == KIND_NO_REPLY, f(h, p)))
                }
            });
            match got.map_err(|e| self.state.fail(e))? {
                None => return Ok(None),
                Some(Err(event)) => {
                    rx.events += 1;
                    rx.set_aside(event);
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
        let mut rx = self.rx();
        let out = self.wait(Deadline::Never, "recv", || self.pop_answer(&mut rx, &mut f));
        self.state.count_received(&rx);
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
    /// ([`BridgeStats::no_reply`](super::BridgeStats::no_reply)), so the request counts as answered.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// Should `f` panic, the message is not consumed: the next receive
    /// delivers it again (in [`recv_batch`](Self::recv_batch), the messages
    /// handed out before it stay consumed).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    ///     .backend(Backend::Fallback)
    ///     .kernel(Kernel::ScaleF32 { factor: 0.5 })
    ///     .launch()?;
    /// bridge.send(&[0; 3])?; // not whole f32s: an error reply
    /// assert!(matches!(bridge.recv_pod::<f32>(), Err(Error::InvalidArgument(_))));
    /// bridge.send_pod(&[8.0f32])?;
    /// assert_eq!(bridge.recv_pod::<f32>()?, [4.0]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv_pod<T: bytemuck::AnyBitPattern + bytemuck::NoUninit>(&self) -> Result<Vec<T>> {
        let mut rx = self.rx();
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
                rx.put_back(event);
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
        let mut rx = self.rx();
        let mut n = rx.hand_out_set_aside(max, &mut f);
        let mut pass = |rx: &mut ReceiveState, n: &mut usize| -> Result<()> {
            while *n < max {
                match self.read_one(rx, marks, &mut f)? {
                    None => break,
                    Some(Received::Message(())) => *n += 1,
                    Some(Received::NoReply | Received::Routed) => {}
                }
            }
            rx.ring.release();
            self.state.count_received(rx);
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
}

pub(super) fn envelope(h: &MessageHeader, p: &[u8]) -> MessageEnvelope {
    MessageEnvelope {
        header: *h,
        payload: p.to_vec(),
    }
}
