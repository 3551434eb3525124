//! Several bridges striped by the host, for bandwidth beyond one SM and one
//! pair of host threads.
//!
//! One [`Bridge`] is served by one thread block, so by one SM; the
//! measurements of docs/platform-facts.md ("Streaming with one block",
//! "Streaming over many blocks") found one block near 8-9 GB/s each way
//! against a 55 GB/s link, and 8 striped ring pairs of 1024 threads at
//! 42 GB/s. A [`StripedBridge`] is `N`
//! bridges, each with its own ring pair and its own serving block: on CUDA
//! one kernel launched with `N` blocks, block `b` serving ring pair `b` (so
//! the `N` blocks run on `N` SMs at once); on the fallback one serving
//! thread per ring pair. Nothing is shared between stripes: every ring stays
//! single-producer single-consumer on both sides, and the GPU needs no
//! synchronisation between blocks.
//!
//! Two ways to use it:
//! - **One stream, in order**: [`send`](StripedBridge::send),
//!   [`send_batch`](StripedBridge::send_batch) and
//!   [`recv`](StripedBridge::recv) deal messages round-robin (message `i` to
//!   stripe `i % N`) and collect the replies in the same order, so the
//!   replies come back in request order with no reordering buffer.
//! - **Several host threads**: [`stripe`](StripedBridge::stripe) hands out
//!   stripe `i` as a plain [`Bridge`]; drive each from its own producer and
//!   consumer threads (order holds per stripe). This is how the host side
//!   keeps up with many SMs (`ringbridge stream --stripes N`).
//!
//! Use one way or the other on a given `StripedBridge`: a message sent to a
//! stripe directly shifts the round-robin order of everything after it.
//!
//! # One allocation, one launch
//! All `N` ring pairs live in one allocation, `stripe_stride` bytes apart
//! (the control block records both numbers), and the kernel receives ring
//! pair 0's addresses: block `b` adds `b * stripe_stride` (see
//! `rb_select_stripe` in `kernels/ringbridge.cuh`). This is deliberate:
//! pinning memory, and freeing it, waits for the device's running work
//! (CUDA's implicit synchronization), so stripes launched one after another
//! would wait forever on the first stripe's persistent kernel. Here the
//! memory is pinned before the one kernel starts and freed only after it
//! ended. The fallback runs the same code path: its threads play blocks
//! `0..N` over one allocation, so CI exercises the striped addressing.
//!
//! Stopping one stripe ([`Bridge::shutdown`] on [`stripe`](StripedBridge::stripe))
//! stops its block only; the others keep serving. A fault (trap, illegal
//! address) ends the whole kernel, so every stripe reports it. A custom
//! kernel must be built on `rb_serve` (`RB_KERNEL_ENTRY`) with a grid of 1:
//! the group launches one block per stripe.
//!
//! # Kernels that answer with nothing, or send
//! A request a handler answers with nothing still leaves one K2H message,
//! a no-reply mark, on its stripe: [`recv`](StripedBridge::recv) consumes
//! it and moves on to the next stripe, so the round-robin order stays
//! exact. A kernel that sends messages of its own (events) is refused at
//! launch: its events would break the stripes' round-robin order. Neither
//! does a striped bridge take buffers ([`BridgeBuilder::buffer`]). Use a
//! [`Bridge`] for both.

use crate::bridge::{Bridge, BridgeBuilder};
use crate::error::{Error, Result};
use crate::layout::KIND_NO_REPLY;
use crate::message::MessageEnvelope;
use crate::sync::lock;

use std::sync::Mutex;

/// `N` bridges striped by the host (see the [module docs](self)).
///
/// ```
/// use ringbridge::{Backend, Bridge, StripedBridge};
/// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 3)?;
/// assert_eq!(striped.stripes(), 3);
/// striped.send_batch(&[b"a", b"b", b"c", b"d"])?; // stripes 0, 1, 2, 0
/// for want in [b"b", b"c", b"d", b"e"] {
///     assert_eq!(striped.recv()?.payload, want);
/// }
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Debug)]
pub struct StripedBridge {
    stripes: Vec<Bridge>,
    /// Round-robin position of the next message sent.
    send_next: Mutex<u64>,
    /// Round-robin position of the next reply received.
    recv_next: Mutex<u64>,
}

