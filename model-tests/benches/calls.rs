//! What a call from the kernel to the host costs, on the fallback, in the
//! block emulation, or on CUDA (`--backend cuda`): run with
//! `cargo bench -p ringbridge-model-tests --bench calls [-- --backend cuda]`.
//!
//! 1. Round trips of 64 bytes to `calls_per_request`, in turns: one whose
//!    handler answers at once (a host-started round trip), one whose
//!    handler first makes one 64-byte call to an echo service. p50/p99 of
//!    each; the difference is what the call adds.
//! 2. Calls per second: every request of a window of 256 makes one call,
//!    on the fallback's one thread and on an emulated block of 64 threads.
//! 3. (fallback) Round trips that make no call, to the same kernel with an
//!    idle call ring and without one, in turns: what the ring costs.
//!
//! Results: docs/performance.md, "Calls from the kernel".

use std::time::{Duration, Instant};

use ringbridge::{Backend, Bridge, BridgeBuilder, Kernel, WaitPolicy};
use ringbridge_model_tests as models;

/// Request flag of `calls_per_request`: no call (kernels/calls.cu).
const NONE: u32 = 8;

/// `CALLS_POLICY=spin|backoff|spin-then-park|low-power` (default: the
/// bridge's default, spin-then-park).
fn policy() -> WaitPolicy {
    let name = std::env::var("CALLS_POLICY").unwrap_or_default();
    WaitPolicy::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .unwrap_or_default()
}

fn builder(backend: Backend) -> BridgeBuilder {
    Bridge::builder()
        .backend(backend)
        .wait_policy(policy())
        .kernel(Kernel::User(models::calls_per_request()))
        .capacity(1024)
        .slot_size(256)
        .service(1, |req: &[u8]| Ok(req.to_vec()))
}

fn request(arg: &[u8]) -> Vec<u8> {
    let mut r = 1u32.to_le_bytes().to_vec();
    r.extend_from_slice(arg);
    r
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Part 1: host-started round trips beside round trips that make a call.
fn latency(backend: Backend, n: usize) {
    let bridge = builder(backend).launch().expect("launch");
    let arg = [0x5au8; 60]; // 64-byte request: the service id and 60 bytes
    let req = request(&arg);
    let (mut plain, mut called) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + n / 10 {
        let timed = |flags: u32| {
            let t = Instant::now();
            let reply = bridge
                .round_trip_with_flags(flags, &req)
                .expect("round trip");
            (reply, t.elapsed())
        };
        // Each goes first in every other turn.
        let ((a, ta), (b, tb)) = if i % 2 == 0 {
            let a = timed(NONE);
            (a, timed(0))
        } else {
            let b = timed(0);
            (timed(NONE), b)
        };
        assert_eq!(&a.payload[8..], &arg[..], "the plain reply");
        assert_eq!(&b.payload[..4], &[0, 0, 0, 0], "the call's status");
        assert_eq!(&b.payload[8..], &arg[..], "the call's answer");
        if i >= n / 10 {
            plain.push(ta);
            called.push(tb);
        }
    }
    plain.sort();
    called.sort();
    println!(
        "{:<9} {} round trip 64 B, {n} in turns: host-started p50 {:.1} us p99 {:.1} us | with one 64 B call p50 {:.1} us p99 {:.1} us | the call adds p50 {:.1} us",
        backend.name(),
        policy().name(),
        us(pct(&plain, 50.0)),
        us(pct(&plain, 99.0)),
        us(pct(&called, 50.0)),
        us(pct(&called, 99.0)),
        us(pct(&called, 50.0)) - us(pct(&plain, 50.0)),
    );
    bridge.shutdown().expect("shutdown");
}

/// Part 3: what an idle call ring (and its parked service thread) costs a
/// bridge that never calls: host round trips to the same kernel with a
/// call ring and without one, in turns.
fn idle_ring(n: usize) {
    let with = builder(Backend::Fallback).launch().expect("launch");
    let without = Bridge::builder()
        .backend(Backend::Fallback)
        .kernel(Kernel::User(models::calls_per_request()))
        .capacity(1024)
        .slot_size(256)
        .wait_policy(policy())
        .without_call_ring()
        .launch()
        .expect("launch");
    let req = request(&[0x5au8; 60]);
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + n / 10 {
        // Each goes first in every other turn: the second finds its serve
        // thread idle for the first one's round trip.
        let time = |bridge: &Bridge| {
            let t = Instant::now();
            bridge
                .round_trip_with_flags(NONE, &req)
                .expect("round trip");
            t.elapsed()
        };
        let (ta, tb) = if i % 2 == 0 {
            let ta = time(&with);
            (ta, time(&without))
        } else {
            let tb = time(&without);
            (time(&with), tb)
        };
        if i >= n / 10 {
            a.push(ta);
            b.push(tb);
        }
    }
    a.sort();
    b.sort();
    println!(
        "fallback  round trip 64 B, no call made, {n} in turns: with a call ring p50 {:.1} us p99 {:.1} us | without p50 {:.1} us p99 {:.1} us",
        us(pct(&a, 50.0)),
        us(pct(&a, 99.0)),
        us(pct(&b, 50.0)),
        us(pct(&b, 99.0)),
    );
    with.shutdown().expect("shutdown");
    without.shutdown().expect("shutdown");
}

/// Part 2: calls per second with a window of 256 requests in flight, each
/// making one call.
fn throughput(what: &str, b: BridgeBuilder, n: usize) {
    let bridge = b.launch().expect("launch");
    let req = request(&[1u8; 8]);
    let window = 256;
    let t = Instant::now();
    let (mut sent, mut got) = (0, 0);
    while got < n {
        while sent < n && sent - got < window {
            bridge.send(&req).expect("send");
            sent += 1;
        }
        let reply = bridge.recv().expect("recv");
        assert_eq!(&reply.payload[..4], &[0, 0, 0, 0], "the call's status");
        got += 1;
    }
    let dt = t.elapsed();
    let calls = bridge.stats().calls.served;
    assert_eq!(calls, n as u64);
    println!(
        "{what:<24} {n} calls in {:.3} s: {:.0} calls/s",
        dt.as_secs_f64(),
        n as f64 / dt.as_secs_f64()
    );
    bridge.shutdown().expect("shutdown");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cuda = args
        .windows(2)
        .any(|w| w[0] == "--backend" && w[1] == "cuda");
    let n: usize = std::env::var("CALLS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    if cuda {
        latency(Backend::Cuda, n);
        for block in [32u32, 256] {
            throughput(
                &format!("cuda, block {block}"),
                builder(Backend::Cuda).block_size(block),
                8 * n,
            );
        }
        return;
    }
    latency(Backend::Fallback, n);
    idle_ring(n);
    throughput("fallback (1 thread)", builder(Backend::Fallback), n);
    throughput(
        "emulated block of 64",
        builder(Backend::Fallback).emulate_block(64),
        n / 4,
    );
}
