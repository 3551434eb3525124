//! The host halves of the ring protocol, over shared memory.
//!
//! A bridge's memory is one region: the [`ControlBlock`], then the H2K ring,
//! then the K2H ring (see [`RegionLayout`]). The host touches that memory
//! only as `AtomicU64` words ([`SharedMemory::words`]): counters with
//! acquire/release, slot words relaxed (the counters order them). Every value
//! the other side wrote is validated before use, so a misbehaving device half
//! yields [`Error::RingCorrupted`], never an out-of-bounds access or a wrong
//! message.
//!
//! Two slot formats ([`SlotFormat`]): header + payload slots published by a
//! release store of `head` ([`RingProducer`], [`RingConsumer`]), and flagged
//! 16-byte lanes for small messages, where every lane carries its message's
//! tag and no `head` is read ([`LaneProducer`], [`LaneConsumer`]).
//!
//! The small functions on the message path (slot and counter accessors,
//! `available`, `free`, `publish`, `release`, the kind check) are
//! `#[inline]`: generic callers such as `read_with` are compiled in the
//! caller's crate, where without the mark they stayed function calls
//! (reading a 64-byte message went from 13.9 to 11.0 ns, a fallback round
//! trip from 180 to 171 ns; 2-vCPU EPYC VM, 2026-11-26). The producers'
//! `write` is `#[inline]` too, for callers outside this crate: writing and
//! publishing a 64-byte slot message from the `ringbridge` binary went from
//! 9.9 to 6.2 ns, a 4 KiB one from 355-510 to 231-241 ns (memcpy of the
//! same bytes: 189-214 ns), a 64-byte lane message from 10.6 to 8.6-10.0 ns
//! (`ringbridge host-side`, median batch, side by side, 2-vCPU VM under
//! load, 2026-11-30).
//!
//! [`RingProducer`] and [`RingConsumer`] are direction-neutral: the host uses
//! a producer on H2K and a consumer on K2H; the Rust model of the device half
//! (used by the loom and Miri tests) uses them the other way round.
//!
//! ```
//! use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
//! use ringbridge::layout::KIND_REQUEST;
//! use ringbridge::error::RingId;
//!
//! let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
//! let mem = HostMemory::new(layout.total_bytes)?;
//! let (mut host_tx, mut dev_rx) = layout.ring_pair(&mem, RingId::H2k);
//! layout.init(&*mem);
//! host_tx.try_push(KIND_REQUEST, 0, 0, b"ping")?;
//! let got = dev_rx.try_pop_with(|hdr, payload| (hdr.seq, payload.to_vec()))?;
//! assert_eq!(got, Some((0, b"ping".to_vec())));
//! # Ok::<(), ringbridge::Error>(())
//! ```

mod consumer;
mod control;
mod lanes;
mod memory;
pub mod model;
mod producer;

pub use consumer::RingConsumer;
pub use control::{Control, KernelReport, describe_error};
pub use lanes::{LANE_TORN_POLLS, LaneConsumer, LaneProducer};
pub use memory::HostMemory;
pub use producer::RingProducer;

use crate::backend::SharedMemory;
use crate::error::{Error, Result, RingId};
use crate::layout::{
    ControlBlock, FORMAT_LANES, FORMAT_SLOTS, KIND_ERROR, KIND_EVENT, KIND_NO_REPLY, KIND_REPLY,
    KIND_REQUEST, LANE_SIZE, LAYOUT_VERSION, LINE, MAGIC, MAX_CAPACITY, MAX_LANE_SLOT_SIZE,
    MAX_SLOT_SIZE, MESSAGE_HEADER_SIZE, MIN_SLOT_SIZE, RING_HEADER_SIZE, RingHeader,
    lane_max_payload,
};
use std::ptr::NonNull;

use crate::sync::{Arc, AtomicU64, Ordering};
use crate::word_of;

