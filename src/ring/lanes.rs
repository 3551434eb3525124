//! The host halves of a ring in lane format ([`crate::layout::FORMAT_LANES`]).
//!
//! A slot is `slot_size / 16` lanes `{data, tag}`. The message at position
//! `pos` writes lane 0 (data: [`lane_header_word`]) and lanes
//! `1..=ceil(len / 8)` (data: the payload, 8 bytes each), each with the tag
//! [`lane_tag`]`(pos, data)`: `pos + 1` in the low bits, a check of the data
//! above them. The receiver delivers the message only when all those lanes
//! carry `pos + 1` and a check that matches their data, so it never reads
//! `head`: the tags are the publication.
//!
//! The check is there because a lane written by the GPU (or read by it) may
//! be seen in two pieces: nothing documents a 16-byte access across PCIe as
//! single-copy atomic (docs/platform-facts.md, "16-byte accesses"). A lane
//! with the current position and a check that does not match is *torn*: not
//! yet, read again; [`LANE_TORN_POLLS`] torn reads of a message in a row are
//! [`Error::RingCorrupted`](crate::Error::RingCorrupted).
//!
//! What a lane of the slot for `pos` may legitimately hold before the message
//! arrives (tags here are their position field): tag 0 (never written), or the tag of an earlier message of the
//! same slot, `pos + 1 - k * capacity` (k >= 1; not only the previous lap:
//! a lane unused by a short message keeps an older lap's tag). Anything else
//! (a tag from the future, or one not congruent to `pos + 1`) is
//! [`Error::RingCorrupted`](crate::Error::RingCorrupted), as are a current
//! header with a `len` beyond the slot or a wrong `kind`.
//!
//! Flow control is the slot format's: the consumer release-stores `tail`
//! after reading (it may batch), the producer caches `tail` and acquires it
//! again only when the cache says full. The producer stores `head` RELAXED
//! in [`publish`](LaneProducer::publish), for statistics only.

use super::{ReadPosition, RingRef, WritePosition};
use crate::error::Result;
use crate::layout::{
    LANE_MAX_POSITIONS, LANE_SEQ_MASK, LANE_SIZE, MAX_LANE_SLOT_SIZE, MessageHeader,
    lane_header_fields, lane_header_word, lane_tag, lane_tag_matches,
};
use crate::sync::{AtomicU64, Ordering};

/// Torn reads of one message in a row (a lane with the current position and
/// a check that does not match its data) after which the consumer reports
/// [`Error::RingCorrupted`](crate::Error::RingCorrupted). A real tear lasts
/// until both halves of one 16-byte write have landed, far less than this
/// many polls.
pub const LANE_TORN_POLLS: u32 = 1 << 16;

/// What a lane says about the message at `pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LaneState {
    /// Written by the message at `pos`, data and tag from the same write.
    Current,
    /// The position of `pos` with a check that does not match the data:
    /// read in two pieces (or corrupted). Not yet.
    Torn,
    /// Never written, or left by an earlier lap of this slot: not yet.
    Stale,
    /// No writer could have left it there.
    Corrupt,
}

fn lane_state(tag: u64, data: u64, pos: u64, mask: u64) -> LaneState {
    let want = pos + 1;
    let seq = tag & LANE_SEQ_MASK;
    if seq == want {
        if lane_tag_matches(tag, data) {
            LaneState::Current
        } else {
            LaneState::Torn
        }
    } else if seq == 0 || (seq < want && (want - seq) & mask == 0) {
        LaneState::Stale
    } else {
        LaneState::Corrupt
    }
}

/// The header a lane message at `pos` is handed out with: lane messages
/// carry no sequence or correlation word, so both are the position.
#[inline]
fn lane_message_header(pos: u64, kind: u32, len: u32, flags: u32) -> MessageHeader {
    MessageHeader {
        seq: pos,
        correlation: pos,
        kind,
        len,
        flags,
        reserved: 0,
    }
}

/// Lane `k` of a slot: its data word and its tag word.
fn lane(slot: &[AtomicU64], k: usize) -> (&AtomicU64, &AtomicU64) {
    (&slot[2 * k], &slot[2 * k + 1])
}

