//! A Rust model of the device half's serve loop: the same steps as
//! `rb_serve` in `kernels/ringbridge.cuh`, over the same ring halves. The
//! loom and Miri tests run the host halves against it (neither tool can run
//! the C++ half).

use super::{Control, LaneConsumer, LaneProducer, RingConsumer, RingProducer};
use crate::error::Result;
use crate::layout::KIND_REPLY;

/// Moves up to `batch` requests from `h2k` to `k2h` as echo replies (each
/// payload byte plus one, `correlation` = request `seq`), publishing the
/// replies with one `head` store and freeing the requests with one `tail`
/// store, as the kernel does. Waits for nothing: returns how many moved.
///
/// ```
/// use ringbridge::error::RingId;
/// use ringbridge::layout::KIND_REQUEST;
/// use ringbridge::ring::{RegionLayout, RingSpec, model};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let (mut h2k_tx, mut h2k_rx) = layout.ring_pair(&mem, RingId::H2k);
/// let (mut k2h_tx, mut k2h_rx) = layout.ring_pair(&mem, RingId::K2h);
/// for p in [b"a", b"b", b"c"] {
///     h2k_tx.try_push(KIND_REQUEST, 1, 0, p)?;
/// }
/// assert_eq!(model::echo_step(&mut h2k_rx, &mut k2h_tx, 2)?, 2); // at most `batch`
/// assert_eq!(model::echo_step(&mut h2k_rx, &mut k2h_tx, 2)?, 1);
/// assert_eq!(model::echo_step(&mut h2k_rx, &mut k2h_tx, 2)?, 0); // nothing left
/// let mut replies = Vec::new();
/// while let Some(r) = k2h_rx.try_pop_with(|h, p| (h.correlation, h.flags, p.to_vec()))? {
///     replies.push(r);
/// }
/// assert_eq!(replies, [(0, 1, b"b".to_vec()), (1, 1, b"c".to_vec()), (2, 1, b"d".to_vec())]);
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn echo_step(h2k: &mut RingConsumer, k2h: &mut RingProducer, batch: u64) -> Result<u64> {
    let n = h2k.available()?.min(batch);
    if n == 0 {
        return Ok(0);
    }
    // When K2H is full the kernel waits; never drop a request.
    let n = n.min(k2h.free(n)?);
    let mut reply = Vec::new();
    for _ in 0..n {
        let (flags, seq) = h2k
            .read_with(|h, p| {
                reply.clear();
                reply.extend(p.iter().map(|b| b.wrapping_add(1)));
                (h.flags, h.seq)
            })?
            .expect("available() counted it");
        let written = k2h.write(KIND_REPLY, flags, seq, &reply)?;
        debug_assert!(written.is_some(), "free() counted the slot");
    }
    k2h.publish();
    h2k.release();
    Ok(n)
}

/// Serves until `control` asks to terminate, checking the request every
/// `check_interval` idle polls (as the kernel does). Returns the number of
/// messages served.
///
/// ```
/// use ringbridge::error::RingId;
/// use ringbridge::layout::KIND_REQUEST;
/// use ringbridge::ring::{RegionLayout, RingSpec, model};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let (mut h2k_tx, mut h2k_rx) = layout.ring_pair(&mem, RingId::H2k);
/// let (mut k2h_tx, mut k2h_rx) = layout.ring_pair(&mem, RingId::K2h);
/// let control = layout.control(&mem);
/// h2k_tx.try_push(KIND_REQUEST, 0, 0, b"x")?;
/// h2k_tx.try_push(KIND_REQUEST, 0, 0, b"y")?;
/// control.request_terminate(); // seen at the first idle poll, after both
/// assert_eq!(model::serve_echo(&mut h2k_rx, &mut k2h_tx, &control, 8, 1)?, 2);
/// assert_eq!(k2h_rx.try_pop_with(|_, p| p.to_vec())?, Some(b"y".to_vec()));
/// assert_eq!(k2h_rx.try_pop_with(|_, p| p.to_vec())?, Some(b"z".to_vec()));
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn serve_echo(
    h2k: &mut RingConsumer,
    k2h: &mut RingProducer,
    control: &Control,
    batch: u64,
    check_interval: u64,
) -> Result<u64> {
    serve_with(control, check_interval, || echo_step(h2k, k2h, batch))
}

