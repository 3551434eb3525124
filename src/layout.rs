//! The bytes both sides share: ring header, slot header and control block.
//!
//! Everything in this file is `#[repr(C)]`, built from `u64`/`u32` fields
//! only, and free of padding holes, so the CUDA side (`kernels/ringbridge.cuh`)
//! can describe the same memory. `build.rs` includes this file and generates
//! `ringbridge_layout.h` (offsets, sizes and constants) from it, and the CUDA
//! header `static_assert`s its own structs against those numbers: there is no
//! hand-copied constant on either side.
//!
//! This file depends on nothing but `core` and `bytemuck`, because `build.rs`
//! compiles it too.

use core::mem::{align_of, offset_of, size_of};

/// The size of one line that a single writer owns. 128 bytes is both the
/// adjacent-line prefetch pair on x86 and the GPU's L2 line, so a counter
/// alone on such a line never shares it with the other side's writes.
pub const LINE: usize = 128;

/// `"RBRG"` in ASCII: marks a ring header and a control block as ringbridge's.
pub const MAGIC: u64 = 0x5242_5247;
/// Layout version; bumped whenever any offset or meaning in this file changes.
pub const LAYOUT_VERSION: u64 = 5;

/// Smallest slot: one [`MessageHeader`] plus 32 bytes of payload.
pub const MIN_SLOT_SIZE: usize = 64;
/// Largest slot the rings accept (1 MiB).
pub const MAX_SLOT_SIZE: usize = 1 << 20;
/// Largest ring capacity in slots (2^24).
pub const MAX_CAPACITY: usize = 1 << 24;

/// Header of one ring (H2K or K2H), followed in memory by `capacity` slots of
/// `slot_size` bytes.
///
/// `head` and `tail` are counters that only grow; the slot of counter `c` is
/// `c & mask`. The producer alone writes `head` (release), the consumer alone
/// writes `tail` (release); each side acquire-loads the other's counter.
/// Each counter sits alone on its own [`LINE`].
#[repr(C, align(128))]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RingHeader {
    /// Messages published so far. Written by the producer only.
    pub head: u64,
    /// Keeps `head` alone on its line.
    pub _pad_head: [u64; 15],
    /// Messages consumed so far. Written by the consumer only.
    pub tail: u64,
    /// Keeps `tail` alone on its line.
    pub _pad_tail: [u64; 15],
    /// [`MAGIC`]. Written once by the host before launch.
    pub magic: u64,
    /// [`LAYOUT_VERSION`]. Written once by the host before launch.
    pub version: u64,
    /// Number of slots, a power of two.
    pub capacity: u64,
    /// `capacity - 1`.
    pub mask: u64,
    /// Bytes per slot, a power of two, at least [`MIN_SLOT_SIZE`].
    pub slot_size: u64,
    /// How a slot carries a message: [`FORMAT_SLOTS`] or [`FORMAT_LANES`].
    /// Both rings of a bridge use the same format.
    pub format: u64,
    /// Keeps the configuration line whole.
    pub _pad_cfg: [u64; 10],
}

/// Slot format: a [`MessageHeader`] then the payload, published by a
/// release store of the ring's `head` (which the receiver acquires).
pub const FORMAT_SLOTS: u64 = 0;
/// Slot format "flagged lanes": the slot is `slot_size / 16` [`Lane`]s, each
/// carrying 8 bytes of data and the tag `position + 1`; a receiver that sees
/// every lane of a message carry the current tag holds the whole message,
/// with no `head` read. Lane 0's data is [`lane_header_word`]; lanes
/// `1..=ceil(len / 8)` carry the payload, 8 bytes each.
pub const FORMAT_LANES: u64 = 1;

/// One 16-byte lane of a [`FORMAT_LANES`] slot. The GPU reads and writes a
/// lane with one 16-byte access.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Lane {
    /// 8 bytes of the message (lane 0: [`lane_header_word`]).
    pub data: u64,
    /// [`lane_tag`]: `position + 1` of the message the lane belongs to in
    /// the low [`LANE_SEQ_BITS`] bits (0: never written), a check of `data`
    /// above them.
    pub tag: u64,
}

/// Bytes of a [`Lane`].
pub const LANE_SIZE: usize = size_of::<Lane>();
/// Largest lane slot: 32 lanes, so one warp loads a whole slot in one
/// coalesced access (thread `t` loads lane `t`).
pub const MAX_LANE_SLOT_SIZE: usize = 32 * LANE_SIZE;
/// Bits of lane 0's data word that hold `len`.
pub const LANE_LEN_BITS: u32 = 24;
/// Shift of `kind` (8 bits) in lane 0's data word.
pub const LANE_KIND_SHIFT: u32 = 24;
/// Shift of `flags` (32 bits) in lane 0's data word.
pub const LANE_FLAGS_SHIFT: u32 = 32;

