//! Striped bridges on the host fallback: round-robin order across stripes,
//! tiny rings with a sender and a receiver on two threads (no deadlock),
//! stripes driven from their own threads, and bad arguments.

mod common;

use ringbridge::{Backend, Bridge, Error, StripedBridge};

/// Slots of 128 bytes: payloads up to 96 bytes (the tests send up to 39).
fn host() -> ringbridge::BridgeBuilder {
    Bridge::builder().backend(Backend::Host).slot_size(128)
}

fn payload(i: u64) -> Vec<u8> {
    let len = (i % 40) as usize;
    (0..len).map(|k| (k as u64 * 5 + i) as u8).collect()
}

fn echo(p: &[u8]) -> Vec<u8> {
    p.iter().map(|b| b.wrapping_add(1)).collect()
}

#[test]
fn round_robin_keeps_request_order_through_tiny_rings() {
    for stripes in [1, 2, 3, 5] {
        // Under a deadline: a sender and a receiver that waited on each
        // other for good would show as a failure, not a stuck run.
        common::within(120, &format!("{stripes} stripes"), move || {
            round_robin_through_tiny_rings(stripes)
        });
    }
}

fn round_robin_through_tiny_rings(stripes: usize) {
    let striped = StripedBridge::launch(host().capacity(2), stripes).unwrap();
    const N: u64 = 20_000;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while i < N {
                // Batches of odd sizes, so rounds start on every stripe.
                let n = (i % 37 + 1).min(N - i);
                let batch: Vec<Vec<u8>> = (i..i + n).map(payload).collect();
                assert_eq!(striped.send_batch(&batch).unwrap(), i);
                i += n;
            }
        });
        for i in 0..N {
            let r = striped.recv().unwrap();
            assert_eq!(
                r.payload,
                echo(&payload(i)),
                "{stripes} stripes, message {i}"
            );
        }
    });
    striped.shutdown().unwrap();
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
    let striped = StripedBridge::launch(host().capacity(8), 4).unwrap();
    std::thread::scope(|s| {
        for i in 0..striped.stripes() {
            let stripe = striped.stripe(i);
            s.spawn(move || {
                for k in 0..2_000u64 {
                    let p = payload(k + i as u64);
                    assert_eq!(stripe.round_trip(&p).unwrap().payload, echo(&p));
                }
            });
        }
    });
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
}
