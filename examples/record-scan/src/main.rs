//! Scans a table of records the host owns from inside the kernel: the
//! kernel pulls it page by page through host calls while it answers
//! queries, each checked against the host's own aggregates of the same
//! records.
//!
//! ```text
//! record-scan [--backend auto|fallback|cuda] [--records N] [--buckets N]
//!             [--queries N] [--seed N] [--log-every PAGES]
//! ```
//!
//! `auto` (the default) runs on the GPU when there is one and the kernel was
//! built for it, else on the host fallback, and says why; with
//! `RINGBRIDGE_REQUIRE_GPU=1` it must be the GPU. Exits non-zero on any
//! error or wrong answer.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use record_scan::{Reference, ScanConfig, ScanState, Scanner, generate_records};
use ringbridge::{Backend, Bridge};

/// The command line's settings.
struct Args {
    backend: Backend,
    records: usize,
    buckets: u32,
    queries: u64,
    seed: u64,
    log_every: u32,
}

const USAGE: &str = "usage: record-scan [--backend auto|fallback|cuda] [--records N] [--buckets N] [--queries N] [--seed N] [--log-every PAGES]";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        backend: Backend::Auto,
        records: 100_000,
        buckets: 64,
        queries: 100_000,
        seed: 0x5eed,
        log_every: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        let bad = || format!("{flag} {value}: not a valid value\n{USAGE}");
        match flag.as_str() {
            "--backend" => {
                args.backend = match value.as_str() {
                    "auto" => Backend::Auto,
                    "fallback" => Backend::Fallback,
                    "cuda" => Backend::Cuda,
                    _ => bail!(bad()),
                }
            }
            "--records" => args.records = value.parse().with_context(bad)?,
            "--buckets" => args.buckets = value.parse().with_context(bad)?,
            "--queries" => args.queries = value.parse().with_context(bad)?,
            "--seed" => args.seed = value.parse().with_context(bad)?,
            "--log-every" => args.log_every = value.parse().with_context(bad)?,
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    ensure!(args.buckets > 0, "--buckets must be at least 1");
    Ok(args)
}

/// Prints log lines to stderr: the kernel's (`rb_log`, target
/// `ringbridge::kernel`) from info up, everything else from warnings up.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        if metadata.target() == "ringbridge::kernel" {
            metadata.level() <= log::Level::Info
        } else {
            metadata.level() <= log::Level::Warn
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("[{} {}] {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    log::set_logger(&LOGGER).map_err(|e| anyhow!("installing the logger: {e}"))?;
    log::set_max_level(log::LevelFilter::Info);

    let start = Instant::now();
    let records: Arc<[_]> = generate_records(args.records, args.seed).into();
    let reference = Reference::new(&records, args.buckets);
    println!(
        "table: {} records in {} pages of up to {}, {} buckets (seed {:#x}), reference computed in {:.1} ms",
        reference.records(),
        reference.pages(),
        record_scan::PAGE_RECORDS,
        args.buckets,
        args.seed,
        start.elapsed().as_secs_f64() * 1e3
    );

    let config = ScanConfig {
        buckets: args.buckets,
        log_every: args.log_every,
        background: true,
    };
    let builder = Bridge::builder().backend(args.backend);
    let scanner = Scanner::launch(builder, records, config).context("launch")?;
    let bridge = scanner.bridge();
    println!(
        "record-scan on {} ({})",
        bridge.backend().name(),
        bridge.backend_reason()
    );
    if std::env::var("RINGBRIDGE_REQUIRE_GPU").is_ok_and(|v| v == "1")
        && bridge.backend() != Backend::Cuda
    {
        bail!("RINGBRIDGE_REQUIRE_GPU=1 but {}", bridge.backend_reason());
    }

    // While the kernel scans in the background: queries over every bucket
    // in turn, each checked against the aggregates of exactly the records
    // it says it has scanned.
    let scan_start = Instant::now();
    let mut during = 0u64;
    let mut partial = 0u64;
    loop {
        let answer = scanner.query((during % u64::from(args.buckets)) as u32)?;
        reference
            .check(&answer)
            .map_err(|e| anyhow!("wrong answer during the scan: {e}"))?;
        during += 1;
        match answer.progress.state {
            ScanState::Complete => break,
            ScanState::Failed { page, status } => {
                bail!("the scan stopped: page {page} failed with status {status}")
            }
            ScanState::Scanning => partial += 1,
        }
        ensure!(
            scan_start.elapsed() < Duration::from_secs(120),
            "the scan did not complete in 120 s: {:?}",
            answer.progress
        );
    }
    let scan_time = scan_start.elapsed();
    let done = scanner.progress()?;
    ensure!(
        (done.pages, done.records) == (reference.pages(), reference.records()),
        "complete with {} pages and {} records, the table has {} and {}",
        done.pages,
        done.records,
        reference.pages(),
        reference.records()
    );
    println!(
        "scan: {} records in {} pages in {:.1} ms ({:.2} M records/s), {} queries answered meanwhile ({} of a partial scan), every one checked",
        done.records,
        done.pages,
        scan_time.as_secs_f64() * 1e3,
        done.records as f64 / scan_time.as_secs_f64() / 1e6,
        during,
        partial
    );

    // The complete table: every bucket, then random buckets, each checked.
    let mut rng = record_scan::XorShift::new(args.seed ^ 0x9e37);
    let query_start = Instant::now();
    for i in 0..args.queries {
        let bucket = if i < u64::from(args.buckets) {
            i as u32
        } else {
            (rng.next_u64() % u64::from(args.buckets)) as u32
        };
        let answer = scanner.query(bucket)?;
        ensure!(
            answer.progress.state == ScanState::Complete,
            "query {i} after the scan: {:?}",
            answer.progress
        );
        reference
            .check(&answer)
            .map_err(|e| anyhow!("wrong answer to query {i}: {e}"))?;
    }
    let query_time = query_start.elapsed();
    println!(
        "queries: {} over the complete table, every one checked: {:.0} queries/s",
        args.queries,
        args.queries as f64 / query_time.as_secs_f64()
    );

    let stats = bridge.stats();
    println!(
        "calls: {} served ({} pages, {} refused: the page past the end), {} log lines; bridge: {} requests, {} replies",
        stats.calls.served,
        stats.calls.served - stats.calls.failed,
        stats.calls.failed,
        stats.calls.logged,
        stats.sent,
        stats.received
    );
    ensure!(
        stats.calls.served == done.pages + 1 && stats.calls.failed == 1,
        "expected {} page calls and one refused, the bridge counted {:?}",
        done.pages,
        stats.calls
    );

    let buckets = scanner.shutdown()?;
    ensure!(
        buckets == reference.totals(),
        "the buckets read back after shutdown differ from the reference"
    );
    println!(
        "buckets read back after shutdown: all {} equal the reference",
        buckets.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("record-scan: {e:#}");
            ExitCode::FAILURE
        }
    }
}
