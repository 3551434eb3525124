//! `ringbridge stream`: a producer and a consumer thread, pipelined.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ringbridge::StripedBridge;
use ringbridge::ring::SlotFormat;
use serde::Serialize;

use super::StreamArgs;

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
    messages: u64,
    lost: u64,
    seconds: f64,
    msgs_per_s: f64,
    gbytes_per_s: f64,
}

/// Payloads of the stream: message `i` carries its index in its first 8
/// bytes, then `pattern[i as u8]`; the kernel's reply has every byte + 1,
/// which is the same pattern shifted by one. All 256 shifts are built once,
/// so filling a message and checking a reply are a copy and a compare, not a
/// loop over bytes: the host side must keep up with the GPU.
struct Patterns {
    shifted: Vec<Vec<u8>>,
}

impl Patterns {
    fn new(size: usize) -> Self {
        let shifted = (0..=255u8)
            .map(|c| {
                (0..size)
                    .map(|k| (k as u8).wrapping_mul(31).wrapping_add(c))
                    .collect()
            })
            .collect();
        Self { shifted }
    }

    /// Payload bytes per message.
    fn size(&self) -> usize {
        self.shifted[0].len()
    }

    /// Writes message `i` into `buf`.
    fn fill(&self, buf: &mut [u8], i: u64) {
        buf.copy_from_slice(&self.shifted[i as u8 as usize]);
        let n = buf.len().min(8);
        buf[..n].copy_from_slice(&i.to_le_bytes()[..n]);
    }

    /// Whether `reply` is message `i` with every byte + 1.
    fn is_reply(&self, reply: &[u8], i: u64) -> bool {
        let want = &self.shifted[i.wrapping_add(1) as u8 as usize];
        let n = reply.len().min(8);
        reply.len() == want.len()
            && reply[n..] == want[n..]
            && reply[..n]
                .iter()
                .zip(&i.to_le_bytes()[..n])
                .all(|(r, s)| *r == s.wrapping_add(1))
    }
}

/// Streams `total` messages through `bridge` from a producer thread, checking
/// every reply on the calling thread; returns (sent, wrong or lost). `done`
/// counts the replies checked so far (for the progress bar).
fn stream_through(
    bridge: &ringbridge::Bridge,
    total: u64,
    batch: usize,
    patterns: &Patterns,
    done: &AtomicU64,
) -> anyhow::Result<(u64, u64)> {
    let size = patterns.size();
    std::thread::scope(|s| -> anyhow::Result<(u64, u64)> {
        let producer = s.spawn(|| -> ringbridge::Result<u64> {
            let mut bufs = vec![vec![0u8; size]; batch];
            let mut i = 0u64;
            while i < total {
                let n = (total - i).min(batch as u64) as usize;
                for (k, buf) in bufs[..n].iter_mut().enumerate() {
                    patterns.fill(buf, i + k as u64);
                }
                bridge.send_batch(&bufs[..n])?;
                i += n as u64;
            }
            Ok(i)
        });
        let mut got = 0u64;
        let mut lost = 0u64;
        while got < total {
            let before = got;
            bridge.recv_batch(4096, |h, p| {
                if h.correlation != got || !patterns.is_reply(p, got) {
                    lost += 1;
                }
                got += 1;
            })?;
            // Relaxed: a progress count, it orders nothing.
            done.fetch_add(got - before, Ordering::Relaxed);
        }
        let sent = producer
            .join()
            .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
        Ok((sent, lost))
    })
}

pub(crate) fn run(args: &StreamArgs) -> anyhow::Result<()> {
    let b = &args.bridge;
    if args.messages == 0 || args.batch == 0 {
        bail!("--messages and --batch must be at least 1");
    }
    let striped = StripedBridge::launch(b.builder(SlotFormat::Slots)?, args.stripes)
        .context("cannot launch the bridge")?;
    let first = striped.stripe(0);
    let size = b.payload;
    if !b.json {
        println!(
            "ringbridge stream: backend {} ({}), payload {} B, batch {}, {} messages, {} stripe(s)",
            first.backend(),
            first.backend_reason(),
            size,
            args.batch,
            args.messages,
            args.stripes
        );
    }
    let total = args.messages;
    let patterns = Patterns::new(size);
    let done = AtomicU64::new(0);
    let n = args.stripes as u64;
    let started = Instant::now();
    // One producer and one consumer thread per stripe; stripe i carries
    // total / n messages, the first total % n stripes one more.
    let results: Vec<anyhow::Result<(u64, u64)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.stripes)
            .map(|i| {
                let count = total / n + u64::from((i as u64) < total % n);
                let (bridge, patterns, done) = (striped.stripe(i), &patterns, &done);
                s.spawn(move || stream_through(bridge, count, args.batch, patterns, done))
            })
            .collect();
        let mut bar = super::progress::Progress::new("stream", total, b.json);
        while !workers.iter().all(|w| w.is_finished()) {
            // Relaxed: a progress count.
            bar.set(done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(50));
        }
        bar.finish();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a stream thread panicked")))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let (mut sent, mut lost) = (0, 0);
    for r in results {
        let (s, l) = r?;
        sent += s;
        lost += l;
    }
    striped.shutdown()?;
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
        messages: sent,
        lost,
        seconds,
        msgs_per_s: sent as f64 / seconds,
        gbytes_per_s: sent as f64 * size as f64 / seconds / 1e9,
    };
    if b.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:.2} M msg/s, {:.3} GB/s each way, {} wrong or lost replies, {:.3} s",
            report.msgs_per_s / 1e6,
            report.gbytes_per_s,
            lost,
            seconds
        );
    }
    if lost > 0 {
        bail!("{lost} replies were wrong");
    }
    Ok(())
}