/// Bits of a lane's tag that hold `position + 1`; the bits above them hold
/// [`lane_check`] of the lane's data.
///
/// Why a check: neither the PTX memory model nor the host CPUs document that
/// a 16-byte lane is read or written as one piece across PCIe (see
/// docs/platform-facts.md, "16-byte accesses"), so a reader could see a
/// lane's current tag with data from an earlier write. A lane whose check
/// does not match its data is not taken: the reader reads it again.
pub const LANE_SEQ_BITS: u32 = 48;
/// Mask of the position bits of a lane tag.
pub const LANE_SEQ_MASK: u64 = (1 << LANE_SEQ_BITS) - 1;
/// Messages one lane-format ring carries in its lifetime: positions
/// `0..LANE_MAX_POSITIONS` (`position + 1` must fit [`LANE_SEQ_BITS`]; at the
/// measured 2 M lane messages/s that is over four years).
pub const LANE_MAX_POSITIONS: u64 = LANE_SEQ_MASK;

/// A bijective 64-bit mix (odd multiplies and xor-shifts, each invertible):
/// different data words never mix to the same value, and every input bit
/// reaches the top bits that [`lane_check`] keeps.
pub const fn lane_mix(x: u64) -> u64 {
    let mut x = x.wrapping_mul(LANE_MIX_MUL1);
    x ^= x >> 32;
    x = x.wrapping_mul(LANE_MIX_MUL2);
    x ^= x >> 29;
    x
}

/// The odd multipliers of [`lane_mix`] (exported to the CUDA header, which
/// computes the same mix).
pub const LANE_MIX_MUL1: u64 = 0x9e37_79b9_7f4a_7c15;
/// See [`LANE_MIX_MUL1`].
pub const LANE_MIX_MUL2: u64 = 0xd6e8_feb8_6659_fd93;

/// The check bits of a lane tag: the top `64 - LANE_SEQ_BITS` bits of
/// [`lane_mix`] of the data and the position field.
pub const fn lane_check(seq: u64, data: u64) -> u64 {
    lane_mix(data ^ seq) >> LANE_SEQ_BITS
}

/// The tag of a lane carrying `data` for the message at `pos`.
/// The caller keeps `pos < LANE_MAX_POSITIONS`.
pub const fn lane_tag(pos: u64, data: u64) -> u64 {
    let seq = (pos + 1) & LANE_SEQ_MASK;
    seq | (lane_check(seq, data) << LANE_SEQ_BITS)
}

/// Whether a lane's tag carries the check of `data` (false: the two words
/// come from different writes, a torn read, or were corrupted).
pub const fn lane_tag_matches(tag: u64, data: u64) -> bool {
    tag >> LANE_SEQ_BITS == lane_check(tag & LANE_SEQ_MASK, data)
}

/// Payload bytes a lane slot of `slot_size` bytes carries: 8 per lane after
/// lane 0.
pub const fn lane_max_payload(slot_size: usize) -> usize {
    (slot_size / LANE_SIZE).saturating_sub(1) * 8
}

/// Lane 0's data word: `len` (low 24 bits) | `kind` << 24 (8 bits) |
/// `flags` << 32. The caller keeps `len < 2^24` and `kind < 256`.
pub const fn lane_header_word(kind: u32, len: u32, flags: u32) -> u64 {
    (len as u64 & ((1 << LANE_LEN_BITS) - 1))
        | ((kind as u64 & 0xff) << LANE_KIND_SHIFT)
        | ((flags as u64) << LANE_FLAGS_SHIFT)
}

/// Splits lane 0's data word into `(kind, len, flags)`.
pub const fn lane_header_fields(word: u64) -> (u32, u32, u32) {
    (
        ((word >> LANE_KIND_SHIFT) & 0xff) as u32,
        (word & ((1 << LANE_LEN_BITS) - 1)) as u32,
        (word >> LANE_FLAGS_SHIFT) as u32,
    )
}

/// Slot header, and the header of every [`crate::MessageEnvelope`].
///
/// 32 bytes, 16-byte aligned, no padding: the payload that follows it in a
/// slot starts 16-byte aligned, so the device copies it with 16-byte loads.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MessageHeader {
    /// Sequence number: the message's position in its ring (the producer
    /// sets it), so a stale slot from an earlier lap is detected.
    pub seq: u64,
    /// For a reply, the `seq` of the request it answers; free for requests.
    pub correlation: u64,
    /// One of the `KIND_*` constants.
    pub kind: u32,
    /// Payload bytes that follow the header, at most `slot_size - 32`.
    pub len: u32,
    /// Free for the application; echoed by the built-in kernels.
    pub flags: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A request from the host to the kernel.
