//! [`RegionLayout`]: where the control block and the two rings sit in a
//! bridge's region, and how a region is initialised and split into halves.

use super::*;

/// Where the control block and the two rings sit in a bridge's region.
///
/// ```
/// use ringbridge::layout::{CONTROL_BLOCK_SIZE, LINE, RING_HEADER_SIZE};
/// use ringbridge::ring::{RegionLayout, RingSpec};
/// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
/// let ring = (RING_HEADER_SIZE + 4 * 64).next_multiple_of(LINE);
/// assert_eq!(layout.h2k_offset, CONTROL_BLOCK_SIZE);
/// assert_eq!(layout.k2h_offset, layout.h2k_offset + ring);
/// assert_eq!(layout.total_bytes, layout.k2h_offset + ring);
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionLayout {
    /// The rings' shape.
    pub spec: RingSpec,
    /// Byte offset of the H2K ring header.
    pub h2k_offset: usize,
    /// Byte offset of the K2H ring header.
    pub k2h_offset: usize,
    /// Bytes of the whole region.
    pub total_bytes: usize,
    /// Byte offset of the call ring ([`crate::layout::CallHeader`] slots
    /// after one header line), after K2H; 0 when the region has none.
    pub call_offset: usize,
    /// Slots of the call ring (0 without one).
    pub call_slots: usize,
    /// Bytes of one call slot (0 without a call ring).
    pub call_slot_size: usize,
}

