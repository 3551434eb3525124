//! The host halves of a ring in lane format ([`crate::layout::FORMAT_LANES`]).
//!
//! A slot is `slot_size / 16` lanes `{data, tag}`. The message at position
//! `pos` writes `tag = pos + 1` into lane 0 (data: [`lane_header_word`]) and
//! into lanes `1..=ceil(len / 8)` (data: the payload, 8 bytes each). The
//! receiver delivers the message only when all those lanes carry `pos + 1`,
//! so it never reads `head`: the tags are the publication.
//!
//! What a lane of the slot for `pos` may legitimately hold before the message
//! arrives: tag 0 (never written), or the tag of an earlier message of the
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

use super::{ReadPosition, RingRef};
use crate::error::{Result, RingId};
use crate::layout::{
    KIND_ERROR, KIND_REPLY, KIND_REQUEST, MessageHeader, lane_header_fields, lane_header_word,
};
use crate::sync::{AtomicU64, Ordering};

/// What a lane's tag says about the message at `pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LaneState {
    /// Written by the message at `pos`.
    Current,
    /// Never written, or left by an earlier lap of this slot: not yet.
    Stale,
    /// No writer could have left it there.
    Corrupt,
}

fn lane_state(tag: u64, pos: u64, mask: u64) -> LaneState {
    let want = pos + 1;
    if tag == want {
        LaneState::Current
    } else if tag == 0 || (tag < want && (want - tag) & mask == 0) {
        LaneState::Stale
    } else {
        LaneState::Corrupt
    }
}

/// Lane `k` of a slot: its data word and its tag word.
fn lane(slot: &[AtomicU64], k: usize) -> (&AtomicU64, &AtomicU64) {
    (&slot[2 * k], &slot[2 * k + 1])
}

/// Writes messages into one lane-format ring. Every lane is published by
/// its own tag store, so [`write`](Self::write) already makes a message
/// visible; [`publish`](Self::publish) only updates the statistics `head`.
pub struct LaneProducer {
    ring: RingRef,
    /// Next position to write.
    head: u64,
    /// Whether `head` moved since the last `publish`.
    dirty: bool,
    /// Last `tail` read from shared memory.
    tail_cache: u64,
}

impl LaneProducer {
    pub(crate) fn new(ring: RingRef) -> Self {
        Self {
            ring,
            head: 0,
            dirty: false,
            tail_cache: 0,
        }
    }

    /// Largest payload one slot carries.
    pub fn max_payload(&self) -> usize {
        self.ring.lane_max_payload()
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// The position (sequence number) the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.head
    }

    /// Messages written (and so published) so far.
    pub fn published(&self) -> u64 {
        self.head
    }

    /// Free slots, reading the consumer's `tail` only if the cached one says
    /// fewer than `want` are free.
    pub fn free(&mut self, want: u64) -> Result<u64> {
        let mut free = self.ring.capacity - (self.head - self.tail_cache);
        if free < want {
            // Acquire: pairs with the consumer's release store of `tail`,
            // made after it finished loading the lanes it frees; our later
            // lane stores to those slots cannot overtake its loads.
            let tail = self.ring.tail().load(Ordering::Acquire);
            if tail < self.tail_cache || tail > self.head {
                return Err(self.ring.corrupted(format!(
                    "tail {tail} outside [{}, {}] (went backwards or past what was written)",
                    self.tail_cache, self.head
                )));
            }
            self.tail_cache = tail;
            free = self.ring.capacity - (self.head - tail);
        }
        Ok(free)
    }

    /// Writes (and thereby publishes) one message. Returns its sequence
    /// number, or `None` when the ring is full. A lane-format message has no
    /// `correlation` word: the receiver sets it to the position.
    ///
    /// The caller checked `payload.len() <= self.max_payload()`.
    pub fn write(&mut self, kind: u32, flags: u32, payload: &[u8]) -> Result<Option<u64>> {
        debug_assert!(payload.len() <= self.max_payload());
        if self.free(1)? == 0 {
            return Ok(None);
        }
        let pos = self.head;
        let tag = pos + 1;
        let slot = self.ring.slot(pos);
        // Each lane: data RELAXED, then tag RELEASE. The release orders the
        // data store before the tag, so a reader that acquires the current
        // tag reads this data (never the previous lap's). The slot is ours:
        // `free` saw the consumer's tail past its previous message.
        let put = |k: usize, data: u64| {
            let (d, t) = lane(slot, k);
            d.store(data, Ordering::Relaxed);
            t.store(tag, Ordering::Release);
        };
        for (i, chunk) in payload.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            put(1 + i, u64::from_ne_bytes(word));
        }
        put(0, lane_header_word(kind, payload.len() as u32, flags));
        self.head += 1;
        self.dirty = true;
        Ok(Some(pos))
    }

    /// Stores `head` for statistics (RELAXED: no receiver reads it to find
    /// messages; the tags publish them).
    pub fn publish(&mut self) {
        if self.dirty {
            // Relaxed: orders nothing; observers only compare it.
            self.ring.head().store(self.head, Ordering::Relaxed);
            self.dirty = false;
        }
    }

    /// Writes one message and updates `head`: `Ok(Some(seq))`, or `Ok(None)`
    /// when the ring is full.
    pub fn try_push(&mut self, kind: u32, flags: u32, payload: &[u8]) -> Result<Option<u64>> {
        let seq = self.write(kind, flags, payload)?;
        self.publish();
        Ok(seq)
    }
}

