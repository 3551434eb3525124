//! The sending paths: H2K's host half, the send calls, and [`SendChunk`].

use std::time::Duration;

use crate::error::{Error, Result, RingId};
use crate::layout::KIND_REQUEST;
use crate::ring::{LaneProducer, RingProducer};
use crate::sync::lock;

use super::Bridge;
use super::wait::Deadline;

/// The host's H2K half, in the rings' format.
pub(super) enum H2kProducer {
    Slots(RingProducer),
    Lanes(LaneProducer),
}

impl H2kProducer {
    pub(super) fn write(&mut self, flags: u32, payload: &[u8]) -> Result<Option<u64>> {
        match self {
            H2kProducer::Slots(p) => p.write(KIND_REQUEST, flags, 0, payload),
            H2kProducer::Lanes(p) => p.write(KIND_REQUEST, flags, payload),
        }
    }
    /// Writes one request in place, unpublished (see
    /// [`SendChunk::write_with`]).
    pub(super) fn write_with(
        &mut self,
        flags: u32,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<Option<u64>> {
        match self {
            H2kProducer::Slots(p) => p.write_with(KIND_REQUEST, flags, 0, fill),
            H2kProducer::Lanes(p) => p.stage_with(KIND_REQUEST, flags, fill),
        }
    }
    /// Forgets what `write_with` wrote since the last `publish`.
    pub(super) fn discard(&mut self) {
        match self {
            H2kProducer::Slots(p) => p.discard(),
            H2kProducer::Lanes(p) => p.discard(),
        }
    }
    pub(super) fn publish(&mut self) {
        match self {
            H2kProducer::Slots(p) => p.publish(),
            H2kProducer::Lanes(p) => p.publish(),
        }
    }
    pub(super) fn try_push(&mut self, flags: u32, payload: &[u8]) -> Result<Option<u64>> {
        let seq = self.write(flags, payload)?;
        self.publish();
        Ok(seq)
    }
    pub(super) fn free(&mut self, want: u64) -> Result<u64> {
        match self {
            H2kProducer::Slots(p) => p.free(want),
            H2kProducer::Lanes(p) => p.free(want),
        }
    }
    pub(super) fn next_seq(&self) -> u64 {
        match self {
            H2kProducer::Slots(p) => p.next_seq(),
            H2kProducer::Lanes(p) => p.next_seq(),
        }
    }
    pub(super) fn published(&self) -> u64 {
        match self {
            H2kProducer::Slots(p) => p.published(),
            H2kProducer::Lanes(p) => p.published(),
        }
    }
}

impl Bridge {
    pub(super) fn send_inner(&self, flags: u32, payload: &[u8], deadline: Deadline) -> Result<u64> {
        self.check_len(payload.len())?;
        self.state.check_dead()?;
        let sent = self.push_waiting(&mut lock(&self.h2k), flags, payload, deadline);
        self.woke_kernel_after(sent)
    }

    /// After a [`push_waiting`](Self::push_waiting) and the H2K lock's
    /// release: wakes a parked serve thread if a request went out.
    pub(super) fn woke_kernel_after<T>(&self, sent: Result<T>) -> Result<T> {
        if sent.is_ok() {
            self.state.doorbell.wake_kernel();
        }
        sent
    }

    /// Waits until `deadline` for `attempt` to find room in H2K (`Some`).
    /// While it waits it reclaims the K2H slots of no-reply marks and routed
    /// answers now and then ([`Bridge::reclaim_room`]): the kernel stops
    /// taking requests while K2H is full, so a sender of one-way requests
    /// needs this, not a receiver, to make progress. Every sending path
    /// that waits for room waits here.
    fn wait_for_room<T>(
        &self,
        deadline: Deadline,
        mut attempt: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let mut tries = 0u32;
        self.wait(deadline, "send", || {
            let done = attempt()?;
            if done.is_none() {
                tries = tries.wrapping_add(1);
                if tries % 64 == 1 {
                    self.reclaim_room()?;
                }
            }
            Ok(done)
        })
    }

