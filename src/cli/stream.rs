//! `ringbridge stream`: a producer and a consumer thread, pipelined.

use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

use super::StreamArgs;

#[derive(Serialize)]
struct Report {
    backend: &'static str,
    backend_reason: String,
    device: usize,
    payload_bytes: usize,
    slot_size: usize,
    batch: usize,
    messages: u64,
    lost: u64,
    seconds: f64,
    msgs_per_s: f64,
    gbytes_per_s: f64,
}

/// The payload of message `i`: its index in the first 8 bytes, then a pattern.
fn fill(buf: &mut [u8], i: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&i.to_le_bytes()[..n]);
}

pub(crate) fn run(args: &StreamArgs) -> anyhow::Result<()> {
    let b = &args.bridge;
    if args.messages == 0 || args.batch == 0 {
        bail!("--messages and --batch must be at least 1");
    }
    let bridge = b.builder()?.launch().context("cannot launch the bridge")?;
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
    let started = Instant::now();
    let (sent, lost) = std::thread::scope(|s| -> anyhow::Result<(u64, u64)> {
        let producer = s.spawn(|| -> ringbridge::Result<u64> {
            let mut bufs = vec![vec![0u8; size]; args.batch];
            let mut i = 0u64;
            while i < total {
                let n = (total - i).min(args.batch as u64) as usize;
                for (k, buf) in bufs[..n].iter_mut().enumerate() {
                    fill(buf, i + k as u64);
                }
                bridge.send_batch(&bufs[..n])?;
                i += n as u64;
            }
            Ok(i)
        });
        let mut expect = vec![0u8; size];
        let mut got = 0u64;
        let mut lost = 0u64;
        let mut bar = super::progress::Progress::new("stream", total, b.json);
        while got < total {
            bar.set(got);
            bridge.recv_batch(4096, |h, p| {
                fill(&mut expect, got);
                let ok = h.correlation == got
                    && p.len() == size
                    && p.iter().zip(&expect).all(|(r, e)| *r == e.wrapping_add(1));
                if !ok {
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