/// The idle policy both serve loops share: runs `step` until `control` asks
/// to terminate, looking at the request every `check_interval` polls that
/// moved nothing. Returns the number of messages served.
fn serve_with(
    control: &Control,
    check_interval: u64,
    mut step: impl FnMut() -> Result<u64>,
) -> Result<u64> {
    let mut served = 0;
    let mut idle = 0u64;
    loop {
        let n = step()?;
        served += n;
        if n == 0 {
            idle += 1;
            if idle.is_multiple_of(check_interval.max(1)) && control.terminate_requested() {
                return Ok(served);
            }
            crate::sync::spin_hint();
        } else {
            idle = 0;
        }
    }
}

/// The lane-format serve step (`rb_serve_lanes` in `kernels/ringbridge.cuh`):
/// takes up to `batch` consecutive requests whose lanes are all current,
/// limited by the free K2H slots (never dropping one), writes each echo reply
/// lane by lane (each lane's tag published by its own store), then frees the
/// requests with one `tail` store. Waits for nothing: returns how many moved.
///
/// ```
/// use ringbridge::error::RingId;
/// use ringbridge::layout::KIND_REQUEST;
/// use ringbridge::ring::{RegionLayout, RingSpec, model};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::lanes(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let (mut h2k_tx, mut h2k_rx) = layout.lane_pair(&mem, RingId::H2k);
/// let (mut k2h_tx, mut k2h_rx) = layout.lane_pair(&mem, RingId::K2h);
/// h2k_tx.try_push(KIND_REQUEST, 7, &[0, 255])?;
/// assert_eq!(model::lane_echo_step(&mut h2k_rx, &mut k2h_tx, 8)?, 1);
/// assert_eq!(model::lane_echo_step(&mut h2k_rx, &mut k2h_tx, 8)?, 0);
/// let reply = k2h_rx.try_pop_with(|h, p| (h.flags, p.to_vec()))?;
/// assert_eq!(reply, Some((7, vec![1, 0]))); // every byte + 1, wrapping
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn lane_echo_step(h2k: &mut LaneConsumer, k2h: &mut LaneProducer, batch: u64) -> Result<u64> {
    let mut n = 0;
    let mut reply = Vec::new();
    while n < batch && k2h.free(1)? > 0 {
        let Some(flags) = h2k.read_with(|h, p| {
            reply.clear();
            reply.extend(p.iter().map(|b| b.wrapping_add(1)));
            h.flags
        })?
        else {
            break;
        };
        let written = k2h.write(KIND_REPLY, flags, &reply)?;
        debug_assert!(written.is_some(), "free() counted the slot");
        n += 1;
    }
    k2h.publish();
    h2k.release();
    Ok(n)
}

/// [`serve_echo`] for lane-format rings.
///
/// ```
/// use ringbridge::error::RingId;
/// use ringbridge::layout::KIND_REQUEST;
/// use ringbridge::ring::{RegionLayout, RingSpec, model};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::lanes(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let (mut h2k_tx, mut h2k_rx) = layout.lane_pair(&mem, RingId::H2k);
/// let (mut k2h_tx, mut k2h_rx) = layout.lane_pair(&mem, RingId::K2h);
/// let control = layout.control(&mem);
/// for p in [b"a", b"b", b"c"] {
///     h2k_tx.try_push(KIND_REQUEST, 0, p)?;
/// }
/// control.request_terminate();
/// assert_eq!(model::serve_lane_echo(&mut h2k_rx, &mut k2h_tx, &control, 2, 1)?, 3);
/// assert_eq!(k2h_rx.try_pop_with(|_, p| p.to_vec())?, Some(b"b".to_vec()));
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn serve_lane_echo(
    h2k: &mut LaneConsumer,
    k2h: &mut LaneProducer,
    control: &Control,
    batch: u64,
    check_interval: u64,
) -> Result<u64> {
    serve_with(control, check_interval, || lane_echo_step(h2k, k2h, batch))
}
