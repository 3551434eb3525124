//! The writing half of a ring.

use super::copy::store_bytes;
use super::{RingRef, WritePosition};
use crate::error::Result;
use crate::layout::{MESSAGE_HEADER_SIZE, MessageHeader};
use crate::sync::{AtomicU64, Ordering};

/// Words of a slot's message header.
const HEADER_WORDS: usize = MESSAGE_HEADER_SIZE / 8;

/// Stores the header of the message at `seq` into its slot's header words.
/// Relaxed: the slot belongs to the producer until it publishes `head`; the
/// release store in `publish` orders these stores before it.
#[inline]
fn store_header(
    head_words: &[AtomicU64],
    seq: u64,
    kind: u32,
    flags: u32,
    correlation: u64,
    len: usize,
) {
    let header: [u64; HEADER_WORDS] = bytemuck::cast(MessageHeader {
        seq,
        correlation,
        kind,
        len: len as u32,
        flags,
        reserved: 0,
    });
    for (w, v) in head_words.iter().zip(header) {
        w.store(v, Ordering::Relaxed);
    }
}

/// Writes messages into one ring and publishes them with a release store of
/// `head`.
///
/// It keeps its own `head` locally and a cached copy of the consumer's
/// `tail`; it reads the shared `tail` only when the cache says the ring is
/// full. Every `tail` it reads is validated.
///
/// The host's producer on H2K, with the Rust model of the device half
/// answering on K2H:
///
/// ```
/// use ringbridge::error::RingId;
/// use ringbridge::layout::{KIND_REPLY, KIND_REQUEST};
/// use ringbridge::ring::{RegionLayout, RingSpec, model};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let (mut h2k_tx, mut h2k_rx) = layout.ring_pair(&mem, RingId::H2k);
/// let (mut k2h_tx, mut k2h_rx) = layout.ring_pair(&mem, RingId::K2h);
/// let seq = h2k_tx.try_push(KIND_REQUEST, 0, 0, b"abc")?.expect("room");
/// assert_eq!(model::echo_step(&mut h2k_rx, &mut k2h_tx, 8)?, 1);
/// let reply = k2h_rx.try_pop_with(|h, p| (h.kind, h.correlation, p.to_vec()))?;
/// assert_eq!(reply, Some((KIND_REPLY, seq, b"bcd".to_vec())));
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub struct RingProducer {
    ring: RingRef,
    /// Our position (`head` equals the shared one after `publish`; the
    /// unpublished are the messages written since) and the cached `tail`.
    pos: WritePosition,
    /// Cache lines the last message spanned (at most [`WARM_MAX_LINES`]):
    /// how much of the next slot [`publish`](Self::publish) warms.
    warm_lines: usize,
}

/// Most cache lines of the next slot that `publish` claims ahead of time
/// (4 KiB).
const WARM_MAX_LINES: usize = 64;
/// 64-bit words per 64-byte cache line.
const LINE_WORDS: usize = 8;

impl RingProducer {
    pub(crate) fn new(ring: RingRef) -> Self {
        Self {
            ring,
            pos: WritePosition::default(),
            warm_lines: 0,
        }
    }

    /// Largest payload one slot carries.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (tx, _rx) = layout.ring_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.max_payload(), 64 - 32); // slot size minus the header
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn max_payload(&self) -> usize {
        self.ring.max_payload()
    }

