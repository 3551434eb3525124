//! Round trips: one request and its answer, pipelined with any number of
//! other callers' (see [`super::router`]).

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::message::MessageEnvelope;
use crate::sync::lock;

use super::Bridge;
use super::router::Wake;
use super::wait::Deadline;

/// Longest a blocking round trip sleeps before it looks again for itself
/// (a backstop: the reader hands K2H over, or routes the answer, and wakes
/// it sooner).
const SLEEP_MAX: Duration = Duration::from_millis(10);

/// A registered request whose caller may still give up: dropped unanswered
/// (an error, a timeout, a panic), it abandons the registration.
struct Pending<'a> {
    bridge: &'a Bridge,
    seq: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.bridge.state.router.abandon(self.seq);
    }
}

impl Bridge {
    /// Sends one request and waits for its answer.
    ///
    /// Any number of threads may have round trips in flight on one bridge
    /// at once: they pipeline (the kernel serves their requests in
    /// batches), and each caller gets the answer to its own request,
    /// whichever thread happens to read it. Plain [`send`](Self::send)s and
    /// receives may run beside them: their replies go to the receive calls,
    /// never to a round trip.
    ///
    /// The answer is the reply, an error reply
    /// ([`MessageEnvelope::is_error`], the handler's code in
    /// `header.flags`), or, for a request the handler answered with nothing,
    /// an empty no-reply answer ([`MessageEnvelope::is_no_reply`]): all
    /// three are `Ok`. Errors are the bridge's: a kernel that failed, hung
    /// or was shut down, with every waiting caller woken.
    ///
    /// Events the kernel sends meanwhile go to the event subscribers
    /// ([`events`](Self::events)), or, with none, to the receive calls, in
    /// K2H order.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let reply = bridge.round_trip(&[1, 2, 3])?;
    /// assert_eq!(reply.payload, [2, 3, 4]);
    /// // Many callers at once, each gets its own reply.
    /// std::thread::scope(|s| {
    ///     for i in 0..8u8 {
    ///         let bridge = &bridge;
    ///         s.spawn(move || assert_eq!(bridge.round_trip(&[i]).unwrap().payload, [i + 1]));
    ///     }
    /// });
    /// // Plain sends beside round trips: their replies go to `recv`.
    /// let seq = bridge.send(b"plain")?;
    /// assert_eq!(bridge.round_trip(&[9])?.payload, [10]);
    /// assert_eq!(bridge.recv()?.header.correlation, seq);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn round_trip(&self, payload: &[u8]) -> Result<MessageEnvelope> {
        self.call(0, payload, Deadline::Never)
    }

    /// [`round_trip`](Self::round_trip) with the request header's `flags`
    /// word set (an opcode, say).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let reply = bridge.round_trip_with_flags(7, b"a")?; // the echo kernel echoes the flags
    /// assert_eq!((reply.header.flags, reply.payload), (7, b"b".to_vec()));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn round_trip_with_flags(&self, flags: u32, payload: &[u8]) -> Result<MessageEnvelope> {
        self.call(flags, payload, Deadline::Never)
    }

    /// [`round_trip`](Self::round_trip), giving up after `timeout`
    /// ([`Error::Timeout`]): the answer, when it comes, is dropped, and the
    /// bridge stays usable.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let reply = bridge.round_trip_timeout(b"a", Duration::from_secs(5))?;
    /// assert_eq!(reply.payload, b"b");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn round_trip_timeout(&self, payload: &[u8], timeout: Duration) -> Result<MessageEnvelope> {
        self.call(0, payload, Deadline::after(timeout))
    }

    /// [`round_trip_timeout`](Self::round_trip_timeout) with the request
    /// header's `flags` word set.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let reply = bridge.round_trip_timeout_with_flags(2, b"a", Duration::from_secs(5))?;
    /// assert_eq!((reply.header.flags, reply.payload), (2, b"b".to_vec()));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn round_trip_timeout_with_flags(
        &self,
        flags: u32,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<MessageEnvelope> {
        self.call(flags, payload, Deadline::after(timeout))
    }

    fn call(&self, flags: u32, payload: &[u8], deadline: Deadline) -> Result<MessageEnvelope> {
        self.check_len(payload.len())?;
        self.state.check_dead()?;
        let seq = self.send_registered(flags, payload, deadline, Wake::current_thread())?;
        let pending = Pending { bridge: self, seq };
        let answer = self.wait_answer(seq, deadline)?;
        std::mem::forget(pending);
        Ok(answer)
    }

    /// Sends one request registered for routing (its answer goes to `wake`'s
    /// caller), waiting for room until `deadline`. Returns its sequence
    /// number; on an error nothing was sent and nothing stays registered.
    pub(super) fn send_registered(
        &self,
        flags: u32,
        payload: &[u8],
        deadline: Deadline,
        wake: Wake,
    ) -> Result<u64> {
        let sent =
            self.send_registered_locked(&mut lock(&self.h2k), flags, payload, deadline, wake);
        self.woke_kernel_after(sent)
    }

    /// [`send_registered`](Self::send_registered) without waiting for the
    /// H2K lock: `Ok(None)` when another caller holds it.
    pub(crate) fn try_send_registered(
        &self,
        flags: u32,
        payload: &[u8],
        wake: Wake,
    ) -> Result<Option<u64>> {
        self.check_len(payload.len())?;
        self.state.check_dead()?;
        let mut tx = match self.h2k.try_lock() {
            Ok(tx) => tx,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        let sent = self.send_registered_locked(&mut tx, flags, payload, Deadline::Now, wake);
        drop(tx);
        self.woke_kernel_after(sent).map(Some)
    }

    fn send_registered_locked(
        &self,
        tx: &mut super::send::H2kProducer,
        flags: u32,
        payload: &[u8],
        deadline: Deadline,
        wake: Wake,
    ) -> Result<u64> {
        // Registered before it is published: whoever reads the answer finds
        // its caller. The sequence number cannot change while H2K is held.
        let seq = tx.next_seq();
        let router = &self.state.router;
        router.register(seq, wake);
        let sent = self.push_waiting(tx, flags, payload, deadline);
        match sent {
            Ok(s) => {
                debug_assert_eq!(s, seq);
                Ok(seq)
            }
            Err(e) => {
                router.unregister(seq);
                Err(e)
            }
        }
    }

    /// Waits for the answer to request `seq`: reads K2H for everyone while
    /// nobody else does, sleeps while somebody does.
    fn wait_answer(&self, seq: u64, deadline: Deadline) -> Result<MessageEnvelope> {
        let router = &self.state.router;
        self.wait_routed(
            deadline,
            || router.take(seq, None),
            || router.has_answer(seq),
        )
    }

    /// Waits until `take` finds what the caller waits for (routed to it by
    /// whoever reads K2H): reads K2H itself while nobody else does, sleeps
    /// while somebody does (`arrived`: whether `take` would find it now).
    pub(super) fn wait_routed<T>(
        &self,
        deadline: Deadline,
        mut take: impl FnMut() -> Option<T>,
        arrived: impl Fn() -> bool,
    ) -> Result<T> {
        let router = &self.state.router;
        loop {
            if let Some(found) = take() {
                return Ok(found);
            }
            if let Some(mut rx) = self.try_rx() {
                // While we hold K2H nobody else routes: after the first look,
                // only a read that took something can have brought ours.
                let mut first = true;
                return self.wait(deadline, "recv", || {
                    let took = self.drain(&mut rx, false)?;
                    let look = std::mem::take(&mut first) || took > 0;
                    Ok(if look { take() } else { None })
                });
            }
            let nap = match deadline {
                Deadline::Never => SLEEP_MAX,
                Deadline::At(at, after) => {
                    let now = Instant::now();
                    if now >= at {
                        return Err(Error::Timeout { op: "recv", after });
                    }
                    SLEEP_MAX.min(at - now)
                }
                Deadline::Now => return Err(Error::Empty),
            };
            // Asleep until what we wait for is routed to us or K2H is
            // handed over.
            router.sleep(nap, || !arrived() && self.k2h.try_lock().is_err());
        }
    }
}
