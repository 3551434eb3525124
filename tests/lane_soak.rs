//! Lane soak: round trips of the longest lane messages, each payload carrying
//! a hash of itself that is verified on receipt, while a host thread thrashes
//! the caches. It looks for lanes delivered torn (docs/platform-facts.md,
//! "16-byte accesses"): a torn lane that got past the tag's check would show
//! up as a payload whose hash does not match.
//!
//! - `lane_soak_host_short` (always): 10^4 round trips on the host fallback,
//!   so the soak's code runs in CI.
//! - `lane_soak_cuda_short` (always; skipped without a GPU, fails under
//!   `RINGBRIDGE_REQUIRE_GPU=1`): 10^4 round trips on CUDA.
//! - `lane_soak_cuda` (opt-in, `--ignored`): `RINGBRIDGE_LANE_SOAK_ROUNDS`
//!   round trips (default 10^5) on CUDA; `scripts/gpu-check.sh` runs 10^8
//!   with `GPU_CHECK_LANE_SOAK=1`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ringbridge::ring::SlotFormat;
use ringbridge::{Backend, Bridge};

/// Builder slots of 256 bytes: the lane slot of 512 bytes, 32 lanes, the
/// most one warp loads at once.
const SLOT: usize = 256;
/// Messages in flight at once (a quarter of the ring).
const IN_FLIGHT: u64 = 16;
/// Bytes the thrashing thread sweeps: more than a server's last-level cache.
const THRASH_BYTES: usize = 64 << 20;

/// FNV-1a over `bytes`, then a final mix: the payload's own hash.
fn hash(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    ringbridge::layout::lane_mix(h)
}

/// Payload `i`: `len - 8` bytes derived from `i`, then their hash.
fn payload(i: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut x = ringbridge::layout::lane_mix(i + 1);
    while out.len() < len - 8 {
        out.extend_from_slice(&x.to_le_bytes());
        x = ringbridge::layout::lane_mix(x);
    }
    out.truncate(len - 8);
    let h = hash(out);
    out.extend_from_slice(&h.to_le_bytes());
}

/// Whether an echoed payload (every byte + 1) carries the hash of its body.
fn reply_checks(reply: &[u8]) -> bool {
    let orig: Vec<u8> = reply.iter().map(|b| b.wrapping_sub(1)).collect();
    let (body, tail) = orig.split_at(orig.len() - 8);
    tail == hash(body).to_le_bytes()
}

/// Sweeps a large buffer, writing one word per cache line, until `stop`:
/// evicts the ring's lines from the host caches and keeps the memory system
/// busy while lanes cross it.
fn thrash(stop: &AtomicBool, sweeps: &AtomicU64) {
    let mut buf = vec![0u64; THRASH_BYTES / 8];
    let mut v = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for w in buf.iter_mut().step_by(8) {
            *w = w.wrapping_add(v);
        }
        v = v.wrapping_add(1);
        sweeps.fetch_add(1, Ordering::Relaxed);
    }
    std::hint::black_box(&buf);
}

/// Runs `rounds` round trips of maximum-length lane messages through
/// `bridge` with the thrashing thread running, checking every reply's own
/// hash, its order and its bytes. Returns (messages per second, sweeps).
fn soak(bridge: &Bridge, rounds: u64) -> (f64, u64) {
    assert_eq!(bridge.format(), SlotFormat::Lanes);
    let len = bridge.max_payload();
    assert!(len >= 200, "lane payload {len}");
    let stop = AtomicBool::new(false);
    let sweeps = AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| thrash(&stop, &sweeps));
        let mut sent = 0u64;
        let mut got = 0u64;
        let mut buf = Vec::with_capacity(len);
        let mut want = Vec::with_capacity(len);
        while got < rounds {
            while sent < rounds && sent - got < IN_FLIGHT {
                payload(sent, len, &mut buf);
                bridge.send(&buf).unwrap();
                sent += 1;
            }
            let reply = bridge.recv().unwrap();
            assert_eq!(reply.header.correlation, got, "lost or reordered");
            assert!(
                reply_checks(&reply.payload),
                "reply {got}: its hash does not match its bytes (a torn lane delivered?)"
            );
            payload(got, len, &mut want);
            assert_eq!(reply.payload, common::echoed(&want), "reply {got}");
            got += 1;
        }
        stop.store(true, Ordering::Relaxed);
    });
    let rate = rounds as f64 / t0.elapsed().as_secs_f64();
    (rate, sweeps.load(Ordering::Relaxed))
}

fn lanes(backend: Backend) -> Bridge {
    Bridge::builder()
        .backend(backend)
        .format(SlotFormat::Lanes)
        .capacity(64)
        .slot_size(SLOT)
        .launch()
        .unwrap()
}

#[test]
fn payload_hashes_catch_a_changed_byte() {
    let mut p = Vec::new();
    payload(3, 224, &mut p);
    let echoed = common::echoed(&p);
    assert!(reply_checks(&echoed));
    for k in [0, 100, 215, 216, 223] {
        let mut bad = echoed.clone();
        bad[k] ^= 0x10;
        assert!(!reply_checks(&bad), "byte {k}");
    }
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn lane_soak_host_short() {
    let bridge = lanes(Backend::Fallback);
    let (rate, sweeps) = soak(&bridge, 10_000);
    println!("lane soak (host): 10^4 round trips, {rate:.0} msg/s, {sweeps} cache sweeps");
    bridge.shutdown().unwrap();
}

#[test]
fn lane_soak_cuda_short() {
    let Some(_gpu) = common::real_gpu_or_skip(
        "lane_soak_cuda_short",
        "lanes torn by PCIe ordering need a card",
    ) else {
        return;
    };
    let bridge = lanes(Backend::Cuda);
    let (rate, sweeps) = soak(&bridge, 10_000);
    println!("lane soak (cuda): 10^4 round trips, {rate:.0} msg/s, {sweeps} cache sweeps");
    bridge.shutdown().unwrap();
}

#[test]
#[ignore = "long: RINGBRIDGE_LANE_SOAK_ROUNDS round trips on a GPU (scripts/gpu-check.sh)"]
fn lane_soak_cuda() {
    let Some(_gpu) =
        common::real_gpu_or_skip("lane_soak_cuda", "lanes torn by PCIe ordering need a card")
    else {
        return;
    };
    let rounds: u64 = std::env::var("RINGBRIDGE_LANE_SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let bridge = lanes(Backend::Cuda);
    let (rate, sweeps) = soak(&bridge, rounds);
    let stats = bridge.stats();
    println!(
        "lane soak (cuda): {rounds} round trips of {} bytes, every hash checked, {rate:.0} msg/s, \
         {sweeps} cache sweeps of {} MiB; {stats:?}",
        bridge.max_payload(),
        THRASH_BYTES >> 20
    );
    bridge.shutdown().unwrap();
}
