//! The writing half of a ring.

use super::RingRef;
use crate::error::Result;
use crate::layout::{MESSAGE_HEADER_SIZE, MessageHeader};
use crate::sync::Ordering;

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
/// use ringbridge::ring::{HostMemory, RegionLayout, RingSpec, model};
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
    /// Next position to write; equals the shared `head` after `publish`.
    head: u64,
    /// Positions written but not yet published.
    pending: u64,
    /// Last `tail` read from shared memory.
    tail_cache: u64,
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
            head: 0,
            pending: 0,
            tail_cache: 0,
            warm_lines: 0,
        }
    }

    /// Largest payload one slot carries.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
    /// # use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
    /// # use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
        self.head
    }

    /// Messages written and published so far.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
        self.head - self.pending
    }

    /// Free slots, reading the consumer's `tail` only if the cached one says
    /// fewer than `want` are free.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
        let mut free = self.ring.capacity - (self.head - self.tail_cache);
        if free < want {
            // Acquire: pairs with the consumer's release store of `tail`,
            // which it makes after it finished reading the slots it frees;
            // our later writes to those slots cannot overtake its reads.
            let tail = self.ring.tail().load(Ordering::Acquire);
            if tail < self.tail_cache || tail > self.head - self.pending {
                return Err(self.ring.corrupted(format!(
                    "tail {tail} outside [{}, {}] (went backwards or past what was published)",
                    self.tail_cache,
                    self.head - self.pending
                )));
            }
            self.tail_cache = tail;
            free = self.ring.capacity - (self.head - tail);
        }
        Ok(free)
    }

    /// Writes one message into the next slot without publishing it. Returns
    /// its sequence number, or `None` when the ring is full.
    ///
    /// The caller checked `payload.len() <= self.max_payload()`.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
        let seq = self.head;
        let header = MessageHeader {
            seq,
            correlation,
            kind,
            len: payload.len() as u32,
            flags,
            reserved: 0,
        };
        let slot = self.ring.slot(seq);
        self.warm_lines = (MESSAGE_HEADER_SIZE + payload.len())
            .div_ceil(LINE_WORDS * 8)
            .min(WARM_MAX_LINES);
        let header_words: [u64; 4] = bytemuck::cast(header);
        // Relaxed: the slot belongs to us until we publish `head`; the release
        // store in `publish` orders these writes before it.
        for (w, v) in slot.iter().zip(header_words) {
            w.store(v, Ordering::Relaxed);
        }
        let body = &slot[4..];
        let mut chunks = payload.chunks_exact(8);
        for (w, chunk) in body.iter().zip(&mut chunks) {
            let v = u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk"));
            w.store(v, Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            body[payload.len() / 8].store(u64::from_ne_bytes(last), Ordering::Relaxed);
        }
        self.head += 1;
        self.pending += 1;
        Ok(Some(seq))
    }

    /// Publishes every written message with one release store of `head`.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
        if self.pending > 0 {
            // Release: orders every slot write above before the new `head`;
            // the consumer's acquire load of `head` then sees them all.
            self.ring.head().store(self.head, Ordering::Release);
            self.pending = 0;
            self.warm_next_slot();
        }
    }

    /// Claims the next slot's cache lines, as many as the last message used
    /// (at most 4 KiB), for this core while the slot is free, so that the
    /// next message's stores find them here instead of waiting, ahead of
    /// the `head` store, for the core that read them a lap ago to give them
    /// up. Measured on a 2-vCPU EPYC VM (2026-11-26), side by side: without
    /// it (here and in the fallback's serve loop) a 64-byte fallback round
    /// trip takes 251 instead of 180 ns with the two vCPUs close, and
    /// 851-872 instead of 551-561 ns with them far apart; claiming up to
    /// 4 KiB instead of 256 B took a 4 KiB round trip from 891 to 741 ns
    /// (close) and from 3.9-4.0 to 1.9-2.1 us (far).
    ///
    /// Relaxed stores of 0 into one word of each line: the slot is ours
    /// (the cached `tail` says the consumer left it, and no reader looks at
    /// a slot before a `head` covering it is published), and the next
    /// `write` overwrites the header and payload before that `head` is
    /// released, so the consumer never sees these values. They follow the
    /// `head` release store, so they cannot delay it.
    #[inline]
    fn warm_next_slot(&self) {
        if self.ring.capacity - (self.head - self.tail_cache) == 0 {
            return; // full as far as we know: the next slot is not ours
        }
        for line in self
            .ring
            .slot(self.head)
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
    /// # use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
