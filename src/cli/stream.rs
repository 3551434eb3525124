//! `ringbridge stream`: a producer and a consumer thread, pipelined.

use std::time::Instant;

use anyhow::{Context, bail};
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

pub(crate) fn run(args: &StreamArgs) -> anyhow::Result<()> {
    let b = &args.bridge;
    if args.messages == 0 || args.batch == 0 {
        bail!("--messages and --batch must be at least 1");
    }
    let bridge = b
        .builder(SlotFormat::Slots)?
        .launch()
        .context("cannot launch the bridge")?;
    let size = b.payload;
    if !b.json {
        println!(
            "ringbridge stream: backend {} ({}), payload {} B, batch {}, {} messages",
            bridge.backend(),
            bridge.backend_reason(),
            size,
            args.batch,
            args.messages
        );
    }
    let total = args.messages;
    let patterns = Patterns::new(size);
    let started = Instant::now();
    let (sent, lost) = std::thread::scope(|s| -> anyhow::Result<(u64, u64)> {
        let producer = s.spawn(|| -> ringbridge::Result<u64> {
            let mut bufs = vec![vec![0u8; size]; args.batch];
            let mut i = 0u64;
            while i < total {
                let n = (total - i).min(args.batch as u64) as usize;
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
        let mut bar = super::progress::Progress::new("stream", total, b.json);
        while got < total {
            bar.set(got);
            bridge.recv_batch(4096, |h, p| {
                if h.correlation != got || !patterns.is_reply(p, got) {
                    lost += 1;
                }
                got += 1;
            })?;
        }
        let sent = producer
            .join()
            .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
        Ok((sent, lost))
    })?;
    let seconds = started.elapsed().as_secs_f64();
    bridge.shutdown()?;
    let report = Report {
        backend: bridge.backend().name(),
        backend_reason: bridge.backend_reason().to_string(),
        device: b.device,
        payload_bytes: size,
        slot_size: bridge.spec().slot_size(),
        format: bridge.format().name(),
        block: b.block,
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