/// Writes messages into one lane-format ring. Every lane is published by
/// its own tag store, so [`write`](Self::write) already makes a message
/// visible; [`publish`](Self::publish) tags the messages
/// [`stage_with`](Self::stage_with) left untagged, then updates the
/// statistics `head`.
///
/// The host's producer on H2K, with the Rust model of the device half's
/// lane loop answering on K2H:
///
/// ```
/// use ringbridge::error::RingId;
/// use ringbridge::layout::{KIND_REPLY, KIND_REQUEST};
/// use ringbridge::ring::{RegionLayout, RingSpec, model};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let (mut h2k_tx, mut h2k_rx) = layout.lane_pair(&mem, RingId::H2k);
/// let (mut k2h_tx, mut k2h_rx) = layout.lane_pair(&mem, RingId::K2h);
/// assert_eq!(h2k_tx.try_push(KIND_REQUEST, 0, b"abc")?, Some(0));
/// assert_eq!(model::lane_echo_step(&mut h2k_rx, &mut k2h_tx, 8)?, 1);
/// let reply = k2h_rx.try_pop_with(|h, p| (h.kind, p.to_vec()))?;
/// assert_eq!(reply, Some((KIND_REPLY, b"bcd".to_vec())));
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub struct LaneProducer {
    ring: RingRef,
    /// Our position and the cached `tail`; its unpublished messages are
    /// those whose lanes hold their data but not yet their tags (see
    /// [`stage_with`](Self::stage_with)).
    pos: WritePosition,
    /// Whether `head` moved since the last `publish`.
    dirty: bool,
}

impl LaneProducer {
    pub(crate) fn new(ring: RingRef) -> Self {
        Self {
            ring,
            pos: WritePosition::default(),
            dirty: false,
        }
    }

    /// Largest payload one slot carries.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (tx, _rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.max_payload(), 56); // 8 lanes: the header lane + 7 x 8 bytes
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn max_payload(&self) -> usize {
        self.ring.lane_max_payload()
    }