pub const KIND_REQUEST: u32 = 1;
/// A reply from the kernel.
pub const KIND_REPLY: u32 = 2;
/// A reply that carries a handler's error code in `flags` instead of a result.
pub const KIND_ERROR: u32 = 3;
/// A message the kernel sent on its own (not a reply): `correlation` holds
/// the kernel's own sequence number of such messages, from 0.
pub const KIND_EVENT: u32 = 4;
/// The mark a handler's "no reply" leaves on K2H: no payload, `correlation`
/// the request's `seq`. The host's receive calls consume it silently, so the
/// request still counts as answered and K2H positions stay one per request.
pub const KIND_NO_REPLY: u32 = 5;

/// Most bytes of a kernel's typed parameter ([`LaunchArgs::param`]).
pub const MAX_PARAM_SIZE: usize = 1024;
/// Most bridge-owned buffers one kernel is given ([`LaunchArgs::buffers`]).
pub const MAX_BUFFERS: usize = 8;

/// One bridge-owned buffer as the handler sees it: its address (device
/// memory on CUDA, host memory on the fallback) and size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BufferRef {
    /// Address of the first byte, as the kernel addresses it; 0 when unused.
    pub addr: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// What a kernel is launched with besides its rings: the fourth argument of
/// an `RB_KERNEL_ENTRY` (a `__grid_constant__` kernel parameter on CUDA, so
/// every thread reads it from the constant bank; a pointer on the host).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LaunchArgs {
    /// The typed parameter's bytes, zero past `param_size`.
    pub param: [u8; MAX_PARAM_SIZE],
    /// The bridge's buffers, zero past `buffer_count`.
    pub buffers: [BufferRef; MAX_BUFFERS],
    /// Bytes of `param` that are the parameter.
    pub param_size: u32,
    /// Entries of `buffers` in use.
    pub buffer_count: u32,
    /// Reserved, zero.
    pub reserved: u64,
}

impl Default for LaunchArgs {
    fn default() -> Self {
        bytemuck::Zeroable::zeroed()
    }
}

/// Bit of a handler's traits (`name__rb_traits()`): one block serves one
/// request at a time (block-cooperative handler).
pub const TRAIT_COOPERATIVE: u32 = 1;
/// Bit of a handler's traits: it sends messages of its own (`rb_max_sends`
/// per request, or an idle hook).
pub const TRAIT_SENDS: u32 = 2;
/// Bit of a handler's traits: element-wise chunkwise handler.
pub const TRAIT_CHUNKWISE: u32 = 4;

/// Control block shared by the host and the kernel of one bridge.
#[repr(C, align(128))]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ControlBlock {
    /// Non-zero asks the kernel to stop. Written by the host only.
    pub terminate: u64,
    /// The host's doorbell (host fallback only): 1 while a host thread
    /// blocked in a bridge call is parked, or about to park, on this word (a
    /// futex on its low 32 bits). The host sets it, SeqCst-fences and looks
    /// at the ring again before parking; the serve loop, after publishing,
    /// fences, reads it, and on 1 swaps in 0 and wakes the host (see
    /// [`crate::wait`]).
    pub host_parked: u64,
    /// Keeps the host's line to itself.
    pub _pad_host: [u64; 14],
    /// One of the `STATUS_*` constants. Written by the kernel only.
    pub status: u64,
    /// Why the kernel failed (`ERR_*`), when `status` is [`STATUS_FAILED`].
    pub error_code: u64,
    /// Detail for `error_code` (for example the offending counter).
    pub error_detail: u64,
    /// Advanced by the kernel's poll loop; a stall means a hung kernel.
    pub heartbeat: u64,
    /// Requests consumed from H2K.
    pub consumed: u64,
    /// Replies published to K2H.
    pub produced: u64,
    /// The kernel's doorbell (host fallback only): 1 while the serve thread
    /// is parked, or about to park, on this word; the host, after
    /// publishing requests or asking it to stop, swaps in 0 and wakes it.
    /// The mirror of `host_parked`.
    pub kernel_parked: u64,
    /// Keeps the kernel's line to itself.
    pub _pad_kernel: [u64; 9],
    /// [`MAGIC`]. Written once by the host before launch.
    pub magic: u64,
    /// [`LAYOUT_VERSION`]. Written once by the host before launch.
    pub version: u64,
    /// A parameter for the handler (the built-in `scale` kernel reads an
    /// `f32` from its low 32 bits).
    pub param: u64,
    /// Turns of the serve loop (a power of two) after which it beats and
    /// reads `terminate`. A loop that serves also beats after any batch
    /// that ends 1 ms (`RB_CHECK_NS` in `ringbridge.cuh`) or more after its
    /// last check, so slow batches do not stretch the beat.
    pub check_interval: u64,
    /// How many regions one launch serves, one thread block each (1 for a
    /// plain bridge). Regions lie `stripe_stride` bytes apart, the kernel
    /// gets region 0's addresses, and block `b` serves region `b`; blocks
    /// beyond `stripes` return at once. The same in every region.
    pub stripes: u64,
    /// Bytes from one region's start to the next (a multiple of [`LINE`]);
    /// unused when `stripes` is 1.
    pub stripe_stride: u64,
    /// How the serve loop waits when it has nothing to do: one of the
    /// `WAIT_*` constants ([`crate::WaitPolicy`]). The host fallback reads
    /// it; a GPU's loop spins or `__nanosleep`s as compiled
    /// (`RB_GPU_IDLE_NANOSLEEP_MAX` in `ringbridge.cuh`).
    pub wait_policy: u64,
    /// Bytes from this control block to the region's call ring (the ring
    /// on which the kernel calls the host's services and logs, see
    /// [`crate::calls`]); 0 when the region has none.
    pub call_offset: u64,
    /// Slots of the call ring (a power of two; 0 without one).
    pub call_capacity: u64,
    /// Bytes of one call slot: a [`CallHeader`] and its payload.
    pub call_slot_size: u64,
    /// Keeps the configuration line whole.
    pub _pad_cfg: [u64; 6],
}

