//! The host halves of the ring protocol, over shared memory.
//!
//! A bridge's memory is one region: the [`ControlBlock`], then the H2K ring,
//! then the K2H ring (see [`RegionLayout`]). The host touches that memory
//! only as `AtomicU64` words ([`SharedMemory::words`]): counters with
//! acquire/release, slot words relaxed (the counters order them), slot
//! payloads by byte-wise atomic copies (copy.rs: 16-byte and string moves
//! in `asm!`, whose loads and stores count as relaxed). Every value
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
//! `available`, `free`, `publish`, `release`, the kind check) and the
//! producers' `write` are `#[inline]`: generic callers such as `read_with`,
//! and callers outside this crate, would otherwise keep them as function
//! calls on every message (measured: docs/performance.md, "Inlining the ring
//! halves").
//!
//! The module's files: [`SlotFormat`] (format.rs), [`RingSpec`] (spec.rs),
//! [`RegionLayout`] (region.rs), the ring views the halves hold (ring_ref.rs),
//! the positions they keep (read_position.rs, write_position.rs), the halves
//! (producer.rs, consumer.rs, lanes.rs), the payload copies (copy.rs), the
//! control block (control.rs) and the Rust model of the device loop
//! (model.rs). The ring halves run over any [`SharedMemory`]: the backends'
//! memory, or [`HostMemory`](crate::fallback::HostMemory) in tests.
//!
//! [`RingProducer`] and [`RingConsumer`] are direction-neutral: the host uses
//! a producer on H2K and a consumer on K2H; the Rust model of the device half
//! (used by the loom and Miri tests) uses them the other way round.
//!
//! ```
//! use ringbridge::ring::{RegionLayout, RingSpec};
//! use ringbridge::fallback::HostMemory;
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
pub(crate) mod copy;
mod format;
mod lanes;
pub mod model;
mod producer;
mod read_position;
mod region;
mod ring_ref;
mod spec;
mod write_position;

pub use consumer::RingConsumer;
pub use control::{Control, KernelReport, describe_error};
pub use lanes::{LANE_TORN_POLLS, LaneConsumer, LaneProducer};
pub use producer::RingProducer;

use crate::backend::SharedMemory;
use crate::error::{Error, Result, RingId};
use crate::layout::{
    CALL_PHASE_FREE, CALL_RING_HEADER_SIZE, ControlBlock, FORMAT_LANES, FORMAT_SLOTS, KIND_ERROR,
    KIND_EVENT, KIND_NO_REPLY, KIND_REPLY, KIND_REQUEST, LANE_SIZE, LAYOUT_VERSION, LINE, MAGIC,
    MAX_CAPACITY, MAX_LANE_SLOT_SIZE, MAX_SLOT_SIZE, MESSAGE_HEADER_SIZE, MIN_SLOT_SIZE,
    RING_HEADER_SIZE, RingHeader, lane_max_payload,
};
use std::ptr::NonNull;

use crate::sync::{Arc, AtomicU64, Ordering};
use crate::word_of;

pub use format::{AUTO_LANES_MAX_SLOT_SIZE, SlotFormat};
pub(crate) use read_position::ReadPosition;
pub use region::RegionLayout;
pub(crate) use ring_ref::RingRef;
pub use spec::RingSpec;
pub(crate) use write_position::WritePosition;
