//! One bridge, several host threads: counters readable while a call waits,
//! concurrent round trips, and what shutdown leaves to receive.

mod common;

use ringbridge::{Backend, Bridge, Error};
use std::sync::Barrier;
use std::time::{Duration, Instant};

fn host() -> ringbridge::BridgeBuilder {
    Bridge::builder().backend(Backend::Fallback)
}

#[test]
fn stats_and_debug_do_not_wait_for_a_blocked_recv() {
    common::within(30, "stats beside a waiting recv", || {
        let bridge = host().launch().unwrap();
        let started = Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                started.wait();
                let r = bridge.recv_timeout(Duration::from_secs(5));
                assert!(matches!(r, Err(Error::Timeout { op: "recv", .. })), "{r:?}");
            });
            s.spawn(|| {
                started.wait();
                // The receiver is inside recv_timeout (holding its direction)
                // for most of 5 s: give it a moment to get there.
                std::thread::sleep(Duration::from_millis(200));
                let t0 = Instant::now();
                let stats = bridge.stats();
                let text = format!("{bridge:?}");
                let took = t0.elapsed();
                assert!(
                    took < Duration::from_millis(100),
                    "stats and Debug took {took:?}"
                );
                assert_eq!((stats.sent, stats.received, stats.in_flight), (0, 0, 0));
                assert!(text.contains("sent: 0"), "{text}");
            });
        });
    });
}

#[test]
fn striped_debug_does_not_wait_for_a_blocked_recv() {
    common::within(30, "striped Debug beside a waiting recv", || {
        let striped = ringbridge::StripedBridge::launch(host(), 2).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = striped.stripe(1).recv_timeout(Duration::from_secs(5));
                assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
            });
            std::thread::sleep(Duration::from_millis(200));
            let t0 = Instant::now();
            let text = format!("{striped:?}");
            assert!(
                t0.elapsed() < Duration::from_millis(100),
                "Debug took {:?}",
                t0.elapsed()
            );
            assert!(text.contains("StripedBridge"), "{text}");
        });
    });
}

#[test]
fn concurrent_round_trips_each_get_their_own_reply() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 10_000;
    common::within(120, "4 threads of round trips", || {
        let bridge = host().launch().unwrap();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let bridge = &bridge;
                s.spawn(move || {
                    for i in 0..ROUNDS {
                        let request = (t << 32 | i).to_le_bytes();
                        let reply = bridge.round_trip(&request).unwrap();
                        assert_eq!(
                            reply.payload,
                            common::echoed(&request),
                            "thread {t} round {i}"
                        );
                    }
                });
            }
        });
        let stats = bridge.stats();
        assert_eq!(stats.sent, THREADS * ROUNDS);
        assert_eq!((stats.received, stats.in_flight), (THREADS * ROUNDS, 0));
        // Still alive.
        assert_eq!(bridge.round_trip(&[1]).unwrap().payload, [2]);
    });
}

#[test]
fn round_trips_beside_a_sender_each_get_their_own_reply() {
    common::within(60, "round trips beside sends", || {
        let bridge = host().launch().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                // 2,000 fit the two rings: nobody receives until the end.
                for i in 0..2_000u32 {
                    bridge.send(&i.to_le_bytes()).unwrap();
                    std::thread::yield_now();
                }
            });
            for _ in 0..2_000 {
                match bridge.round_trip(b"rt") {
                    Ok(r) => assert_eq!(r.payload, b"su"),
                    Err(e) => panic!("a round trip beside sends failed with {e}"),
                }
            }
        });
        // Nothing died and nothing was lost: the plain sends' replies are
        // all still there, in order.
        let stats = bridge.stats();
        let mut plain = 0u32;
        while bridge.stats().in_flight > 0 {
            let r = bridge.recv().unwrap();
            assert_eq!(r.payload, common::echoed(&plain.to_le_bytes()));
            plain += 1;
        }
        assert_eq!(plain, 2_000, "stats before draining: {stats:?}");
        assert_eq!(bridge.round_trip(&[7]).unwrap().payload, [8]);
    });
}

#[test]
fn replies_published_before_shutdown_stay_receivable_then_shut_down() {
    let bridge = host().launch().unwrap();
    for i in 0..10u8 {
        bridge.send(&[i]).unwrap();
    }
    // Wait until the kernel has published all ten replies.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.stats().kernel.produced < 10 {
        assert!(Instant::now() < deadline, "the kernel never answered");
        std::thread::sleep(Duration::from_millis(1));
    }
    bridge.shutdown().unwrap();
    assert!(matches!(bridge.send(&[0]), Err(Error::ShutDown)));
    for i in 0..10u8 {
        assert_eq!(bridge.try_recv().unwrap().payload, [i + 1]);
    }
    assert!(matches!(bridge.try_recv(), Err(Error::ShutDown)));
    assert!(matches!(bridge.recv(), Err(Error::ShutDown)));
    let stats = bridge.stats();
    assert_eq!((stats.sent, stats.received, stats.in_flight), (10, 10, 0));
}