/// The head of one slot of the call ring (see [`crate::calls`]), followed
/// by the request's (later the answer's) payload.
///
/// `state` alone says whose turn it is: `pos << 2 | phase`, with `pos` the
/// call's 32-bit position (wrapping) and `phase` one of the `CALL_PHASE_*`
/// constants. Each phase has one writer, who release-stores the next state
/// after its other stores; the reader acquire-loads it: the kernel writes
/// `CALL` over `FREE(pos)`, the host `ANSWER` over `CALL` (or, for a log
/// line, `FREE(pos + capacity)`), the kernel `FREE(pos + capacity)` over
/// `ANSWER`. So neither side needs an atomic read-modify-write on mapped
/// memory, which a GPU on PCIe cannot rely on.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CallHeader {
    /// `pos << 2 | phase`.
    pub state: u64,
    /// The service called ([`SERVICE_LOG`] for a log line).
    pub service: u32,
    /// Payload bytes: the request's, then the answer's.
    pub len: u32,
    /// The answer's status (`CALL_*`); a log line's level.
    pub status: u32,
    /// The calling thread's index in its block.
    pub thread: u32,
    /// The calling block's index.
    pub block: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Phase of a call slot: free for the call at `pos`.
pub const CALL_PHASE_FREE: u64 = 0;
/// Phase of a call slot: the kernel's request is written.
pub const CALL_PHASE_CALL: u64 = 1;
/// Phase of a call slot: the host's answer is written.
pub const CALL_PHASE_ANSWER: u64 = 2;
/// Bytes of a [`CallHeader`].
pub const CALL_HEADER_SIZE: usize = size_of::<CallHeader>();
/// Bytes before the first call slot: one line holding the service
/// thread's doorbell word (host fallback), a generation as
/// [`ControlBlock::host_parked`] is.
pub const CALL_RING_HEADER_SIZE: usize = LINE;
/// The service id of a log line (`rb_log`): the host logs it and frees the
/// slot, answering nothing.
pub const SERVICE_LOG: u32 = u32::MAX;
/// Call status: answered by the service.
pub const CALL_OK: u32 = 0;
/// Call status: no service has this id.
pub const CALL_UNKNOWN_SERVICE: u32 = 1;
/// Call status: the service returned an error without a code of its own.
pub const CALL_FAILED: u32 = 2;
/// Call status: the service panicked.
pub const CALL_PANICKED: u32 = 3;
/// Call status: the service did not answer within the bridge's service
/// timeout.
pub const CALL_TIMED_OUT: u32 = 4;
/// Call status: the bridge is shutting down; the service was not run.
pub const CALL_SHUTTING_DOWN: u32 = 5;
/// Call status: the request does not fit a call slot (the kernel says so
/// without calling), or the answer did not (the host says so).
pub const CALL_TOO_LONG: u32 = 6;
/// Call status: the bridge has no call ring (no service registered and no
/// call ring asked for).
pub const CALL_NO_RING: u32 = 7;
/// Call status: the answer was longer than the caller's buffer (the buffer
/// holds its first bytes), or a typed call's answer had another size.
pub const CALL_ANSWER_SIZE: u32 = 8;
/// Call status: a typed service got a request of another size than its
/// request type.
pub const CALL_BAD_REQUEST: u32 = 9;
/// The lowest status a service's own error code may take: codes below it
/// are ringbridge's (`CALL_*`).
pub const CALL_FIRST_SERVICE_CODE: u32 = 16;

