//! The race check (`ringbridge::race_check`) on known bugs and on correct
//! code (issue 27): each `child_*` test (ignored in a plain run) drives one
//! kernel through an emulated block of 64 threads; the tests below run it
//! ten times in a child process under ThreadSanitizer, with schedule
//! shaking seeded 1..=10, and count the runs that fail. Every mutant must
//! be caught in at least 9 of 10 runs; the correct kernels (the examples'
//! own sources, the race kernels' correct forms, every handler model) must
//! never be reported.

use ringbridge::buffer::BufferInit;
use ringbridge::race_check::{self, Outcome};
use ringbridge::ring::SlotFormat;
use ringbridge::{Backend, Bridge, BridgeBuilder, Kernel, UserKernel};
use ringbridge_model_tests as models;
use std::time::Duration;

/// Runs of each child.
const RUNS: u64 = 10;

/// The emulated block the children serve on.
fn emulated(kernel: UserKernel) -> BridgeBuilder {
    Bridge::builder()
        .backend(Backend::Fallback)
        .emulate_block(64)
        .kernel(Kernel::User(kernel))
        .capacity(256)
        .slot_size(1024)
        // Emulated barriers are slow, under ThreadSanitizer more so: an
        // idle turn of 64 threads takes milliseconds (as in the block
        // emulation's own tests).
        .hang_timeout(Duration::from_secs(20))
        .shutdown_timeout(Duration::from_secs(20))
}

/// `child` run `RUNS` times, seeds 1..=RUNS: the outcomes.
fn runs(child: &str) -> Vec<Outcome> {
    (1..=RUNS)
        .map(|seed| {
            race_check::run_test_under_tsan(child, Some(seed))
                .unwrap_or_else(|e| panic!("{child}: cannot run under the race check: {e}"))
        })
        .collect()
}

/// A mutant: caught (a report, or its own check failing) in 9 of 10 runs.
fn caught(child: &str, by_report: bool) {
    let outcomes = runs(child);
    let caught = outcomes
        .iter()
        .filter(|o| !o.passed && (o.race_reported || !by_report))
        .count();
    println!("{child}: caught in {caught} of {RUNS} runs");
    assert!(
        caught >= 9,
        "{child} was caught in only {caught} of {RUNS} runs; a run that passed:\n{}",
        outcomes
            .iter()
            .find(|o| o.passed)
            .map_or("", |o| o.output.as_str())
    );
}

/// Correct code: no run reports anything or fails.
fn clean(child: &str) {
    for (i, o) in runs(child).iter().enumerate() {
        assert!(
            o.passed,
            "{child}, run {} (seed {:?}), failed under the race check:\n{}",
            i + 1,
            o.seed,
            o.output
        );
    }
}

/// Sends `requests` in one batch per 64 and receives the replies.
fn batches(bridge: &Bridge, requests: &[Vec<u8>]) -> Vec<ringbridge::MessageEnvelope> {
    let mut replies = Vec::new();
    for chunk in requests.chunks(64) {
        bridge.send_batch(chunk).unwrap();
        for _ in chunk {
            replies.push(bridge.recv().unwrap());
        }
    }
    replies
}

// ---- the kernels' workloads, each a child ----