    /// Slots in the ring.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(3, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (tx, _rx) = layout.ring_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.capacity(), 4); // 3 rounded up to a power of two
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// The position (sequence number) the next message will get.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, _rx) = layout.ring_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.next_seq(), 0);
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, 0, b"a")?, Some(0));
    /// assert_eq!(tx.next_seq(), 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.pos.head
    }

    /// Messages written and published so far.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, _rx) = layout.ring_pair(&mem, RingId::H2k);
    /// tx.write(KIND_REQUEST, 0, 0, b"a")?;
    /// assert_eq!((tx.next_seq(), tx.published()), (1, 0)); // written, not published
    /// tx.publish();
    /// assert_eq!(tx.published(), 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn published(&self) -> u64 {
        self.pos.published()
    }

    /// Free slots, reading the consumer's `tail` only if the cached one says
    /// fewer than `want` are free.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.ring_pair(&mem, RingId::H2k);
    /// tx.try_push(KIND_REQUEST, 0, 0, b"a")?;
    /// assert_eq!(tx.free(1)?, 3);
    /// rx.try_pop_with(|_, _| ())?; // frees the slot
    /// assert_eq!(tx.free(1)?, 3); // the cached tail says enough are free
    /// assert_eq!(tx.free(4)?, 4); // asking for more reads the tail
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn free(&mut self, want: u64) -> Result<u64> {
        self.pos.free(&self.ring, want)
    }

    /// Writes one message into the next slot without publishing it. Returns
    /// its sequence number, or `None` when the ring is full.
    ///
    /// The caller checked `payload.len() <= self.max_payload()`.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(2, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.ring_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.write(KIND_REQUEST, 0, 0, b"a")?, Some(0));
    /// assert_eq!(tx.write(KIND_REQUEST, 0, 0, b"b")?, Some(1));
    /// assert_eq!(tx.write(KIND_REQUEST, 0, 0, b"c")?, None); // full
    /// assert_eq!(rx.available()?, 0); // nothing published yet
    /// tx.publish();
    /// assert_eq!(rx.available()?, 2);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn write(
        &mut self,
        kind: u32,
        flags: u32,
        correlation: u64,
        payload: &[u8],
    ) -> Result<Option<u64>> {
        debug_assert!(payload.len() <= self.max_payload());
        if self.free(1)? == 0 {
            return Ok(None);
        }
        let seq = self.pos.head;
        let (head_words, body) = self.ring.slot(seq).split_at(HEADER_WORDS);
        // The slot belongs to us until we publish `head`; the release store
        // in `publish` orders these writes before it (see `store_bytes`).
        store_bytes(body, payload);
        store_header(head_words, seq, kind, flags, correlation, payload.len());
        self.count_written(payload.len());
        Ok(Some(seq))
    }

    /// Like [`write`](Self::write), but the payload is written in place:
    /// `fill` gets the next slot's whole payload area
    /// ([`max_payload`](Self::max_payload) bytes, holding whatever an earlier
    /// message of that slot left there) and returns how many of its first
    /// bytes are the payload. Nothing is copied. Returns the message's
    /// sequence number, `None` (without calling `fill`) when the ring is
    /// full, or [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge)
    /// when `fill` returns more than the area holds; then no message is
    /// written and the position is free again.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # use ringbridge::Error;
    /// # let layout = RegionLayout::new(RingSpec::new(2, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.ring_pair(&mem, RingId::H2k);
    /// let seq = tx.write_with(KIND_REQUEST, 0, 0, |buf| {
    ///     assert_eq!(buf.len(), 32);
    ///     buf[..5].copy_from_slice(b"hello");
    ///     5
    /// })?;
    /// assert_eq!(seq, Some(0));
    /// let err = tx.write_with(KIND_REQUEST, 0, 0, |buf| buf.len() + 1).unwrap_err();
    /// assert!(matches!(err, Error::PayloadTooLarge { len: 33, max: 32 }));
    /// tx.publish();
    /// assert_eq!(rx.try_pop_with(|_, p| p.to_vec())?, Some(b"hello".to_vec()));
    /// assert_eq!(rx.try_pop_with(|_, p| p.to_vec())?, None); // the bad one was not written
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn write_with(
        &mut self,
        kind: u32,
        flags: u32,
        correlation: u64,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<Option<u64>> {
        if self.free(1)? == 0 {
            return Ok(None);
        }
        let seq = self.pos.head;
        let (head_words, body) = self.ring.slot(seq).split_at(HEADER_WORDS);
        let max = self.max_payload();
        debug_assert_eq!(body.len() * 8, max);
        let ptr = body.as_ptr().cast::<u8>().cast_mut();
        // SAFETY: `body` is `max / 8` contiguous `AtomicU64`s, which have
        // the size and alignment of `u64` and hold their value in an
        // `UnsafeCell`, so writing through a pointer derived from the shared
        // slice is allowed, and every byte is initialized (the region is
        // zeroed when allocated; since then only whole words were stored).
        // No one else touches these words while the `&mut` lives: the
        // consumer reads a slot only below a `head` it acquired, and we
        // publish this slot's position only after `fill` returned; its
        // reads of the slot's previous message happened before its release
        // store of the `tail` that `free` acquired. We do not use `body`
        // until `fill` returns, and `fill` cannot keep the borrow.
        let area = unsafe { std::slice::from_raw_parts_mut(ptr, max) };
        let len = fill(area);
        if len > max {
            return Err(crate::Error::PayloadTooLarge { len, max });
        }
        store_header(head_words, seq, kind, flags, correlation, len);
        self.count_written(len);
        Ok(Some(seq))
    }

    /// Counts the message at `head` (its slot written) as written, not
    /// published, and remembers how much of the next slot to warm.
    #[inline]
    fn count_written(&mut self, len: usize) {
        self.warm_lines = (MESSAGE_HEADER_SIZE + len)
            .div_ceil(LINE_WORDS * 8)
            .min(WARM_MAX_LINES);
        self.pos.head += 1;
        self.pos.unpublished += 1;
    }

    /// Forgets every message written since the last `publish`: their
    /// positions are free again and the consumer never sees them (nothing
    /// was stored to `head`).
    #[cfg(not(loom))]
    pub(crate) fn discard(&mut self) {
        self.pos.discard();
    }

    /// Publishes every written message with one release store of `head`.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.ring_pair(&mem, RingId::H2k);
    /// for p in [b"a", b"b", b"c"] {
    ///     tx.write(KIND_REQUEST, 0, 0, p)?;
    /// }
    /// assert_eq!(rx.try_pop_with(|_, p| p.to_vec())?, None);
    /// tx.publish(); // all three at once
    /// assert_eq!(rx.available()?, 3);
    /// assert_eq!(rx.try_pop_with(|_, p| p.to_vec())?, Some(b"a".to_vec()));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn publish(&mut self) {
        if self.pos.unpublished > 0 {
            // Release: orders every slot write above before the new `head`;
            // the consumer's acquire load of `head` then sees them all.
            self.ring.head().store(self.pos.head, Ordering::Release);
            self.pos.unpublished = 0;
            self.warm_next_slot();
        }
    }

    /// Claims the next slot's cache lines, as many as the last message used
    /// (at most 4 KiB), for this core while the slot is free, so that the
    /// next message's stores find them here instead of waiting, ahead of
    /// the `head` store, for the core that read them a lap ago to give them
    /// up. What it saves, measured: docs/performance.md ("Claiming the next
    /// slot").
    ///
    /// Relaxed stores of 0 into one word of each line: the slot is ours
    /// (the cached `tail` says the consumer left it, and no reader looks at
    /// a slot before a `head` covering it is published), and the next
    /// `write` overwrites the header and payload before that `head` is
    /// released, so the consumer never sees these values. They follow the
    /// `head` release store, so they cannot delay it.
    #[inline]
    fn warm_next_slot(&self) {
        if !self.pos.next_is_free(&self.ring) {
            return; // full as far as we know: the next slot is not ours
        }
        for line in self
            .ring
            .slot(self.pos.head)
            .chunks(LINE_WORDS)
            .take(self.warm_lines)
        {
            // Relaxed: publishes nothing (see above); only takes the line.
            line[0].store(0, Ordering::Relaxed);
        }
    }

    /// Writes one message and publishes it: `Ok(Some(seq))`, or `Ok(None)`
    /// when the ring is full.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(1, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.ring_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, 0, b"a")?, Some(0));
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, 0, b"b")?, None); // full
    /// assert_eq!(rx.try_pop_with(|_, p| p.to_vec())?, Some(b"a".to_vec()));
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, 0, b"b")?, Some(1)); // room again
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn try_push(
        &mut self,
        kind: u32,
        flags: u32,
        correlation: u64,
        payload: &[u8],
    ) -> Result<Option<u64>> {
        let seq = self.write(kind, flags, correlation, payload)?;
        self.publish();
        Ok(seq)
    }
}