/// Idle policy word: spin, then yield, then sleep a fixed time per poll
/// (ringbridge's behaviour before wait policies existed). 0, so a control
/// block that never had its policy written keeps that behaviour.
pub const WAIT_BACKOFF: u64 = 0;
/// Idle policy word: poll without pause (burns a core, lowest latency).
pub const WAIT_SPIN: u64 = 1;
/// Idle policy word: spin briefly, then park on the doorbell.
pub const WAIT_SPIN_THEN_PARK: u64 = 2;
/// Idle policy word: park on the doorbell almost at once.
pub const WAIT_LOW_POWER: u64 = 3;

/// The kernel has not started yet.
pub const STATUS_LAUNCHING: u64 = 0;
/// The kernel is serving.
pub const STATUS_RUNNING: u64 = 1;
/// The kernel saw `terminate` and stopped cleanly.
pub const STATUS_STOPPED: u64 = 2;
/// The kernel stopped on an error (`error_code`).
pub const STATUS_FAILED: u64 = 3;

/// The handler returned an error.
pub const ERR_HANDLER: u64 = 1;
/// The kernel found a ring header or slot it could not trust.
pub const ERR_RING_CORRUPTED: u64 = 2;
/// A Rust handler panicked (fallback only).
pub const ERR_HANDLER_PANICKED: u64 = 3;
/// The control block or a ring header had a bad magic or version.
pub const ERR_BAD_MAGIC: u64 = 4;
/// The handler read a typed launch parameter (`rb_launch::param<T>()`) of
/// another size than the host sent: `error_detail` is
/// `(size_of T) << 32 | bytes sent`.
pub const ERR_PARAM_SIZE: u64 = 5;

/// `error_detail` of [`ERR_BAD_MAGIC`]: the control block's magic or version.
pub const BAD_CONTROL: u64 = 1;
/// `error_detail` of [`ERR_BAD_MAGIC`]: `check_interval` zero or not a power of two.
pub const BAD_CHECK_INTERVAL: u64 = 2;
/// `error_detail` of [`ERR_BAD_MAGIC`]: the H2K ring header (magic, version,
/// capacity, mask or slot size).
pub const BAD_H2K: u64 = 3;
/// `error_detail` of [`ERR_BAD_MAGIC`]: the K2H ring header.
pub const BAD_K2H: u64 = 4;
/// `error_detail` of [`ERR_BAD_MAGIC`]: the rings' `format` words differ or
/// are unknown, a lane slot exceeds 512 bytes, or a lane-format kernel runs
/// with a block of fewer than 32 threads.
pub const BAD_FORMAT: u64 = 5;
/// `error_detail` of [`ERR_BAD_MAGIC`]: the control block's `stripes` is
/// zero, or several with a `stripe_stride` that is not a positive multiple
/// of [`LINE`].
pub const BAD_STRIPES: u64 = 6;
/// Set in the `error_detail` of [`ERR_HANDLER`] when a handler returned
/// success with a reply longer than the slot (the low 32 bits are that
/// length); otherwise the detail is the negated negative return code.
pub const DETAIL_REPLY_TOO_LONG: u64 = 1 << 32;
/// What a handler returns to fail the kernel with [`ERR_HANDLER_PANICKED`]
/// (detail 0) instead of [`ERR_HANDLER`]: the fallback's Rust callback
/// returns it after catching a panic.
pub const HANDLER_PANICKED: i32 = i32::MIN;
/// What a handler returns to answer a request with nothing: the serve loop
/// leaves a [`KIND_NO_REPLY`] mark, which the host consumes silently.
/// Negative, yet not fatal: one value set apart from the fatal codes.
pub const NO_REPLY: i32 = i32::MIN + 1;

/// Error-reply code (in `flags`) of the scale kernel for a `len` that is not
/// a multiple of 4.
pub const SCALE_ERR_BAD_LEN: u32 = 1;
/// Error-reply code of the built-in handlers when the reply would not fit a
/// K2H slot (the K2H slots are smaller than the request).
pub const ERR_REPLY_TOO_LONG: u32 = 2;
/// The request `flags` value that makes the test kernels fault.
pub const FAULT_FLAG: u32 = 0xDEAD;

/// Bytes of a [`MessageHeader`].
pub const MESSAGE_HEADER_SIZE: usize = size_of::<MessageHeader>();
/// Bytes of a [`RingHeader`]; the first slot starts here.
pub const RING_HEADER_SIZE: usize = size_of::<RingHeader>();
/// Bytes of a [`ControlBlock`].
pub const CONTROL_BLOCK_SIZE: usize = size_of::<ControlBlock>();

