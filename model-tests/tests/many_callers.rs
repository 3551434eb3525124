//! Many callers on one bridge (issue 28), with the handler models that
//! answer with nothing and send events: on the host fallback and in the
//! block emulation.

use std::time::Duration;

use ringbridge::{Backend, Bridge, BridgeBuilder, Kernel, UserKernel};
use ringbridge_model_tests as models;

fn both(kernel: UserKernel) -> [(&'static str, BridgeBuilder); 2] {
    let base = || {
        Bridge::builder()
            .backend(Backend::Fallback)
            .kernel(Kernel::User(kernel.clone()))
            .capacity(256)
            .slot_size(128)
    };
    [("fallback", base()), ("emulated", base().emulate_block(64))]
}

/// Eight threads of round trips, a third of them answered with nothing:
/// every caller gets its own answer, no-reply answers as answers.
#[test]
fn mixed_no_reply_and_replying_round_trips_from_many_threads() {
    for (mode, builder) in both(models::models_quiet()) {
        let bridge = builder.launch().unwrap();
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let bridge = &bridge;
                s.spawn(move || {
                    for i in 0..300u32 {
                        let quiet = i % 3 == 0;
                        let payload = [u8::from(!quiet), t, i as u8, (i >> 8) as u8];
                        let answer = bridge.round_trip(&payload).unwrap();
                        if quiet {
                            assert!(answer.is_no_reply(), "{mode}: {answer:?}");
                        } else {
                            assert_eq!(answer.payload, payload, "{mode}: thread {t} request {i}");
                        }
                    }
                });
            }
        });
        let stats = bridge.stats();
        assert_eq!(
            (stats.sent, stats.no_reply, stats.in_flight),
            (2400, 800, 0),
            "{mode}"
        );
        bridge.shutdown().unwrap();
    }
}

/// Issue 23, item 5: a fire-and-forget stream of requests answered with
/// nothing makes progress with no receive call at all, and beside it round
/// trips from another thread each get their own reply.
#[test]
fn one_way_requests_need_no_receiver() {
    let n = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let bridge = both(models::models_quiet())[0].1.clone().launch().unwrap();
    for i in 0..n {
        bridge
            .send_timeout(&[0, i as u8], Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..n / 10 {
                bridge
                    .send_timeout(&[0, i as u8], Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("send {i} beside round trips: {e}"));
            }
        });
        for i in 0..2_000u32 {
            let payload = [1, i as u8, (i >> 8) as u8];
            assert_eq!(bridge.round_trip(&payload).unwrap().payload, payload);
        }
    });
    bridge.shutdown().unwrap();
}

/// The same for the batch paths: `send_batch`, and `reserve` with
/// in-place writes, reclaim the slots of no-reply marks while they wait for
/// room (found by the race-check workload: both waited forever once K2H
/// held nothing but marks). On both backends, far past both rings' room.
#[test]
fn one_way_batches_need_no_receiver() {
    for (mode, builder) in both(models::models_quiet()) {
        let bridge = builder.capacity(64).launch().unwrap();
        let batch: Vec<[u8; 2]> = (0..32u8).map(|i| [0, i]).collect();
        common_deadline(60, mode, || {
            for _ in 0..200 {
                bridge.send_batch(&batch).unwrap();
                let mut chunk = bridge.reserve(32).unwrap();
                for i in 0..32u8 {
                    chunk
                        .write_with(|buf| {
                            buf[..2].copy_from_slice(&[0, i]);
                            2
                        })
                        .unwrap();
                }
                chunk.publish().unwrap();
            }
        });
        let payload = [1, 2, 3];
        assert_eq!(
            bridge.round_trip(&payload).unwrap().payload,
            payload,
            "{mode}"
        );
        assert_eq!(bridge.stats().sent, 200 * 64 + 1, "{mode}");
        bridge.shutdown().unwrap();
    }
}

/// Runs `f`, failing (instead of hanging the test run) if it takes more
/// than `secs` seconds.
fn common_deadline(secs: u64, what: &str, f: impl FnOnce() + Send) {
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            f();
            let _ = done.send(());
        });
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            wait.recv_timeout(Duration::from_secs(secs))
        {
            eprintln!("{what}: still waiting after {secs} s: a hang");
            std::process::exit(1);
        }
    });
}

/// Events reach a subscriber while round trips run, and only the
/// subscriber: every event once, every reply to its caller.
#[test]
fn events_reach_a_subscriber_while_round_trips_run() {
    for (mode, builder) in both(models::models_sender()) {
        let bridge = builder.launch().unwrap();
        let events = bridge.events();
        let n = 400u32;
        let seen = std::thread::scope(|s| {
            for t in 0..4u32 {
                let bridge = &bridge;
                s.spawn(move || {
                    for i in 0..n / 4 {
                        let len = ((t + i) % 20) as u8;
                        let payload: Vec<u8> = (0..len).collect();
                        let reply = bridge.round_trip_with_flags(1, &payload).unwrap();
                        assert_eq!(reply.payload, u32::from(len).to_le_bytes(), "{mode}");
                    }
                });
            }
            let mut seen = Vec::new();
            while seen.len() < n as usize {
                let e = events.recv_timeout(Duration::from_secs(30)).unwrap();
                assert!(e.is_event(), "{mode}");
                seen.push(e.event_seq().unwrap());
            }
            seen
        });
        assert_eq!(
            seen,
            (0..u64::from(n)).collect::<Vec<_>>(),
            "{mode}: in order, once"
        );
        assert!(
            matches!(bridge.try_recv(), Err(ringbridge::Error::Empty)),
            "{mode}"
        );
        bridge.shutdown().unwrap();
    }
}

/// Issue 23, item 4: messages the idle hook has to send drain at the rate
/// the rings allow under every wait policy: a kernel with sends pending is
/// not idle (under `LowPower` 996 of them used to take about a second). A
/// generous bound: 1,000 events well under a second (a few milliseconds
/// here under `Spin`).
#[test]
fn the_idle_hooks_messages_drain_under_every_policy() {
    for policy in ringbridge::WaitPolicy::ALL {
        for (mode, builder) in both(models::models_sender().with_param(1000u64)) {
            let bridge = builder.capacity(64).wait_policy(policy).launch().unwrap();
            let events = bridge.events();
            let start = std::time::Instant::now();
            for i in 0..1000u64 {
                let e = events.recv_timeout(Duration::from_secs(10)).unwrap();
                assert_eq!(e.event_seq(), Some(i), "{mode} {policy:?}");
            }
            let took = start.elapsed();
            assert!(
                took < Duration::from_millis(400),
                "{mode} {policy:?}: 1,000 idle-hook messages took {took:?}"
            );
            bridge.shutdown().unwrap();
        }
    }
}
