//! `ringbridge echo`: round-trip latency, one message in flight.

use std::time::Instant;

use anyhow::{Context, bail};
use ringbridge::layout::KIND_REPLY;
use ringbridge::ring::SlotFormat;
use serde::Serialize;

use super::latency::Summary;
use super::plot::{self, Series};
use super::progress::Progress;
use super::{CheckMode, EchoArgs};

#[derive(Serialize)]
struct Report {
    backend: &'static str,
    backend_reason: String,
    device: usize,
    payload_bytes: usize,
    slot_size: usize,
    format: &'static str,
    /// How much of each reply was checked: full, len, reply or none.
    check: &'static str,
    messages: u64,
    lost: u64,
    #[serde(flatten)]
    latency: Summary,
    msgs_per_s: f64,
}

pub(crate) fn run(args: &EchoArgs) -> anyhow::Result<()> {
    let b = &args.bridge;
    if args.messages == 0 {
        bail!("--messages must be at least 1");
    }
    args.output.check()?;
    let check = args.image.check(args.check)?;
    if check == CheckMode::Header {
        bail!("--check header is a stream option; echo checks full, len, reply or none");
    }
    let bridge = args
        .image
        .apply(b.builder(SlotFormat::Auto)?, b.backend, b.block)?
        .launch()
        .context("cannot launch the bridge")?;
    if !b.json {
        println!(
            "ringbridge echo: backend {} ({}), payload {} B, slot {} B ({}), {} messages",
            bridge.backend(),
            bridge.backend_reason(),
            b.payload,
            bridge.spec().slot_size(),
            bridge.format(),
            args.messages
        );
    }
    let mut payload: Vec<u8> = (0..b.payload).map(|i| (i * 7 + 3) as u8).collect();
    let mut samples = Vec::with_capacity(args.messages as usize);
    let mut lost = 0u64;
    let total = args.warmup + args.messages;
    let mut bar = Progress::new("echo", total, b.json);
    let started = Instant::now();
    for i in 0..total {
        payload[..b.payload.min(8)].copy_from_slice(&i.to_le_bytes()[..b.payload.min(8)]);
        let t0 = Instant::now();
        let seq = bridge.send(&payload)?;
        let ok = bridge.recv_with(|h, p| {
            let answers = h.correlation == seq && h.kind == KIND_REPLY;
            match check {
                CheckMode::Full => {
                    h.correlation == seq
                        && p.len() == payload.len()
                        && p.iter().zip(&payload).all(|(r, s)| *r == s.wrapping_add(1))
                }
                CheckMode::Len | CheckMode::Header => answers && p.len() == payload.len(),
                CheckMode::Reply => answers,
                CheckMode::None => true,
            }
        })?;
        let dt = t0.elapsed().as_nanos() as u64;
        if !ok {
            lost += 1;
        }
        if i >= args.warmup {
            samples.push(dt);
        }
        bar.set(i + 1);
    }
    let wall = started.elapsed();
    bar.finish();
    bridge.shutdown()?;
    let series = [Series {
        name: "ringbridge",
        samples: &samples,
    }];
    if let Some(path) = &args.output.csv {
        plot::write_csv(path, &series)?;
    }
    if let Some(path) = &args.output.plot {
        let title = format!(
            "ringbridge echo: {} backend, {} B payload",
            bridge.backend(),
            b.payload
        );
        plot::write_svg(path, &title, &series)?;
    }
    let latency = Summary::of(&mut samples).context("no samples")?;
    let report = Report {
        backend: bridge.backend().name(),
        backend_reason: bridge.backend_reason().to_string(),
        device: b.device,
        payload_bytes: b.payload,
        slot_size: bridge.spec().slot_size(),
        format: bridge.format().name(),
        check: check.name(),
        messages: args.messages,
        lost,
        latency,
        msgs_per_s: (args.warmup + args.messages) as f64 / wall.as_secs_f64(),
    };
    if b.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("round trip: {}", latency.line());
        println!(
            "{:.0} round trips/s, {} wrong or lost replies",
            report.msgs_per_s, lost
        );
    }
    if lost > 0 {
        bail!("{lost} replies were wrong");
    }
    Ok(())
}
