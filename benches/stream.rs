//! Streaming rate through the bridge: a producer thread sends batches while
//! the bench thread receives, every reply's correlation checked.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringbridge::ring::RingSpec;
use ringbridge::{Backend, Bridge};

const MESSAGES: u64 = 100_000;

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Host];
    if ringbridge::cuda::device_count().is_ok_and(|n| n > 0)
        && ringbridge::kernels::KERNELS_COMPILED
    {
        v.push(Backend::Cuda);
    }
    v
}

fn stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for backend in backends() {
        for payload in [64usize, 1024, 4064] {
            let bridge = Bridge::builder()
                .backend(backend)
                .capacity(4096)
                .slot_size(RingSpec::slot_size_for(payload))
                .launch()
                .expect("launch");
            let batch = vec![vec![0xa5u8; payload]; 256];
            group.throughput(Throughput::Elements(MESSAGES));
            group.bench_function(BenchmarkId::new(backend.name(), payload), |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        s.spawn(|| {
                            let mut sent = 0;
                            while sent < MESSAGES {
                                let n = (MESSAGES - sent).min(batch.len() as u64) as usize;
                                bridge.send_batch(&batch[..n]).expect("send");
                                sent += n as u64;
                            }
                        });
                        let mut got = 0;
                        let first = bridge.stats().received;
                        while got < MESSAGES {
                            got += bridge
                                .recv_batch(4096, |h, _| assert!(h.correlation >= first))
                                .expect("recv") as u64;
                        }
                    })
                })
            });
            bridge.shutdown().expect("shutdown");
        }
    }
    group.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
