//! Soak: at least 10^8 messages through small rings, every reply checked,
//! throughput sampled per window (coefficient of variation reported), and
//! resident memory compared between the start and the end. Opt-in:
//! `cargo test --release --test soak -- --ignored --nocapture`
//! (`RINGBRIDGE_SOAK_MESSAGES` overrides the count).

use std::time::Instant;

use ringbridge::{Backend, Bridge};

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn soak(backend: Backend) {
    let total: u64 = std::env::var("RINGBRIDGE_SOAK_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000_000);
    const WINDOW: u64 = 1 << 20;
    const BATCH: usize = 64;
    let bridge = Bridge::builder()
        .backend(backend)
        .capacity(256)
        .launch()
        .unwrap();
    let rss_start = resident_bytes();
    let mut rates = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut bufs = [[0u8; 8]; BATCH];
            let mut i = 0u64;
            while i < total {
                let n = (total - i).min(BATCH as u64) as usize;
                for (k, b) in bufs[..n].iter_mut().enumerate() {
                    *b = (i + k as u64).to_le_bytes();
                }
                bridge.send_batch(&bufs[..n]).unwrap();
                i += n as u64;
            }
        });
        let mut got = 0u64;
        let mut window_start = Instant::now();
        while got < total {
            bridge
                .recv_batch(4096, |h, p| {
                    assert_eq!(h.correlation, got, "lost, duplicated or reordered");
                    let want = got.to_le_bytes().map(|b| b.wrapping_add(1));
                    assert_eq!(p, want);
                    got += 1;
                    if got.is_multiple_of(WINDOW) {
                        rates.push(WINDOW as f64 / window_start.elapsed().as_secs_f64());
                        window_start = Instant::now();
                    }
                })
                .unwrap();
        }
    });
    let rss_end = resident_bytes();
    bridge.shutdown().unwrap();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64;
    println!(
        "soak {backend}: {total} messages, {} windows, mean {:.2} M msg/s, CoV {:.3}, RSS {:?} -> {:?} bytes",
        rates.len(),
        mean / 1e6,
        var.sqrt() / mean,
        rss_start,
        rss_end
    );
    if let (Some(a), Some(b)) = (rss_start, rss_end) {
        assert!(
            b < a + (16 << 20),
            "resident memory grew from {a} to {b} bytes"
        );
    }
}

#[test]
#[ignore = "soak: minutes; run with --ignored"]
fn soak_host_fallback() {
    soak(Backend::Fallback);
}

#[test]
#[ignore = "soak: needs a GPU; run with --ignored"]
fn soak_cuda() {
    if ringbridge::cuda::device_count().is_ok_and(|n| n > 0) {
        soak(Backend::Cuda);
    } else {
        eprintln!("soak_cuda: skipped: no CUDA GPU");
    }
}