/// How the slots of a bridge's rings carry messages.
///
/// ```
/// use ringbridge::ring::{RingSpec, SlotFormat};
/// assert_eq!(SlotFormat::default(), SlotFormat::Auto);
/// assert_eq!(RingSpec::new(8, 64)?.format(), SlotFormat::Slots);
/// assert_eq!(RingSpec::lanes(8, 64)?.format(), SlotFormat::Lanes);
/// assert_eq!(SlotFormat::Lanes.to_string(), "lanes");
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SlotFormat {
    /// On CUDA, [`SlotFormat::Lanes`] for small messages (a builder's slot
    /// size of at most [`AUTO_LANES_MAX_SLOT_SIZE`] bytes, so payloads up to
    /// 96 bytes) with a built-in kernel; [`SlotFormat::Slots`] otherwise,
    /// and always on the host fallback, where slots measured faster.
    ///
    /// Lanes are the latency format (2.7 us p50 at 64 B on an H200). For
    /// streaming many small messages ask for [`SlotFormat::Slots`]: a lane
    /// block serves one slot per warp per round, so lanes streamed 64-byte
    /// messages at 1.4 M msg/s against 47 M msg/s in slots on the same card
    /// (`ringbridge stream` always uses slots).
    #[default]
    Auto,
    /// A message header then the payload; the receiver acquires the ring's
    /// `head` before reading the slot ([`crate::layout::FORMAT_SLOTS`]).
    Slots,
    /// Flagged 16-byte lanes: every lane carries its message's tag beside 8
    /// bytes of data, so the receiver holds the whole message after one round
    /// of loads, with no `head` read ([`crate::layout::FORMAT_LANES`]).
    Lanes,
}

impl SlotFormat {
    /// Its name on the command line and in reports: `auto`, `slots`, `lanes`.
    ///
    /// ```
    /// use ringbridge::ring::SlotFormat;
    /// assert_eq!(SlotFormat::Lanes.name(), "lanes");
    /// assert_eq!("slots".parse::<SlotFormat>().unwrap(), SlotFormat::Slots);
    /// assert!("rings".parse::<SlotFormat>().is_err());
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Slots => "slots",
            Self::Lanes => "lanes",
        }
    }
}

impl std::fmt::Display for SlotFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SlotFormat {
    type Err = crate::Error;

    /// Parses `auto`, `slots` or `lanes` (any case); anything else is
    /// [`Error::InvalidArgument`].
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "slots" => Ok(Self::Slots),
            "lanes" => Ok(Self::Lanes),
            _ => Err(crate::Error::InvalidArgument(format!(
                "unknown slot format {s:?}: expected auto, slots or lanes"
            ))),
        }
    }
}

/// [`SlotFormat::Auto`] picks lanes up to this (slot-format) slot size: a
/// 96-byte payload budget, carried by lane slots of at most 256 bytes
/// (16 lanes, half a warp's single coalesced load).
pub const AUTO_LANES_MAX_SLOT_SIZE: usize = 128;

/// Capacity, slot size and slot format of a bridge's two rings, validated.
///
/// ```
/// use ringbridge::ring::{RingSpec, SlotFormat};
/// let spec = RingSpec::new(100, 256)?;
/// assert_eq!((spec.capacity(), spec.slot_size()), (128, 256));
/// assert_eq!(spec.max_payload(), 256 - 32); // the 32-byte header
/// assert_eq!(spec.format(), SlotFormat::Slots);
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSpec {
    capacity: usize,
    slot_size: usize,
    lanes: bool,
}