    /// Publishes one request, waiting for room until `deadline`
    /// ([`wait_for_room`](Self::wait_for_room)). The caller then lets go of
    /// H2K and wakes the serve thread ([`woke_kernel_after`](Self::woke_kernel_after)).
    pub(super) fn push_waiting(
        &self,
        tx: &mut H2kProducer,
        flags: u32,
        payload: &[u8],
        deadline: Deadline,
    ) -> Result<u64> {
        let seq = self.wait_for_room(deadline, || {
            tx.try_push(flags, payload).map_err(|e| self.state.fail(e))
        })?;
        // The caller wakes the serve thread once it lets go of H2K
        // (`woke_kernel_after`).
        self.state.record_sent(tx);
        Ok(seq)
    }

    /// Sends one request, waiting while the H2K ring is full. Returns its
    /// sequence number (the reply's `correlation`).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).capacity(4).launch()?;
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

    /// [`try_send`](Self::try_send) with the header's `flags` set (the
    /// async send's way in).
    pub(crate) fn try_send_with_flags(&self, flags: u32, payload: &[u8]) -> Result<u64> {
        self.send_inner(flags, payload, Deadline::Now)
    }

    /// Sends, waiting at most `timeout` for room.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder().backend(Backend::Fallback).capacity(2).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback)
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
        self.state.check_dead()?;
        let mut tx = lock(&self.h2k);
        let first = tx.next_seq();
        let mut next = 0;
        while next < payloads.len() {
            self.wait_for_room(Deadline::Never, || {
                let mut wrote = 0;
                while next < payloads.len() {
                    match tx.write(0, payloads[next].as_ref()) {
                        Ok(Some(_)) => {
                            next += 1;
                            wrote += 1;
                        }
                        Ok(None) => break,
                        Err(e) => return Err(self.state.fail(e)),
                    }
                }
                tx.publish();
                self.state.count_sent(&tx);
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).capacity(8).launch()?;
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
        let capacity = self.state.spec.capacity();
        if count > capacity {
            return Err(Error::InvalidArgument(format!(
                "a reservation of {count} slots in a ring of {capacity}"
            )));
        }
        self.state.check_dead()?;
        let mut tx = lock(&self.h2k);
        self.wait_for_room(Deadline::Never, || {
            let free = tx.free(count as u64).map_err(|e| self.state.fail(e))?;
            Ok((free >= count as u64).then_some(()))
        })?;
        let first = tx.next_seq();
        Ok(SendChunk {
            bridge: self,
            h2k: tx,
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch().unwrap();
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
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch().unwrap();
/// let mut chunk = bridge.reserve(1).unwrap();
/// chunk.write_with(|_| 0).unwrap();
/// chunk.publish().unwrap();
/// chunk.write_with(|_| 0).unwrap();
/// ```
#[must_use = "a chunk sends nothing unless published"]
pub struct SendChunk<'a> {
    bridge: &'a Bridge,
    h2k: std::sync::MutexGuard<'a, H2kProducer>,
    reserved: usize,
    written: usize,
    first: u64,
}

impl SendChunk<'_> {
    /// Requests reserved.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
        self.write_with_flags(0, fill)
    }

    /// [`write_with`](Self::write_with) with the request header's `flags`
    /// word set (an opcode, say): the way to send a batch of flagged
    /// requests.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let mut chunk = bridge.reserve(2)?;
    /// for flags in [4, 5] {
    ///     chunk.write_with_flags(flags, |buf| { buf[0] = 1; 1 })?;
    /// }
    /// chunk.publish()?;
    /// assert_eq!(bridge.recv()?.header.flags, 4); // the echo kernel echoes the flags
    /// assert_eq!(bridge.recv()?.header.flags, 5);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn write_with_flags(
        &mut self,
        flags: u32,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<u64> {
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
        let written = self.h2k.write_with(flags, |area| {
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
            Ok(None) => Err(self.bridge.state.fail(Error::RingCorrupted {
                ring: RingId::H2k,
                what: "no room where room was reserved".into(),
            })),
            Err(e) => Err(self.bridge.state.fail(e)),
        }
    }

    /// Writes the next request, a copy of `payload` (see
    /// [`write_with`](Self::write_with)).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
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
        self.bridge.state.check_dead()?;
        self.h2k.publish();
        self.written = 0;
        self.bridge.state.count_sent(&self.h2k);
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
        self.h2k.discard();
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
