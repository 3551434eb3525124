//! The timed loops of `ringbridge host-side`: one ring half at a time, on
//! one thread, over ordinary host memory, with the device side taken out.
//! `benches/host_side.rs` includes this file by path, so the benchmark and
//! the command time the same code.
//!
//! Both halves of one ring live on the calling thread and take turns, one
//! batch each; only one of them is timed:
//!
//! - [`Op::Produce`] times the producer writing a batch and publishing it.
//!   The consumer then reads and releases the batch, untimed: an instant
//!   consumer through the public halves, so the producer never finds the
//!   ring full and no test hook is needed to move `tail`.
//! - [`Op::Consume`] times the consumer reading, validating and releasing a
//!   batch that the producer wrote and published just before, untimed.
//! - [`Op::CopyIn`] and [`Op::CopyOut`] are their ceilings: a plain
//!   `ptr::copy_nonoverlapping` of the same payload bytes into (or out of)
//!   the same slots of the same region, batch by batch, with the other
//!   direction's copy untimed in between, as the halves do.
//!
//! Each batch is timed on its own with [`Instant`]: one `Instant::now` and
//! one `elapsed` per batch fall inside the figure.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ringbridge::backend::SharedMemory;
use ringbridge::error::RingId;
use ringbridge::fallback::HostMemory;
use ringbridge::layout::{KIND_REQUEST, LANE_SIZE, MESSAGE_HEADER_SIZE, RING_HEADER_SIZE};
use ringbridge::ring::{
    LaneConsumer, LaneProducer, RegionLayout, RingConsumer, RingProducer, RingSpec, SlotFormat,
};
use ringbridge::{Error, Result};

/// What one timed batch does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The producer half writes and publishes the batch.
    Produce,
    /// The consumer half reads, validates and releases the batch.
    Consume,
    /// `copy_nonoverlapping` of each payload into its slot (`Produce`'s
    /// ceiling).
    CopyIn,
    /// `copy_nonoverlapping` of each payload out of its slot into one
    /// scratch buffer (`Consume`'s ceiling; the consumer half also copies
    /// into one scratch buffer).
    CopyOut,
}

impl Op {
    /// Every op, in the order they are measured.
    pub const ALL: [Op; 4] = [Op::Produce, Op::CopyIn, Op::Consume, Op::CopyOut];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Produce => "produce",
            Op::Consume => "consume",
            Op::CopyIn => "memcpy_in",
            Op::CopyOut => "memcpy_out",
        }
    }
}

/// The two halves of the ring, in either slot format.
enum Halves {
    Slots(RingProducer, RingConsumer),
    Lanes(LaneProducer, LaneConsumer),
}

/// One region with the H2K ring of a given format and payload size, both of
/// its halves, and the payload every message carries.
pub struct Rig {
    layout: RegionLayout,
    mem: std::sync::Arc<HostMemory>,
    halves: Halves,
    payload: Vec<u8>,
    scratch: Vec<u8>,
    batch: usize,
    /// Byte offset of the payload inside a slot.
    payload_offset: usize,
    /// Next slot position of the copies.
    copy_pos: u64,
    /// Whether copies overwrote the ring's slots since the halves were made
    /// (in lane format they overwrite tags, so the halves start afresh).
    copied: bool,
}

