//! The host's half of the call ring: reads a slot's state and request,
//! writes its answer or frees it (the kernel's half and the protocol:
//! `kernels/ringbridge/call.h`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::SharedMemory;
use crate::layout::{
    CALL_HEADER_SIZE, CALL_PHASE_ANSWER, CALL_PHASE_FREE, CALL_RING_HEADER_SIZE, CallHeader,
};
use crate::ring::copy::{load_words, store_bytes};
use crate::word_of;

/// A slot's state word for the call at `pos` in `phase`.
pub(crate) fn state_word(pos: u32, phase: u64) -> u64 {
    (u64::from(pos) << 2) | phase
}

/// One call, copied out of its slot.
pub(crate) struct Incoming {
    pub(crate) service: u32,
    /// A log line's level.
    pub(crate) status: u32,
    pub(crate) thread: u32,
    pub(crate) block: u32,
    pub(crate) payload: Vec<u8>,
}

/// The call ring of one region, as the host sees it.
pub(crate) struct CallSlots {
    memory: Arc<dyn SharedMemory>,
    /// Word index of the ring's header (its doorbell word).
    first: usize,
    capacity: u32,
    slot_words: usize,
}

impl CallSlots {
    /// The ring `offset` bytes into `memory`, of `capacity` slots of
    /// `slot_size` bytes (checked by [`super::CallRing`]).
    pub(crate) fn new(
        memory: Arc<dyn SharedMemory>,
        offset: usize,
        capacity: usize,
        slot_size: usize,
    ) -> Self {
        Self {
            memory,
            first: offset / 8,
            capacity: capacity as u32,
            slot_words: slot_size / 8,
        }
    }

    /// Word index, in the region, of the service thread's doorbell.
    pub(crate) fn doorbell_word(&self) -> usize {
        self.first
    }

    pub(crate) fn memory(&self) -> &Arc<dyn SharedMemory> {
        &self.memory
    }

    fn slot(&self, pos: u32) -> &[AtomicU64] {
        let start = self.first
            + CALL_RING_HEADER_SIZE / 8
            + (pos & (self.capacity - 1)) as usize * self.slot_words;
        &self.memory.words()[start..start + self.slot_words]
    }

    /// The state of `pos`'s slot. Acquire: pairs with the kernel's release
    /// of `CALL(pos)`, so the request read after it is whole.
    pub(crate) fn state(&self, pos: u32) -> u64 {
        self.slot(pos)[word_of!(CallHeader, state)].load(Ordering::Acquire)
    }

    /// The call at `pos`, whose state was seen to be `CALL(pos)`. Relaxed
    /// loads: ordered after the kernel's writes by that acquire.
    pub(crate) fn read(&self, pos: u32) -> Incoming {
        let slot = self.slot(pos);
        let w1 = slot[1].load(Ordering::Relaxed);
        let w2 = slot[2].load(Ordering::Relaxed);
        let w3 = slot[3].load(Ordering::Relaxed);
        let max = (self.slot_words * 8 - CALL_HEADER_SIZE) as u32;
        let len = ((w1 >> 32) as u32).min(max) as usize;
        let body = &slot[CALL_HEADER_SIZE / 8..CALL_HEADER_SIZE / 8 + len.div_ceil(8)];
        let mut words = vec![0u64; body.len()];
        load_words(body, &mut words);
        let mut payload: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        payload.truncate(len);
        Incoming {
            service: w1 as u32,
            status: w2 as u32,
            thread: (w2 >> 32) as u32,
            block: w3 as u32,
            payload,
        }
    }

    /// Answers the call at `pos` with `status` and `answer` (at most the
    /// slot's payload: the caller checks). Relaxed stores, then the release
    /// of `ANSWER(pos)` that publishes them to the kernel thread's acquire.
    pub(crate) fn answer(&self, pos: u32, status: u32, answer: &[u8]) {
        let slot = self.slot(pos);
        store_bytes(&slot[CALL_HEADER_SIZE / 8..], answer);
        let w1 = slot[1].load(Ordering::Relaxed);
        slot[1].store(
            (w1 & 0xffff_ffff) | ((answer.len() as u64) << 32),
            Ordering::Relaxed,
        );
        let w2 = slot[2].load(Ordering::Relaxed);
        slot[2].store((w2 & !0xffff_ffff) | u64::from(status), Ordering::Relaxed);
        slot[0].store(state_word(pos, CALL_PHASE_ANSWER), Ordering::Release);
    }

    /// Frees a log line's slot for the call `capacity` positions on.
    /// Release: our reads of the line come before the kernel's next
    /// writes, which follow its acquire of this state.
    pub(crate) fn free(&self, pos: u32) {
        self.slot(pos)[0].store(
            state_word(pos.wrapping_add(self.capacity), CALL_PHASE_FREE),
            Ordering::Release,
        );
    }

    /// The largest answer a slot holds.
    pub(crate) fn max_payload(&self) -> usize {
        self.slot_words * 8 - CALL_HEADER_SIZE
    }
}