fn histogram(kernel: UserKernel) {
    // Both slot formats: the lane format's serve loop runs on warp votes
    // and exchanges, which the detector must see as ordering too.
    for format in [SlotFormat::Slots, SlotFormat::Lanes] {
        let bridge = emulated(kernel.clone())
            .slot_size(64)
            .format(format)
            .buffer(BufferInit::zeroed(16 * 8))
            .launch()
            .unwrap();
        // Every request of a batch adds to bin 0 or 1: 64 threads on two words.
        let requests: Vec<Vec<u8>> = (0..256u32).map(|i| vec![(i % 2) as u8]).collect();
        let replies = batches(&bridge, &requests);
        assert!(replies.iter().all(|r| r.is_reply()), "{format:?}");
        bridge.shutdown().unwrap();
        let bins: Vec<u64> = bridge.download_pod(0).unwrap();
        assert_eq!(&bins[..2], &[128, 128], "{format:?}: bins lost updates");
    }
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_histogram_atomic() {
    histogram(models::races_histogram_atomic());
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_histogram_plain() {
    histogram(models::races_histogram_plain());
}

fn scratch(kernel: UserKernel) {
    let bridge = emulated(kernel).launch().unwrap();
    for _ in 0..8 {
        let reply = bridge.round_trip(b"x").unwrap();
        let sum = u64::from_le_bytes(reply.payload[..8].try_into().unwrap());
        assert_eq!(sum, 64 * 65 / 2);
    }
    bridge.shutdown().unwrap();
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_scratch_after() {
    scratch(models::races_scratch_after());
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_scratch_before() {
    scratch(models::races_scratch_before());
}

fn counter(kernel: UserKernel) {
    let bridge = emulated(kernel)
        .buffer(BufferInit::zeroed(8))
        .launch()
        .unwrap();
    const N: u64 = 256;
    let requests = vec![b"+".to_vec(); N as usize];
    for chunk in requests.chunks(64) {
        bridge.send_batch(chunk).unwrap();
    }
    let reply = bridge.round_trip_with_flags(1, b"?").unwrap();
    let count = u64::from_le_bytes(reply.payload[..8].try_into().unwrap());
    assert_eq!(count, N, "the counter lost {} updates", N - count);
    bridge.shutdown().unwrap();
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_counter_fetch_add() {
    counter(models::races_counter_fetch_add());
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_counter_load_store() {
    counter(models::races_counter_load_store());
}

fn kv(kernel: UserKernel) {
    const KEYS: u64 = 16;
    // examples/kv-store's protocol: {op, key, value}, PUT answered with
    // nothing, GET with the value.
    let request = |op: u64, key: u64, value: u64| {
        [op, key, value]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let param = [1024u64, u64::MAX]; // capacity, no fill event
    let bridge = emulated(kernel.with_param(param))
        .buffer(BufferInit::zeroed(1024 * 16))
        .buffer(BufferInit::zeroed(8))
        .launch()
        .unwrap();
    // Batches where many PUTs of one new key meet GETs of it.
    for key in 1..=KEYS {
        let requests: Vec<Vec<u8>> = (0..64u64)
            .map(|i| {
                if i % 2 == 0 {
                    request(1, key, key * 10)
                } else {
                    request(2, key, 0)
                }
            })
            .collect();
        bridge.send_batch(&requests).unwrap();
        for _ in 0..32 {
            bridge.recv().unwrap(); // the GETs: a value, or not found yet
        }
    }
    for key in 1..=KEYS {
        let reply = bridge.round_trip(&request(2, key, 0)).unwrap();
        assert_eq!(reply.payload, (key * 10).to_le_bytes(), "key {key}");
    }
    bridge.shutdown().unwrap();
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_kv_cas() {
    kv(models::races_kv_cas());
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_kv_plain_store() {
    kv(models::races_kv_plain_store());
}

fn reduce(kernel: UserKernel) {
    let bridge = emulated(kernel)
        .buffer(BufferInit::from_pod(&[1.0f32; 64]))
        .launch()
        .unwrap();
    let x: Vec<f32> = (0..200).map(|i| i as f32).collect();
    for _ in 0..4 {
        let reply = bridge.round_trip(bytemuck::cast_slice(&x)).unwrap();
        let sum = f64::from_le_bytes(reply.payload[..8].try_into().unwrap());
        assert_eq!(sum, 199.0 * 200.0 / 2.0);
    }
    bridge.shutdown().unwrap();
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_reduce_synced() {
    reduce(models::races_reduce_synced());
}

#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_reduce_unsynced() {
    reduce(models::races_reduce_unsynced());
}

/// Every handler model of `kernels/models.cu` in the emulated block.
#[test]
#[ignore = "run by race_check's tests in a child process under ThreadSanitizer"]
fn child_models() {
    let param = {
        let mut p = models::TableParam {
            add: 1,
            pad: 0,
            table: [0; 256],
            tail: [7; 64],
        };
        for (i, t) in p.table.iter_mut().enumerate() {
            *t = i as u8;
        }
        p
    };
    for (name, kernel) in [
        ("param", models::models_param().with_param(param)),
        ("quiet", models::models_quiet()),
        ("sender", models::models_sender()),
        ("sum", models::models_sum()),
        ("chunk_answers", models::models_chunk_answers()),
    ] {
        let bridge = emulated(kernel).launch().unwrap();
        let requests: Vec<Vec<u8>> = (0..128u32).map(|i| i.to_le_bytes().to_vec()).collect();
        for chunk in requests.chunks(64) {
            bridge.send_batch(chunk).unwrap();
        }
        // Whatever each model answers: the race check is the test here.
        std::thread::sleep(std::time::Duration::from_millis(50));
        while bridge.try_recv().is_ok() {}
        bridge.shutdown().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

// ---- the checks ----

#[test]
fn race_check_catches_a_plain_add_to_a_shared_bin() {
    caught("child_histogram_plain", true);
}

#[test]
fn race_check_catches_a_read_of_scratch_before_the_barrier() {
    caught("child_scratch_before", true);
}

#[test]
fn race_check_catches_the_kv_store_with_a_plain_store_for_its_cas() {
    caught("child_kv_plain_store", true);
}

#[test]
fn race_check_catches_the_reduction_without_a_barrier_between_levels() {
    caught("child_reduce_unsynced", true);
}

/// No data race here: only the shaken schedule makes the lost update show.
#[test]
fn schedule_shaking_makes_a_lost_update_between_two_atomics_show() {
    caught("child_counter_load_store", false);
}

#[test]
fn race_check_reports_nothing_on_correct_kernels() {
    for child in [
        "child_histogram_atomic",
        "child_scratch_after",
        "child_counter_fetch_add",
        "child_kv_cas",
        "child_reduce_synced",
        "child_models",
    ] {
        clean(child);
    }
}
