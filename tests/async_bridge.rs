//! The async calls (`AsyncBridge`) on the host fallback, on tokio and on
//! `futures`' executor: concurrent round trips, cancellation, ordered
//! streams, errors. Every test runs under a "does not hang" deadline; none
//! asserts on timing.

mod common;

use ringbridge::{AsyncBridge, Backend, Bridge, Error, Kernel};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

fn host() -> ringbridge::BridgeBuilder {
    // Generous: the test threads, the runtimes and the serving threads
    // share a few CPUs.
    Bridge::builder()
        .backend(Backend::Fallback)
        .hang_timeout(Duration::from_secs(10))
}

fn launch(builder: ringbridge::BridgeBuilder) -> AsyncBridge {
    AsyncBridge::new(builder.launch().unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap()
}

/// Request `k`: 1 to 32 bytes that differ with `k`.
fn request(k: u64) -> Vec<u8> {
    let len = 1 + (k as usize * 5) % 32;
    (0..len)
        .map(|i| (k as usize).wrapping_mul(13).wrapping_add(i * 7) as u8)
        .collect()
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// A handler that echoes unchanged, but only once `gate` is open.
fn gated(gate: &Arc<AtomicBool>) -> Kernel {
    let gate = Arc::clone(gate);
    Kernel::RustHandler(common::echo_after(move || {
        // Acquire: pairs with the test's release store (nothing else to see;
        // any ordering would do for a flag).
        while !gate.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }))
}

#[test]
fn a_thousand_concurrent_round_trips_over_four_bridges_on_tokio() {
    common::within(300, "1000 async round trips on tokio", || {
        let bridges: Vec<AsyncBridge> = (0..4).map(|_| launch(host())).collect();
        let rt = runtime();
        rt.block_on(async {
            let tasks: Vec<_> = (0..1000u64)
                .map(|k| {
                    let bridge = bridges[(k % 4) as usize].clone();
                    tokio::spawn(async move {
                        let req = request(k);
                        let reply = bridge.round_trip(&req).await.unwrap();
                        assert_eq!(reply.payload, common::echoed(&req), "round trip {k}");
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        for b in &bridges {
            let stats = b.bridge().stats();
            assert_eq!((stats.sent, stats.received), (250, 250));
        }
    });
}

#[test]
fn a_thousand_concurrent_round_trips_over_four_bridges_on_futures_block_on() {
    common::within(300, "1000 async round trips on one thread", || {
        let bridges: Vec<AsyncBridge> = (0..4).map(|_| launch(host())).collect();
        let requests: Vec<Vec<u8>> = (0..1000).map(request).collect();
        let replies = futures::executor::block_on(futures::future::join_all(
            requests
                .iter()
                .enumerate()
                .map(|(k, req)| bridges[k % 4].round_trip(req)),
        ));
        for (k, (req, reply)) in requests.iter().zip(replies).enumerate() {
            assert_eq!(
                reply.unwrap().payload,
                common::echoed(req),
                "round trip {k}"
            );
        }
        for b in &bridges {
            assert_eq!(b.bridge().stats().received, 250);
        }
    });
}

#[test]
fn a_cancelled_recv_loses_no_reply() {
    common::within(60, "cancelled recv", || {
        let gate = Arc::new(AtomicBool::new(false));
        let bridge = launch(host().kernel(gated(&gate)));
        {
            let mut pending = pin!(bridge.recv());
            assert!(poll_once(pending.as_mut()).is_pending());
            bridge.bridge().send(b"a").unwrap();
            // Release: see `gated`.
            gate.store(true, Ordering::Release);
            // The reply (most likely) arrives while the future is pending;
            // either way, the future is dropped without another poll.
            std::thread::sleep(Duration::from_millis(20));
        }
        let reply = futures::executor::block_on(bridge.recv()).unwrap();
        assert_eq!(
            (reply.header.correlation, reply.payload),
            (0, b"a".to_vec())
        );
    });
}

#[test]
fn a_recv_cancelled_by_a_tokio_timeout_loses_no_reply() {
    common::within(60, "recv cancelled by a timeout", || {
        let bridge = launch(host());
        runtime().block_on(async {
            let late = tokio::time::timeout(Duration::from_millis(10), bridge.recv()).await;
            assert!(late.is_err(), "nothing was sent: {late:?}");
            let seq = bridge.send(&[7]).await.unwrap();
            let reply = bridge.recv().await.unwrap();
            assert_eq!((reply.header.correlation, reply.payload), (seq, vec![8]));
        });
    });
}

#[test]
fn a_cancelled_round_trip_leaves_its_reply_to_no_one() {
    common::within(60, "cancelled round trip", || {
        let gate = Arc::new(AtomicBool::new(false));
        let bridge = launch(host().kernel(gated(&gate)));
        {
            let mut trip = pin!(bridge.round_trip(b"cancelled"));
            // Its request goes out; its reply is held back by the gate.
            assert!(poll_once(trip.as_mut()).is_pending());
            assert_eq!(bridge.bridge().stats().sent, 1);
        }
        // Release: see `gated`.
        gate.store(true, Ordering::Release);
        futures::executor::block_on(async {
            // The next receive discards the cancelled trip's reply first.
            let seq = bridge.send(b"plain").await.unwrap();
            let reply = bridge.recv().await.unwrap();
            assert_eq!(
                (reply.header.correlation, reply.payload),
                (seq, b"plain".to_vec())
            );
            let reply = bridge.round_trip(b"next").await.unwrap();
            assert_eq!(reply.payload, b"next");
        });
        let stats = bridge.bridge().stats();
        assert_eq!((stats.sent, stats.received, stats.in_flight), (3, 3, 0));

        // A round trip cancelled after sending, followed by round trips.
        gate.store(false, Ordering::Release);
        {
            let mut trip = pin!(bridge.round_trip(b"again"));
            assert!(poll_once(trip.as_mut()).is_pending());
        }
        gate.store(true, Ordering::Release);
        let reply = futures::executor::block_on(bridge.round_trip(b"after")).unwrap();
        assert_eq!(reply.payload, b"after");
    });
}

#[test]
fn a_cancelled_send_sends_nothing() {
    common::within(60, "cancelled send", || {
        let bridge = launch(host().capacity(4));
        let sent = common::fill_both_rings(bridge.bridge());
        {
            let mut send = pin!(bridge.send(b"never"));
            assert!(poll_once(send.as_mut()).is_pending());
        }
        let mut got = 0;
        futures::executor::block_on(async {
            while got < sent {
                got += bridge.recv_batch(64, |_, _| {}).await.unwrap() as u64;
            }
        });
        let stats = bridge.bridge().stats();
        assert_eq!(
            (stats.sent, stats.received, stats.in_flight),
            (sent, sent, 0)
        );
    });
}

/// Issue 28, item 3: plain sends and receives beside round trips, each
/// reply to its own caller.
#[test]
fn round_trips_and_plain_receives_each_get_their_own_replies() {
    common::within(60, "round trips beside plain sends", || {
        let bridge = launch(host());
        futures::executor::block_on(async {
            bridge.send(b"a").await.unwrap();
            assert_eq!(bridge.round_trip(b"x").await.unwrap().payload, b"y");
            assert_eq!(bridge.recv().await.unwrap().payload, b"b");
            let (reply, trip) = futures::future::join(bridge.recv(), async {
                bridge.send(b"c").await.unwrap();
                bridge.round_trip(b"y").await
            })
            .await;
            assert_eq!(reply.unwrap().payload, b"d");
            assert_eq!(trip.unwrap().payload, b"z");
        });
    });
}

/// Streams 10,000 messages through async sends and receives (one task
/// each), with a small ring so both wait, and checks every reply in order.
fn stream(batch: usize) {
    let bridge = launch(host().capacity(16));
    const N: u64 = 10_000;
    runtime().block_on(async {
        let sender = {
            let bridge = bridge.clone();
            tokio::spawn(async move {
                for k in 0..N {
                    assert_eq!(bridge.send(&request(k)).await.unwrap(), k);
                }
            })
        };
        let mut next = 0u64;
        while next < N {
            if batch == 1 {
                let reply = bridge.recv().await.unwrap();
                assert_eq!(reply.header.correlation, next, "out of order");
                assert_eq!(
                    reply.payload,
                    common::echoed(&request(next)),
                    "reply {next}"
                );
                next += 1;
            } else {
                let n = bridge
                    .recv_batch(batch, |h, p| {
                        assert_eq!(h.correlation, next, "out of order");
                        assert_eq!(p, common::echoed(&request(next)), "reply {next}");
                        next += 1;
                    })
                    .await
                    .unwrap();
                assert!((1..=batch).contains(&n), "{n}");
            }
        }
        sender.await.unwrap();
    });
    let stats = bridge.bridge().stats();
    assert_eq!((stats.sent, stats.received), (N, N));
}

#[test]
fn a_stream_of_ten_thousand_through_async_send_and_recv_stays_in_order() {
    common::within(300, "async stream, recv", || stream(1));
}

#[test]
fn a_stream_of_ten_thousand_through_async_send_and_recv_batch_stays_in_order() {
    common::within(300, "async stream, recv_batch", || stream(64));
}

#[test]
fn async_calls_after_shutdown_return_shut_down() {
    common::within(60, "async calls after shutdown", || {
        let bridge = launch(host());
        futures::executor::block_on(async {
            assert_eq!(bridge.round_trip(b"a").await.unwrap().payload, b"b");
            bridge.bridge().shutdown().unwrap();
            assert!(matches!(bridge.send(b"x").await, Err(Error::ShutDown)));
            assert!(matches!(bridge.recv().await, Err(Error::ShutDown)));
            let batch = bridge.recv_batch(4, |_, _| {}).await;
            assert!(matches!(batch, Err(Error::ShutDown)), "{batch:?}");
            assert!(matches!(
                bridge.round_trip(b"x").await,
                Err(Error::ShutDown)
            ));
            assert_eq!(bridge.recv_batch(0, |_, _| {}).await.unwrap(), 0);
        });
    });
}

#[test]
fn a_hung_handler_surfaces_as_kernel_hung() {
    common::within(60, "async KernelHung", || {
        let gate = Arc::new(AtomicBool::new(false));
        let bridge = launch(
            host()
                .kernel(gated(&gate))
                .hang_timeout(Duration::from_millis(100)),
        );
        let err = futures::executor::block_on(bridge.round_trip(b"stuck")).unwrap_err();
        assert!(matches!(err, Error::KernelHung { .. }), "{err}");
        let again = futures::executor::block_on(bridge.recv()).unwrap_err();
        assert!(matches!(again, Error::KernelHung { .. }), "{again}");
        // Release: see `gated`; lets the serving thread stop at the drop.
        gate.store(true, Ordering::Release);
    });
}

#[test]
fn oversized_payloads_are_refused_before_anything_is_sent() {
    common::within(60, "async PayloadTooLarge", || {
        let bridge = launch(host());
        futures::executor::block_on(async {
            let big = [0u8; 33];
            let send = bridge.send(&big).await;
            assert!(matches!(
                send,
                Err(Error::PayloadTooLarge { len: 33, max: 32 })
            ));
            let trip = bridge.round_trip(&big).await;
            assert!(matches!(
                trip,
                Err(Error::PayloadTooLarge { len: 33, max: 32 })
            ));
        });
        assert_eq!(bridge.bridge().stats().sent, 0);
    });
}

/// How many of this process's threads are waker threads (Linux only:
/// `/proc` gives thread names, cut to 15 bytes).
#[cfg(target_os = "linux")]
fn waker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "ringbridge-asyn")
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn the_waker_thread_starts_with_the_first_pending_future_and_ends_with_the_bridge() {
    // Alone in a child process: other tests' bridges have waker threads too.
    common::isolated(
        "the_waker_thread_starts_with_the_first_pending_future_and_ends_with_the_bridge",
        || {
            common::within(60, "the waker thread's life", || {
                let bridge = launch(host());
                let other = bridge.clone();
                assert_eq!(waker_threads(), 0, "started before anything waited");
                {
                    let mut recv = pin!(bridge.recv());
                    assert!(poll_once(recv.as_mut()).is_pending());
                }
                // The thread names itself once it runs.
                while waker_threads() != 1 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(bridge);
                // A clone keeps it: the same thread serves every clone.
                let reply = futures::executor::block_on(other.round_trip(b"a")).unwrap();
                assert_eq!(reply.payload, b"b");
                assert_eq!(waker_threads(), 1);
                drop(other);
                while waker_threads() != 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        },
    );
}

/// Issue 28: 10,000 concurrent async round trips on one bridge, about a
/// tenth of them cancelled at random points: every surviving caller gets
/// its own reply, and the bridge is left with nothing in flight.
#[test]
fn ten_thousand_concurrent_round_trips_with_random_cancellation() {
    common::within(300, "10,000 async round trips", || {
        let bridge = launch(host().capacity(256));
        let rt = runtime();
        let (ok, cancelled) = rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..10_000u32 {
                let bridge = bridge.clone();
                tasks.push(tokio::spawn(async move {
                    let payload = i.to_le_bytes();
                    let trip = bridge.round_trip(&payload);
                    if i % 10 == 3 {
                        // Cancelled after a random short wait: before or
                        // after its request went out.
                        let wait = Duration::from_micros(u64::from(i * 7919 % 500));
                        match tokio::time::timeout(wait, trip).await {
                            Ok(r) => Some(r.map(|r| (r.payload, i))),
                            Err(_) => None,
                        }
                    } else {
                        Some(trip.await.map(|r| (r.payload, i)))
                    }
                }));
            }
            let (mut ok, mut cancelled) = (0, 0);
            for t in tasks {
                match t.await.unwrap() {
                    Some(r) => {
                        let (payload, i) = r.unwrap();
                        assert_eq!(payload, common::echoed(&i.to_le_bytes()), "caller {i}");
                        ok += 1;
                    }
                    None => cancelled += 1,
                }
            }
            (ok, cancelled)
        });
        assert_eq!(ok + cancelled, 10_000);
        assert!(ok >= 9_000, "{ok} completed");
        // Every request sent was answered (the abandoned answers dropped).
        let b = bridge.bridge();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while b.stats().in_flight != 0 {
            assert!(std::time::Instant::now() < deadline, "{:?}", b.stats());
            let _ = futures::executor::block_on(bridge.round_trip(b"x")).unwrap();
        }
        assert_eq!(
            futures::executor::block_on(bridge.round_trip(&[1]))
                .unwrap()
                .payload,
            [2]
        );
    });
}

/// Issue 28: a fault, and a shutdown, wake 1,000 waiting round trips,
/// async and blocking, each with the error.
#[test]
fn a_fault_or_a_shutdown_wakes_a_thousand_waiters() {
    common::within(120, "1,000 waiters woken", || {
        for shutdown in [false, true] {
            let gate = Arc::new(AtomicBool::new(false));
            let mut builder = host().kernel(gated(&gate)).capacity(2048);
            if !shutdown {
                builder = builder.hang_timeout(Duration::from_millis(200));
            }
            let bridge = launch(builder);
            let rt = runtime();
            let errors = rt.block_on(async {
                let mut tasks = Vec::new();
                for i in 0..990u32 {
                    let bridge = bridge.clone();
                    tasks.push(tokio::spawn(async move {
                        bridge.round_trip(&i.to_le_bytes()).await
                    }));
                }
                let blocking: Vec<_> = (0..10)
                    .map(|_| {
                        let bridge = bridge.clone();
                        std::thread::spawn(move || bridge.bridge().round_trip(b"b"))
                    })
                    .collect();
                if shutdown {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // The gated handler holds the kernel: it cannot stop
                    // until released, so open the gate as we shut down.
                    gate.store(true, Ordering::Release);
                    bridge.shutdown().await.unwrap();
                }
                let mut errors = Vec::new();
                for t in tasks {
                    errors.push(t.await.unwrap());
                }
                for b in blocking {
                    errors.push(b.join().unwrap());
                }
                errors
            });
            let failed = errors.iter().filter(|e| e.is_err()).count();
            if shutdown {
                // Answered before the stop, or told it was shut down.
                for e in errors.iter().filter_map(|e| e.as_ref().err()) {
                    assert!(matches!(e, Error::ShutDown), "{e}");
                }
            } else {
                assert_eq!(failed, 1000, "every waiter fails");
                for e in errors.iter().filter_map(|e| e.as_ref().err()) {
                    assert!(matches!(e, Error::KernelHung { .. }), "{e}");
                }
            }
            gate.store(true, Ordering::Release);
        }
    });
}

/// Counts the wakes it gets.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A round trip without its answer asks its executor to poll it again a
/// bounded number of times (reading K2H itself, as under load the answer
/// is usually there by then), then leaves the waiting to the dispatcher
/// thread, which wakes it when the answer comes: a slow answer costs a
/// few polls, not a busy executor.
#[test]
fn a_slow_answer_costs_a_few_polls_then_the_dispatcher_wakes_the_task() {
    common::within(60, "slow answer", || {
        let gate = Arc::new(AtomicBool::new(false));
        let bridge = launch(host().kernel(gated(&gate)));
        let counter = Arc::new(CountingWaker(Default::default()));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let wakes = || counter.0.load(Ordering::SeqCst);
        let mut trip = pin!(bridge.round_trip(b"slow"));
        // Each poll that asks to be polled again wakes the task itself.
        let mut polls = 0;
        while wakes() == polls {
            assert!(trip.as_mut().poll(&mut cx).is_pending());
            polls += 1;
            assert!(polls < 10_000, "still polling itself after {polls} polls");
        }
        // The poll that stopped asking: nothing wakes the task while the
        // answer is held back.
        assert!(polls > 1, "asked to be polled again {polls} times");
        let asked = wakes();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(wakes(), asked, "woken with no answer");
        // Release: see `gated`.
        gate.store(true, Ordering::Release);
        while wakes() == asked {
            std::thread::sleep(Duration::from_millis(1));
        }
        match trip.as_mut().poll(&mut cx) {
            Poll::Ready(reply) => assert_eq!(reply.unwrap().payload, b"slow"),
            Poll::Pending => panic!("woken, but the answer is not there"),
        }
    });
}