    /// Slots in the ring.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(5, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (tx, _rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.capacity(), 8); // 5 rounded up to a power of two
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
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, _rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.next_seq(), 0);
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, b"a")?, Some(0));
    /// assert_eq!(tx.next_seq(), 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.pos.head
    }

    /// Messages written (and so published) so far; a staged message counts
    /// once [`publish`](Self::publish) tagged it.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, _rx) = layout.lane_pair(&mem, RingId::H2k);
    /// tx.write(KIND_REQUEST, 0, b"a")?;
    /// assert_eq!(tx.published(), 1); // without a call to publish()
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
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// tx.try_push(KIND_REQUEST, 0, b"a")?;
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

    /// Writes (and thereby publishes) one message. Returns its sequence
    /// number, or `None` when the ring is full. A lane-format message has no
    /// `correlation` word: the receiver sets it to the position.
    ///
    /// The caller checked `payload.len() <= self.max_payload()`.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(1, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.write(KIND_REQUEST, 4, b"data")?, Some(0));
    /// assert_eq!(tx.write(KIND_REQUEST, 4, b"more")?, None); // full
    /// assert!(rx.ready()?); // visible at once, without publish()
    /// let got = rx.try_pop_with(|h, p| (h.seq, h.correlation, h.flags, p.to_vec()))?;
    /// assert_eq!(got, Some((0, 0, 4, b"data".to_vec())));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn write(&mut self, kind: u32, flags: u32, payload: &[u8]) -> Result<Option<u64>> {
        debug_assert!(payload.len() <= self.max_payload());
        if self.free(1)? == 0 {
            return Ok(None);
        }
        let pos = self.pos.head;
        self.check_position(pos)?;
        // The lanes this message uses, sliced once (the caller keeps
        // `payload.len() <= max_payload()`, so they fit the slot).
        let (head_lane, data_lanes) =
            self.ring.slot(pos)[..2 * (1 + payload.len().div_ceil(8))].split_at(2);
        // Each lane: data RELAXED, then tag RELEASE. The release orders the
        // data store before the tag, so a reader that acquires the current
        // tag reads this data (never the previous lap's). The slot is ours:
        // `free` saw the consumer's tail past its previous message.
        let put = |lane: &[AtomicU64], data: u64| {
            lane[0].store(data, Ordering::Relaxed);
            lane[1].store(lane_tag(pos, data), Ordering::Release);
        };
        // Last payload lane first, lane 0 last: the slot's first cache line
        // (lanes 0-3) is then written in one burst at the end, so a reader
        // spinning on lane 0 takes that line from us once, not twice.
        // Whole 8-byte chunks are read as words; only a short last chunk is
        // copied into a zeroed word (a variable-length copy per lane became
        // a `memcpy` call per lane; docs/perf-host-side.md).
        let chunks = payload.chunks_exact(8);
        let (full, rest) = (chunks.len(), chunks.remainder());
        if let (false, Some(last)) = (rest.is_empty(), data_lanes.chunks_exact(2).next_back()) {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            put(last, u64::from_ne_bytes(word));
        }
        // Both reversed, same length: lane `i` gets chunk `i`.
        for (lane, chunk) in data_lanes[..2 * full]
            .chunks_exact(2)
            .rev()
            .zip(chunks.rev())
        {
            put(
                lane,
                u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk")),
            );
        }
        put(
            head_lane,
            lane_header_word(kind, payload.len() as u32, flags),
        );
        self.pos.head += 1;
        self.dirty = true;
        Ok(Some(pos))
    }

    /// Whether the message at `pos` still fits the tag's position field.
    fn check_position(&self, pos: u64) -> Result<()> {
        if pos >= LANE_MAX_POSITIONS {
            return Err(crate::Error::InvalidArgument(format!(
                "lane ring {} has carried its {LANE_MAX_POSITIONS} messages (the tag's position field is full)",
                self.ring.id
            )));
        }
        Ok(())
    }

    /// Writes one message's lanes except their tags, so that no receiver
    /// sees it until [`publish`](Self::publish) stores them. `fill` gets a
    /// zeroed staging buffer of [`max_payload`](Self::max_payload) bytes on
    /// the stack (payload words are interleaved with tags in the slot, so
    /// they cannot be handed out as one slice) and returns how many of its
    /// first bytes are the payload; they are copied into the slot's data
    /// words at once. Returns the message's sequence number, `None` (without
    /// calling `fill`) when the ring is full, or
    /// [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge) when `fill`
    /// returns more than the buffer holds; then nothing is staged.
    ///
    /// The data words of a free slot are never read for a position whose
    /// tag they do not carry, so storing them early is invisible.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// let seq = tx.stage_with(KIND_REQUEST, 0, |buf| {
    ///     buf[..3].copy_from_slice(b"abc");
    ///     3
    /// })?;
    /// assert_eq!((seq, tx.published()), (Some(0), 0));
    /// assert!(!rx.ready()?); // no tags yet
    /// assert!(tx.stage_with(KIND_REQUEST, 0, |buf| buf.len() + 1).is_err());
    /// tx.publish();
    /// assert_eq!(tx.published(), 1);
    /// assert_eq!(rx.try_pop_with(|_, p| p.to_vec())?, Some(b"abc".to_vec()));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn stage_with(
        &mut self,
        kind: u32,
        flags: u32,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<Option<u64>> {
        if self.free(1)? == 0 {
            return Ok(None);
        }
        self.check_position(self.pos.head)?;
        let max = self.max_payload();
        let mut staging = [0u64; MAX_LANE_SLOT_SIZE / LANE_SIZE - 1];
        let words = &mut staging[..max / 8];
        let len = fill(bytemuck::cast_slice_mut(words));
        if len > max {
            return Err(crate::Error::PayloadTooLarge { len, max });
        }
        let used = len.div_ceil(8);
        // Bytes past `len` in the last word are not the payload: zero them,
        // as `write` pads.
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words[..used]);
        bytes[len..].fill(0);
        let pos = self.pos.head;
        let slot = self.ring.slot(pos);
        // Relaxed: data words only; the slot is ours (`free` saw the
        // consumer's tail past its previous message) and the release store
        // of each lane's tag in `publish` orders these before it.
        for (k, w) in words[..used].iter().enumerate() {
            lane(slot, 1 + k).0.store(*w, Ordering::Relaxed);
        }
        let header = lane_header_word(kind, len as u32, flags);
        lane(slot, 0).0.store(header, Ordering::Relaxed);
        self.pos.head += 1;
        self.pos.unpublished += 1;
        self.dirty = true;
        Ok(Some(pos))
    }

    /// Forgets every staged message: their positions are free again. Their
    /// data words stay in the slots without their tags, which no receiver
    /// reads (see [`stage_with`](Self::stage_with)).
    #[cfg(not(loom))]
    pub(crate) fn discard(&mut self) {
        self.pos.discard();
    }

    /// Stores the tags of every staged message, in order: per message the
    /// last payload lane first and lane 0 last, each RELEASE, as `write`
    /// does.
    fn tag_staged(&mut self) {
        for pos in self.pos.published()..self.pos.head {
            let slot = self.ring.slot(pos);
            // Relaxed loads: our own stores in `stage_with`, read back for
            // the tags' checks. Release stores: order those data stores
            // before the tag, so a reader that acquires it reads this lap's
            // data.
            let tag_lane = |k: usize| {
                let (d, t) = lane(slot, k);
                t.store(lane_tag(pos, d.load(Ordering::Relaxed)), Ordering::Release);
            };
            let (_, len, _) = lane_header_fields(lane(slot, 0).0.load(Ordering::Relaxed));
            for k in (1..=(len as usize).div_ceil(8)).rev() {
                tag_lane(k);
            }
            tag_lane(0);
        }
        self.pos.unpublished = 0;
    }

    /// Tags the messages [`stage_with`](Self::stage_with) staged, which
    /// publishes them, then stores `head` for statistics (RELAXED: no
    /// receiver reads it to find messages; the tags publish them).
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// use std::mem::offset_of;
    /// use std::sync::atomic::Ordering;
    /// use ringbridge::backend::SharedMemory;
    /// use ringbridge::layout::RingHeader;
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, _rx) = layout.lane_pair(&mem, RingId::H2k);
    /// let head = || mem.words()[(layout.h2k_offset + offset_of!(RingHeader, head)) / 8]
    ///     .load(Ordering::Relaxed);
    /// tx.write(KIND_REQUEST, 0, b"a")?;
    /// assert_eq!(head(), 0); // the statistics head lags
    /// tx.publish();
    /// assert_eq!(head(), 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn publish(&mut self) {
        if self.pos.unpublished > 0 {
            self.tag_staged();
        }
        if self.dirty {
            // Relaxed: orders nothing; observers only compare it.
            self.ring.head().store(self.pos.head, Ordering::Relaxed);
            self.dirty = false;
        }
    }

    /// Writes one message and updates `head`: `Ok(Some(seq))`, or `Ok(None)`
    /// when the ring is full.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(1, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, b"a")?, Some(0));
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, b"b")?, None); // full
    /// assert_eq!(rx.try_pop_with(|_, p| p.to_vec())?, Some(b"a".to_vec()));
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, b"b")?, Some(1)); // room again
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn try_push(&mut self, kind: u32, flags: u32, payload: &[u8]) -> Result<Option<u64>> {
        let seq = self.write(kind, flags, payload)?;
        self.publish();
        Ok(seq)
    }
}

