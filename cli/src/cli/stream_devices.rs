//! `ringbridge stream --devices`: one bridge (or striped group) per device,
//! all streaming at once, with per-device and total rates. On CUDA every
//! device's bridge is launched from a reservation made before the first
//! launch, so no launch meets another device's running kernel.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use anyhow::{Context, bail};
use ringbridge::cuda::Reservation;
use ringbridge::ring::SlotFormat;
use ringbridge::{Backend, StripedBridge};
use serde::Serialize;

use super::StreamArgs;
use super::stream_through::{Patterns, StripeResult, join_stripes, spawn_stripes};

#[derive(Serialize)]
struct Report {
    payload_bytes: usize,
    stripes: usize,
    batch: usize,
    check: &'static str,
    devices: Vec<DeviceRate>,
    total: Totals,
}

#[derive(Serialize)]
struct DeviceRate {
    device: usize,
    backend: &'static str,
    messages: u64,
    lost: u64,
    /// From the common start to this device's last reply.
    seconds: f64,
    msgs_per_s: f64,
    gbytes_per_s: f64,
}

#[derive(Serialize)]
struct Totals {
    messages: u64,
    lost: u64,
    /// From the common start to the last reply of any device.
    seconds: f64,
    msgs_per_s: f64,
    gbytes_per_s: f64,
}

/// The ordinals `spec` names: `all`, or a comma-separated list.
fn ordinals(spec: &str, backend: Backend) -> anyhow::Result<Vec<usize>> {
    if spec.trim().eq_ignore_ascii_case("all") {
        return match (backend, ringbridge::cuda::device_count()) {
            (Backend::Fallback, _) => Ok(vec![0]),
            (_, Ok(n)) if n > 0 => Ok((0..n).collect()),
            (Backend::Auto, _) => Ok(vec![0]),
            (_, Ok(_)) => bail!("--devices all: the driver reports no CUDA device"),
            (_, Err(e)) => Err(e).context("--devices all: cannot count the GPUs"),
        };
    }
    let mut list = Vec::new();
    for part in spec.split(',') {
        let d: usize = part
            .trim()
            .parse()
            .with_context(|| format!("--devices: {part:?} is not a device ordinal"))?;
        if list.contains(&d) {
            bail!("--devices: device {d} is listed twice");
        }
        list.push(d);
    }
    Ok(list)
}

pub(crate) fn run(args: &StreamArgs, spec: &str) -> anyhow::Result<()> {
    let b = &args.bridge;
    let check = args.image.check(args.check)?;
    let devices = ordinals(spec, b.backend)?;
    // Phase one: every device's builder and, on CUDA, its reservation,
    // before any kernel runs.
    let mut builders = Vec::with_capacity(devices.len());
    for &d in &devices {
        let builder =
            args.image
                .apply(b.builder(SlotFormat::Slots)?.device(d), b.backend, b.block)?;
        let (backend, _) = builder.resolve_backend()?;
        let builder = if backend == Backend::Cuda {
            let reservation = Reservation::builder(d)
                .striped(&builder, args.stripes)
                .reserve()
                .with_context(|| format!("cannot reserve memory on device {d}"))?;
            builder.reservation(&reservation)
        } else {
            builder
        };
        builders.push(builder);
    }
    // Phase two: launch them all.
    let groups = builders
        .into_iter()
        .zip(&devices)
        .map(|(builder, d)| {
            StripedBridge::launch(builder, args.stripes)
                .with_context(|| format!("cannot launch the bridge on device {d}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !b.json {
        println!(
            "ringbridge stream: {} device(s) {:?}, backend {}, payload {} B, {} messages each, {} stripe(s), check {}",
            devices.len(),
            devices,
            groups[0].stripe(0).backend(),
            b.payload,
            args.messages,
            args.stripes,
            check.name()
        );
    }
    // Phase three: every stripe of every device streams at once.
    let patterns = Patterns::new(b.payload);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let results: Vec<StripeResult> = std::thread::scope(|s| {
        let workers: Vec<_> = groups
            .iter()
            .map(|group| {
                spawn_stripes(s, group, args.messages, args.batch, check, &patterns, &done)
            })
            .collect();
        workers
            .into_iter()
            .map(|stripes| join_stripes(stripes, started))
            .collect()
    });
    let size = b.payload as f64;
    let mut rates = Vec::with_capacity(devices.len());
    for ((&device, group), result) in devices.iter().zip(&groups).zip(results) {
        let (sent, lost, last) = result.with_context(|| format!("streaming on device {device}"))?;
        let seconds = (last - started).as_secs_f64();
        rates.push(DeviceRate {
            device,
            backend: group.stripe(0).backend().name(),
            messages: sent,
            lost,
            seconds,
            msgs_per_s: sent as f64 / seconds,
            gbytes_per_s: sent as f64 * size / seconds / 1e9,
        });
    }
    for group in &groups {
        group.shutdown()?;
    }
    let messages: u64 = rates.iter().map(|r| r.messages).sum();
    let lost: u64 = rates.iter().map(|r| r.lost).sum();
    let seconds = rates.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let report = Report {
        payload_bytes: b.payload,
        stripes: args.stripes,
        batch: args.batch,
        check: check.name(),
        total: Totals {
            messages,
            lost,
            seconds,
            msgs_per_s: messages as f64 / seconds,
            gbytes_per_s: messages as f64 * size / seconds / 1e9,
        },
        devices: rates,
    };
    if b.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for r in &report.devices {
            println!(
                "device {} ({}): {:.2} M msg/s, {:.3} GB/s each way, {} wrong or lost, {:.3} s",
                r.device,
                r.backend,
                r.msgs_per_s / 1e6,
                r.gbytes_per_s,
                r.lost,
                r.seconds
            );
        }
        let t = &report.total;
        println!(
            "total: {:.2} M msg/s, {:.3} GB/s each way, {} wrong or lost, {:.3} s",
            t.msgs_per_s / 1e6,
            t.gbytes_per_s,
            t.lost,
            t.seconds
        );
    }
    if lost > 0 {
        bail!("{lost} replies were wrong");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_parse_and_bad_ones_are_refused() {
        assert_eq!(ordinals("0,1, 3", Backend::Cuda).unwrap(), [0, 1, 3]);
        assert_eq!(ordinals("all", Backend::Fallback).unwrap(), [0]);
        assert!(ordinals("0,x", Backend::Fallback).is_err());
        assert!(ordinals("1,1", Backend::Fallback).is_err());
        assert!(ordinals("", Backend::Fallback).is_err());
        if !ringbridge::cuda::driver_available() {
            // No GPU: `all` is the fallback's one bridge under Auto, and an
            // error naming why on CUDA.
            assert_eq!(ordinals("ALL", Backend::Auto).unwrap(), [0]);
            assert!(ordinals("all", Backend::Cuda).is_err());
        }
    }
}
