//! The ring halves and the Rust model of the device half on two threads,
//! small enough for Miri (`cargo +nightly miri test --test ring_miri`), and
//! a release-mode run with many wrap-arounds.

use ringbridge::error::RingId;
use ringbridge::fallback::HostMemory;
use ringbridge::layout::{KIND_REQUEST, MessageHeader};
use ringbridge::ring::{RegionLayout, RingSpec, model};

/// Sends requests 0..n of every length up to `max` through `push` (false:
/// the ring is full, try again) while taking replies from `pop` (None:
/// nothing yet), and checks each reply: in order, flags echoed, payload + 1.
fn exchange(
    n: u64,
    max: usize,
    mut push: impl FnMut(&[u8]) -> bool,
    mut pop: impl FnMut() -> Option<(MessageHeader, Vec<u8>)>,
) {
    let payload = |i: u64| -> Vec<u8> {
        (0..(i as usize % (max + 1)))
            .map(|k| (k as u64 ^ i) as u8)
            .collect()
    };
    let (mut sent, mut got) = (0u64, 0u64);
    while got < n {
        if sent < n && push(&payload(sent)) {
            sent += 1;
        }
        if let Some((h, p)) = pop() {
            assert_eq!((h.seq, h.correlation), (got, got));
            assert_eq!(h.flags, 5);
            let want: Vec<u8> = payload(got).iter().map(|b| b.wrapping_add(1)).collect();
            assert_eq!(p, want);
            got += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// How the host writes its requests: a copy of a finished payload, or in
/// place through the slot's own payload area (`write_with`).
#[derive(Clone, Copy)]
enum Write {
    Copy,
    InPlace,
}

fn run(cap: usize, slot: usize, n: u64) {
    run_with(cap, slot, n, Write::Copy)
}

fn run_with(cap: usize, slot: usize, n: u64, how: Write) {
    let layout = RegionLayout::new(RingSpec::new(cap, slot).unwrap()).unwrap();
    let mem = HostMemory::new(layout.total_bytes).unwrap();
    layout.init(&*mem);
    let control = layout.control(&mem);
    let (mut h2k_tx, mut h2k_rx) = layout.ring_pair(&mem, RingId::H2k);
    let (mut k2h_tx, mut k2h_rx) = layout.ring_pair(&mem, RingId::K2h);
    let device_control = control.clone();
    let device = std::thread::spawn(move || {
        model::serve_echo(&mut h2k_rx, &mut k2h_tx, &device_control, 3, 16).unwrap()
    });
    let max = h2k_tx.max_payload();
    exchange(
        n,
        max,
        |p| match how {
            Write::Copy => h2k_tx.try_push(KIND_REQUEST, 5, 0, p).unwrap().is_some(),
            Write::InPlace => {
                let wrote = h2k_tx
                    .write_with(KIND_REQUEST, 5, 0, |area| {
                        area[..p.len()].copy_from_slice(p);
                        p.len()
                    })
                    .unwrap()
                    .is_some();
                h2k_tx.publish();
                wrote
            }
        },
        || k2h_rx.try_pop_with(|h, p| (*h, p.to_vec())).unwrap(),
    );
    control.request_terminate();
    assert_eq!(device.join().unwrap(), n);
}

#[test]
fn host_halves_against_the_model_small() {
    run(2, 64, if cfg!(miri) { 40 } else { 10_000 });
}

/// The in-place write hands out the slot's payload area as `&mut [u8]`
/// over memory the other side reads as atomics: Miri checks that the two
/// never overlap in time.
#[test]
fn in_place_writes_against_the_model() {
    run_with(2, 64, if cfg!(miri) { 40 } else { 10_000 }, Write::InPlace);
    run_with(4, 256, if cfg!(miri) { 20 } else { 10_000 }, Write::InPlace);
}

#[test]
fn host_halves_against_the_model_large_slots() {
    run(4, 256, if cfg!(miri) { 20 } else { 10_000 });
}

/// The lane format: the host's lane halves against the model's lane serve
/// loop, every payload length, many laps.
fn run_lanes(cap: usize, slot: usize, n: u64) {
    let layout = RegionLayout::new(RingSpec::lanes(cap, slot).unwrap()).unwrap();
    let mem = HostMemory::new(layout.total_bytes).unwrap();
    layout.init(&*mem);
    let control = layout.control(&mem);
    let (mut h2k_tx, mut h2k_rx) = layout.lane_pair(&mem, RingId::H2k);
    let (mut k2h_tx, mut k2h_rx) = layout.lane_pair(&mem, RingId::K2h);
    let device_control = control.clone();
    let device = std::thread::spawn(move || {
        model::serve_lane_echo(&mut h2k_rx, &mut k2h_tx, &device_control, 3, 16).unwrap()
    });
    let max = h2k_tx.max_payload();
    exchange(
        n,
        max,
        |p| h2k_tx.try_push(KIND_REQUEST, 5, p).unwrap().is_some(),
        || k2h_rx.try_pop_with(|h, p| (*h, p.to_vec())).unwrap(),
    );
    control.request_terminate();
    assert_eq!(device.join().unwrap(), n);
}

#[test]
fn lane_halves_against_the_model_small() {
    run_lanes(2, 64, if cfg!(miri) { 40 } else { 10_000 });
}

#[test]
fn lane_halves_against_the_model_large_slots() {
    run_lanes(4, 512, if cfg!(miri) { 20 } else { 10_000 });
}
