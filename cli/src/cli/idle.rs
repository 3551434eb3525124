//! `ringbridge idle`: what an idle bridge costs and how fast it wakes, per
//! wait policy, side by side in one run. For each policy: the process's CPU
//! time while one host thread is blocked in `recv_timeout` and the serve
//! side has nothing to do, as a share of one core; then the round trip of
//! the first message after 1 ms, 10 ms and 1 s of silence (median and max);
//! and, for what the doorbell costs a busy bridge, the median of
//! back-to-back round trips.
//! Method and results: docs/perf-idle.md.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use ringbridge::{Bridge, Error, WaitPolicy};

/// Options of `ringbridge idle`.
#[derive(Args, Debug)]
pub(crate) struct IdleArgs {
    /// auto, cuda or fallback (`host` and `cpu` are accepted for fallback, `gpu` for cuda).
    #[arg(long, default_value = "fallback", value_parser = super::parse_backend)]
    pub backend: ringbridge::Backend,
    /// Seconds of idle CPU measurement per policy.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Round trips timed after each length of silence.
    #[arg(long, default_value_t = 7)]
    pub samples: usize,
    /// Policies to measure (spin, backoff, spin-then-park, low-power); all by default.
    #[arg(long, value_delimiter = ',', value_parser = parse_policy)]
    pub policy: Vec<WaitPolicy>,
}

fn parse_policy(s: &str) -> std::result::Result<WaitPolicy, String> {
    WaitPolicy::ALL
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| format!("unknown policy {s:?}: spin, backoff, spin-then-park or low-power"))
}

/// Silences after which the first round trip is timed.
const GAPS: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(10),
    Duration::from_secs(1),
];

/// CPU time of every thread of this process so far: the sum of the first
/// field of `/proc/self/task/*/schedstat` (nanoseconds on a CPU). Threads
/// that exited are not counted; none exits during a measurement.
fn process_cpu() -> Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read: skip it.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ns = text.split_whitespace().next().unwrap_or("0");
        total += ns
            .parse::<u64>()
            .with_context(|| format!("{}: {text:?}", path.display()))?;
    }
    Ok(Duration::from_nanos(total))
}

fn percent_of_core(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
}

/// One policy's figures.
struct Row {
    policy: WaitPolicy,
    cpu_percent: f64,
    /// (median, max) per gap of [`GAPS`], in microseconds.
    wake: Vec<(f64, f64)>,
    /// Median of [`BUSY_ROUND_TRIPS`] back-to-back round trips, in ns.
    busy_ns: f64,
}

/// Back-to-back round trips timed for the busy column.
const BUSY_ROUND_TRIPS: usize = 20_000;

fn measure(args: &IdleArgs, policy: WaitPolicy) -> Result<Row> {
    let bridge = Bridge::builder()
        .backend(args.backend)
        .wait_policy(policy)
        .launch()?;
    bridge.round_trip(b"warm")?;

    // Idle CPU: one thread blocked in recv_timeout for the whole window,
    // this one asleep, the serve side idle.
    let window = Duration::from_secs_f64(args.seconds);
    let (cpu, wall) = std::thread::scope(|s| -> Result<(Duration, Duration)> {
        let receiver = s.spawn(|| bridge.recv_timeout(window + Duration::from_secs(1)));
        // Let the receiver reach its wait before the clock starts.
        std::thread::sleep(Duration::from_millis(50));
        let (cpu0, t0) = (process_cpu()?, Instant::now());
        std::thread::sleep(window);
        let (cpu1, t1) = (process_cpu()?, Instant::now());
        match receiver.join().expect("receiver thread panicked") {
            Err(Error::Timeout { .. }) => {}
            other => anyhow::bail!("an idle bridge's recv_timeout returned {other:?}"),
        }
        Ok((cpu1 - cpu0, t1 - t0))
    })?;

    let mut wake = Vec::new();
    for gap in GAPS {
        let mut rtt: Vec<f64> = Vec::with_capacity(args.samples);
        for i in 0..args.samples {
            std::thread::sleep(gap);
            let payload = [i as u8];
            let t = Instant::now();
            let reply = bridge.round_trip(&payload)?;
            rtt.push(t.elapsed().as_secs_f64() * 1e6);
            anyhow::ensure!(reply.payload == [(i as u8).wrapping_add(1)], "wrong reply");
        }
        rtt.sort_by(f64::total_cmp);
        wake.push((rtt[rtt.len() / 2], rtt[rtt.len() - 1]));
    }
    let mut busy: Vec<f64> = Vec::with_capacity(BUSY_ROUND_TRIPS);
    for i in 0..BUSY_ROUND_TRIPS {
        let t = Instant::now();
        let reply = bridge.round_trip(&[i as u8])?;
        busy.push(t.elapsed().as_secs_f64() * 1e9);
        anyhow::ensure!(reply.payload == [(i as u8).wrapping_add(1)], "wrong reply");
    }
    busy.sort_by(f64::total_cmp);
    bridge.shutdown()?;
    Ok(Row {
        busy_ns: busy[busy.len() / 2],
        policy,
        cpu_percent: percent_of_core(cpu, wall),
        wake,
    })
}

pub(crate) fn run(args: &IdleArgs) -> Result<()> {
    anyhow::ensure!(args.samples > 0, "--samples must be at least 1");
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    let policies = if args.policy.is_empty() {
        WaitPolicy::ALL.to_vec()
    } else {
        args.policy.clone()
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "idle bridge, backend {:?}: CPU over {} s with a thread blocked in recv_timeout; \
         round trip after silence, {} samples (median / max)",
        args.backend, args.seconds, args.samples
    );
    println!("load average at start: {}", load.trim());
    println!(
        "| policy | idle CPU (% of one core) | after 1 ms | after 10 ms | after 1 s | back to back (p50) |\n|---|---|---|---|---|---|"
    );
    for policy in policies {
        let row = measure(args, policy)?;
        let cells: Vec<String> = row
            .wake
            .iter()
            .map(|(p50, max)| format!("{p50:.0} / {max:.0} us"))
            .collect();
        println!(
            "| {} | {:.2} | {} | {:.0} ns |",
            row.policy.name(),
            row.cpu_percent,
            cells.join(" | "),
            row.busy_ns
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
    Ok(())
}
