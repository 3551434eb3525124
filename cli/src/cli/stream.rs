//! `ringbridge stream`: a producer and a consumer thread, pipelined. On the
//! fallback backend with one stripe it then runs the same pipeline through two
//! host SPSC queues (`queue_ceiling`), so the fallback's rate is reported
//! next to what the host queue allows on the same cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ringbridge::StripedBridge;
use ringbridge::ring::SlotFormat;
use serde::Serialize;

use super::stream_through::{Patterns, join_stripes, spawn_stripes};
use super::{CheckMode, StreamArgs};

#[derive(Serialize)]
struct Report {
    backend: &'static str,
    backend_reason: String,
    device: usize,
    payload_bytes: usize,
    slot_size: usize,
    format: &'static str,
    block: Option<u32>,
    stripes: usize,
    batch: usize,
    /// How much of each reply was checked: full, header or none.
    check: &'static str,
    messages: u64,
    lost: u64,
    seconds: f64,
    msgs_per_s: f64,
    gbytes_per_s: f64,
    /// Fallback backend, one stripe, `--check full`: the same pipeline through
    /// two host SPSC queues, run right after in the same process (`None`
    /// elsewhere).
    queue_ceiling: Option<QueueCeiling>,
}

/// The host SPSC queue's rate for the fallback's pipeline.
#[derive(Serialize)]
struct QueueCeiling {
    seconds: f64,
    msgs_per_s: f64,
    gbytes_per_s: f64,
    /// The fallback's msgs_per_s over the queue's.
    fallback_share: f64,
}

pub(crate) fn run(args: &StreamArgs) -> anyhow::Result<()> {
    let b = &args.bridge;
    if args.messages == 0 || args.batch == 0 {
        bail!("--messages and --batch must be at least 1");
    }
    if let Some(devices) = &args.devices {
        return super::stream_devices::run(args, devices);
    }
    let check = args.image.check(args.check)?;
    let builder = args
        .image
        .apply(b.builder(SlotFormat::Slots)?, b.backend, b.block)?;
    let striped =
        StripedBridge::launch(builder, args.stripes).context("cannot launch the bridge")?;
    let first = striped.stripe(0);
    let size = b.payload;
    if !b.json {
        println!(
            "ringbridge stream: backend {} ({}), payload {} B, batch {}, {} messages, {} stripe(s), check {}",
            first.backend(),
            first.backend_reason(),
            size,
            args.batch,
            args.messages,
            args.stripes,
            check.name()
        );
    }
    let total = args.messages;
    let patterns = Patterns::new(size);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let (sent, lost, last) = std::thread::scope(|s| {
        let workers = spawn_stripes(s, &striped, total, args.batch, check, &patterns, &done);
        let mut bar = super::progress::Progress::new("stream", total, b.json);
        while !workers.iter().all(|w| w.is_finished()) {
            // Relaxed: a progress count.
            bar.set(done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(50));
        }
        bar.finish();
        join_stripes(workers, started)
    })?;
    let seconds = (last - started).as_secs_f64();
    let capacity = first.spec().capacity();
    let host = first.backend() == ringbridge::Backend::Fallback;
    striped.shutdown()?;
    let msgs_per_s = sent as f64 / seconds;
    // The ceiling runs after the bridge is shut down, so no serving thread
    // competes with it for the cores.
    let queue_ceiling = if host && args.stripes == 1 && check == CheckMode::Full && lost == 0 {
        match super::queue_ceiling::measure(&patterns, total, capacity, args.batch) {
            Some(run) => {
                let c = run.context("the queue ceiling failed")?;
                if c.lost > 0 {
                    bail!("the queue ceiling delivered {} wrong messages", c.lost);
                }
                let rate = total as f64 / c.seconds;
                Some(QueueCeiling {
                    seconds: c.seconds,
                    msgs_per_s: rate,
                    gbytes_per_s: rate * size as f64 / 1e9,
                    fallback_share: msgs_per_s / rate,
                })
            }
            None => None,
        }
    } else {
        None
    };
    let report = Report {
        backend: first.backend().name(),
        backend_reason: first.backend_reason().to_string(),
        device: b.device,
        payload_bytes: size,
        slot_size: first.spec().slot_size(),
        format: first.format().name(),
        block: b.block,
        stripes: args.stripes,
        batch: args.batch,
        check: check.name(),
        messages: sent,
        lost,
        seconds,
        msgs_per_s,
        gbytes_per_s: sent as f64 * size as f64 / seconds / 1e9,
        queue_ceiling,
    };
    if b.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:.2} M msg/s, {:.3} GB/s each way, {} wrong or lost replies, {:.3} s (check {})",
            report.msgs_per_s / 1e6,
            report.gbytes_per_s,
            lost,
            seconds,
            report.check
        );
        if let Some(q) = &report.queue_ceiling {
            println!(
                "host SPSC queue, same pipeline (3 threads, 2 queues, every reply checked): {:.2} M msg/s; the fallback reached {:.0}% of it",
                q.msgs_per_s / 1e6,
                q.fallback_share * 100.0
            );
        }
    }
    if lost > 0 {
        bail!("{lost} replies were wrong");
    }
    Ok(())
}
