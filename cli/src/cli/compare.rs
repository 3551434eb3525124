//! `ringbridge compare`: the same echo round trip (one message in flight,
//! reply = request with every byte + 1) through the alternatives a user
//! would otherwise pick, side by side with ringbridge, in one process.
//!
//! - CUDA backend: one-shot launch + synchronize over mapped memory; copy +
//!   launch + copy + synchronize; a CUDA graph of that, replayed; a
//!   persistent kernel with the "volatile + `__threadfence_system()`"
//!   protocol; and ringbridge's persistent kernel.
//! - Fallback backend: the floor (two threads ping-ponging a counter through two
//!   cache lines) and ringbridge's host fallback, alternating in rounds.
//!
//! Every reply is checked; a wrong one is an error (non-zero exit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cuda_compare::{CudaAlternative, Workload, measure};
use anyhow::{Context, bail};
use crossbeam_utils::CachePadded;
use ringbridge::ring::SlotFormat;
use ringbridge::{Backend, Bridge};
use serde::Serialize;

use super::CompareArgs;
use super::latency::Summary;
use super::plot::{self, Series};
use super::progress::Progress;
use super::spin::Spin;

/// Name of ringbridge's own row.
const RINGBRIDGE: &str = "ringbridge";
/// Alternating floor/fallback rounds of a host comparison.
const FALLBACK_ROUNDS: u64 = 10;
/// Name of the host floor's row.
const FLOOR: &str = "pingpong_floor";
/// How long the floor waits for one answer before calling the peer dead.
const FLOOR_TIMEOUT: Duration = Duration::from_secs(5);
/// The value that stops the floor's peer thread.
const FLOOR_STOP: u64 = u64::MAX;

/// One alternative's raw round-trip times.
struct Measured {
    /// Short name (table, CSV, JSON, plot legend).
    name: &'static str,
    /// What was measured, in words.
    description: &'static str,
    /// Round-trip times in nanoseconds, in the order measured.
    samples: Vec<u64>,
}

/// One row of the JSON report.
#[derive(Serialize)]
struct Row {
    name: &'static str,
    description: &'static str,
    #[serde(flatten)]
    latency: Summary,
    /// This row's p50 over ringbridge's p50.
    ratio_to_ringbridge: f64,
    samples: usize,
}

/// The JSON report.
#[derive(Serialize)]
struct Report {
    backend: &'static str,
    backend_reason: String,
    device: usize,
    /// The GPU's name (CUDA backend only).
    gpu: Option<String>,
    payload_bytes: usize,
    messages: u64,
    warmup: u64,
    results: Vec<Row>,
    /// Fallback backend: ringbridge fallback p50 over the floor's p50.
    fallback_over_floor: Option<f64>,
    /// Fallback backend: alternating floor/fallback rounds (each with its own
    /// warm-up).
    rounds: Option<u64>,
    /// What reading the clock adds to every sample (the median of
    /// `Instant::now().elapsed()` with nothing between), in every row alike.
    clock_overhead_ns: u64,
    /// Fallback backend: `fallback_over_floor` with `clock_overhead_ns` taken
    /// out of both p50s first (the ratio of the round trips themselves).
    fallback_over_floor_net: Option<f64>,
}

