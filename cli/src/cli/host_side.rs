//! `ringbridge host-side`: what the host's halves of a ring cost per
//! message with the device side taken out, one thread per figure, beside a
//! plain memcpy of the same bytes into (or out of) the same memory.
//!
//! The producer is timed writing and publishing batches into a ring whose
//! consumer is instant (the ring's own consumer half reads and releases
//! each batch, untimed, on the same thread); the consumer is timed reading,
//! validating and releasing batches that the producer half published just
//! before, untimed. See [`rig`] for the loops (shared with
//! `benches/host_side.rs`). The ring and the memcpy alternate round by
//! round. Every batch is timed alone; the figures are the median batch's ns
//! per message (a batch during which this thread was preempted drops out,
//! which matters on a shared machine), with the median round's mean beside
//! them (`mean`: every batch counted).

mod rig;

use std::time::{Duration, Instant};

use anyhow::bail;
use ringbridge::ring::{RingSpec, SlotFormat};
use serde::Serialize;

use super::HostSideArgs;
use rig::{Op, Rig};

#[derive(Serialize)]
struct Report {
    batch: usize,
    capacity: usize,
    rounds: usize,
    seconds_per_figure: f64,
    /// One `Instant::now` + `elapsed`, which each timed batch includes once.
    timer_ns: f64,
    rows: Vec<Row>,
    /// Format and payload pairs that could not run, and why.
    skipped: Vec<Skipped>,
}

#[derive(Serialize)]
struct Row {
    format: &'static str,
    payload_bytes: usize,
    slot_size: usize,
    /// `producer` or `consumer`.
    side: &'static str,
    /// The timed loops: `produce` and `memcpy_in`, or `consume` and
    /// `memcpy_out`.
    ops: [&'static str; 2],
    /// The median batch's ns per message.
    ns_per_msg: f64,
    gbytes_per_s: f64,
    memcpy_ns_per_msg: f64,
    memcpy_gbytes_per_s: f64,
    /// ns per message over whole rounds (every batch, preempted ones too):
    /// the median round.
    mean_ns_per_msg: f64,
    memcpy_mean_ns_per_msg: f64,
    /// gbytes_per_s over memcpy_gbytes_per_s.
    share_of_memcpy: f64,
    /// Messages timed per round.
    messages_per_round: u64,
}

#[derive(Serialize)]
struct Skipped {
    format: &'static str,
    payload_bytes: usize,
    reason: String,
}

/// Median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median cost of an `Instant::now` and its `elapsed`.
fn timer_ns() -> f64 {
    let mut v: Vec<f64> = (0..1001)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(t.elapsed()).as_nanos() as f64
        })
        .collect();
    median(&mut v)
}

/// How many messages of `op` fill about `wall` of wall-clock time (timed
/// and untimed parts together), found by doubling; warms the rig up too.
fn calibrate(rig: &mut Rig, op: Op, wall: Duration, batch: usize) -> anyhow::Result<u64> {
    let mut n = batch as u64;
    loop {
        let t = Instant::now();
        rig.time(op, n)?;
        let took = t.elapsed();
        if took >= wall / 4 || n >= 1 << 40 {
            let scale = wall.as_secs_f64() / took.as_secs_f64().max(1e-9);
            return Ok(((n as f64 * scale) as u64).max(1));
        }
        n *= 2;
    }
}

/// ns per message of one op: the median over rounds of each round's mean,
/// and the median over every batch of all rounds.
#[derive(Default)]
struct Samples {
    rounds: Vec<f64>,
    batches: Vec<f64>,
}

impl Samples {
    fn round(&mut self, rig: &mut Rig, op: Op, messages: u64) -> anyhow::Result<()> {
        let batches = &mut self.batches;
        let total = rig.time_each(op, messages, |n, d| {
            batches.push(d.as_nanos() as f64 / n as f64)
        })?;
        self.rounds.push(total.as_nanos() as f64 / messages as f64);
        Ok(())
    }

    /// (median round mean, median batch).
    fn medians(mut self) -> (f64, f64) {
        (median(&mut self.rounds), median(&mut self.batches))
    }
}