impl RingSpec {
    /// Validates a ring shape. `capacity` is rounded up to a power of two
    /// (1 ≤ capacity ≤ [`MAX_CAPACITY`]); `slot_size` must be a power of two
    /// from [`MIN_SLOT_SIZE`] to [`MAX_SLOT_SIZE`] bytes.
    ///
    /// ```
    /// use ringbridge::ring::RingSpec;
    /// assert_eq!(RingSpec::new(1000, 64).unwrap().capacity(), 1024);
    /// assert!(RingSpec::new(0, 64).is_err());
    /// assert!(RingSpec::new(8, 96).is_err());
    /// ```
    pub fn new(capacity: usize, slot_size: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::InvalidCapacity {
                requested: capacity,
                reason: "a ring needs at least one slot",
            });
        }
        if capacity > MAX_CAPACITY {
            return Err(Error::InvalidCapacity {
                requested: capacity,
                reason: "more than 2^24 slots",
            });
        }
        if !slot_size.is_power_of_two() {
            return Err(Error::InvalidSlotSize {
                requested: slot_size,
                reason: "not a power of two",
            });
        }
        if slot_size < MIN_SLOT_SIZE {
            return Err(Error::InvalidSlotSize {
                requested: slot_size,
                reason: "smaller than 64 bytes (a 32-byte header and 32 bytes of payload)",
            });
        }
        if slot_size > MAX_SLOT_SIZE {
            return Err(Error::InvalidSlotSize {
                requested: slot_size,
                reason: "larger than 1 MiB",
            });
        }
        Ok(Self {
            capacity: capacity.next_power_of_two(),
            slot_size,
            lanes: false,
        })
    }

    /// Like [`new`](Self::new), for rings of flagged lanes
    /// ([`SlotFormat::Lanes`]): `slot_size` is the lane slot's size, at most
    /// [`MAX_LANE_SLOT_SIZE`] (32 lanes, one warp access).
    ///
    /// ```
    /// use ringbridge::ring::{RingSpec, SlotFormat};
    /// let spec = RingSpec::lanes(4, 128).unwrap();
    /// assert_eq!((spec.format(), spec.max_payload()), (SlotFormat::Lanes, 56));
    /// assert!(RingSpec::lanes(4, 1024).is_err());
    /// ```
    pub fn lanes(capacity: usize, slot_size: usize) -> Result<Self> {
        let spec = Self::new(capacity, slot_size)?;
        if slot_size > MAX_LANE_SLOT_SIZE {
            return Err(Error::InvalidSlotSize {
                requested: slot_size,
                reason: "a lane slot holds at most 32 lanes (512 bytes)",
            });
        }
        Ok(Self {
            lanes: true,
            ..spec
        })
    }

    /// The smallest power-of-two lane slot that carries `payload` bytes
    /// (lane 0 is the header, then 8 payload bytes per 16-byte lane), or
    /// `None` when no lane slot does (more than 248 bytes).
    ///
    /// ```
    /// use ringbridge::ring::RingSpec;
    /// assert_eq!(RingSpec::lane_slot_size_for(64), Some(256));
    /// assert_eq!(RingSpec::lane_slot_size_for(32), Some(128));
    /// assert_eq!(RingSpec::lane_slot_size_for(0), Some(64));
    /// assert_eq!(RingSpec::lane_slot_size_for(249), None);
    /// ```
    pub fn lane_slot_size_for(payload: usize) -> Option<usize> {
        let size = ((payload.div_ceil(8) + 1) * LANE_SIZE)
            .max(MIN_SLOT_SIZE)
            .next_power_of_two();
        (size <= MAX_LANE_SLOT_SIZE).then_some(size)
    }

    /// The slot format ([`SlotFormat::Slots`] or [`SlotFormat::Lanes`],
    /// never `Auto`).
    ///
    /// ```
    /// use ringbridge::ring::{RingSpec, SlotFormat};
    /// assert_eq!(RingSpec::new(4, 128)?.format(), SlotFormat::Slots);
    /// assert_eq!(RingSpec::lanes(4, 128)?.format(), SlotFormat::Lanes);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn format(&self) -> SlotFormat {
        if self.lanes {
            SlotFormat::Lanes
        } else {
            SlotFormat::Slots
        }
    }

    /// The ring header's `format` word.
    pub(crate) fn format_word(&self) -> u64 {
        if self.lanes {
            FORMAT_LANES
        } else {
            FORMAT_SLOTS
        }
    }

    /// The smallest power-of-two slot size that carries `payload` bytes.
    ///
    /// ```
    /// assert_eq!(ringbridge::ring::RingSpec::slot_size_for(64), 128);
    /// assert_eq!(ringbridge::ring::RingSpec::slot_size_for(8), 64);
    /// ```
    pub fn slot_size_for(payload: usize) -> usize {
        (payload + MESSAGE_HEADER_SIZE)
            .max(MIN_SLOT_SIZE)
            .next_power_of_two()
    }

    /// Slots per ring (a power of two).
    ///
    /// ```
    /// use ringbridge::ring::RingSpec;
    /// assert_eq!(RingSpec::new(5, 64)?.capacity(), 8);
    /// assert_eq!(RingSpec::new(1, 64)?.capacity(), 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes per slot (a power of two).
    ///
    /// ```
    /// use ringbridge::ring::RingSpec;
    /// assert_eq!(RingSpec::new(4, 512)?.slot_size(), 512);
    /// assert_eq!(RingSpec::lanes(4, 128)?.slot_size(), 128);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Payload bytes one slot carries (in lane format, 8 per lane after
    /// the header lane).
    ///
    /// ```
    /// use ringbridge::ring::RingSpec;
    /// // a 64-byte slot: 32-byte header + 32 bytes of payload
    /// assert_eq!(RingSpec::new(4, 64)?.max_payload(), 32);
    /// // a 64-byte lane slot: 4 lanes, the header lane + 3 x 8 bytes
    /// assert_eq!(RingSpec::lanes(4, 64)?.max_payload(), 24);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    #[inline]
    pub fn max_payload(&self) -> usize {
        if self.lanes {
            lane_max_payload(self.slot_size)
        } else {
            self.slot_size - MESSAGE_HEADER_SIZE
        }
    }

    fn ring_bytes(&self) -> Option<usize> {
        let slots = self.capacity.checked_mul(self.slot_size)?;
        let bytes = slots.checked_add(RING_HEADER_SIZE)?;
        Some(bytes.div_ceil(LINE) * LINE)
    }
}

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
        })
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
    /// use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
    /// use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
    pub fn control(&self, mem: &Arc<HostMemory>) -> Control {
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
    /// use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
    pub fn ring_pair(&self, mem: &Arc<HostMemory>, ring: RingId) -> (RingProducer, RingConsumer) {
        let shared = as_shared(mem);
        let r = RingRef::new(shared, self, ring);
        (RingProducer::new(r.clone()), RingConsumer::new(r))
    }

    /// The producer and the consumer of one ring in lane format, over `mem`.
    ///
    /// ```
    /// use ringbridge::error::RingId;
    /// use ringbridge::layout::KIND_REQUEST;
    /// use ringbridge::ring::{HostMemory, RegionLayout, RingSpec};
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
    pub fn lane_pair(&self, mem: &Arc<HostMemory>, ring: RingId) -> (LaneProducer, LaneConsumer) {
        assert_eq!(self.spec.format(), SlotFormat::Lanes, "not a lane layout");
        let shared = as_shared(mem);
        let r = RingRef::new(shared, self, ring);
        (LaneProducer::new(r.clone()), LaneConsumer::new(r))
    }
}