pub(crate) fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let b = &args.bridge;
    if args.messages == 0 {
        bail!("--messages must be at least 1");
    }
    args.output.check()?;
    let (backend, reason) = match b.backend {
        Backend::Auto => ringbridge::Bridge::builder()
            .device(b.device)
            .resolve_backend()
            .context("cannot pick a backend")?,
        Backend::Cuda => (Backend::Cuda, "CUDA backend requested".to_string()),
        Backend::Fallback => (Backend::Fallback, "fallback backend requested".to_string()),
    };
    let gpu = match backend {
        Backend::Cuda => Some(cuda_ready(b.device).context("cannot compare on the CUDA backend")?),
        _ => None,
    };
    // Validates capacity, slot size and payload before anything runs.
    let builder = b.builder(SlotFormat::Auto)?.backend(backend);
    if !b.json {
        println!(
            "ringbridge compare: backend {backend} ({reason}){}, payload {} B, {} round trips each (+{} warm-up{})",
            gpu.as_deref()
                .map(|g| format!(" on {g}"))
                .unwrap_or_default(),
            b.payload,
            args.messages,
            args.warmup,
            if backend == Backend::Cuda {
                ""
            } else {
                " per round"
            }
        );
    }

    let mut measured = Vec::new();
    match backend {
        Backend::Cuda => {
            let bridge = builder.launch().context("cannot launch the bridge")?;
            let mut bar = Progress::new(
                format!("compare {RINGBRIDGE}"),
                args.warmup + args.messages,
                b.json,
            );
            let ours = measure_bridge(&bridge, b.payload, args.warmup, args.messages, &mut bar);
            bar.finish();
            let stopped = bridge.shutdown();
            let ours = ours?;
            stopped.context("cannot shut the bridge down")?;
            let work = Workload {
                device: b.device,
                payload: b.payload,
                warmup: args.warmup,
                messages: args.messages,
            };
            for alt in CudaAlternative::ALL {
                let total = args.warmup + args.messages;
                let mut bar = Progress::new(format!("compare {}", alt.name()), total, b.json);
                let samples = measure(alt, &work, &mut |done| bar.set(done))
                    .with_context(|| format!("{} failed", alt.name()))?;
                measured.push(Measured {
                    name: alt.name(),
                    description: alt.description(),
                    samples,
                });
            }
            measured.push(Measured {
                name: RINGBRIDGE,
                description: "ringbridge: persistent kernel, SPSC rings in mapped memory",
                samples: ours,
            });
        }
        _ => {
            let (floor, ours) = host_rounds(&builder, args)?;
            measured.push(Measured {
                name: FLOOR,
                description: "two threads ping-ponging a counter through two cache lines (the floor)",
                samples: floor,
            });
            measured.push(Measured {
                name: RINGBRIDGE,
                description: "ringbridge host fallback: the same ring protocol on a CPU thread",
                samples: ours,
            });
        }
    }

    let series: Vec<Series<'_>> = measured
        .iter()
        .map(|m| Series {
            name: m.name,
            samples: &m.samples,
        })
        .collect();
    if let Some(path) = &args.output.csv {
        plot::write_csv(path, &series)?;
    }
    if let Some(path) = &args.output.plot {
        let title = format!(
            "ringbridge compare: {backend} backend{}, {} B payload",
            gpu.as_deref()
                .map(|g| format!(" ({g})"))
                .unwrap_or_default(),
            b.payload
        );
        plot::write_svg(path, &title, &series)?;
    }

    let mut summaries = Vec::with_capacity(measured.len());
    for m in &mut measured {
        let s = Summary::of(&mut m.samples).with_context(|| format!("{}: no samples", m.name))?;
        summaries.push(s);
    }
    let ours_p50 = summaries.last().map_or(1, |s| s.p50_ns).max(1) as f64;
    let rows: Vec<Row> = measured
        .iter()
        .zip(&summaries)
        .map(|(m, s)| Row {
            name: m.name,
            description: m.description,
            latency: *s,
            ratio_to_ringbridge: s.p50_ns as f64 / ours_p50,
            samples: m.samples.len(),
        })
        .collect();
    let floor_p50 = rows
        .iter()
        .find(|r| r.name == FLOOR)
        .map(|f| f.latency.p50_ns.max(1) as f64);
    let fallback_over_floor = floor_p50.map(|f| ours_p50 / f);
    let clock = clock_overhead_ns() as f64;
    let fallback_over_floor_net = floor_p50
        .filter(|f| *f > clock)
        .map(|f| (ours_p50 - clock).max(0.0) / (f - clock));
    let report = Report {
        backend: backend.name(),
        backend_reason: reason,
        device: b.device,
        gpu,
        payload_bytes: b.payload,
        messages: args.messages,
        warmup: args.warmup,
        results: rows,
        fallback_over_floor,
        rounds: (backend != Backend::Cuda).then(|| FALLBACK_ROUNDS.min(args.messages)),
        clock_overhead_ns: clock as u64,
        fallback_over_floor_net,
    };
    if b.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// The GPU's name, or why CUDA cannot be used (no driver, no device, no