/// Reads messages from one lane-format ring and frees their slots with a
/// release store of `tail`. It never reads `head`.
///
/// ```
/// use ringbridge::error::RingId;
/// use ringbridge::layout::KIND_REPLY;
/// use ringbridge::ring::{RegionLayout, RingSpec};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::lanes(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::K2h);
/// for p in [&b"one"[..], b"two", b"three"] {
///     tx.write(KIND_REPLY, 0, p)?; // no publish needed: the tags publish
/// }
/// let mut got = Vec::new();
/// while let Some(p) = rx.try_pop_with(|_, p| p.to_vec())? {
///     got.push(p);
/// }
/// assert_eq!(got, [&b"one"[..], b"two", b"three"]);
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub struct LaneConsumer {
    ring: RingRef,
    /// Our position: next to read, and how much is read but not freed.
    pos: ReadPosition,
    /// Payload scratch, reused so receiving allocates nothing.
    scratch: Vec<u64>,
    /// Torn reads of the message at `pos.tail` in a row.
    torn: u32,
}

impl LaneConsumer {
    pub(crate) fn new(ring: RingRef) -> Self {
        let lanes = ring.slot_words / 2;
        Self {
            ring,
            pos: ReadPosition::default(),
            scratch: vec![0; lanes],
            torn: 0,
        }
    }

