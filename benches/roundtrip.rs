//! Round-trip latency through the bridge: one message in flight, payloads
//! 8 B to 4 KiB, on the host fallback always and on CUDA when present.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringbridge::ring::RingSpec;
use ringbridge::{Backend, Bridge};

const PAYLOADS: [usize; 5] = [8, 64, 256, 1024, 4096];

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Host];
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
            bridge.shutdown().expect("shutdown");
        }
    }
    group.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