impl Rig {
    /// A rig for `payload`-byte messages in `format` (`Slots` or `Lanes`),
    /// with the smallest slot that carries them, `capacity` slots and
    /// batches of `batch` messages. Lane slots carry at most 248 bytes:
    /// [`Error::PayloadTooLarge`] beyond.
    pub fn new(format: SlotFormat, payload: usize, capacity: usize, batch: usize) -> Result<Self> {
        let spec = match format {
            SlotFormat::Lanes => {
                let slot = RingSpec::lane_slot_size_for(payload).ok_or(Error::PayloadTooLarge {
                    len: payload,
                    max: RingSpec::lanes(1, ringbridge::layout::MAX_LANE_SLOT_SIZE)?.max_payload(),
                })?;
                RingSpec::lanes(capacity, slot)?
            }
            _ => RingSpec::new(capacity, RingSpec::slot_size_for(payload))?,
        };
        if batch == 0 || batch > spec.capacity() {
            return Err(Error::InvalidArgument(format!(
                "a batch of {batch} messages does not fit a ring of {} slots",
                spec.capacity()
            )));
        }
        let layout = RegionLayout::new(spec)?;
        let mem = HostMemory::new(layout.total_bytes)?;
        let payload_offset = match spec.format() {
            SlotFormat::Lanes => LANE_SIZE,
            _ => MESSAGE_HEADER_SIZE,
        };
        // The copies stay inside the H2K ring's slots.
        assert!(payload_offset + payload <= spec.slot_size());
        assert!(
            layout.h2k_offset + RING_HEADER_SIZE + spec.capacity() * spec.slot_size()
                <= mem.len_bytes()
        );
        let halves = Self::halves(&layout, &mem);
        Ok(Self {
            layout,
            mem,
            halves,
            payload: (0..payload).map(|i| (i as u8).wrapping_mul(31)).collect(),
            scratch: vec![0; payload],
            batch,
            payload_offset,
            copy_pos: 0,
            copied: false,
        })
    }

