//! [`RingRef`]: one ring inside a region, with the shape the host
//! configured, and its word accessors.

use super::*;

/// One ring inside a region, with the shape the host configured. The host
/// never re-reads capacity, mask or slot size from shared memory.
#[derive(Clone)]
pub(crate) struct RingRef {
    /// Held only to keep the region alive: `words` points into it.
    pub(super) _mem: Arc<dyn SharedMemory>,
    /// This ring's words (header, then slots) inside `_mem.words()`, taken
    /// once: going through the trait object on every access was 16% of a
    /// push + pop.
    pub(super) words: NonNull<[AtomicU64]>,
    pub(super) id: RingId,
    pub(super) capacity: u64,
    pub(super) mask: u64,
    /// Words per slot.
    pub(super) slot_words: usize,
}

// SAFETY: a `RingRef` is an `Arc<dyn SharedMemory>` (Send + Sync: the trait
// requires both) plus a pointer to atomics owned by that same region, which
// it only ever hands out as `&[AtomicU64]` (Send + Sync as `AtomicU64` is
// Sync). Sending or sharing it sends or shares nothing more than those.
unsafe impl Send for RingRef {}
// SAFETY: as for `Send` above.
unsafe impl Sync for RingRef {}

impl RingRef {
    pub(crate) fn new(mem: Arc<dyn SharedMemory>, layout: &RegionLayout, id: RingId) -> Self {
        let base = layout.ring_offset(id) / 8;
        let capacity = layout.spec.capacity as u64;
        let slot_words = layout.spec.slot_size / 8;
        // The region must hold the whole ring: checked once here (slicing
        // panics otherwise), so the indexing below cannot go out of bounds
        // for any counter value.
        let end = base + RING_HEADER_SIZE / 8 + layout.spec.capacity * slot_words;
        assert!(end <= mem.words().len(), "region smaller than its layout");
        let words = NonNull::from(&mem.words()[base..end]);
        Self {
            _mem: mem,
            words,
            id,
            capacity,
            mask: capacity - 1,
            slot_words,
        }
    }

    #[inline]
    pub(super) fn words(&self) -> &[AtomicU64] {
        // SAFETY: `words` was taken from `self._mem.words()`, which the
        // `SharedMemory` contract keeps valid and at the same address until
        // the region is dropped; `self._mem` keeps the region alive at least
        // as long as this borrow of `self`. Only shared references are made.
        unsafe { self.words.as_ref() }
    }

    #[inline]
    pub(crate) fn head(&self) -> &AtomicU64 {
        &self.words()[word_of!(RingHeader, head)]
    }

    #[inline]
    pub(crate) fn tail(&self) -> &AtomicU64 {
        &self.words()[word_of!(RingHeader, tail)]
    }

    /// The words of the slot for counter value `pos` (masked, so any `pos`
    /// is in bounds).
    #[inline]
    pub(crate) fn slot(&self, pos: u64) -> &[AtomicU64] {
        let start = RING_HEADER_SIZE / 8 + (pos & self.mask) as usize * self.slot_words;
        &self.words()[start..start + self.slot_words]
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.slot_words * 8 - MESSAGE_HEADER_SIZE
    }

    /// Payload bytes of a lane slot.
    #[inline]
    pub(crate) fn lane_max_payload(&self) -> usize {
        lane_max_payload(self.slot_words * 8)
    }

    // Cold: every caller is on an error path, and saying so keeps those
    // paths (and their formatting) out of the message loops.
    #[cold]
    pub(super) fn corrupted(&self, what: String) -> Error {
        Error::RingCorrupted {
            ring: self.id,
            what,
        }
    }

    /// Checks the kind (and, for a no-reply mark, the length) of the message
    /// at `pos`: requests on H2K; on K2H replies, error replies and
    /// [`KIND_NO_REPLY`] marks (which carry no payload), and in the slot
    /// format [`KIND_EVENT`]s too. The lane format carries no event: only
    /// kernels that send produce them, and those run in the slot format (a
    /// lane header has no word for the event's own number).
    #[inline]
    pub(super) fn check_kind(&self, kind: u32, len: u32, pos: u64, lanes: bool) -> Result<()> {
        if self.kind_ok(kind, len, lanes) {
            Ok(())
        } else {
            Err(self.unknown_kind(kind, len, pos, lanes))
        }
    }

    /// [`check_kind`](Self::check_kind) as a bool, for the message paths
    /// that fold it into one branch with their other checks.
    #[inline]
    pub(super) fn kind_ok(&self, kind: u32, len: u32, lanes: bool) -> bool {
        match self.id {
            RingId::H2k => kind == KIND_REQUEST,
            RingId::K2h => {
                kind == KIND_REPLY
                    || kind == KIND_ERROR
                    || (kind == KIND_NO_REPLY && len == 0)
                    || (kind == KIND_EVENT && !lanes)
            }
        }
    }

    #[cold]
    pub(super) fn unknown_kind(&self, kind: u32, len: u32, pos: u64, lanes: bool) -> Error {
        let what = match (self.id, kind) {
            (RingId::K2h, KIND_NO_REPLY) => {
                format!(
                    "no-reply mark with a {len}-byte payload at position {pos} (it carries none)"
                )
            }
            (RingId::K2h, KIND_EVENT) if lanes => {
                format!(
                    "event at position {pos} of a lane-format ring (events travel in slots only)"
                )
            }
            _ => format!("unknown message kind {kind} at position {pos}"),
        };
        self.corrupted(what)
    }
}