/// compiled kernels).
fn cuda_ready(device: usize) -> anyhow::Result<String> {
    match ringbridge::cuda::device_count()? {
        0 => bail!("CUDA is not available: the driver reports no CUDA device"),
        n if device >= n => {
            return Err(ringbridge::Error::DeviceOutOfRange {
                ordinal: device,
                count: n,
            }
            .into());
        }
        _ => {}
    }
    if !ringbridge::kernels::KERNELS_COMPILED {
        return Err(ringbridge::Error::KernelsNotCompiled(
            ringbridge::kernels::NOT_COMPILED_REASON.to_string(),
        )
        .into());
    }
    Ok(ringbridge::cuda::device_info(device)?.name)
}

/// The table for people.
fn print_table(r: &Report) {
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "{:<18} {:>10} {:>10} {:>10}  what",
        "name", "p50 (us)", "p99 (us)", "p50 ratio"
    );
    for row in &r.results {
        println!(
            "{:<18} {:>10.2} {:>10.2} {:>9.2}x  {}",
            row.name,
            us(row.latency.p50_ns),
            us(row.latency.p99_ns),
            row.ratio_to_ringbridge,
            row.description
        );
    }
    println!("(p50 ratio: the row's p50 over ringbridge's p50; every reply was checked)");
    if let Some(x) = r.fallback_over_floor {
        if let Some(rounds) = r.rounds {
            println!("(floor and fallback alternated in {rounds} rounds)");
        }
        println!("ringbridge host fallback p50 / floor p50 = {x:.2}x (target: at most 1.5x)");
        if let Some(net) = r.fallback_over_floor_net {
            println!(
                "  net of the clock's {} ns in every sample: {net:.2}x",
                r.clock_overhead_ns
            );
        }
    }
}

/// What timing a sample adds to it: the median of `Instant::now().elapsed()`
/// with nothing between, over 100,000 tries.
fn clock_overhead_ns() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    let mid = v.len() / 2;
    *v.select_nth_unstable(mid).1
}

