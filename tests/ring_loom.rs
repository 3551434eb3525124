//! loom model tests: the host halves of the ring protocol against the Rust
//! model of the device half (`ring::model`), over every interleaving loom
//! explores. Run with `RUSTFLAGS="--cfg loom" cargo test --release --test ring_loom`.
#![cfg(loom)]

use loom::thread;
use ringbridge::error::RingId;
use ringbridge::ring::{HostMemory, RegionLayout, RingSpec, model};

/// Host sends `n` requests through rings of `cap` slots while the model
/// echoes them; the host checks every reply, in order.
fn echo_through(cap: usize, n: u64, batch: u64) {
    loom::model(move || {
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
    loom::model(|| {
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