/// The ring half's and its memcpy ceiling's samples, alternating round by
/// round; and the ring's messages per round.
fn measure(
    rig: &mut Rig,
    ring: Op,
    copy: Op,
    args: &HostSideArgs,
) -> anyhow::Result<(Samples, Samples, u64)> {
    // Half of the figure's time goes to the ring, half to the memcpy.
    let round = Duration::from_secs_f64(args.seconds / 2.0 / args.rounds as f64);
    let n_ring = calibrate(rig, ring, round, args.batch)?;
    let n_copy = calibrate(rig, copy, round, args.batch)?;
    let (mut r, mut c) = (Samples::default(), Samples::default());
    for _ in 0..args.rounds {
        r.round(rig, ring, n_ring)?;
        c.round(rig, copy, n_copy)?;
    }
    Ok((r, c, n_ring))
}

pub(crate) fn run(args: &HostSideArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.rounds == 0 || args.sizes.is_empty() {
        bail!("--batch, --rounds and --sizes need at least 1");
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        bail!("--seconds must be a positive number");
    }
    let capacity = RingSpec::new(args.capacity, 64)?.capacity();
    if args.batch > capacity {
        bail!(
            "a batch of {} does not fit a ring of {capacity} slots",
            args.batch
        );
    }
    let timer = timer_ns();
    if !args.json {
        println!(
            "ringbridge host-side: one thread, batches of {}, rings of {capacity} slots, \
             {} rounds; ns/msg of the median batch, `mean` of the median round \
             (timer {timer:.0} ns per batch = {:.2} ns/msg)",
            args.batch,
            args.rounds,
            timer / args.batch as f64
        );
        println!(
            "{:<6} {:>8} {:<9} {:>8} {:>7} {:>7} {:>13} {:>12} {:>7} {:>6}",
            "format",
            "payload",
            "side",
            "ns/msg",
            "GB/s",
            "mean",
            "memcpy ns/msg",
            "memcpy GB/s",
            "mean",
            "share"
        );
    }
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for format in [SlotFormat::Slots, SlotFormat::Lanes] {
        for &size in &args.sizes {
            if format == SlotFormat::Lanes && RingSpec::lane_slot_size_for(size).is_none() {
                let reason = "a lane slot carries at most 248 B".to_string();
                if !args.json {
                    println!("{:<6} {:>6} B  n/a: {reason}", format.name(), size);
                }
                skipped.push(Skipped {
                    format: format.name(),
                    payload_bytes: size,
                    reason,
                });
                continue;
            }
            let mut rig = Rig::new(format, size, capacity, args.batch)?;
            // Each half, then its ceiling: produce and memcpy_in, consume
            // and memcpy_out.
            for pair in Op::ALL.chunks_exact(2) {
                let (ring, copy) = (pair[0], pair[1]);
                let side = match ring {
                    Op::Produce => "producer",
                    _ => "consumer",
                };
                let (r, c, n) = measure(&mut rig, ring, copy, args)?;
                let ((ns_mean, ns), (copy_ns_mean, copy_ns)) = (r.medians(), c.medians());
                let row = Row {
                    format: format.name(),
                    payload_bytes: size,
                    slot_size: rig.slot_size(),
                    side,
                    ops: [ring.name(), copy.name()],
                    ns_per_msg: ns,
                    gbytes_per_s: size as f64 / ns,
                    memcpy_ns_per_msg: copy_ns,
                    memcpy_gbytes_per_s: size as f64 / copy_ns,
                    mean_ns_per_msg: ns_mean,
                    memcpy_mean_ns_per_msg: copy_ns_mean,
                    share_of_memcpy: copy_ns / ns,
                    messages_per_round: n,
                };
                if !args.json {
                    println!(
                        "{:<6} {:>6} B {:<9} {:>8.2} {:>7.2} {:>7.2} {:>13.2} {:>12.2} {:>7.2} {:>5.0}%",
                        row.format,
                        row.payload_bytes,
                        row.side,
                        row.ns_per_msg,
                        row.gbytes_per_s,
                        row.mean_ns_per_msg,
                        row.memcpy_ns_per_msg,
                        row.memcpy_gbytes_per_s,
                        row.memcpy_mean_ns_per_msg,
                        row.share_of_memcpy * 100.0
                    );
                }
                rows.push(row);
            }
        }
    }
    if args.json {
        let report = Report {
            batch: args.batch,
            capacity,
            rounds: args.rounds,
            seconds_per_figure: args.seconds,
            timer_ns: timer,
            rows,
            skipped,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
