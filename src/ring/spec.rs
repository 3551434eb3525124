//! [`RingSpec`]: the capacity, slot size and format of a bridge's two rings,
//! validated.

use super::*;

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
    pub(super) capacity: usize,
    pub(super) slot_size: usize,
    pub(super) lanes: bool,
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

    pub(super) fn ring_bytes(&self) -> Option<usize> {
        let slots = self.capacity.checked_mul(self.slot_size)?;
        let bytes = slots.checked_add(RING_HEADER_SIZE)?;
        Some(bytes.div_ceil(LINE) * LINE)
    }
}