/// Fallback backend: the floor and the fallback in [`FALLBACK_ROUNDS`] alternating
/// rounds (floor, then a freshly launched fallback bridge), each with its own
/// warm-up and its share of the messages. A VM may move its two vCPUs
/// between cores at any moment, which changes both figures (a 150 ns floor
/// became 500 ns from one run to the next on a 2-vCPU VM): alternating puts
/// both rows through the same placements, so their ratio stays meaningful.
/// Only one pair of threads spins at a time (each round's floor peer has
/// ended and the bridge is shut down before the other starts).
fn host_rounds(
    builder: &ringbridge::BridgeBuilder,
    args: &CompareArgs,
) -> anyhow::Result<(Vec<u64>, Vec<u64>)> {
    let rounds = FALLBACK_ROUNDS.min(args.messages);
    let per_round = |r: u64| args.messages / rounds + u64::from(r < args.messages % rounds);
    let total = 2 * (rounds * args.warmup + args.messages);
    let mut bar = Progress::new("compare host", total, args.bridge.json);
    let capacity = usize::try_from(args.messages).unwrap_or(0);
    let (mut floor_samples, mut ours) =
        (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
    for r in 0..rounds {
        floor_samples.extend(floor(args.warmup, per_round(r), &mut bar)?);
        let bridge = builder
            .clone()
            .launch()
            .context("cannot launch the bridge")?;
        let got = measure_bridge(
            &bridge,
            args.bridge.payload,
            args.warmup,
            per_round(r),
            &mut bar,
        );
        let stopped = bridge.shutdown();
        ours.extend(got?);
        stopped.context("cannot shut the bridge down")?;
    }
    bar.finish();
    Ok((floor_samples, ours))
}

/// ringbridge itself: send + receive one message at a time, checked;
/// `warmup` untimed round trips first, then `messages` timed ones.
fn measure_bridge(
    bridge: &Bridge,
    size: usize,
    warmup: u64,
    messages: u64,
    bar: &mut Progress,
) -> anyhow::Result<Vec<u64>> {
    let total = warmup + messages;
    let mut payload: Vec<u8> = (0..size).map(|i| (i * 13 + 5) as u8).collect();
    let mut expected = vec![0u8; size];
    let mut samples = Vec::with_capacity(usize::try_from(messages).unwrap_or(0));
    for i in 0..total {
        payload[..size.min(8)].copy_from_slice(&i.to_le_bytes()[..size.min(8)]);
        // The expected reply is made before the clock starts, so checking
        // the reply costs one slice comparison inside the timed span.
        for (e, p) in expected.iter_mut().zip(&payload) {
            *e = p.wrapping_add(1);
        }
        let t0 = Instant::now();
        let seq = bridge.send(&payload)?;
        let ok = bridge.recv_with(|h, p| h.correlation == seq && p == expected.as_slice())?;
        let dt = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if !ok {
            bail!("{RINGBRIDGE}: wrong reply to message {i}");
        }
        if i >= warmup {
            samples.push(dt);
        }
        bar.inc();
    }
    Ok(samples)
}

/// Spins until `f` returns `Some`, waiting as the bridge does
/// ([`Spin`]); gives up after [`FLOOR_TIMEOUT`].
fn spin_until<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    let mut spin = Spin::default();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if spin.polls() % 1024 == 1023 && start.elapsed() > FLOOR_TIMEOUT {
            return None;
        }
        spin.snooze();
    }
}

/// The host floor: the main thread stores `i` in one cache line (release),
/// a peer thread spins for it (acquire) and answers `i` in another line;
/// each round trip is timed and its answer checked.
///
/// Memory order: the counters carry no other data, so release/acquire
/// orders nothing the floor relies on; they are the orderings the rings'
/// counters use (and cost nothing more than relaxed on x86), so the floor
/// does what the bridge's head and tail do.
fn floor(warmup: u64, messages: u64, bar: &mut Progress) -> anyhow::Result<Vec<u64>> {
    let ping = CachePadded::new(AtomicU64::new(0));
    let pong = CachePadded::new(AtomicU64::new(0));
    let total = warmup + messages;
    std::thread::scope(|s| {
        let peer = s.spawn(|| {
            let mut last = 0;
            loop {
                let Some(v) = spin_until(|| {
                    let v = ping.load(Ordering::Acquire);
                    (v != last).then_some(v)
                }) else {
                    // No request for a long time: the main thread gave up.
                    return;
                };
                if v == FLOOR_STOP {
                    return;
                }
                pong.store(v, Ordering::Release);
                last = v;
            }
        });
        let result = (|| -> anyhow::Result<Vec<u64>> {
            let mut samples = Vec::with_capacity(usize::try_from(messages).unwrap_or(0));
            for i in 1..=total {
                let t0 = Instant::now();
                ping.store(i, Ordering::Release);
                let answer = spin_until(|| match pong.load(Ordering::Acquire) {
                    v if v == i - 1 => None,
                    v => Some(v),
                });
                let dt = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                match answer {
                    Some(v) if v == i => {}
                    Some(v) => bail!("{FLOOR}: wrong answer to message {i}: {v}"),
                    None => bail!("{FLOOR}: no answer to message {i} within {FLOOR_TIMEOUT:?}"),
                }
                if i > warmup {
                    samples.push(dt);
                }
                bar.inc();
            }
            Ok(samples)
        })();
        ping.store(FLOOR_STOP, Ordering::Release);
        peer.join()
            .map_err(|_| anyhow::anyhow!("{FLOOR}: the peer thread panicked"))?;
        result
    })
}