/// Reads messages from one lane-format ring and frees their slots with a
/// release store of `tail`. It never reads `head`.
pub struct LaneConsumer {
    ring: RingRef,
    /// Our position: next to read, and how much is read but not freed.
    pos: ReadPosition,
    /// Payload scratch, reused so receiving allocates nothing.
    scratch: Vec<u64>,
}

impl LaneConsumer {
    pub(crate) fn new(ring: RingRef) -> Self {
        let lanes = ring.slot_words / 2;
        Self {
            ring,
            pos: ReadPosition::default(),
            scratch: vec![0; lanes],
        }
    }

    /// Messages consumed so far (released or not).
    pub fn consumed(&self) -> u64 {
        self.pos.tail
    }

    fn kind_ok(&self, kind: u32) -> bool {
        match self.ring.id {
            RingId::H2k => kind == KIND_REQUEST,
            RingId::K2h => kind == KIND_REPLY || kind == KIND_ERROR,
        }
    }

    /// Loads lane `k` of the slot for `pos`: tag ACQUIRE, then data RELAXED.
    ///
    /// The acquire pairs with the host writer's release store of the tag
    /// (Rust or the C++ fallback: data, then tag with release), so the data
    /// load sees that lap's data. The GPU writes a lane with ONE 16-byte
    /// `st.relaxed.sys.v2` that reaches host memory as one aligned 16-byte
    /// write (measured: no torn lane in 50,000 messages, gpu-facts.md), so
    /// a current tag comes with its data there too.
    fn load_lane(&self, slot: &[AtomicU64], k: usize, pos: u64) -> Result<Option<u64>> {
        let (d, t) = lane(slot, k);
        let tag = t.load(Ordering::Acquire);
        match lane_state(tag, pos, self.ring.mask) {
            LaneState::Current => Ok(Some(d.load(Ordering::Relaxed))),
            LaneState::Stale => Ok(None),
            LaneState::Corrupt => Err(self.ring.corrupted(format!(
                "lane {k} of position {pos} carries tag {tag} (expected {}, 0 or an earlier lap's)",
                pos + 1
            ))),
        }
    }

    /// Whether the next message has fully arrived (every lane it needs
    /// carries the current tag). Consumes nothing.
    pub fn ready(&mut self) -> Result<bool> {
        Ok(self.peek()?.is_some())
    }

    /// Loads the message at `tail` into `scratch` if it has fully arrived.
    fn peek(&mut self) -> Result<Option<MessageHeader>> {
        let pos = self.pos.tail;
        let slot = self.ring.slot(pos);
        let Some(word) = self.load_lane(slot, 0, pos)? else {
            return Ok(None);
        };
        let (kind, len, flags) = lane_header_fields(word);
        if !self.kind_ok(kind) {
            return Err(self
                .ring
                .corrupted(format!("unknown message kind {kind} at position {pos}")));
        }
        let max = self.ring.lane_max_payload();
        if len as usize > max {
            return Err(self.ring.corrupted(format!(
                "length {len} at position {pos} exceeds the lane slot's payload capacity {max}"
            )));
        }
        for k in 0..(len as usize).div_ceil(8) {
            match self.load_lane(slot, 1 + k, pos)? {
                Some(v) => self.scratch[k] = v,
                None => return Ok(None),
            }
        }
        Ok(Some(MessageHeader {
            seq: pos,
            correlation: pos,
            kind,
            len,
            flags,
            reserved: 0,
        }))
    }

    /// Reads the next message if every lane it needs carries the current
    /// tag, and hands its header (`seq` = `correlation` = the position) and
    /// payload to `f` without releasing the slot: call
    /// [`release`](Self::release). `Ok(None)` while any lane is stale.
    pub fn read_with<R>(
        &mut self,
        f: impl FnOnce(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        let Some(header) = self.peek()? else {
            return Ok(None);
        };
        let len = header.len as usize;
        let bytes: &[u8] = bytemuck::cast_slice(&self.scratch[..len.div_ceil(8)]);
        let out = f(&header, &bytes[..len]);
        self.pos.advance();
        Ok(Some(out))
    }

    /// Frees every slot read so far with one release store of `tail`.
    pub fn release(&mut self) {
        self.pos.release(&self.ring);
    }

    /// Reads one message and frees its slot.
    pub fn try_pop_with<R>(
        &mut self,
        f: impl FnOnce(&MessageHeader, &[u8]) -> R,
    ) -> Result<Option<R>> {
        let out = self.read_with(f)?;
        self.release();
        Ok(out)
    }
}
