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
            if idle % check_interval.max(1) == 0 && control.terminate_requested() {
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
pub fn serve_lane_echo(
    h2k: &mut LaneConsumer,
    k2h: &mut LaneProducer,
    control: &Control,
    batch: u64,
    check_interval: u64,
) -> Result<u64> {
    serve_with(control, check_interval, || lane_echo_step(h2k, k2h, batch))
}