// Offsets the host and device rely on; the build fails if any moves.
const _: () = {
    assert!(offset_of!(RingHeader, head) == 0);
    assert!(offset_of!(RingHeader, tail) == LINE);
    assert!(offset_of!(RingHeader, magic) == 2 * LINE);
    assert!(RING_HEADER_SIZE == 3 * LINE);
    assert!(align_of::<RingHeader>() == LINE);
    assert!(MESSAGE_HEADER_SIZE == 32);
    assert!(align_of::<MessageHeader>() == 16);
    assert!(offset_of!(ControlBlock, terminate) == 0);
    assert!(offset_of!(ControlBlock, status) == LINE);
    assert!(offset_of!(ControlBlock, magic) == 2 * LINE);
    assert!(CONTROL_BLOCK_SIZE == 3 * LINE);
    assert!(CALL_HEADER_SIZE == 32 && MIN_SLOT_SIZE > CALL_HEADER_SIZE);
    assert!(MIN_SLOT_SIZE.is_power_of_two() && MIN_SLOT_SIZE > MESSAGE_HEADER_SIZE);
    assert!(offset_of!(RingHeader, format) == 2 * LINE + 40);
    assert!(LANE_SIZE == 16 && align_of::<Lane>() == 16);
    assert!(offset_of!(Lane, data) == 0 && offset_of!(Lane, tag) == 8);
    assert!(MAX_LANE_SLOT_SIZE.is_power_of_two() && MAX_LANE_SLOT_SIZE >= MIN_SLOT_SIZE);
    assert!(lane_max_payload(MAX_LANE_SLOT_SIZE) < 1 << LANE_LEN_BITS);
    assert!(LANE_MIX_MUL1 % 2 == 1 && LANE_MIX_MUL2 % 2 == 1);
    assert!(lane_mix(0) == 0 && LANE_SEQ_BITS < 64);
};

/// Index of a `u64` field in 8-byte words from the start of its struct.
///
/// The host touches shared memory only as an array of `AtomicU64` words (see
/// [`crate::ring`]), so field offsets are turned into word indices here.
#[macro_export]
#[doc(hidden)]
macro_rules! word_of {
    ($ty:ty, $field:ident) => {
        ::core::mem::offset_of!($ty, $field) / 8
    };
}

