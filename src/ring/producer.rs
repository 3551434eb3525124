//! The writing half of a ring.

use super::RingRef;
use crate::error::Result;
use crate::layout::MessageHeader;
use crate::sync::Ordering;

/// Writes messages into one ring and publishes them with a release store of
/// `head`.
///
/// It keeps its own `head` locally and a cached copy of the consumer's
/// `tail`; it reads the shared `tail` only when the cache says the ring is
/// full. Every `tail` it reads is validated.
pub struct RingProducer {
    ring: RingRef,
    /// Next position to write; equals the shared `head` after `publish`.
    head: u64,
    /// Positions written but not yet published.
    pending: u64,
    /// Last `tail` read from shared memory.
    tail_cache: u64,
}

impl RingProducer {
    pub(crate) fn new(ring: RingRef) -> Self {
        Self {
            ring,
            head: 0,
            pending: 0,
            tail_cache: 0,
        }
    }

    /// Largest payload one slot carries.
    pub fn max_payload(&self) -> usize {
        self.ring.max_payload()
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// The position (sequence number) the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.head
    }

    /// Messages written and published so far.
    pub fn published(&self) -> u64 {
        self.head - self.pending
    }

    /// Free slots, reading the consumer's `tail` only if the cached one says
    /// fewer than `want` are free.
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
    pub fn publish(&mut self) {
        if self.pending > 0 {
            // Release: orders every slot write above before the new `head`;
            // the consumer's acquire load of `head` then sees them all.
            self.ring.head().store(self.head, Ordering::Release);
            self.pending = 0;
        }
    }

    /// Writes one message and publishes it: `Ok(Some(seq))`, or `Ok(None)`
    /// when the ring is full.
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
