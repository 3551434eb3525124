//! Round-trip latency through the bridge: one message in flight, payloads
//! 8 B to 4 KiB, on the host fallback always and on CUDA when present; and,
//! side by side, the host floor: two threads ping-ponging a counter through
//! two cache lines (what `ringbridge compare --backend fallback` calls the floor).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringbridge::ring::RingSpec;
use ringbridge::{Backend, Bridge};

const PAYLOADS: [usize; 5] = [8, 64, 256, 1024, 4096];

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Fallback];
    let cuda = ringbridge::cuda::device_count().is_ok_and(|n| n > 0)
        && ringbridge::kernels::KERNELS_COMPILED;
    if cuda {
        v.push(Backend::Cuda);
    } else {
        eprintln!("roundtrip: no CUDA GPU here: benchmarking the host fallback only");
    }
    v
}

fn roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("roundtrip");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for backend in backends() {
        for payload in PAYLOADS {
            let bridge = Bridge::builder()
                .backend(backend)
                .capacity(64)
                .slot_size(RingSpec::slot_size_for(payload))
                .launch()
                .expect("launch");
            let data = vec![0x5au8; payload];
            group.throughput(Throughput::Bytes(payload as u64));
            group.bench_with_input(
                BenchmarkId::new(backend.name(), payload),
                &data,
                |b, data| {
                    b.iter(|| {
                        let seq = bridge.send(data).expect("send");
                        let corr = bridge.recv_with(|h, _| h.correlation).expect("recv");
                        assert_eq!(corr, seq);
                    })
                },
            );
            // The same through `round_trip` (registered for routing, so
            // that concurrent callers pipeline): what the routing costs one
            // caller.
            group.bench_with_input(
                BenchmarkId::new(format!("{}_round_trip", backend.name()), payload),
                &data,
                |b, data| b.iter(|| bridge.round_trip(data).expect("round trip")),
            );
            bridge.shutdown().expect("shutdown");
        }
    }
    floor(&mut group);
    group.finish();
}

/// The floor: this thread stores `i` in one line (release), a peer thread
/// spinning on it (acquire) answers `i` in another, and this thread spins
/// until it sees the answer. The peer lives only while this benchmark runs,
/// so it does not take a core from the bridge's benchmarks. The counters
/// carry no other data: release/acquire is there only to match what the
/// rings' counters use (`ringbridge compare`'s floor does the same).
fn floor(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    const STOP: u64 = u64::MAX;
    let ping = CachePadded::new(AtomicU64::new(0));
    let pong = CachePadded::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut last = 0;
            loop {
                let v = ping.load(Ordering::Acquire);
                if v == last {
                    std::hint::spin_loop();
                    continue;
                }
                if v == STOP {
                    return;
                }
                pong.store(v, Ordering::Release);
                last = v;
            }
        });
        let mut i = 0u64;
        group.throughput(Throughput::Elements(1));
        group.bench_function("host_floor", |b| {
            b.iter(|| {
                i += 1;
                ping.store(i, Ordering::Release);
                while pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
            })
        });
        ping.store(STOP, Ordering::Release);
    });
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