    /// Messages consumed so far (released or not).
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// tx.try_push(KIND_REQUEST, 0, b"a")?;
    /// tx.try_push(KIND_REQUEST, 0, b"b")?;
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

    /// Loads lane `k` of the slot for `pos`: tag ACQUIRE, then data RELAXED,
    /// and checks that they belong together.
    ///
    /// The acquire pairs with the host writer's release store of the tag
    /// (Rust or the C++ fallback: data, then tag with release), so the data
    /// load sees that lap's data. The GPU writes a lane with ONE 16-byte
    /// `st.relaxed.sys.v2`, which no document promises reaches host memory
    /// as one piece (docs/platform-facts.md, "16-byte accesses"): a tag
    /// whose check does not match the data is a torn read, `Ok(None)` (not
    /// yet), counted in `torn`.
    ///
    /// (An associated function over the consumer's fields, so that `slot`
    /// can borrow the ring while `torn` is counted.)
    #[inline]
    fn load_lane(
        ring: &RingRef,
        torn: &mut u32,
        slot: &[AtomicU64],
        k: usize,
        pos: u64,
    ) -> Result<Option<u64>> {
        let (d, t) = lane(slot, k);
        let tag = t.load(Ordering::Acquire);
        let data = d.load(Ordering::Relaxed);
        match lane_state(tag, data, pos, ring.mask) {
            LaneState::Current => Ok(Some(data)),
            LaneState::Stale => Ok(None),
            LaneState::Torn => {
                *torn += 1;
                if *torn >= LANE_TORN_POLLS {
                    return Err(ring.corrupted(format!(
                        "lane {k} of position {pos}: tag {tag:#x} does not check with its data {data:#x} \
                         in {torn} reads in a row"
                    )));
                }
                Ok(None)
            }
            LaneState::Corrupt => Err(ring.corrupted(format!(
                "lane {k} of position {pos} carries tag {} (expected {}, 0 or an earlier lap's)",
                tag & LANE_SEQ_MASK,
                pos + 1
            ))),
        }
    }