    /// Zeroes the region, writes its headers and makes fresh halves.
    fn halves(layout: &RegionLayout, mem: &std::sync::Arc<HostMemory>) -> Halves {
        for w in mem.words() {
            w.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        layout.init(&**mem);
        match layout.spec.format() {
            SlotFormat::Lanes => {
                let (tx, rx) = layout.lane_pair(mem, RingId::H2k);
                Halves::Lanes(tx, rx)
            }
            _ => {
                let (tx, rx) = layout.ring_pair(mem, RingId::H2k);
                Halves::Slots(tx, rx)
            }
        }
    }

    /// The ring's slot size in bytes.
    pub fn slot_size(&self) -> usize {
        self.layout.spec.slot_size()
    }

    /// Times `messages` messages of `op`, in batches; returns the sum of the
    /// batches' timed parts.
    pub fn time(&mut self, op: Op, messages: u64) -> Result<Duration> {
        self.time_each(op, messages, |_, _| ())
    }

    /// Like [`time`](Self::time), handing each batch's message count and
    /// timed part to `each` as well.
    pub fn time_each(
        &mut self,
        op: Op,
        messages: u64,
        mut each: impl FnMut(usize, Duration),
    ) -> Result<Duration> {
        if self.copied && matches!(op, Op::Produce | Op::Consume) {
            self.halves = Self::halves(&self.layout, &self.mem);
            self.copied = false;
        }
        let mut total = Duration::ZERO;
        let mut done = 0u64;
        while done < messages {
            let n = (messages - done).min(self.batch as u64) as usize;
            let d = self.batch_of(op, n)?;
            each(n, d);
            total += d;
            done += n as u64;
        }
        Ok(total)
    }

    /// One batch of `n` messages; returns its timed part.
    fn batch_of(&mut self, op: Op, n: usize) -> Result<Duration> {
        Ok(match op {
            Op::Produce => {
                let t = Instant::now();
                self.write(n)?;
                let d = t.elapsed();
                self.read(n)?;
                d
            }
            Op::Consume => {
                self.write(n)?;
                let t = Instant::now();
                self.read(n)?;
                t.elapsed()
            }
            Op::CopyIn => {
                self.copied = true;
                let t = Instant::now();
                self.copy_in(n);
                let d = t.elapsed();
                self.copy_out(n);
                self.copy_pos += n as u64;
                d
            }
            Op::CopyOut => {
                self.copied = true;
                self.copy_in(n);
                let t = Instant::now();
                self.copy_out(n);
                let d = t.elapsed();
                self.copy_pos += n as u64;
                d
            }
        })
    }

    /// Writes `n` messages and publishes them.
    #[inline(never)]
    fn write(&mut self, n: usize) -> Result<()> {
        let payload = &self.payload[..];
        let wrote = match &mut self.halves {
            Halves::Slots(tx, _) => {
                let mut wrote = 0;
                for _ in 0..n {
                    wrote += usize::from(tx.write(KIND_REQUEST, 0, 0, payload)?.is_some());
                }
                tx.publish();
                wrote
            }
            Halves::Lanes(tx, _) => {
                let mut wrote = 0;
                for _ in 0..n {
                    wrote += usize::from(tx.write(KIND_REQUEST, 0, payload)?.is_some());
                }
                tx.publish();
                wrote
            }
        };
        if wrote != n {
            return Err(Error::InvalidArgument(format!(
                "the ring took {wrote} of {n} messages (its consumer releases every batch)"
            )));
        }
        Ok(())
    }

    /// Reads `n` messages, checks each one's length, hands each payload to
    /// `black_box`, and releases them with one `tail` store.
    #[inline(never)]
    fn read(&mut self, n: usize) -> Result<()> {
        let size = self.payload.len();
        let check = |h: &ringbridge::layout::MessageHeader, p: &[u8]| {
            black_box(p);
            h.len as usize == size && p.len() == size
        };
        let mut good = 0;
        match &mut self.halves {
            Halves::Slots(_, rx) => {
                for _ in 0..n {
                    good += usize::from(rx.read_with(check)? == Some(true));
                }
                rx.release();
            }
            Halves::Lanes(_, rx) => {
                for _ in 0..n {
                    good += usize::from(rx.read_with(check)? == Some(true));
                }
                rx.release();
            }
        }
        if good != n {
            return Err(Error::InvalidArgument(format!(
                "{good} of {n} published messages read back whole"
            )));
        }
        Ok(())
    }

    /// The payload's address in the slot for position `pos`.
    #[inline]
    fn payload_ptr(&self, pos: u64) -> *mut u8 {
        let spec = &self.layout.spec;
        let slot = (pos & (spec.capacity() as u64 - 1)) as usize;
        let offset = self.layout.h2k_offset
            + RING_HEADER_SIZE
            + slot * spec.slot_size()
            + self.payload_offset;
        // A pointer to the region's atomics: `AtomicU64` is an `UnsafeCell`,
        // so writing through it is allowed (see `copy_in`).
        self.mem
            .words()
            .as_ptr()
            .cast::<u8>()
            .cast_mut()
            .wrapping_add(offset)
    }

    /// Copies the payload into the slots of the next `n` copy positions.
    #[inline(never)]
    fn copy_in(&mut self, n: usize) {
        let size = self.payload.len();
        for k in 0..n as u64 {
            let dst = self.payload_ptr(self.copy_pos + k);
            // SAFETY: `dst..dst + size` lies inside the H2K ring's slot for
            // this position (asserted in `new`), inside the region that
            // `self.mem` keeps alive; the region's words are `AtomicU64`s,
            // whose `UnsafeCell` allows writes through a shared borrow. No
            // other thread can reach this region (the rig owns both halves
            // and is used from one thread), and no atomic access to it runs
            // during the copy, so these plain writes race with nothing.
            // `self.payload` is a separate allocation, so they do not
            // overlap.
            unsafe { std::ptr::copy_nonoverlapping(self.payload.as_ptr(), dst, size) };
        }
    }

    /// Copies the payloads of the next `n` copy positions into the scratch
    /// buffer, one after the other.
    #[inline(never)]
    fn copy_out(&mut self, n: usize) {
        let size = self.payload.len();
        for k in 0..n as u64 {
            let src = self.payload_ptr(self.copy_pos + k);
            // SAFETY: as in `copy_in`: `src..src + size` is inside the
            // live region, nothing else accesses it during the copy, and
            // `self.scratch` (a separate allocation of `size` bytes) does
            // not overlap it.
            unsafe { std::ptr::copy_nonoverlapping(src, self.scratch.as_mut_ptr(), size) };
            black_box(&mut self.scratch);
        }
    }
}