/// Every name, offset, size and constant that the CUDA header needs, as
/// `(C name, value)` pairs. `build.rs` writes them to `ringbridge_layout.h`.
pub fn c_constants() -> Vec<(&'static str, u64)> {
    let u = |v: usize| v as u64;
    vec![
        ("RB_LINE", u(LINE)),
        ("RB_MAGIC", MAGIC),
        ("RB_LAYOUT_VERSION", LAYOUT_VERSION),
        ("RB_MIN_SLOT_SIZE", u(MIN_SLOT_SIZE)),
        ("RB_MAX_SLOT_SIZE", u(MAX_SLOT_SIZE)),
        ("RB_RING_HEADER_SIZE", u(RING_HEADER_SIZE)),
        ("RB_RING_OFF_HEAD", u(offset_of!(RingHeader, head))),
        ("RB_RING_OFF_TAIL", u(offset_of!(RingHeader, tail))),
        ("RB_RING_OFF_MAGIC", u(offset_of!(RingHeader, magic))),
        ("RB_RING_OFF_VERSION", u(offset_of!(RingHeader, version))),
        ("RB_RING_OFF_CAPACITY", u(offset_of!(RingHeader, capacity))),
        ("RB_RING_OFF_MASK", u(offset_of!(RingHeader, mask))),
        (
            "RB_RING_OFF_SLOT_SIZE",
            u(offset_of!(RingHeader, slot_size)),
        ),
        ("RB_RING_OFF_FORMAT", u(offset_of!(RingHeader, format))),
        ("RB_FORMAT_SLOTS", FORMAT_SLOTS),
        ("RB_FORMAT_LANES", FORMAT_LANES),
        ("RB_LANE_SIZE", u(LANE_SIZE)),
        ("RB_LANE_OFF_DATA", u(offset_of!(Lane, data))),
        ("RB_LANE_OFF_TAG", u(offset_of!(Lane, tag))),
        ("RB_MAX_LANE_SLOT_SIZE", u(MAX_LANE_SLOT_SIZE)),
        ("RB_LANE_LEN_BITS", u64::from(LANE_LEN_BITS)),
        ("RB_LANE_KIND_SHIFT", u64::from(LANE_KIND_SHIFT)),
        ("RB_LANE_FLAGS_SHIFT", u64::from(LANE_FLAGS_SHIFT)),
        ("RB_LANE_SEQ_BITS", u64::from(LANE_SEQ_BITS)),
        ("RB_LANE_MIX_MUL1", LANE_MIX_MUL1),
        ("RB_LANE_MIX_MUL2", LANE_MIX_MUL2),
        ("RB_MSG_HEADER_SIZE", u(MESSAGE_HEADER_SIZE)),
        ("RB_MSG_OFF_SEQ", u(offset_of!(MessageHeader, seq))),
        (
            "RB_MSG_OFF_CORRELATION",
            u(offset_of!(MessageHeader, correlation)),
        ),
        ("RB_MSG_OFF_KIND", u(offset_of!(MessageHeader, kind))),
        ("RB_MSG_OFF_LEN", u(offset_of!(MessageHeader, len))),
        ("RB_MSG_OFF_FLAGS", u(offset_of!(MessageHeader, flags))),
        (
            "RB_MSG_OFF_RESERVED",
            u(offset_of!(MessageHeader, reserved)),
        ),
        ("RB_KIND_REQUEST", u64::from(KIND_REQUEST)),
        ("RB_KIND_REPLY", u64::from(KIND_REPLY)),
        ("RB_KIND_ERROR", u64::from(KIND_ERROR)),
        ("RB_KIND_EVENT", u64::from(KIND_EVENT)),
        ("RB_KIND_NO_REPLY", u64::from(KIND_NO_REPLY)),
        ("RB_MAX_PARAM_SIZE", u(MAX_PARAM_SIZE)),
        ("RB_MAX_BUFFERS", u(MAX_BUFFERS)),
        ("RB_BUFFER_SIZE", u(size_of::<BufferRef>())),
        ("RB_ARGS_SIZE", u(size_of::<LaunchArgs>())),
        ("RB_ARGS_OFF_PARAM", u(offset_of!(LaunchArgs, param))),
        ("RB_ARGS_OFF_BUFFERS", u(offset_of!(LaunchArgs, buffers))),
        (
            "RB_ARGS_OFF_PARAM_SIZE",
            u(offset_of!(LaunchArgs, param_size)),
        ),
        (
            "RB_ARGS_OFF_BUFFER_COUNT",
            u(offset_of!(LaunchArgs, buffer_count)),
        ),
        ("RB_TRAIT_COOPERATIVE", u64::from(TRAIT_COOPERATIVE)),
        ("RB_TRAIT_SENDS", u64::from(TRAIT_SENDS)),
        ("RB_TRAIT_CHUNKWISE", u64::from(TRAIT_CHUNKWISE)),
        ("RB_CONTROL_SIZE", u(CONTROL_BLOCK_SIZE)),
        (
            "RB_CTL_OFF_TERMINATE",
            u(offset_of!(ControlBlock, terminate)),
        ),
        ("RB_CTL_OFF_STATUS", u(offset_of!(ControlBlock, status))),
        (
            "RB_CTL_OFF_ERROR_CODE",
            u(offset_of!(ControlBlock, error_code)),
        ),
        (
            "RB_CTL_OFF_ERROR_DETAIL",
            u(offset_of!(ControlBlock, error_detail)),
        ),
        (
            "RB_CTL_OFF_HEARTBEAT",
            u(offset_of!(ControlBlock, heartbeat)),
        ),
        ("RB_CTL_OFF_CONSUMED", u(offset_of!(ControlBlock, consumed))),
        ("RB_CTL_OFF_PRODUCED", u(offset_of!(ControlBlock, produced))),
        ("RB_CTL_OFF_MAGIC", u(offset_of!(ControlBlock, magic))),
        ("RB_CTL_OFF_VERSION", u(offset_of!(ControlBlock, version))),
        ("RB_CTL_OFF_PARAM", u(offset_of!(ControlBlock, param))),
        (
            "RB_CTL_OFF_CHECK_INTERVAL",
            u(offset_of!(ControlBlock, check_interval)),
        ),
        ("RB_CTL_OFF_STRIPES", u(offset_of!(ControlBlock, stripes))),
        (
            "RB_CTL_OFF_STRIPE_STRIDE",
            u(offset_of!(ControlBlock, stripe_stride)),
        ),
        (
            "RB_CTL_OFF_HOST_PARKED",
            u(offset_of!(ControlBlock, host_parked)),
        ),
        (
            "RB_CTL_OFF_KERNEL_PARKED",
            u(offset_of!(ControlBlock, kernel_parked)),
        ),
        (
            "RB_CTL_OFF_WAIT_POLICY",
            u(offset_of!(ControlBlock, wait_policy)),
        ),
        (
            "RB_CTL_OFF_CALL_OFFSET",
            u(offset_of!(ControlBlock, call_offset)),
        ),
        (
            "RB_CTL_OFF_CALL_CAPACITY",
            u(offset_of!(ControlBlock, call_capacity)),
        ),
        (
            "RB_CTL_OFF_CALL_SLOT_SIZE",
            u(offset_of!(ControlBlock, call_slot_size)),
        ),
        ("RB_CALL_HEADER_SIZE", u(CALL_HEADER_SIZE)),
        ("RB_CALL_RING_HEADER_SIZE", u(CALL_RING_HEADER_SIZE)),
        ("RB_CALL_OFF_STATE", u(offset_of!(CallHeader, state))),
        ("RB_CALL_OFF_SERVICE", u(offset_of!(CallHeader, service))),
        ("RB_CALL_OFF_LEN", u(offset_of!(CallHeader, len))),
        ("RB_CALL_OFF_STATUS", u(offset_of!(CallHeader, status))),
        ("RB_CALL_OFF_THREAD", u(offset_of!(CallHeader, thread))),
        ("RB_CALL_OFF_BLOCK", u(offset_of!(CallHeader, block))),
        ("RB_CALL_PHASE_FREE", CALL_PHASE_FREE),
        ("RB_CALL_PHASE_CALL", CALL_PHASE_CALL),
        ("RB_CALL_PHASE_ANSWER", CALL_PHASE_ANSWER),
        ("RB_SERVICE_LOG", u64::from(SERVICE_LOG)),
        ("RB_CALL_OK", u64::from(CALL_OK)),
        ("RB_CALL_UNKNOWN_SERVICE", u64::from(CALL_UNKNOWN_SERVICE)),
        ("RB_CALL_FAILED", u64::from(CALL_FAILED)),
        ("RB_CALL_PANICKED", u64::from(CALL_PANICKED)),
        ("RB_CALL_TIMED_OUT", u64::from(CALL_TIMED_OUT)),
        ("RB_CALL_SHUTTING_DOWN", u64::from(CALL_SHUTTING_DOWN)),
        ("RB_CALL_TOO_LONG", u64::from(CALL_TOO_LONG)),
        ("RB_CALL_NO_RING", u64::from(CALL_NO_RING)),
        ("RB_CALL_ANSWER_SIZE", u64::from(CALL_ANSWER_SIZE)),
        ("RB_CALL_BAD_REQUEST", u64::from(CALL_BAD_REQUEST)),
        (
            "RB_CALL_FIRST_SERVICE_CODE",
            u64::from(CALL_FIRST_SERVICE_CODE),
        ),
        ("RB_WAIT_SPIN", WAIT_SPIN),
        ("RB_WAIT_BACKOFF", WAIT_BACKOFF),
        ("RB_WAIT_SPIN_THEN_PARK", WAIT_SPIN_THEN_PARK),
        ("RB_WAIT_LOW_POWER", WAIT_LOW_POWER),
        ("RB_STATUS_LAUNCHING", STATUS_LAUNCHING),
        ("RB_STATUS_RUNNING", STATUS_RUNNING),
        ("RB_STATUS_STOPPED", STATUS_STOPPED),
        ("RB_STATUS_FAILED", STATUS_FAILED),
        ("RB_ERR_HANDLER", ERR_HANDLER),
        ("RB_ERR_RING_CORRUPTED", ERR_RING_CORRUPTED),
        ("RB_ERR_HANDLER_PANICKED", ERR_HANDLER_PANICKED),
        ("RB_ERR_BAD_MAGIC", ERR_BAD_MAGIC),
        ("RB_ERR_PARAM_SIZE", ERR_PARAM_SIZE),
        ("RB_BAD_CONTROL", BAD_CONTROL),
        ("RB_BAD_CHECK_INTERVAL", BAD_CHECK_INTERVAL),
        ("RB_BAD_H2K", BAD_H2K),
        ("RB_BAD_K2H", BAD_K2H),
        ("RB_BAD_FORMAT", BAD_FORMAT),
        ("RB_BAD_STRIPES", BAD_STRIPES),
        ("RB_DETAIL_REPLY_TOO_LONG", DETAIL_REPLY_TOO_LONG),
        // The bits of an int32_t: the C side casts it back (ringbridge.cuh).
        (
            "RB_HANDLER_PANICKED_BITS",
            u64::from(HANDLER_PANICKED as u32),
        ),
        ("RB_NO_REPLY_BITS", u64::from(NO_REPLY as u32)),
        ("RB_SCALE_ERR_BAD_LEN", u64::from(SCALE_ERR_BAD_LEN)),
        ("RB_ERR_REPLY_TOO_LONG", u64::from(ERR_REPLY_TOO_LONG)),
        ("RB_FAULT_FLAG", u64::from(FAULT_FLAG)),
    ]
}
