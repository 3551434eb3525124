//! Streaming rate through the bridge: a producer thread sends batches while
//! a consumer thread receives, every reply's correlation checked. The slot
//! format (what `ringbridge stream` uses), and striped groups (one launch
//! of N blocks on CUDA, N threads on the fallback) with one producer and one
//! consumer thread per stripe.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringbridge::ring::{RingSpec, SlotFormat};
use ringbridge::{Backend, Bridge, StripedBridge};

const MESSAGES: u64 = 100_000;

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Fallback];
    if ringbridge::cuda::device_count().is_ok_and(|n| n > 0)
        && ringbridge::kernels::KERNELS_COMPILED
    {
        v.push(Backend::Cuda);
    }
    v
}

fn builder(backend: Backend, payload: usize) -> ringbridge::BridgeBuilder {
    Bridge::builder()
        .backend(backend)
        .capacity(4096)
        .slot_size(RingSpec::slot_size_for(payload))
        .format(SlotFormat::Slots)
}

/// Streams `messages` payloads of `batch[0]`'s size through `bridge`: a
/// producer thread in batches, the calling thread receiving.
fn stream_through(bridge: &Bridge, messages: u64, batch: &[Vec<u8>]) {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut sent = 0;
            while sent < messages {
                let n = (messages - sent).min(batch.len() as u64) as usize;
                bridge.send_batch(&batch[..n]).expect("send");
                sent += n as u64;
            }
        });
        let mut got = 0;
        let first = bridge.stats().received;
        while got < messages {
            got += bridge
                .recv_batch(4096, |h, _| assert!(h.correlation >= first))
                .expect("recv") as u64;
        }
    })
}

fn stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for backend in backends() {
        for payload in [64usize, 1024, 4064] {
            let bridge = builder(backend, payload).launch().expect("launch");
            let batch = vec![vec![0xa5u8; payload]; 256];
            group.throughput(Throughput::Bytes(MESSAGES * payload as u64));
            group.bench_function(BenchmarkId::new(backend.name(), payload), |b| {
                b.iter(|| stream_through(&bridge, MESSAGES, &batch))
            });
            bridge.shutdown().expect("shutdown");
        }
    }
    group.finish();
}

/// 4064-byte messages over 1, 4 and 8 stripes, each stripe with its own
/// producer and consumer thread.
fn striped(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream_striped");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    const PAYLOAD: usize = 4064;
    for backend in backends() {
        for stripes in [1usize, 4, 8] {
            let striped = StripedBridge::launch(builder(backend, PAYLOAD).capacity(1024), stripes)
                .expect("launch");
            let batch = vec![vec![0xa5u8; PAYLOAD]; 64];
            let per_stripe = MESSAGES / 4;
            group.throughput(Throughput::Bytes(
                per_stripe * stripes as u64 * PAYLOAD as u64,
            ));
            group.bench_function(
                BenchmarkId::new(format!("{}/{PAYLOAD}B", backend.name()), stripes),
                |b| {
                    b.iter(|| {
                        std::thread::scope(|s| {
                            for i in 0..stripes {
                                let (bridge, batch) = (striped.stripe(i), &batch);
                                s.spawn(move || stream_through(bridge, per_stripe, batch));
                            }
                        })
                    })
                },
            );
            striped.shutdown().expect("shutdown");
        }
    }
    group.finish();
}

criterion_group!(benches, stream, striped);
criterion_main!(benches);