    /// Whether the next message has fully arrived (every lane it needs
    /// carries the current tag). Consumes nothing.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert!(!rx.ready()?);
    /// tx.write(KIND_REQUEST, 0, b"a")?;
    /// assert!(rx.ready()?);
    /// assert!(rx.ready()?); // still there: ready() consumed nothing
    /// assert_eq!(rx.consumed(), 0);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn ready(&mut self) -> Result<bool> {
        Ok(self.peek()?.is_some())
    }

    /// Loads the message at `tail` into `scratch` if it has fully arrived.
    #[inline(always)]
    fn peek(&mut self) -> Result<Option<MessageHeader>> {
        let pos = self.pos.tail;
        if let Some(header) = self.take_whole(pos) {
            self.torn = 0;
            return Ok(Some(header));
        }
        self.peek_lane_by_lane(pos)
    }

    /// The message path: every lane the message at `pos` needs, loaded
    /// into `scratch` and checked in one pass with one branch at the end.
    /// `Some` only when every lane is current (its whole tag, position and
    /// check, equals [`lane_tag`] of its data: the same test as
    /// [`lane_state`]'s `Current`) and the header's kind and length are
    /// valid. Anything else (not yet, torn, corrupt) is `None`, and
    /// [`peek_lane_by_lane`](Self::peek_lane_by_lane) reads the message
    /// again to say which, with the errors and torn-read count it always
    /// had.
    ///
    /// Loads per lane: tag ACQUIRE, then data RELAXED, as in
    /// [`load_lane`](Self::load_lane) (the acquire pairs with the writer's
    /// release store of the tag, so the data load sees that write's data).
    #[inline(always)]
    fn take_whole(&mut self, pos: u64) -> Option<MessageHeader> {
        let (head_lane, data_lanes) = self.ring.slot(pos).split_at(2);
        let tag = head_lane[1].load(Ordering::Acquire);
        let word = head_lane[0].load(Ordering::Relaxed);
        let (kind, len, flags) = lane_header_fields(word);
        let lanes = (len as usize).div_ceil(8);
        // `lanes` fits the slot exactly when `len` is at most the slot's
        // payload capacity (8 bytes per lane after lane 0).
        if tag != lane_tag(pos, word)
            || !self.ring.kind_ok(kind, len, true)
            || 2 * lanes > data_lanes.len()
            || pos >= LANE_MAX_POSITIONS
        {
            return None;
        }
        let mut mismatch = 0u64;
        for (dst, lane) in self.scratch[..lanes]
            .iter_mut()
            .zip(data_lanes.chunks_exact(2))
        {
            let tag = lane[1].load(Ordering::Acquire);
            let data = lane[0].load(Ordering::Relaxed);
            mismatch |= tag ^ lane_tag(pos, data);
            *dst = data;
        }
        (mismatch == 0).then_some(lane_message_header(pos, kind, len, flags))
    }

    /// Reads the message at `pos` lane by lane, classifying each: the
    /// path of a message that is not (wholly) there yet, torn, or corrupt.
    #[cold]
    #[inline(never)]
    fn peek_lane_by_lane(&mut self, pos: u64) -> Result<Option<MessageHeader>> {
        let torn_before = self.torn;
        let got = self.peek_at(pos);
        if self.torn == torn_before {
            // No torn lane in this read: the count is of reads in a row.
            self.torn = 0;
        }
        got
    }

    /// [`peek_lane_by_lane`](Self::peek_lane_by_lane) at `pos`.
    fn peek_at(&mut self, pos: u64) -> Result<Option<MessageHeader>> {
        let slot = self.ring.slot(pos);
        let Some(word) = Self::load_lane(&self.ring, &mut self.torn, slot, 0, pos)? else {
            return Ok(None);
        };
        let (kind, len, flags) = lane_header_fields(word);
        self.ring.check_kind(kind, len, pos, true)?;
        let max = self.ring.lane_max_payload();
        if len as usize > max {
            return Err(self.ring.corrupted(format!(
                "length {len} at position {pos} exceeds the lane slot's payload capacity {max}"
            )));
        }
        for k in 0..(len as usize).div_ceil(8) {
            match Self::load_lane(&self.ring, &mut self.torn, slot, 1 + k, pos)? {
                Some(v) => self.scratch[k] = v,
                None => return Ok(None),
            }
        }
        Ok(Some(lane_message_header(pos, kind, len, flags)))
    }

    /// Reads the next message if every lane it needs carries the current
    /// tag, and hands its header (`seq` = `correlation` = the position) and
    /// payload to `f` without releasing the slot: call
    /// [`release`](Self::release). `Ok(None)` while any lane is stale.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert_eq!(rx.read_with(|_, _| ())?, None); // nothing written
    /// tx.try_push(KIND_REQUEST, 0, b"a")?;
    /// tx.try_push(KIND_REQUEST, 6, b"twelve bytes")?;
    /// rx.read_with(|_, _| ())?;
    /// let (hdr, payload) = rx.read_with(|h, p| (*h, p.to_vec()))?.expect("a message");
    /// assert_eq!((hdr.seq, hdr.correlation, hdr.kind, hdr.flags), (1, 1, KIND_REQUEST, 6));
    /// assert_eq!(payload, b"twelve bytes");
    /// rx.release();
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn read_with<R>(
        &mut self,
        f: impl FnOnce(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        let Some(header) = self.peek()? else {
            return Ok(None);
        };
        Ok(Some(self.pos.deliver(&header, &self.scratch, f)))
    }

    /// Frees every slot read so far with one release store of `tail`.
    ///
    /// ```
    /// # use ringbridge::error::RingId;
    /// # use ringbridge::layout::KIND_REQUEST;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::lanes(1, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// tx.try_push(KIND_REQUEST, 0, b"a")?;
    /// rx.read_with(|_, _| ())?;
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, b"b")?, None); // slot not freed yet
    /// rx.release();
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, b"b")?, Some(1));
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
    /// # let layout = RegionLayout::new(RingSpec::lanes(1, 128)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert_eq!(rx.try_pop_with(|_, p| p.len())?, None);
    /// tx.try_push(KIND_REQUEST, 0, b"abc")?;
    /// assert_eq!(rx.try_pop_with(|_, p| p.len())?, Some(3));
    /// // the slot is free again
    /// assert_eq!(tx.try_push(KIND_REQUEST, 0, b"d")?, Some(1));
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
