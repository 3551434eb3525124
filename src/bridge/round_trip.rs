//! Round trips: one request and its answer, with both directions held.

use std::sync::atomic::Ordering;

use crate::error::{Error, Result, RingId};
use crate::layout::KIND_NO_REPLY;
use crate::message::MessageEnvelope;
use crate::sync::lock;

use super::Bridge;
use super::receive::{ReceiveState, envelope};
use super::send::H2kProducer;
use super::wait::Deadline;

impl Bridge {
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
        self.state.check_dead()?;
        // K2H first, for the whole round trip: no other receiver can take
        // this reply, and concurrent round trips wait here for their turn.
        let mut rx = lock(&self.k2h);
        let outstanding = |rx: &ReceiveState| {
            let sent = self.state.sent.load(Ordering::Relaxed);
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
            match self.h2k.try_lock() {
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
        self.state.count_received(&rx);
        let reply = answer?;
        if reply.header.correlation != seq {
            return Err(self.state.fail(Error::RingCorrupted {
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

    /// A round trip's first half without waiting, for the async calls
    /// ([`crate::asynchronous`]): sends `payload` as
    /// [`round_trip`](Self::round_trip) would and returns its sequence
    /// number. `Ok(None)`: another caller holds a direction, try later;
    /// [`Error::Full`]: no room; [`Error::InvalidArgument`]: replies are
    /// outstanding (checked with both directions held, as `round_trip` does).
    pub(crate) fn try_start_round_trip(&self, payload: &[u8]) -> Result<Option<u64>> {
        self.check_len(payload.len())?;
        self.state.check_dead()?;
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
        let rx = try_hold!(self.k2h);
        let mut tx = try_hold!(self.h2k);
        self.send_round_trip_request(&mut tx, &rx, payload, Deadline::Now)
            .map(Some)
    }

    /// A round trip's request, sent with both directions held (so `sent`
    /// and `consumed` cannot move): refused while replies are outstanding.
    pub(super) fn send_round_trip_request(
        &self,
        tx: &mut H2kProducer,
        rx: &ReceiveState,
        payload: &[u8],
        deadline: Deadline,
    ) -> Result<u64> {
        let in_flight = tx.published().saturating_sub(rx.answered());
        if in_flight != 0 {
            return Err(replies_outstanding(in_flight));
        }
        let seq = self.wait(deadline, "send", || {
            tx.try_push(0, payload).map_err(|e| self.state.fail(e))
        })?;
        self.state.count_sent(tx);
        Ok(seq)
    }
}

/// Why a round trip was refused before sending.
pub(super) fn replies_outstanding(in_flight: u64) -> Error {
    Error::InvalidArgument(format!(
        "round_trip with {in_flight} reply(ies) outstanding; receive them first"
    ))
}
