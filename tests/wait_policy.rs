//! Wait policies (issue 16, section 2): every policy carries messages in
//! both formats, a parked bridge wakes for a late message and for a
//! shutdown, and a parked serve thread still beats for the watchdog. The
//! only time bounds are generous "does not hang" ones.

use std::time::{Duration, Instant};

use ringbridge::ring::SlotFormat;
use ringbridge::{Backend, Bridge, BridgeBuilder, WaitPolicy};

/// Well past both sides' spin phases: each is parked, or sleeping, by then.
const QUIET: Duration = Duration::from_millis(300);
/// "Does not hang."
const GENEROUS: Duration = Duration::from_secs(10);

fn host(policy: WaitPolicy) -> BridgeBuilder {
    Bridge::builder()
        .backend(Backend::Fallback)
        .capacity(16)
        .slot_size(128)
        .wait_policy(policy)
}

#[test]
fn every_policy_round_trips_in_both_formats() {
    for policy in WaitPolicy::ALL {
        for format in [SlotFormat::Slots, SlotFormat::Lanes] {
            let bridge = host(policy).format(format).launch().unwrap();
            for i in 0..200u32 {
                let payload = i.to_le_bytes();
                let reply = bridge.round_trip(&payload).unwrap();
                let want: Vec<u8> = payload.iter().map(|b| b.wrapping_add(1)).collect();
                assert_eq!(reply.payload, want, "{policy:?} {format:?} #{i}");
            }
            // More than the ring holds, pipelined: senders wait for room,
            // the receiver for replies, under the policy.
            std::thread::scope(|s| {
                s.spawn(|| {
                    for i in 0..500u32 {
                        bridge.send(&i.to_le_bytes()).unwrap();
                    }
                });
                for i in 0..500u32 {
                    let want: Vec<u8> = i.to_le_bytes().iter().map(|b| b.wrapping_add(1)).collect();
                    assert_eq!(
                        bridge.recv().unwrap().payload,
                        want,
                        "{policy:?} {format:?}"
                    );
                }
            });
            bridge.shutdown().unwrap();
        }
    }
}

#[test]
fn a_send_after_a_long_idle_wakes_the_serve_thread() {
    for policy in WaitPolicy::ALL {
        for format in [SlotFormat::Slots, SlotFormat::Lanes] {
            let bridge = host(policy).format(format).launch().unwrap();
            bridge.round_trip(b"a").unwrap();
            std::thread::sleep(QUIET);
            bridge.send(b"late").unwrap();
            let reply = bridge.recv_timeout(GENEROUS).unwrap();
            assert_eq!(reply.payload, b"mbuf", "{policy:?} {format:?}");
        }
    }
}

#[test]
fn a_receiver_parked_in_recv_wakes_for_a_late_reply() {
    for policy in [WaitPolicy::SpinThenPark, WaitPolicy::LowPower] {
        let bridge = host(policy).launch().unwrap();
        std::thread::scope(|s| {
            let receiver = s.spawn(|| bridge.recv_timeout(GENEROUS));
            std::thread::sleep(QUIET); // the receiver parks
            bridge.send(b"x").unwrap();
            let reply = receiver.join().unwrap().unwrap();
            assert_eq!(reply.payload, b"y", "{policy:?}");
        });
    }
}

#[test]
fn shutdown_of_an_idle_parked_bridge_is_prompt() {
    for policy in WaitPolicy::ALL {
        let bridge = host(policy).launch().unwrap();
        bridge.round_trip(b"a").unwrap();
        std::thread::sleep(QUIET);
        let t = Instant::now();
        bridge.shutdown().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{policy:?}: {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn a_parked_serve_thread_is_not_taken_for_hung() {
    // It wakes by itself to beat (every 10 ms), well within 200 ms.
    for policy in [WaitPolicy::SpinThenPark, WaitPolicy::LowPower] {
        let bridge = host(policy)
            .hang_timeout(Duration::from_millis(200))
            .launch()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        // A receiver that parks through several hang timeouts sees no hang.
        let err = bridge.recv_timeout(Duration::from_millis(600)).unwrap_err();
        assert!(
            matches!(err, ringbridge::Error::Timeout { .. }),
            "{policy:?}: {err:?}"
        );
        assert_eq!(bridge.round_trip(b"a").unwrap().payload, b"b", "{policy:?}");
    }
}