impl RegionLayout {
    /// Lays out a region: control block at 0, H2K after it, K2H after that,
    /// each on a 128-byte boundary.
    ///
    /// ```
    /// use ringbridge::ring::{RegionLayout, RingSpec};
    /// let layout = RegionLayout::new(RingSpec::new(16, 128)?)?;
    /// assert_eq!(layout.spec.capacity(), 16);
    /// assert_eq!(layout.h2k_offset % 128, 0);
    /// assert_eq!(layout.k2h_offset % 128, 0);
    /// assert!(layout.total_bytes >= layout.k2h_offset + 16 * 128);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn new(spec: RingSpec) -> Result<Self> {
        let too_big = || Error::InvalidCapacity {
            requested: spec.capacity,
            reason: "the rings' size overflows the address space",
        };
        let ring = spec.ring_bytes().ok_or_else(too_big)?;
        let h2k_offset = core::mem::size_of::<ControlBlock>();
        let k2h_offset = h2k_offset.checked_add(ring).ok_or_else(too_big)?;
        let total_bytes = k2h_offset.checked_add(ring).ok_or_else(too_big)?;
        if total_bytes > isize::MAX as usize / 2 {
            return Err(too_big());
        }
        Ok(Self {
            spec,
            h2k_offset,
            k2h_offset,
            total_bytes,
            call_offset: 0,
            call_slots: 0,
            call_slot_size: 0,
        })
    }

    /// This layout with a call ring of `slots` slots of `slot_size` bytes
    /// (powers of two, checked by `CallRing::new`) after K2H.
    ///
    /// ```
    /// use ringbridge::ring::{RegionLayout, RingSpec};
    /// let plain = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// let with = plain.with_call_ring(8, 128)?;
    /// assert_eq!(with.call_offset, plain.total_bytes);
    /// assert_eq!(with.total_bytes, plain.total_bytes + 128 + 8 * 128);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn with_call_ring(mut self, slots: usize, slot_size: usize) -> Result<Self> {
        if !slots.is_power_of_two()
            || !slot_size.is_power_of_two()
            || !(MIN_SLOT_SIZE..=MAX_SLOT_SIZE).contains(&slot_size)
        {
            return Err(Error::InvalidArgument(format!(
                "a call ring of {slots} slots of {slot_size} bytes: powers of two, slots of \
                 {MIN_SLOT_SIZE} to {MAX_SLOT_SIZE} bytes"
            )));
        }
        let base = if self.call_offset != 0 {
            self.call_offset
        } else {
            self.total_bytes
        };
        let bytes = slots
            .checked_mul(slot_size)
            .and_then(|b| b.checked_add(CALL_RING_HEADER_SIZE))
            .and_then(|b| b.checked_add(base))
            .filter(|&end| end <= isize::MAX as usize / 2)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "a call ring of {slots} slots of {slot_size} bytes overflows the address space"
                ))
            })?;
        self.call_offset = base;
        self.call_slots = slots;
        self.call_slot_size = slot_size;
        self.total_bytes = bytes;
        Ok(self)
    }

    /// Byte offset of a ring's header.
    ///
    /// ```
    /// use ringbridge::error::RingId;
    /// use ringbridge::ring::{RegionLayout, RingSpec};
    /// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// assert_eq!(layout.ring_offset(RingId::H2k), layout.h2k_offset);
    /// assert_eq!(layout.ring_offset(RingId::K2h), layout.k2h_offset);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn ring_offset(&self, ring: RingId) -> usize {
        match ring {
            RingId::H2k => self.h2k_offset,
            RingId::K2h => self.k2h_offset,
        }
    }

    /// Writes the control block's and both ring headers' configuration and
    /// zeroes the counters. Call before the device half starts: the launch
    /// (or thread spawn) that follows orders these plain writes before
    /// anything the device half reads.
    ///
    /// ```
    /// use std::mem::offset_of;
    /// use std::sync::atomic::Ordering;
    /// use ringbridge::backend::SharedMemory;
    /// use ringbridge::layout::{MAGIC, RingHeader, STATUS_LAUNCHING};
    /// use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// let mem = HostMemory::new(layout.total_bytes)?;
    /// layout.init(&*mem);
    /// let k2h = |field: usize| {
    ///     mem.words()[(layout.k2h_offset + field) / 8].load(Ordering::Relaxed)
    /// };
    /// assert_eq!(k2h(offset_of!(RingHeader, magic)), MAGIC);
    /// assert_eq!(k2h(offset_of!(RingHeader, capacity)), 4);
    /// assert_eq!(layout.control(&mem).report().status, STATUS_LAUNCHING);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn init<M: SharedMemory + ?Sized>(&self, mem: &M) {
        self.init_words(mem.words());
    }

    /// [`init`](Self::init) over the region's words (a region of a group is
    /// a slice of the group's words).
    pub(crate) fn init_words(&self, words: &[AtomicU64]) {
        // Relaxed stores: nobody else looks at the region yet. What starts
        // the other side (spawning the fallback thread, `cuLaunchKernel`)
        // comes after and orders them before its first load.
        for ring in [RingId::H2k, RingId::K2h] {
            let base = self.ring_offset(ring) / 8;
            let set = |w: usize, v: u64| words[base + w].store(v, Ordering::Relaxed);
            set(word_of!(RingHeader, head), 0);
            set(word_of!(RingHeader, tail), 0);
            set(word_of!(RingHeader, magic), MAGIC);
            set(word_of!(RingHeader, version), LAYOUT_VERSION);
            set(word_of!(RingHeader, capacity), self.spec.capacity as u64);
            set(word_of!(RingHeader, mask), self.spec.capacity as u64 - 1);
            set(word_of!(RingHeader, slot_size), self.spec.slot_size as u64);
            set(word_of!(RingHeader, format), self.spec.format_word());
        }
        let set = |w: usize, v: u64| words[w].store(v, Ordering::Relaxed);
        set(word_of!(ControlBlock, terminate), 0);
        set(
            word_of!(ControlBlock, status),
            crate::layout::STATUS_LAUNCHING,
        );
        set(word_of!(ControlBlock, magic), MAGIC);
        set(word_of!(ControlBlock, version), LAYOUT_VERSION);
        set(word_of!(ControlBlock, check_interval), 1024);
        set(word_of!(ControlBlock, stripes), 1);
        set(word_of!(ControlBlock, stripe_stride), 0);
        set(word_of!(ControlBlock, host_parked), 0);
        set(word_of!(ControlBlock, kernel_parked), 0);
        // Backoff: a raw region's host side rings no doorbell; a bridge
        // writes its own policy over this.
        set(
            word_of!(ControlBlock, wait_policy),
            crate::layout::WAIT_BACKOFF,
        );
        set(word_of!(ControlBlock, call_offset), self.call_offset as u64);
        set(
            word_of!(ControlBlock, call_capacity),
            self.call_slots as u64,
        );
        set(
            word_of!(ControlBlock, call_slot_size),
            self.call_slot_size as u64,
        );
        if self.call_offset != 0 {
            // The doorbell 0, the slots zero, each free for its first call.
            let first = self.call_offset / 8;
            let end =
                (self.call_offset + CALL_RING_HEADER_SIZE + self.call_slots * self.call_slot_size)
                    / 8;
            for w in &words[first..end] {
                w.store(0, Ordering::Relaxed);
            }
            for i in 0..self.call_slots {
                let state = first + (CALL_RING_HEADER_SIZE + i * self.call_slot_size) / 8;
                set(state, (i as u64) << 2 | CALL_PHASE_FREE);
            }
        }
    }

    /// Bytes between the starts of two regions of a striped group (the
    /// region, rounded up to a whole [`LINE`]), so every region keeps the
    /// group's 128-byte alignment.
    ///
    /// ```
    /// use ringbridge::ring::{RegionLayout, RingSpec};
    /// let layout = RegionLayout::new(RingSpec::new(16, 64)?)?;
    /// assert!(layout.stripe_stride() >= layout.total_bytes);
    /// assert_eq!(layout.stripe_stride() % 128, 0);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn stripe_stride(&self) -> usize {
        self.total_bytes.next_multiple_of(LINE)
    }

    /// The control block of a region in `mem`.
    ///
    /// ```
    /// use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// let mem = HostMemory::new(layout.total_bytes)?;
    /// layout.init(&*mem);
    /// let host = layout.control(&mem);
    /// let device = layout.control(&mem); // another view of the same words
    /// assert!(!device.terminate_requested());
    /// host.request_terminate();
    /// assert!(device.terminate_requested());
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn control<M: SharedMemory + 'static>(&self, mem: &Arc<M>) -> Control {
        let shared = as_shared(mem);
        Control::new(shared)
    }

    /// The producer and the consumer of one ring, over `mem`. The consumer
    /// accepts requests on H2K; on K2H replies, error replies, events
    /// ([`KIND_EVENT`]) and no-reply marks ([`KIND_NO_REPLY`], without
    /// payload).
    ///
    /// ```
    /// use ringbridge::Error;
    /// use ringbridge::error::RingId;
    /// use ringbridge::layout::{KIND_EVENT, KIND_NO_REPLY, KIND_REPLY, KIND_REQUEST};
    /// use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// let mem = HostMemory::new(layout.total_bytes)?;
    /// layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.ring_pair(&mem, RingId::K2h);
    /// tx.try_push(KIND_REPLY, 0, 7, b"ok")?;
    /// assert_eq!(rx.try_pop_with(|h, p| (h.correlation, p.to_vec()))?, Some((7, b"ok".to_vec())));
    /// // an event (correlation: the kernel's own event number) and a no-reply mark
    /// tx.try_push(KIND_EVENT, 5, 0, b"tick")?;
    /// tx.try_push(KIND_NO_REPLY, 0, 3, b"")?;
    /// assert_eq!(rx.try_pop_with(|h, p| (h.kind, h.flags, p.to_vec()))?, Some((KIND_EVENT, 5, b"tick".to_vec())));
    /// assert_eq!(rx.try_pop_with(|h, p| (h.kind, h.correlation, p.len()))?, Some((KIND_NO_REPLY, 3, 0)));
    /// // a request has no business on K2H: the consumer rejects it
    /// tx.try_push(KIND_REQUEST, 0, 0, b"?")?;
    /// let err = rx.try_pop_with(|_, _| ()).unwrap_err();
    /// assert!(matches!(err, Error::RingCorrupted { ring: RingId::K2h, .. }));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn ring_pair<M: SharedMemory + 'static>(
        &self,
        mem: &Arc<M>,
        ring: RingId,
    ) -> (RingProducer, RingConsumer) {
        let shared = as_shared(mem);
        let r = RingRef::new(shared, self, ring);
        (RingProducer::new(r.clone()), RingConsumer::new(r))
    }

    /// The producer and the consumer of one ring in lane format, over `mem`.
    ///
    /// ```
    /// use ringbridge::error::RingId;
    /// use ringbridge::layout::KIND_REQUEST;
    /// use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// let layout = RegionLayout::new(RingSpec::lanes(4, 128)?)?;
    /// let mem = HostMemory::new(layout.total_bytes)?;
    /// layout.init(&*mem);
    /// let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
    /// assert_eq!(tx.max_payload(), 56);
    /// tx.try_push(KIND_REQUEST, 3, b"lane")?;
    /// let got = rx.try_pop_with(|h, p| (h.seq, h.flags, p.to_vec()))?;
    /// assert_eq!(got, Some((0, 3, b"lane".to_vec())));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    ///
    /// # Panics
    /// When the layout's spec is not [`SlotFormat::Lanes`].
    pub fn lane_pair<M: SharedMemory + 'static>(
        &self,
        mem: &Arc<M>,
        ring: RingId,
    ) -> (LaneProducer, LaneConsumer) {
        assert_eq!(self.spec.format(), SlotFormat::Lanes, "not a lane layout");
        let shared = as_shared(mem);
        let r = RingRef::new(shared, self, ring);
        (LaneProducer::new(r.clone()), LaneConsumer::new(r))
    }
}

/// `mem` as the trait object the ring halves hold.
pub(super) fn as_shared<M: SharedMemory + 'static>(mem: &Arc<M>) -> Arc<dyn SharedMemory> {
    #[cfg(not(loom))]
    {
        mem.clone()
    }
    // loom's `Arc` cannot coerce to a trait object; `from_std` converts a
    // unique std `Arc` of a forwarding wrapper instead.
    #[cfg(loom)]
    {
        struct Shared<M>(Arc<M>);
        // SAFETY: forwards to `M`'s implementation, whose
        // guarantees (the words cover the whole region, alive as long as
        // `self`) carry over because `self` keeps the memory alive.
        unsafe impl<M: SharedMemory> SharedMemory for Shared<M> {
            fn words(&self) -> &[AtomicU64] {
                self.0.words()
            }
            fn device_address(&self) -> u64 {
                self.0.device_address()
            }
        }
        let std_arc: std::sync::Arc<dyn SharedMemory> = std::sync::Arc::new(Shared(mem.clone()));
        Arc::from_std(std_arc)
    }
}