impl StripedBridge {
    /// Launches `stripes` ring pairs (1 to 64) configured by `builder`, in
    /// one allocation served by one launch of `stripes` blocks (on the
    /// fallback, `stripes` threads). If any stripe fails to start, every
    /// stripe is shut down and that error is returned.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0 or more than 64 stripes, a custom
    /// kernel with a grid other than 1, a kernel that sends messages of its
    /// own ([`HandlerTraits::sends`](crate::user_kernel::HandlerTraits::sends)),
    /// or buffers; [`Error::DeviceBusy`] while another
    /// bridge's kernel serves on CUDA; otherwise whatever
    /// [`BridgeBuilder::launch`] returns.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error, StripedBridge};
    /// let builder = Bridge::builder().backend(Backend::Fallback).capacity(8);
    /// let striped = StripedBridge::launch(builder.clone(), 2)?;
    /// assert_eq!(striped.stripe(1).spec().capacity(), 8);
    /// let none = StripedBridge::launch(builder, 0);
    /// assert!(matches!(none, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn launch(builder: BridgeBuilder, stripes: usize) -> Result<Self> {
        if !(1..=64).contains(&stripes) {
            return Err(Error::InvalidArgument(format!(
                "{stripes} stripes: a striped bridge has 1 to 64"
            )));
        }
        if let Some(why) = builder.striping_refusal() {
            return Err(Error::InvalidArgument(why));
        }
        Ok(Self {
            stripes: builder.launch_group(stripes)?,
            send_next: Mutex::new(0),
            recv_next: Mutex::new(0),
        })
    }

    /// How many stripes.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, StripedBridge};
    /// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 4)?;
    /// assert_eq!(striped.stripes(), 4);
    /// assert_eq!(striped.stripe(striped.stripes() - 1).backend(), Backend::Fallback);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn stripes(&self) -> usize {
        self.stripes.len()
    }

    /// Stripe `i` as a plain [`Bridge`], to drive from its own threads.
    ///
    /// # Panics
    /// If `i >= self.stripes()`, like slice indexing.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, StripedBridge};
    /// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 2)?;
    /// std::thread::scope(|s| {
    ///     for i in 0..striped.stripes() {
    ///         let stripe = striped.stripe(i);
    ///         s.spawn(move || stripe.round_trip(&[i as u8]).map(|r| r.payload));
    ///     }
    /// });
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn stripe(&self, i: usize) -> &Bridge {
        &self.stripes[i]
    }

    /// The largest payload a message may carry (the same on every stripe).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, StripedBridge};
    /// let builder = Bridge::builder().backend(Backend::Fallback).slot_size(128);
    /// let striped = StripedBridge::launch(builder, 2)?;
    /// assert_eq!(striped.max_payload(), 96);
    /// assert_eq!(striped.stripe(1).max_payload(), 96);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn max_payload(&self) -> usize {
        self.stripes[0].max_payload()
    }

    /// Sends one request to the next stripe in turn, waiting while its ring
    /// is full, and returns the request's position in the round-robin
    /// stream (0, 1, 2, ...).
    ///
    /// # Errors
    /// As [`Bridge::send`] on that stripe.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, StripedBridge};
    /// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 2)?;
    /// for want in 0..3 {
    ///     assert_eq!(striped.send(b"m")?, want); // stripes 0, 1, 0
    /// }
    /// assert_eq!(striped.stripe(0).stats().sent, 2);
    /// assert_eq!(striped.stripe(1).stats().sent, 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send(&self, payload: &[u8]) -> Result<u64> {
        self.send_with_flags(0, payload)
    }

    /// [`send`](Self::send) with the request header's `flags` word set.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, StripedBridge};
    /// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 2)?;
    /// striped.send_with_flags(6, b"m")?;
    /// assert_eq!(striped.recv()?.header.flags, 6); // the echo kernel echoes the flags
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send_with_flags(&self, flags: u32, payload: &[u8]) -> Result<u64> {
        let mut next = lock(&self.send_next);
        let n = self.stripes.len() as u64;
        self.stripes[(*next % n) as usize].send_with_flags(flags, payload)?;
        *next += 1;
        Ok(*next - 1)
    }

    /// Sends requests round-robin, in order, batching the writes to each
    /// stripe; returns the first one's position in the round-robin stream.
    ///
    /// The batch goes out in rounds of half a ring per stripe. A round is
    /// sent whole or not at all: first every stripe of the round is waited
    /// on until its ring has room for its share, then each share is written
    /// and published. A receiver that takes replies in order can always
    /// drain what earlier rounds sent, so a sender and a receiver on two
    /// threads never wait on each other for good.
    ///
    /// # Errors
    /// As [`Bridge::send_batch`] (every payload is checked before any is
    /// sent). If a stripe stops or fails while the batch waits for its
    /// room, the rounds before went out and nothing of that round did:
    /// [`next_position`](Self::next_position) is the first position not sent,
    /// and [`recv`](Self::recv) keeps returning replies in order up to the
    /// first one the stopped stripe never gave.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error, StripedBridge};
    /// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 2)?;
    /// assert_eq!(striped.send_batch(&[b"a", b"b", b"c"])?, 0);
    /// assert_eq!(striped.send_batch(&[b"d"])?, 3); // positions continue
    /// let err = striped.send_batch(&[vec![0u8; 1], vec![0; 33]]).unwrap_err();
    /// assert!(matches!(err, Error::PayloadTooLarge { len: 33, max: 32 }));
    /// assert_eq!(striped.stripe(0).stats().sent + striped.stripe(1).stats().sent, 4);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn send_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<u64> {
        let max = self.max_payload();
        if let Some(p) = payloads.iter().find(|p| p.as_ref().len() > max) {
            return Err(Error::PayloadTooLarge {
                len: p.as_ref().len(),
                max,
            });
        }
        let mut next = lock(&self.send_next);
        let first = *next;
        let n = self.stripes.len();
        let share = (self.stripes[0].spec().capacity() / 2).max(1);
        let mut held = Vec::with_capacity(n);
        for round in payloads.chunks(share * n) {
            let start = (*next % n as u64) as usize;
            // Message j of the round goes to stripe (start + j) % n. The
            // send_next lock orders concurrent callers, so holding several
            // stripes' rooms at once cannot deadlock between them.
            held.clear();
            for k in 0..n.min(round.len()) {
                let count = (round.len() - k).div_ceil(n);
                held.push(self.stripes[(start + k) % n].reserve(count)?);
            }
            for (k, room) in held.drain(..).enumerate() {
                room.send_all(round.iter().skip(k).step_by(n).map(AsRef::as_ref))?;
            }
            *next += round.len() as u64;
        }
        Ok(first)
    }

    /// The round-robin position the next message sent will take: how many
    /// requests this striped stream has sent. After a failed
    /// [`send_batch`](Self::send_batch), exactly the requests below it went
    /// out.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, StripedBridge};
    /// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 2)?;
    /// striped.send_batch(&[b"a", b"b", b"c"])?;
    /// assert_eq!(striped.next_position(), 3);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn next_position(&self) -> u64 {
        *lock(&self.send_next)
    }

    /// Receives the next reply in round-robin order, waiting for it.
    ///
    /// A request answered with nothing (a no-reply mark) is passed over:
    /// the call goes on to the next stripe, so every later reply keeps its
    /// place.
    ///
    /// # Errors
    /// As [`Bridge::recv`] on that stripe.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, StripedBridge};
    /// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 2)?;
    /// striped.send(&[10])?; // stripe 0
    /// striped.send(&[20])?; // stripe 1
    /// assert_eq!(striped.recv()?.payload, [11]);
    /// assert_eq!(striped.recv()?.payload, [21]);
    /// assert_eq!(striped.stripe(1).stats().in_flight, 0);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv(&self) -> Result<MessageEnvelope> {
        let mut next = lock(&self.recv_next);
        let n = self.stripes.len() as u64;
        loop {
            // The stripe's next answer, a no-reply mark included: each
            // request has exactly one, so the round robin stays in step.
            let answer =
                self.stripes[(*next % n) as usize].recv_answer(|h, p| MessageEnvelope {
                    header: *h,
                    payload: p.to_vec(),
                })?;
            *next += 1;
            if answer.header.kind != KIND_NO_REPLY {
                return Ok(answer);
            }
        }
    }

    /// Shuts every stripe down (see [`Bridge::shutdown`]); returns the first
    /// error, after trying them all.
    ///
    /// # Errors
    /// The first stripe's shutdown error, if any.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error, StripedBridge};
    /// let striped = StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 3)?;
    /// striped.shutdown()?;
    /// assert!(matches!(striped.send(b"x"), Err(Error::ShutDown)));
    /// assert!(matches!(striped.stripe(2).try_recv(), Err(Error::ShutDown)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn shutdown(&self) -> Result<()> {
        let mut first = Ok(());
        for b in &self.stripes {
            let r = b.shutdown();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::fake;

    /// A no-reply mark takes its request's place in the round robin: the
    /// replies after it keep theirs.
    #[test]
    fn no_reply_marks_keep_the_round_robin_in_step() {
        let (b0, mut d0) = fake::bridge();
        let (b1, mut d1) = fake::bridge();
        let striped = StripedBridge {
            stripes: vec![b0, b1],
            send_next: Mutex::new(0),
            recv_next: Mutex::new(0),
        };
        for p in [b"0", b"1", b"2", b"3", b"4"] {
            striped.send(p).unwrap(); // stripes 0, 1, 0, 1, 0
        }
        let s0: Vec<u64> = (0..3).map(|_| d0.request()).collect();
        let s1: Vec<u64> = (0..2).map(|_| d1.request()).collect();
        d0.reply(s0[0], b"zero");
        d1.no_reply(s1[0]);
        d0.no_reply(s0[1]);
        d1.reply(s1[1], b"three");
        d0.reply(s0[2], b"four");
        assert_eq!(striped.recv().unwrap().payload, b"zero");
        assert_eq!(striped.recv().unwrap().payload, b"three");
        assert_eq!(striped.recv().unwrap().payload, b"four");
        for b in &striped.stripes {
            assert_eq!(b.stats().in_flight, 0);
        }
        assert_eq!(striped.stripe(0).stats().no_reply, 1);
        assert_eq!(striped.stripe(1).stats().no_reply, 1);
    }

    #[test]
    fn buffers_are_refused() {
        let builder = BridgeBuilder::default()
            .backend(crate::Backend::Fallback)
            .buffer(crate::buffer::BufferInit::zeroed(64));
        let err = StripedBridge::launch(builder, 2).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(w) if w.contains("takes no buffers")),
            "{err:?}"
        );
    }
}
