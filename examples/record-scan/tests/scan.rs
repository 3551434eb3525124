//! The record scanner on the host fallback (one thread) and on an emulated
//! GPU block (64 CPU threads serving a batch at once), every answer checked
//! against the host's own aggregates of the same records: a background scan
//! with queries during and after it, pulls from whole batches at once, a
//! page service that fails, bad requests, the kernel's log lines, a
//! shutdown mid-scan; the handler under the race check (ThreadSanitizer);
//! the kernel's PTX when nvcc built it; and the GPU when there is one.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use record_scan::*;
use ringbridge::calls::ServiceError;
use ringbridge::layout::CALL_FAILED;
use ringbridge::{Backend, Bridge, BridgeBuilder};

/// Threads of the emulated block.
const EMULATED: u32 = 64;

const WAIT: Duration = Duration::from_secs(60);

/// The two ways a machine without a GPU runs the kernel.
fn both() -> [(&'static str, BridgeBuilder); 2] {
    let base = || {
        Bridge::builder()
            .backend(Backend::Fallback)
            .hang_timeout(Duration::from_secs(20))
    };
    [
        ("fallback", base()),
        ("emulated", base().emulate_block(EMULATED)),
    ]
}

fn table(n: usize, seed: u64) -> Arc<[Record]> {
    generate_records(n, seed).into()
}

/// Records in page `page` of the table.
fn page_len(reference: &Reference, page: u64) -> u64 {
    let first = page * PAGE_RECORDS as u64;
    reference
        .records()
        .saturating_sub(first)
        .min(PAGE_RECORDS as u64)
}

/// Checks a finished scan: progress, every bucket's answer, the calls the
/// bridge served, and the buckets read back after shutdown.
fn check_complete(mode: &str, scanner: &Scanner, reference: &Reference) {
    let done = scanner.progress().unwrap();
    assert_eq!(
        done,
        Progress {
            pages: reference.pages(),
            records: reference.records(),
            state: ScanState::Complete
        },
        "{mode}"
    );
    for bucket in 0..reference.buckets() {
        let answer = scanner.query(bucket).unwrap();
        reference
            .check(&answer)
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(answer.stats, reference.total(bucket), "{mode}");
    }
    let calls = scanner.bridge().stats().calls;
    // Every page once, and at least one refused as past the end.
    assert!(calls.failed >= 1, "{mode}: {calls:?}");
    assert_eq!(
        calls.served - calls.failed,
        reference.pages(),
        "{mode}: {calls:?}"
    );
    assert_eq!(scanner.shutdown().unwrap(), reference.totals(), "{mode}");
}

#[test]
fn a_background_scan_answers_every_bucket_as_the_reference_does() {
    // 47 pages, the last of 456 records; 37 buckets.
    let records = table(23_456, 0x5eed);
    let config = ScanConfig {
        buckets: 37,
        log_every: 0,
        background: true,
    };
    let reference = Reference::new(&records, config.buckets);
    for (mode, builder) in both() {
        let scanner = Scanner::launch(builder, records.clone(), config).unwrap();
        // Queries while the kernel scans: each is exact for the records it
        // says it has seen.
        let start = Instant::now();
        let mut seen = BTreeSet::new();
        let mut i = 0u32;
        loop {
            let answer = scanner.query(i % config.buckets).unwrap();
            reference
                .check(&answer)
                .unwrap_or_else(|e| panic!("{mode}: {e}"));
            seen.insert(answer.progress.records);
            i += 1;
            if answer.progress.state == ScanState::Complete {
                break;
            }
            assert_eq!(answer.progress.state, ScanState::Scanning, "{mode}");
            assert!(start.elapsed() < WAIT, "{mode}: {answer:?}");
        }
        println!(
            "{mode}: {i} queries during the scan saw {} different progresses",
            seen.len()
        );
        assert_eq!(scanner.wait_complete(WAIT).unwrap().pages, 47, "{mode}");
        // The idle hook pulls one page at a time and stops at the end:
        // exactly one call past it.
        let calls = scanner.bridge().stats().calls;
        assert_eq!((calls.served, calls.failed), (48, 1), "{mode}: {calls:?}");
        check_complete(mode, &scanner, &reference);
    }
}

#[test]
fn pulls_from_whole_batches_fold_every_page_exactly_once() {
    // 61 pages, the last of 1 record.
    let records = table(30_001, 0xb10c);
    let config = ScanConfig {
        buckets: 64,
        log_every: 0,
        background: false,
    };
    let reference = Reference::new(&records, config.buckets);
    for (mode, builder) in both() {
        let scanner = Scanner::launch(builder, records.clone(), config).unwrap();
        // Nothing scans by itself.
        std::thread::sleep(Duration::from_millis(20));
        let idle = scanner.progress().unwrap();
        assert_eq!((idle.pages, idle.state), (0, ScanState::Scanning), "{mode}");
        // Rounds of 50 pulls sent at once: the emulated block takes what it
        // finds in the ring as one batch (up to 64), one thread each,
        // all calling the host at the same time.
        let mut folded = BTreeSet::new();
        let mut records_folded = 0u64;
        let mut past_end = 0;
        let mut rounds = 0;
        while scanner.progress().unwrap().state != ScanState::Complete {
            rounds += 1;
            assert!(rounds <= 3, "{mode}: not complete after {rounds} rounds");
            for outcome in scanner.pull(50).unwrap() {
                match outcome {
                    PullOutcome::Folded { page, records } => {
                        assert!(folded.insert(page), "{mode}: page {page} folded twice");
                        let want = page_len(&reference, page);
                        assert_eq!(u64::from(records), want, "{mode}: page {page}");
                        records_folded += u64::from(records);
                    }
                    PullOutcome::PastEnd { .. } => past_end += 1,
                    PullOutcome::Failed { page, status } => {
                        panic!("{mode}: page {page:?} failed with status {status}")
                    }
                }
            }
            // Between rounds no pull is in flight: answers are exact.
            for bucket in [0, 17, 63] {
                let answer = scanner.query(bucket).unwrap();
                reference
                    .check(&answer)
                    .unwrap_or_else(|e| panic!("{mode}: {e}"));
            }
        }
        assert_eq!(rounds, 2, "{mode}");
        // Pulls that had claimed a page past the end before the first of
        // them learnt it each made a call the service refused: one on the
        // fallback, which serves them in order, maybe more in a block.
        let calls = scanner.bridge().stats().calls;
        println!("{mode}: {calls:?}");
        if mode == "fallback" {
            assert_eq!(calls.failed, 1, "{mode}: {calls:?}");
        }
        assert_eq!(
            folded,
            (0..reference.pages()).collect::<BTreeSet<_>>(),
            "{mode}"
        );
        assert_eq!(records_folded, reference.records(), "{mode}");
        assert_eq!(past_end, 100 - 61, "{mode}");
        // More pulls find the end known: no page claimed, no call made.
        let served = scanner.bridge().stats().calls.served;
        assert!(
            scanner
                .pull(5)
                .unwrap()
                .iter()
                .all(|o| *o == PullOutcome::PastEnd { page: None }),
            "{mode}"
        );
        assert_eq!(scanner.bridge().stats().calls.served, served, "{mode}");
        check_complete(mode, &scanner, &reference);
    }
}

#[test]
fn a_page_that_fails_stops_the_scan_and_queries_report_it() {
    // 20 pages; page 7 fails.
    let records = table(10_000, 7);
    let config = ScanConfig {
        buckets: 16,
        log_every: 0,
        background: true,
    };
    let reference = Reference::new(&records, config.buckets);
    for (mode, builder) in both() {
        let asked = Arc::new(AtomicU64::new(0));
        let (r, a) = (records.clone(), asked.clone());
        let scanner = Scanner::launch_with_pages(builder, config, move |index| {
            a.fetch_add(1, Ordering::Relaxed);
            if index == 7 {
                return Err(ServiceError::with_code(40, "storage unavailable"));
            }
            page(&r, index).map(<[Record]>::to_vec)
        })
        .unwrap();
        let err = scanner.wait_complete(WAIT).unwrap_err();
        assert!(
            matches!(
                err,
                ScanError::PageFailed {
                    page: 7,
                    status: 40
                }
            ),
            "{mode}: {err}"
        );
        assert_eq!(
            err.to_string(),
            "the scan stopped: page 7 failed with status 40"
        );
        // The pages before it stay, exact, and nothing more is asked for.
        std::thread::sleep(Duration::from_millis(20));
        let failed = ScanState::Failed {
            page: 7,
            status: 40,
        };
        for bucket in 0..config.buckets {
            let answer = scanner.query(bucket).unwrap();
            assert_eq!(
                answer.progress,
                Progress {
                    pages: 7,
                    records: 3_500,
                    state: failed
                },
                "{mode}"
            );
            reference
                .check(&answer)
                .unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        assert_eq!(asked.load(Ordering::Relaxed), 8, "{mode}");
        // Pulls report the failure without calling the host.
        assert_eq!(
            scanner.pull(3).unwrap(),
            [PullOutcome::Failed {
                page: None,
                status: 40
            }; 3],
            "{mode}"
        );
        let calls = scanner.bridge().stats().calls;
        assert_eq!((calls.served, calls.failed), (8, 1), "{mode}: {calls:?}");
        scanner.shutdown().unwrap();
    }
}

#[test]
fn an_oversized_page_is_a_failed_call_not_a_corrupted_scan() {
    let config = ScanConfig {
        buckets: 4,
        log_every: 0,
        background: false,
    };
    for (mode, builder) in both() {
        let scanner = Scanner::launch_with_pages(builder, config, |index| {
            let n = if index == 1 { PAGE_RECORDS + 1 } else { 10 };
            Ok(vec![Record { key: 1, value: 5 }; n])
        })
        .unwrap();
        // One pull at a time: the pulls of one round may run at once
        // (emulated), claiming pages in any order.
        let mut pulled = Vec::new();
        for _ in 0..3 {
            pulled.extend(scanner.pull(1).unwrap());
        }
        assert_eq!(
            pulled,
            [
                PullOutcome::Folded {
                    page: 0,
                    records: 10
                },
                PullOutcome::Failed {
                    page: Some(1),
                    status: CALL_FAILED
                },
                PullOutcome::Failed {
                    page: None,
                    status: CALL_FAILED
                },
            ],
            "{mode}"
        );
        let answer = scanner.query(1).unwrap();
        assert_eq!(
            answer.stats,
            BucketStats {
                count: 10,
                sum: 50,
                max: 5
            },
            "{mode}"
        );
        assert!(matches!(
            scanner.wait_complete(WAIT),
            Err(ScanError::PageFailed {
                page: 1,
                status: CALL_FAILED
            })
        ));
        scanner.shutdown().unwrap();
    }
}

#[test]
fn bad_requests_get_their_error_replies_and_the_scan_goes_on() {
    let records = table(2_000, 11);
    let config = ScanConfig {
        buckets: 8,
        log_every: 0,
        background: true,
    };
    let reference = Reference::new(&records, config.buckets);
    for (mode, builder) in both() {
        let scanner = Scanner::launch(builder, records.clone(), config).unwrap();
        assert!(
            matches!(
                scanner.query(8),
                Err(ScanError::Refused {
                    op: OP_QUERY,
                    code: ERR_BAD_BUCKET
                })
            ),
            "{mode}"
        );
        let bridge = scanner.bridge();
        for bad in [&[1u8, 0, 0, 0][..], &[9, 0, 0, 0, 0, 0, 0, 0], &[0; 9]] {
            let m = bridge.round_trip(bad).unwrap();
            assert!(
                m.is_error() && m.header.flags == ERR_BAD_REQUEST,
                "{mode}: {m:?}"
            );
        }
        scanner.wait_complete(WAIT).unwrap();
        check_complete(mode, &scanner, &reference);
    }
    let none = Scanner::launch(
        Bridge::builder().backend(Backend::Fallback),
        table(10, 1),
        ScanConfig {
            buckets: 0,
            ..ScanConfig::default()
        },
    );
    assert!(matches!(
        none,
        Err(ScanError::Bridge(ringbridge::Error::InvalidArgument(_)))
    ));
}

#[test]
fn an_empty_table_is_complete_after_one_call() {
    for (mode, builder) in both() {
        let scanner = Scanner::launch(builder, table(0, 1), ScanConfig::default()).unwrap();
        let done = scanner.wait_complete(WAIT).unwrap();
        assert_eq!(
            done,
            Progress {
                pages: 0,
                records: 0,
                state: ScanState::Complete
            },
            "{mode}"
        );
        let calls = scanner.bridge().stats().calls;
        assert_eq!((calls.served, calls.failed), (1, 1), "{mode}");
        assert_eq!(
            scanner.shutdown().unwrap(),
            vec![BucketStats::default(); 64]
        );
    }
}

/// A logger that keeps every line (the kernel's are target
/// `ringbridge::kernel`, the bridge's own `ringbridge`).
struct Lines(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Lines {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push((
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

fn lines() -> &'static Lines {
    static LINES: OnceLock<&'static Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        let l: &'static Lines = Box::leak(Box::new(Lines(Mutex::new(Vec::new()))));
        log::set_logger(l).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        l
    })
}

/// Waits until a line of `target` and `level` ending with `text` was
/// logged (the bridge's service thread logs a line when it reads it, on
/// its own time) and returns it.
fn wait_for_line(target: &str, level: log::Level, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = lines()
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(l, t, line)| *l == level && t == target && line.ends_with(text))
            .map(|(_, _, line)| line.clone());
        if let Some(line) = found {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no {level} line of {target} ending {text:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_kernel_logs_its_progress_the_end_and_a_failure() {
    lines();
    // Record counts no other test uses, so the lines are this test's.
    for ((mode, builder), n) in both().into_iter().zip([7_777u64, 7_778]) {
        let records = table(n as usize, 5);
        let config = ScanConfig {
            buckets: 16,
            log_every: 4,
            background: true,
        };
        let scanner = Scanner::launch(builder, records, config).unwrap();
        let done = scanner.wait_complete(WAIT).unwrap();
        assert_eq!((done.pages, done.records), (16, n), "{mode}");
        for pages in [4u64, 8, 12] {
            let text = format!("scanned {pages} pages, {} records", pages * 500);
            let line = wait_for_line("ringbridge::kernel", log::Level::Info, &text);
            // The bridge, the block and the thread come with the line: the
            // idle hook runs on thread 0.
            assert!(
                line.contains("(record_scan) block 0 thread 0: "),
                "{mode}: {line}"
            );
        }
        wait_for_line(
            "ringbridge::kernel",
            log::Level::Info,
            &format!("scanned 16 pages, {n} records"),
        );
        wait_for_line(
            "ringbridge::kernel",
            log::Level::Info,
            &format!("scan complete: 16 pages, {n} records"),
        );
        // The bridge logs the refused call that ended the scan.
        wait_for_line(
            "ringbridge",
            log::Level::Warn,
            "page 16 is past the end of the table (16 pages): the scan is complete (status 16)",
        );
        let logged = scanner.bridge().stats().calls.logged;
        assert_eq!(logged, 5, "{mode}: four progress lines and the end");
        scanner.shutdown().unwrap();
    }
    // A failed page is logged as an error by the kernel thread that met it.
    for (mode, builder) in both() {
        let config = ScanConfig {
            buckets: 2,
            log_every: 0,
            background: true,
        };
        let scanner = Scanner::launch_with_pages(builder, config, |index| {
            if index == 3 {
                Err(ServiceError::with_code(41, "checksum mismatch"))
            } else {
                Ok(vec![Record { key: 0, value: 1 }; 7])
            }
        })
        .unwrap();
        assert!(matches!(
            scanner.wait_complete(WAIT),
            Err(ScanError::PageFailed {
                page: 3,
                status: 41
            })
        ));
        wait_for_line(
            "ringbridge::kernel",
            log::Level::Error,
            "page 3 failed with status 41: the scan stops",
        );
        wait_for_line(
            "ringbridge",
            log::Level::Warn,
            "service 1: checksum mismatch (status 41)",
        );
        assert_eq!(scanner.query(0).unwrap().stats.count, 21, "{mode}");
        scanner.shutdown().unwrap();
    }
}

#[test]
fn a_shutdown_during_a_scan_is_clean() {
    // A slow page service: the scan is far from done when the bridge stops.
    let records = table(50_000, 3);
    let reference = Reference::new(&records, 64);
    for (mode, builder) in both() {
        let records = records.clone();
        let scanner = Scanner::launch_with_pages(builder, ScanConfig::default(), move |index| {
            std::thread::sleep(Duration::from_millis(2));
            page(&records, index).map(<[Record]>::to_vec)
        })
        .unwrap();
        let partial = scanner.wait_scanned(1_000, WAIT).unwrap();
        assert!(partial.records >= 1_000, "{mode}: {partial:?}");
        assert_eq!(partial.state, ScanState::Scanning, "{mode}");
        let buckets = scanner.shutdown().unwrap();
        // What was folded in is whole pages from the first: a prefix.
        let counted: u64 = buckets.iter().map(|b| b.count).sum();
        assert!((1_000..50_000).contains(&counted), "{mode}: {counted}");
        assert_eq!(counted % PAGE_RECORDS as u64, 0, "{mode}: {counted}");
        let want: Vec<_> = (0..64).map(|b| reference.prefix(b, counted)).collect();
        assert_eq!(buckets, want, "{mode}");
        // A call made while stopping is answered with the shutdown status
        // without running the service (the kernel keeps it as the scan's
        // failure); at most one such call, as the idle hook then stops.
        let calls = scanner.bridge().stats().calls;
        assert!(calls.failed <= 1, "{mode}: {calls:?}");
        assert_eq!(
            calls.served - calls.failed,
            counted / PAGE_RECORDS as u64,
            "{mode}"
        );
    }
}

// `const PTX: Option<&str>`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/scan_ptx.rs"));

/// Whether nvcc built the kernel (then `PTX` is its PTX); without, says
/// "skipped", or fails under `RINGBRIDGE_REQUIRE_NVCC=1`.
fn ptx_or_skip() -> Option<&'static str> {
    if let Some(ptx) = PTX {
        assert!(record_scan().fatbin().is_some(), "a PTX but no fatbin");
        return Some(ptx);
    }
    let why = record_scan().no_fatbin_reason();
    assert!(
        std::env::var_os("RINGBRIDGE_REQUIRE_NVCC").is_none(),
        "RINGBRIDGE_REQUIRE_NVCC is set but the kernel was not compiled: {why}"
    );
    println!("skipped: no PTX ({why})");
    None
}

#[test]
fn the_ptx_has_the_entry_with_the_launch_arguments() {
    let Some(ptx) = ptx_or_skip() else { return };
    let start = ptx
        .find(".entry record_scan(")
        .expect("no `.entry record_scan` in the PTX");
    let signature = &ptx[start..start + ptx[start..].find(')').unwrap()];
    assert!(
        signature.contains(".param .align 16 .b8 record_scan_param_3[1168]"),
        "the fourth parameter is not the 1168-byte launch arguments:\n{signature}"
    );
    assert_eq!(size_of::<ringbridge::layout::LaunchArgs>(), 1168);
    // The idle hook makes it a handler that "sends" (served in the slot
    // format), with no messages of its own per request.
    let traits = record_scan().traits();
    assert!(traits.sends && !traits.cooperative && traits.max_sends == 0);
    // The page buffer is per-thread local memory, 4000 bytes of it.
    assert!(ptx.contains(".local"), "no local page buffer in the PTX");
}

/// Whether the CUDA driver loaded is ringbridge's simulated one (the
/// project's test runs), not a GPU's.
fn simulated() -> bool {
    ringbridge::cuda::driver_library().is_some_and(|l| l.simulated)
}

/// The background scan and the pulls on the GPU, when there is one (or on
/// the simulated driver, with a smaller table: its blocks are CPU
/// threads): skipped without one, failed instead under
/// `RINGBRIDGE_REQUIRE_GPU=1`, which also refuses the simulated driver.
#[test]
fn the_gpu_scans_the_same_when_there_is_one() {
    let sim = simulated();
    let (backend, why) = Bridge::builder()
        .backend(Backend::Auto)
        .kernel(ringbridge::Kernel::User(record_scan()))
        .resolve_backend()
        .unwrap();
    if backend != Backend::Cuda {
        assert!(
            std::env::var("RINGBRIDGE_REQUIRE_GPU").map_or(true, |v| v != "1"),
            "RINGBRIDGE_REQUIRE_GPU=1 but {why}"
        );
        println!("skipped: {why}");
        return;
    }
    assert!(
        !(sim && std::env::var("RINGBRIDGE_REQUIRE_GPU").is_ok_and(|v| v == "1")),
        "RINGBRIDGE_REQUIRE_GPU=1 but the driver is the simulated one"
    );
    println!("on {}", if sim { "the simulated driver" } else { "a GPU" });
    let cuda = || {
        let b = Bridge::builder().backend(Backend::Cuda);
        if sim {
            let long = Duration::from_secs(60);
            b.block_size(64).hang_timeout(long).shutdown_timeout(long)
        } else {
            b
        }
    };
    let n = if sim { 20_000 } else { 100_000 };
    let records = table(n, 0x6e0);
    let reference = Reference::new(&records, 64);

    // In the background, with queries during the scan.
    let scanner = Scanner::launch(cuda(), records.clone(), ScanConfig::default()).unwrap();
    loop {
        let answer = scanner.query(5).unwrap();
        reference.check(&answer).unwrap();
        if answer.progress.state == ScanState::Complete {
            break;
        }
    }
    check_complete("gpu, background", &scanner, &reference);
    drop(scanner);

    // Pulls: a round of 128 requests, one thread each, calling at once.
    let config = ScanConfig {
        background: false,
        ..ScanConfig::default()
    };
    let scanner = Scanner::launch(cuda(), records, config).unwrap();
    let mut folded = 0;
    while scanner.progress().unwrap().state != ScanState::Complete {
        for outcome in scanner.pull(PULL_ROUND).unwrap() {
            match outcome {
                PullOutcome::Folded { .. } => folded += 1,
                PullOutcome::PastEnd { .. } => {}
                PullOutcome::Failed { page, status } => {
                    panic!("page {page:?} failed with status {status}")
                }
            }
        }
    }
    assert_eq!(folded, reference.pages());
    check_complete("gpu, pulls", &scanner, &reference);
}

/// The 8-byte request `{op, arg}`.
fn raw_request(op: u32, arg: u32) -> [u8; 8] {
    let mut r = [0u8; 8];
    r[..4].copy_from_slice(&op.to_le_bytes());
    r[4..].copy_from_slice(&arg.to_le_bytes());
    r
}

/// Under ThreadSanitizer, with schedule shaking (`ringbridge::race_check`):
/// batches of 64 requests, pulls and queries mixed, served by an emulated
/// block of 64 threads while the idle hook scans between them. Pulls
/// update the buckets while queries of the same batch read them; every
/// access is atomic, so nothing may be reported, and the totals must come
/// out right.
#[test]
fn the_handler_has_no_data_races() {
    if ringbridge::race_check::rerun_under_tsan() {
        return;
    }
    let records = table(20_000, 0x7a5);
    let config = ScanConfig {
        buckets: 16,
        log_every: 8,
        background: true,
    };
    let reference = Reference::new(&records, config.buckets);
    let builder = Bridge::builder()
        .backend(Backend::Fallback)
        .emulate_block(EMULATED)
        .hang_timeout(Duration::from_secs(30))
        .shutdown_timeout(Duration::from_secs(30));
    let scanner = Scanner::launch(builder, records, config).unwrap();
    let bridge = scanner.bridge();
    let batch: Vec<[u8; 8]> = (0..64u32)
        .map(|i| {
            if i % 2 == 0 {
                raw_request(OP_PULL, 0)
            } else {
                raw_request(OP_QUERY, i % config.buckets)
            }
        })
        .collect();
    for _ in 0..2 {
        bridge.send_batch(&batch).unwrap();
        for _ in 0..batch.len() {
            let m = bridge.recv().unwrap();
            assert!(m.is_reply(), "{m:?}");
        }
    }
    scanner.wait_complete(WAIT).unwrap();
    check_complete("race-checked", &scanner, &reference);
}
