//! Striped bridges on the host fallback, which runs the GPU's striped
//! addressing (one allocation, thread `b` playing block `b`): round-robin
//! order across stripes, tiny rings with a sender and a receiver on two
//! threads (no deadlock), stripes driven from their own threads, one stripe
//! stopping or failing alone, and bad arguments.

mod common;

use ringbridge::{Backend, Bridge, Error, StripedBridge};

/// Slots of 128 bytes: payloads up to 96 bytes (the tests send up to 39).
fn host() -> ringbridge::BridgeBuilder {
    Bridge::builder().backend(Backend::Fallback).slot_size(128)
}

#[test]
fn round_robin_keeps_request_order_through_tiny_rings() {
    for stripes in [1, 2, 3, 5] {
        // Under a deadline: a sender and a receiver that waited on each
        // other for good would show as a failure, not a stuck run.
        common::within(120, &format!("{stripes} stripes"), move || {
            common::striped_round_robin(host().capacity(2), stripes, 20_000)
        });
    }
}

#[test]
fn single_sends_and_batches_share_one_order() {
    let striped = StripedBridge::launch(host(), 3).unwrap();
    assert_eq!(striped.send(b"a").unwrap(), 0);
    assert_eq!(striped.send_batch(&[b"b", b"c", b"d"]).unwrap(), 1);
    assert_eq!(striped.send(b"e").unwrap(), 4);
    for want in [b"b", b"c", b"d", b"e", b"f"] {
        assert_eq!(striped.recv().unwrap().payload, want);
    }
    // Each stripe carried its share: 0, 3 | 1, 4 | 2.
    let per_stripe: Vec<u64> = (0..3).map(|i| striped.stripe(i).stats().sent).collect();
    assert_eq!(per_stripe, [2, 2, 1]);
}

#[test]
fn stripes_serve_their_own_threads() {
    common::striped_own_threads(host().capacity(8), 4, 2_000);
}

#[test]
fn one_stripe_stops_alone() {
    common::striped_one_stripe_stops_alone(host());
}

/// On the fallback each stripe has its own serving thread, so a handler
/// that panics fails its own stripe only (on CUDA a fault ends the one
/// kernel, so every stripe).
#[test]
fn a_failing_stripe_leaves_the_others_serving() {
    let handler = ringbridge::fallback::RustHandler::new(|_h, input, out| {
        assert_ne!(input, b"boom", "the handler gives up");
        out[..input.len()].copy_from_slice(input);
        Ok(input.len())
    });
    let striped =
        StripedBridge::launch(host().kernel(ringbridge::Kernel::RustHandler(handler)), 3).unwrap();
    let err = striped.stripe(1).round_trip(b"boom").unwrap_err();
    assert!(matches!(err, Error::HandlerPanicked(_)), "{err:?}");
    assert!(striped.stripe(1).send(b"ok").is_err());
    for i in [0, 2] {
        assert_eq!(striped.stripe(i).round_trip(b"ok").unwrap().payload, b"ok");
    }
}

#[test]
fn bad_stripe_counts_and_payloads_are_errors() {
    for n in [0, 65] {
        assert!(matches!(
            StripedBridge::launch(host(), n),
            Err(Error::InvalidArgument(_))
        ));
    }
    let striped = StripedBridge::launch(host(), 2).unwrap();
    assert!(matches!(
        striped.send_batch(&[vec![0u8; 8], vec![0u8; 97]]),
        Err(Error::PayloadTooLarge { len: 97, max: 96 })
    ));
    // Nothing of the refused batch went out.
    assert_eq!(
        striped.stripe(0).stats().sent + striped.stripe(1).stats().sent,
        0
    );
    // A launch failure in any stripe is returned (an unknown device on CUDA
    // would do; on the host a zero hang timeout is refused).
    assert!(matches!(
        StripedBridge::launch(host().hang_timeout(std::time::Duration::ZERO), 2),
        Err(Error::InvalidArgument(_))
    ));
    // The block emulation runs one block at a time: no groups.
    assert!(matches!(
        StripedBridge::launch(host().emulate_block(32), 2),
        Err(Error::InvalidArgument(_))
    ));
}

/// A stripe stopped while a striped batch waits for room: the batch fails
/// with that stripe's error, and exactly the requests below
/// `next_position()` went out (whole rounds, every stripe its share), so
/// receiving in order resumes where it left off and stops at the first
/// request the stopped stripe never answered.
#[test]
fn a_stripe_stopped_mid_batch_leaves_a_whole_prefix_sent() {
    use std::time::{Duration, Instant};
    common::within(60, "a stripe stopped mid-batch", || {
        let striped = StripedBridge::launch(host().capacity(8), 2).unwrap();
        let payloads: Vec<Vec<u8>> = (0..200u64).map(|i| i.to_le_bytes().to_vec()).collect();
        std::thread::scope(|s| {
            let sender = s.spawn(|| striped.send_batch(&payloads));
            // Nobody receives: both stripes fill (8 requests and 8 replies
            // each, and the one reply a sender waiting for room sets aside
            // while it reclaims room), and the batch waits for room: until
            // neither stripe moves any more.
            let deadline = Instant::now() + Duration::from_secs(20);
            let counts = || {
                [0, 1].map(|i| {
                    let st = striped.stripe(i).stats();
                    (st.sent, st.kernel.produced)
                })
            };
            loop {
                let before = counts();
                std::thread::sleep(Duration::from_millis(50));
                let full = before
                    .iter()
                    .all(|&(sent, produced)| sent >= 16 && produced >= 8);
                if full && counts() == before {
                    break;
                }
                assert!(Instant::now() < deadline, "the stripes never filled");
            }
            striped.stripe(1).shutdown().unwrap();
            // Stripe 1 answered k requests: its 8 published replies and
            // perhaps one set aside, all still handed out in order.
            let k = striped.stripe(1).stats().kernel.produced;
            assert!((8..=9).contains(&k), "stripe 1 answered {k}");
            // Receive in order: positions 0..=2k (stripe 1's k answers at
            // the odd ones), then stripe 1's next request was never answered.
            let mut got = 0u64;
            let stop = loop {
                match striped.recv() {
                    Ok(r) => {
                        assert_eq!(
                            r.payload,
                            common::echoed(&payloads[got as usize]),
                            "reply {got}"
                        );
                        got += 1;
                    }
                    Err(e) => break e,
                }
            };
            assert!(matches!(stop, Error::ShutDown), "{stop}");
            assert_eq!(
                got,
                2 * k + 1,
                "positions 0..={} answered, {} (stripe 1's next) never",
                2 * k,
                2 * k + 1
            );
            let err = sender.join().unwrap().unwrap_err();
            assert!(matches!(err, Error::ShutDown), "{err}");
        });
        // What went out is a prefix of the batch: each stripe holds exactly
        // its round-robin share of the positions below next_position().
        let sent = striped.next_position();
        let share = |k: u64| (0..sent).filter(|p| p % 2 == k).count() as u64;
        assert_eq!(
            striped.stripe(0).stats().sent,
            share(0),
            "next_position {sent}"
        );
        assert_eq!(
            striped.stripe(1).stats().sent,
            share(1),
            "next_position {sent}"
        );
        assert!(
            sent >= 32,
            "at least the 32 that filled both stripes went out: {sent}"
        );
    });
}