/// `mem` as the trait object the ring halves hold.
fn as_shared(mem: &Arc<HostMemory>) -> Arc<dyn SharedMemory> {
    #[cfg(not(loom))]
    {
        mem.clone()
    }
    // loom's `Arc` cannot coerce to a trait object; `from_std` converts a
    // unique std `Arc` of a forwarding wrapper instead.
    #[cfg(loom)]
    {
        struct Shared(Arc<HostMemory>);
        // SAFETY: forwards to `HostMemory`'s implementation, whose
        // guarantees (the words cover the whole region, alive as long as
        // `self`) carry over because `self` keeps the memory alive.
        unsafe impl SharedMemory for Shared {
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

/// One ring inside a region, with the shape the host configured. The host
/// never re-reads capacity, mask or slot size from shared memory.
#[derive(Clone)]
pub(crate) struct RingRef {
    /// Held only to keep the region alive: `words` points into it.
    _mem: Arc<dyn SharedMemory>,
    /// This ring's words (header, then slots) inside `_mem.words()`, taken
    /// once: going through the trait object on every access was 16% of a
    /// push + pop.
    words: NonNull<[AtomicU64]>,
    id: RingId,
    capacity: u64,
    mask: u64,
    /// Words per slot.
    slot_words: usize,
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
    fn words(&self) -> &[AtomicU64] {
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
    fn corrupted(&self, what: String) -> Error {
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
    fn check_kind(&self, kind: u32, len: u32, pos: u64, lanes: bool) -> Result<()> {
        let ok = match self.id {
            RingId::H2k => kind == KIND_REQUEST,
            RingId::K2h => {
                kind == KIND_REPLY
                    || kind == KIND_ERROR
                    || (kind == KIND_NO_REPLY && len == 0)
                    || (kind == KIND_EVENT && !lanes)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(self.unknown_kind(kind, len, pos, lanes))
        }
    }

    #[cold]
    fn unknown_kind(&self, kind: u32, len: u32, pos: u64, lanes: bool) -> Error {
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

/// What both consumer halves ([`RingConsumer`], [`LaneConsumer`]) keep of
/// their own position.
#[derive(Debug, Default)]
pub(crate) struct ReadPosition {
    /// Next position to read; equals the shared `tail` after `release`.
    pub(crate) tail: u64,
    /// Positions read but not yet released to the producer.
    unreleased: u64,
}

impl ReadPosition {
    /// One more message read, not yet freed.
    #[inline]
    pub(crate) fn advance(&mut self) {
        self.tail += 1;
        self.unreleased += 1;
    }

    /// Frees every message read so far with one release store of `ring`'s
    /// `tail`.
    #[inline]
    pub(crate) fn release(&mut self, ring: &RingRef) {
        if self.unreleased > 0 {
            // Release: orders our reads of the freed slots (or lanes) before
            // the new `tail`, so the producer's next lap cannot change what
            // we read.
            ring.tail().store(self.tail, Ordering::Release);
            self.unreleased = 0;
        }
    }
}
