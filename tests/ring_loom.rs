//! loom model tests: the host halves of the ring protocol against the Rust
//! model of the device half (`ring::model`), over every interleaving loom
//! explores. Run with `RUSTFLAGS="--cfg loom" cargo test --release --test ring_loom`.
#![cfg(loom)]

use loom::thread;

/// Runs `f` under loom with a preemption bound (default 3, or
/// `LOOM_MAX_PREEMPTIONS`): every producer and consumer here spins with
/// `yield_now`, and unbounded preemptions make even 3-message models run for
/// hours. Bugs in protocols like these need few preemptions to show (the
/// loom documentation suggests 2-3).
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}
use ringbridge::error::RingId;
use ringbridge::fallback::HostMemory;
use ringbridge::ring::{RegionLayout, RingSpec, model};

/// Host sends `n` requests through rings of `cap` slots while the model
/// echoes them; the host checks every reply, in order.
fn echo_through(cap: usize, n: u64, batch: u64) {
    model(move || {
        let layout = RegionLayout::new(RingSpec::new(cap, 64).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        let (mut h2k_tx, mut h2k_rx) = layout.ring_pair(&mem, RingId::H2k);
        let (mut k2h_tx, mut k2h_rx) = layout.ring_pair(&mem, RingId::K2h);
        let device = thread::spawn(move || {
            let mut moved = 0;
            while moved < n {
                let step = model::echo_step(&mut h2k_rx, &mut k2h_tx, batch).unwrap();
                if step == 0 {
                    thread::yield_now();
                }
                moved += step;
            }
        });
        let mut sent = 0u64;
        let mut got = 0u64;
        while got < n {
            if sent < n {
                let p = [sent as u8];
                if h2k_tx
                    .try_push(ringbridge::layout::KIND_REQUEST, 0, 0, &p)
                    .unwrap()
                    .is_some()
                {
                    sent += 1;
                }
            }
            match k2h_rx
                .try_pop_with(|h, p| (h.correlation, p.to_vec()))
                .unwrap()
            {
                Some((corr, payload)) => {
                    assert_eq!(corr, got, "reply out of order");
                    assert_eq!(payload, vec![got as u8 + 1]);
                    got += 1;
                }
                None => thread::yield_now(),
            }
        }
        device.join().unwrap();
    });
}

#[test]
fn one_message_round_trip() {
    echo_through(1, 1, 1);
}

#[test]
fn wrap_around_full_and_empty_capacity_one() {
    echo_through(1, 3, 1);
}

#[test]
fn batches_wrap_capacity_two() {
    echo_through(2, 3, 2);
}

#[test]
fn terminate_is_seen_and_the_loop_ends() {
    model(|| {
        let layout = RegionLayout::new(RingSpec::new(1, 64).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        let control = layout.control(&mem);
        let (mut h2k_tx, mut h2k_rx) = layout.ring_pair(&mem, RingId::H2k);
        let (mut k2h_tx, mut k2h_rx) = layout.ring_pair(&mem, RingId::K2h);
        let device_control = control.clone();
        let device = thread::spawn(move || {
            model::serve_echo(&mut h2k_rx, &mut k2h_tx, &device_control, 1, 1).unwrap()
        });
        h2k_tx
            .try_push(ringbridge::layout::KIND_REQUEST, 0, 0, b"x")
            .unwrap()
            .unwrap();
        // Wait for the reply, then stop the loop.
        loop {
            if k2h_rx.try_pop_with(|h, _| h.correlation).unwrap() == Some(0) {
                break;
            }
            thread::yield_now();
        }
        control.request_terminate();
        assert_eq!(device.join().unwrap(), 1);
    });
}

/// The lane format: the host's lane halves against the model's lane echo
/// step. Every reply the host takes must be whole and current: a torn
/// message (some lanes current) or a previous lap's lanes would show as a
/// wrong payload here. `len` bytes per message (`len > 8`: several lanes).
fn lane_echo_through(cap: usize, n: u64, batch: u64, len: usize) {
    model(move || {
        let layout = RegionLayout::new(RingSpec::lanes(cap, 64).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        let (mut h2k_tx, mut h2k_rx) = layout.lane_pair(&mem, RingId::H2k);
        let (mut k2h_tx, mut k2h_rx) = layout.lane_pair(&mem, RingId::K2h);
        let device = thread::spawn(move || {
            let mut moved = 0;
            while moved < n {
                let step = model::lane_echo_step(&mut h2k_rx, &mut k2h_tx, batch).unwrap();
                if step == 0 {
                    thread::yield_now();
                }
                moved += step;
            }
        });
        let msg = |i: u64| -> Vec<u8> { (0..len).map(|k| (i as u8) ^ (k as u8 * 16)).collect() };
        let mut sent = 0u64;
        let mut got = 0u64;
        while got < n {
            if sent < n
                && h2k_tx
                    .try_push(ringbridge::layout::KIND_REQUEST, sent as u32, &msg(sent))
                    .unwrap()
                    .is_some()
            {
                sent += 1;
            }
            match k2h_rx
                .try_pop_with(|h, p| (h.correlation, h.flags, p.to_vec()))
                .unwrap()
            {
                Some((corr, flags, payload)) => {
                    assert_eq!((corr, flags), (got, got as u32), "reply out of order");
                    let want: Vec<u8> = msg(got).iter().map(|b| b.wrapping_add(1)).collect();
                    assert_eq!(payload, want, "torn or stale reply {got}");
                    got += 1;
                }
                None => thread::yield_now(),
            }
        }
        device.join().unwrap();
    });
}

#[test]
fn lanes_one_message_of_two_lanes() {
    lane_echo_through(1, 1, 1, 9);
}

#[test]
fn lanes_wrap_around_capacity_one() {
    lane_echo_through(1, 2, 1, 9);
}

#[test]
fn lanes_wrap_around_capacity_two_batched() {
    lane_echo_through(2, 3, 2, 1);
}

/// A lap that reuses a slot with a shorter, then a longer message: the
/// longer one's upper lanes carry an older lap's tag until written.
#[test]
fn lanes_shorter_then_longer_message_in_one_slot() {
    model(|| {
        let layout = RegionLayout::new(RingSpec::lanes(1, 64).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        let (mut tx, mut rx) = layout.lane_pair(&mem, RingId::H2k);
        let reader = thread::spawn(move || {
            let want: [&[u8]; 3] = [&[1; 17], &[], &[3; 17]];
            let mut got = 0;
            while got < 3 {
                match rx.try_pop_with(|_, p| p.to_vec()).unwrap() {
                    Some(p) => {
                        assert_eq!(p, want[got], "message {got}");
                        got += 1;
                    }
                    None => thread::yield_now(),
                }
            }
        });
        for p in [&[1u8; 17][..], &[], &[3; 17]] {
            while tx
                .try_push(ringbridge::layout::KIND_REQUEST, 0, p)
                .unwrap()
                .is_none()
            {
                thread::yield_now();
            }
        }
        reader.join().unwrap();
    });
}

#[test]
fn lanes_three_messages_capacity_one() {
    lane_echo_through(1, 3, 1, 9);
}
