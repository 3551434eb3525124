//! The reading half of a ring.

use super::copy::load_words;
use super::{ReadPosition, RingRef};
use crate::error::Result;
use crate::layout::{MESSAGE_HEADER_SIZE, MessageHeader};
use crate::sync::Ordering;

/// Words of a slot's message header.
const HEADER_WORDS: usize = MESSAGE_HEADER_SIZE / 8;

/// Reads messages from one ring and frees their slots with a release store
/// of `tail`.
///
/// It keeps its own `tail` locally and a cached copy of the producer's
/// `head`; it reads the shared `head` only when the cache says the ring is
/// empty. Every `head` and every slot header it reads is validated.
///
/// The device half's consumer on H2K (here the Rust model's serve step) and
/// the host's consumer on K2H:
///
/// ```
/// use ringbridge::error::RingId;
/// use ringbridge::layout::KIND_REQUEST;
/// use ringbridge::ring::{RegionLayout, RingSpec, model};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let (mut h2k_tx, mut h2k_rx) = layout.ring_pair(&mem, RingId::H2k);
/// let (mut k2h_tx, mut k2h_rx) = layout.ring_pair(&mem, RingId::K2h);
/// h2k_tx.try_push(KIND_REQUEST, 9, 0, &[1, 2])?;
/// model::echo_step(&mut h2k_rx, &mut k2h_tx, 8)?;
/// assert_eq!(h2k_rx.consumed(), 1);
/// let reply = k2h_rx.try_pop_with(|h, p| (h.flags, p.to_vec()))?;
/// assert_eq!(reply, Some((9, vec![2, 3])));
/// assert_eq!(k2h_rx.try_pop_with(|_, _| ())?, None);
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub struct RingConsumer {
    ring: RingRef,
    /// Our position: next to read, and how much is read but not freed.
    pos: ReadPosition,
    /// Last `head` read from shared memory.
    head_cache: u64,
    /// Payload scratch, reused so receiving allocates nothing.
    scratch: Vec<u64>,
}

impl RingConsumer {
    pub(crate) fn new(ring: RingRef) -> Self {
        let words = ring.slot_words;
        Self {
            ring,
            pos: ReadPosition::default(),
            head_cache: 0,
            scratch: vec![0; words],
        }
    }

    /// Messages consumed so far (released or not).
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
    /// tx.try_push(KIND_REQUEST, 0, 0, b"b")?;
    /// rx.read_with(|_, _| ())?; // read, not yet released
    /// assert_eq!(rx.consumed(), 1);
    /// rx.try_pop_with(|_, _| ())?;
    /// assert_eq!(rx.consumed(), 2);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn consumed(&self) -> u64 {
        self.pos.tail
    }

    /// Messages waiting, reading the producer's `head` only if the cached
    /// one says fewer than one is waiting.
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
    /// assert_eq!(rx.available()?, 0);
    /// tx.try_push(KIND_REQUEST, 0, 0, b"a")?;
    /// tx.try_push(KIND_REQUEST, 0, 0, b"b")?;
    /// assert_eq!(rx.available()?, 2);
    /// rx.try_pop_with(|_, _| ())?;
    /// assert_eq!(rx.available()?, 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn available(&mut self) -> Result<u64> {
        let mut avail = self.head_cache - self.pos.tail;
        if avail == 0 {
            // Acquire: pairs with the producer's release store of `head`, so
            // the slot contents it published are visible to the loads below.
            let head = self.ring.head().load(Ordering::Acquire);
            if head < self.head_cache {
                return Err(self.ring.corrupted(format!(
                    "head moved backwards from {} to {head}",
                    self.head_cache
                )));
            }
            if head - self.pos.tail > self.ring.capacity {
                return Err(self.ring.corrupted(format!(
                    "head {head} runs more than the capacity {} ahead of tail {}",
                    self.ring.capacity, self.pos.tail
                )));
            }
            self.head_cache = head;
            avail = head - self.pos.tail;
        }
        Ok(avail)
    }

    /// Reads the next message, if any, and hands its header and payload to
    /// `f` without releasing the slot: call [`release`](Self::release).
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
    /// assert_eq!(rx.read_with(|_, _| ())?, None); // empty
    /// tx.try_push(KIND_REQUEST, 5, 42, b"hello")?;
    /// let (hdr, payload) = rx.read_with(|h, p| (*h, p.to_vec()))?.expect("a message");
    /// assert_eq!((hdr.seq, hdr.kind, hdr.flags, hdr.correlation), (0, KIND_REQUEST, 5, 42));
    /// assert_eq!((hdr.len, payload), (5, b"hello".to_vec()));
    /// rx.release();
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn read_with<R>(
        &mut self,
        f: impl FnOnce(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        if self.available()? == 0 {
            return Ok(None);
        }
        let pos = self.pos.tail;
        let (head_words, body) = self.ring.slot(pos).split_at(HEADER_WORDS);
        // Relaxed: the acquire load of `head` in `available` already ordered
        // these loads after the producer's writes of this slot.
        let mut hw = [0u64; HEADER_WORDS];
        for (dst, w) in hw.iter_mut().zip(head_words) {
            *dst = w.load(Ordering::Relaxed);
        }
        let header: MessageHeader = bytemuck::cast(hw);
        let len = header.len as usize;
        // One branch for the three checks; which one failed is worked out
        // off the message path.
        if header.seq != pos
            || !self.ring.kind_ok(header.kind, header.len, false)
            || len > body.len() * 8
        {
            return Err(self.bad_header(&header, pos));
        }
        let words = len.div_ceil(8);
        // Ordered by the same acquire of `head` (see `load_words`).
        load_words(&body[..words], &mut self.scratch[..words]);
        Ok(Some(self.pos.deliver(&header, &self.scratch, f)))
    }

    /// The error for a slot header that failed `read_with`'s checks.
    #[cold]
    fn bad_header(&self, header: &MessageHeader, pos: u64) -> crate::Error {
        if header.seq != pos {
            return self.ring.corrupted(format!(
                "slot for position {pos} carries sequence {} (stale or torn)",
                header.seq
            ));
        }
        if let Err(e) = self.ring.check_kind(header.kind, header.len, pos, false) {
            return e;
        }
        self.ring.corrupted(format!(
            "length {} at position {pos} exceeds the slot's payload capacity {}",
            header.len,
            self.ring.max_payload()
        ))
    }

    /// Frees every slot read so far with one release store of `tail`.
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
    /// tx.try_push(KIND_REQUEST, 0, 0, b"a")?;
    /// rx.read_with(|_, _| ())?;
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, 0, b"b")?, None); // slot not freed yet
    /// rx.release();
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, 0, b"b")?, Some(1));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn release(&mut self) {
        self.pos.release(&self.ring);
    }

    /// Reads one message and frees its slot.
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
    /// assert_eq!(rx.try_pop_with(|_, p| p.len())?, None);
    /// tx.try_push(KIND_REQUEST, 0, 0, b"abc")?;
    /// assert_eq!(rx.try_pop_with(|_, p| p.len())?, Some(3));
    /// // the slot is free again
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, 0, b"d")?, Some(1));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn try_pop_with<R>(
        &mut self,
        f: impl FnOnce(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        let out = self.read_with(f)?;
        self.release();
        Ok(out)
    }
}
