//! Many bridges in one process on the host fallback: sixteen streaming at
//! once, stopped one by one in a shuffled order while the others keep
//! serving; and what the device ordinal means there.

mod common;

use ringbridge::{Backend, Bridge, Error};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const BRIDGES: usize = 16;
/// Requests per round: sent with one `send_batch`, then received in order.
const ROUND: u64 = 8;

/// A tiny xorshift64 (fixed seed): a reproducible shuffle, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Fisher-Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Message `n` of bridge `b`: 1 to 32 bytes that differ with both.
fn payload(b: usize, n: u64) -> Vec<u8> {
    let len = 1 + (n as usize * 7 + b) % 32;
    (0..len)
        .map(|k| (n as usize).wrapping_mul(31).wrapping_add(b * 17 + k) as u8)
        .collect()
}

/// Streams rounds through `bridge` until `stop` is set, checking every
/// reply in order; counts finished messages in `done`. Returns how many.
fn stream(b: usize, bridge: &Bridge, stop: &AtomicBool, done: &AtomicU64) -> u64 {
    let mut n = 0u64;
    // Relaxed: the flag only says "finish the round and return"; the join
    // orders everything the worker did before the main thread goes on.
    while !stop.load(Ordering::Relaxed) {
        let msgs: Vec<Vec<u8>> = (n..n + ROUND).map(|i| payload(b, i)).collect();
        let first = bridge.send_batch(&msgs).unwrap();
        assert_eq!(first, n, "bridge {b}: sequence numbers skipped");
        for i in n..n + ROUND {
            let reply = bridge.recv().unwrap();
            assert_eq!(reply.header.correlation, i, "bridge {b}: out of order");
            assert_eq!(
                reply.payload,
                common::echoed(&payload(b, i)),
                "bridge {b}: wrong reply {i}"
            );
        }
        n += ROUND;
        // Relaxed: a progress counter the main thread polls; it orders nothing.
        done.store(n, Ordering::Relaxed);
    }
    n
}

/// Waits until every bridge in `alive` has finished at least four more rounds
/// than `before` says.
fn wait_for_progress(alive: &[usize], done: &[AtomicU64]) {
    let before: Vec<u64> = alive
        .iter()
        .map(|&b| done[b].load(Ordering::Relaxed))
        .collect();
    for (&b, &was) in alive.iter().zip(&before) {
        while done[b].load(Ordering::Relaxed) < was + 4 * ROUND {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn sixteen_bridges_stream_and_stop_one_by_one_in_a_shuffled_order() {
    common::within(300, "16 bridges streaming and stopping", || {
        let bridges: Vec<Bridge> = (0..BRIDGES)
            .map(|_| {
                Bridge::builder()
                    .backend(Backend::Fallback)
                    .capacity(32)
                    // Generous: 17 serving threads share a few CPUs here.
                    .hang_timeout(Duration::from_secs(10))
                    .launch()
                    .unwrap()
            })
            .collect();
        let stop: Vec<AtomicBool> = (0..BRIDGES).map(|_| AtomicBool::new(false)).collect();
        let done: Vec<AtomicU64> = (0..BRIDGES).map(|_| AtomicU64::new(0)).collect();
        let mut order: Vec<usize> = (0..BRIDGES).collect();
        XorShift(0x9e37_79b9_7f4a_7c15).shuffle(&mut order);
        assert_ne!(order, (0..BRIDGES).collect::<Vec<_>>(), "not shuffled");

        std::thread::scope(|s| {
            let mut workers: Vec<_> = (0..BRIDGES)
                .map(|b| {
                    let (bridge, stop, done) = (&bridges[b], &stop[b], &done[b]);
                    Some(s.spawn(move || stream(b, bridge, stop, done)))
                })
                .collect();
            let mut alive: Vec<usize> = (0..BRIDGES).collect();
            // Every stream is going before the first stop.
            wait_for_progress(&alive, &done);
            for &b in &order {
                // Relaxed: see `stream`; the join below orders the rest.
                stop[b].store(true, Ordering::Relaxed);
                let sent = workers[b].take().unwrap().join().unwrap();
                assert!(sent >= ROUND, "bridge {b} streamed nothing");
                let stats = bridges[b].stats();
                assert_eq!((stats.sent, stats.received), (sent, sent), "bridge {b}");
                bridges[b].shutdown().unwrap();
                assert!(matches!(bridges[b].send(&[1]), Err(Error::ShutDown)));
                assert!(matches!(bridges[b].try_recv(), Err(Error::ShutDown)));
                alive.retain(|&a| a != b);
                // The others keep serving, each its own stream, in order.
                wait_for_progress(&alive, &done);
            }
        });
    });
}

/// On the host fallback the device ordinal selects nothing: a host bridge
/// launches and serves whatever ordinal it is given, and `Auto` with an
/// ordinal no GPU has falls back to the host, saying why.
#[test]
fn the_device_ordinal_on_the_host_fallback() {
    common::within(60, "device ordinals on the fallback", || {
        for ordinal in [0, 1, 7, usize::MAX] {
            let bridge = Bridge::builder()
                .backend(Backend::Fallback)
                .device(ordinal)
                .launch()
                .unwrap();
            assert_eq!(bridge.backend(), Backend::Fallback);
            assert_eq!(bridge.backend_reason(), "fallback backend requested");
            assert_eq!(
                bridge.round_trip(&[ordinal as u8]).unwrap().payload,
                [(ordinal as u8).wrapping_add(1)]
            );
            bridge.shutdown().unwrap();
        }
        let auto = Bridge::builder().device(usize::MAX).launch().unwrap();
        assert_eq!(auto.backend(), Backend::Fallback);
        assert!(
            auto.backend_reason().starts_with("no CUDA"),
            "{}",
            auto.backend_reason()
        );
        assert_eq!(auto.round_trip(b"a").unwrap().payload, b"b");
        // Two fallbacks "on the same device" are independent bridges.
        let (a, b) = (
            Bridge::builder()
                .backend(Backend::Fallback)
                .device(3)
                .launch()
                .unwrap(),
            Bridge::builder()
                .backend(Backend::Fallback)
                .device(3)
                .launch()
                .unwrap(),
        );
        a.shutdown().unwrap();
        assert!(matches!(a.round_trip(b"x"), Err(Error::ShutDown)));
        assert_eq!(b.round_trip(b"x").unwrap().payload, b"y");
    });
}
