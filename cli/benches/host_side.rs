//! The host's halves of a ring alone, per message, one thread, with the
//! device side taken out: the producer writing and publishing batches into a
//! ring whose consumer is instant, the consumer reading and validating
//! batches already published, and a plain memcpy of the same bytes into (or
//! out of) the same memory beside each (see `cli/src/cli/host_side/rig.rs`, the
//! loops `ringbridge host-side` times too).
//!
//! One criterion iteration is one message, so `time` is ns per message and
//! `thrpt` is payload bytes per second (criterion prints GiB/s).
//! Slots at 64 B, 256 B, 1 KiB and 4 KiB; lanes at 64 B and at 248 B, the
//! most a lane slot carries.
//!
//! `cargo bench -p ringbridge-cli --bench host_side` (about a minute and a half).

#[allow(dead_code, unreachable_pub)]
#[path = "../src/cli/host_side/rig.rs"]
mod rig;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringbridge::ring::SlotFormat;

use rig::{Op, Rig};

/// Slots per ring, as `ringbridge host-side` and `stream` default to.
const CAPACITY: usize = 1024;
/// Messages per batch: one publish and one release each.
const BATCH: usize = 256;

fn host_side(c: &mut Criterion) {
    for (format, sizes) in [
        (SlotFormat::Slots, &[64, 256, 1024, 4096][..]),
        (SlotFormat::Lanes, &[64, 248][..]),
    ] {
        let mut g = c.benchmark_group(format!("host_side_{format}"));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(1));
        for &size in sizes {
            let mut rig = Rig::new(format, size, CAPACITY, BATCH).expect("a rig");
            g.throughput(Throughput::Bytes(size as u64));
            for op in Op::ALL {
                g.bench_function(BenchmarkId::new(op.name(), size), |b| {
                    b.iter_custom(|iters| rig.time(op, iters).expect("the ring failed"))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, host_side);
criterion_main!(benches);
