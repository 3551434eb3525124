//! SPSC queue throughput: ringbridge's `SpscQueue` (per-item API, and the
//! batch APIs `push_slice`/`pop_into` and `push_iter`/`pop_each`) against
//! `rtrb::RingBuffer` (per item and chunks) and `crossbeam_queue::ArrayQueue`,
//! side by side.
//!
//! `cargo bench --bench queue` (about a minute) first runs
//! [`interleaved_rounds`]: the per-item two-thread run of `SpscQueue` and of
//! `rtrb` alternating in one process, printing the rate ratio of each round
//! and their median (`cargo bench --bench queue -- interleaved` runs only
//! that; `QUEUE_ROUNDS=n` sets the number of rounds, default 21).

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use crossbeam_queue::ArrayQueue;
use ringbridge::SpscQueue;

/// Items per two-thread iteration.
const ITEMS: u64 = 1_000_000;
/// Queue capacity for the two-thread runs.
const CAPACITY: usize = 4096;
/// Items per batch call for the batch APIs.
const BATCH: usize = 256;

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_single_thread");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));

    let (mut tx, mut rx) = SpscQueue::<u64>::new(CAPACITY).split();
    g.bench_function("ringbridge", |b| {
        b.iter(|| {
            tx.try_enqueue(black_box(1)).unwrap();
            black_box(rx.try_dequeue().unwrap())
        })
    });
    g.bench_function("ringbridge_batch", |b| {
        let mut out = [0u64; 1];
        b.iter(|| {
            assert_eq!(tx.push_slice(black_box(&[1])), 1);
            assert_eq!(rx.pop_into(&mut out), 1);
            black_box(out[0])
        })
    });
    let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    g.bench_function("rtrb", |b| {
        b.iter(|| {
            p.push(black_box(1)).unwrap();
            black_box(q.pop().unwrap())
        })
    });
    let aq = ArrayQueue::<u64>::new(CAPACITY);
    g.bench_function("crossbeam_array_queue", |b| {
        b.iter(|| {
            aq.push(black_box(1)).unwrap();
            black_box(aq.pop().unwrap())
        })
    });
    g.finish();
}

/// Runs `consume` on a new thread and `produce` here; returns the consumer's
/// checksum.
fn two_threads<P, C>(produce: P, consume: C) -> u64
where
    P: FnOnce(),
    C: FnOnce() -> u64 + Send + 'static,
{
    let consumer = thread::spawn(consume);
    produce();
    consumer.join().unwrap()
}

/// The checksum of `0..ITEMS`.
const SUM: u64 = ITEMS * (ITEMS - 1) / 2;

/// One per-item two-thread run of `0..ITEMS`: `push` hands the item back
/// when the queue is full, `pop` returns `None` when it is empty. Checks the
/// consumer's checksum. The same loop for every queue, so only their calls
/// differ.
fn per_item<P, C>(mut push: P, mut pop: C)
where
    P: FnMut(u64) -> Result<(), u64>,
    C: FnMut() -> Option<u64> + Send + 'static,
{
    let sum = two_threads(
        move || {
            for i in 0..ITEMS {
                let mut item = i;
                while let Err(back) = push(item) {
                    item = back;
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut n = 0;
            while n < ITEMS {
                match pop() {
                    Some(v) => {
                        sum = sum.wrapping_add(v);
                        n += 1;
                    }
                    None => std::hint::spin_loop(),
                }
            }
            sum
        },
    );
    assert_eq!(sum, SUM);
}

fn two_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_two_thread");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));

    g.bench_function("ringbridge", |b| b.iter(run_ringbridge));

    g.bench_function("ringbridge_batch", |b| {
        b.iter(|| {
            let (mut tx, mut rx) = SpscQueue::<u64>::new(CAPACITY).split();
            let sum = two_threads(
                move || {
                    let mut batch = [0u64; BATCH];
                    let mut next = 0u64;
                    while next < ITEMS {
                        let n = (ITEMS - next).min(BATCH as u64) as usize;
                        for (k, v) in batch[..n].iter_mut().enumerate() {
                            *v = next + k as u64;
                        }
                        let mut sent = 0;
                        while sent < n {
                            let pushed = tx.push_slice(&batch[sent..n]);
                            if pushed == 0 {
                                std::hint::spin_loop();
                            }
                            sent += pushed;
                        }
                        next += n as u64;
                    }
                },
                move || {
                    let mut buf = [0u64; BATCH];
                    let mut sum = 0u64;
                    let mut n = 0;
                    while n < ITEMS {
                        let got = rx.pop_into(&mut buf);
                        if got == 0 {
                            std::hint::spin_loop();
                        }
                        for &v in &buf[..got] {
                            sum = sum.wrapping_add(v);
                        }
                        n += got as u64;
                    }
                    sum
                },
            );
            assert_eq!(sum, SUM);
        })
    });

    g.bench_function("ringbridge_iter", |b| {
        b.iter(|| {
            let (mut tx, mut rx) = SpscQueue::<u64>::new(CAPACITY).split();
            let sum = two_threads(
                move || {
                    let mut next = 0u64;
                    while next < ITEMS {
                        let end = (next + BATCH as u64).min(ITEMS);
                        let pushed = tx.push_iter(next..end);
                        if pushed == 0 {
                            std::hint::spin_loop();
                        }
                        next += pushed as u64;
                    }
                },
                move || {
                    let mut sum = 0u64;
                    let mut n = 0;
                    while n < ITEMS {
                        let got = rx.pop_each(BATCH, |v| sum = sum.wrapping_add(v));
                        if got == 0 {
                            std::hint::spin_loop();
                        }
                        n += got as u64;
                    }
                    sum
                },
            );
            assert_eq!(sum, SUM);
        })
    });

    g.bench_function("rtrb", |b| b.iter(run_rtrb));

    g.bench_function("rtrb_chunk", |b| {
        b.iter(|| {
            let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(CAPACITY);
            let sum = two_threads(
                move || {
                    let mut next = 0u64;
                    while next < ITEMS {
                        let want = (ITEMS - next).min(BATCH as u64) as usize;
                        let n = want.min(p.slots());
                        if n == 0 {
                            std::hint::spin_loop();
                            continue;
                        }
                        let chunk = p.write_chunk_uninit(n).unwrap();
                        let written = chunk.fill_from_iter(next..next + n as u64);
                        next += written as u64;
                    }
                },
                move || {
                    let mut sum = 0u64;
                    let mut n = 0;
                    while n < ITEMS {
                        let avail = q.slots().min(BATCH);
                        if avail == 0 {
                            std::hint::spin_loop();
                            continue;
                        }
                        let chunk = q.read_chunk(avail).unwrap();
                        let (a, b) = chunk.as_slices();
                        for &v in a.iter().chain(b) {
                            sum = sum.wrapping_add(v);
                        }
                        chunk.commit_all();
                        n += avail as u64;
                    }
                    sum
                },
            );
            assert_eq!(sum, SUM);
        })
    });

    g.bench_function("crossbeam_array_queue", |b| {
        b.iter(|| {
            let aq = std::sync::Arc::new(ArrayQueue::<u64>::new(CAPACITY));
            let aq2 = std::sync::Arc::clone(&aq);
            per_item(move |v| aq.push(v), move || aq2.pop());
        })
    });
    g.finish();
}

/// The per-item two-thread run of `ringbridge::SpscQueue`.
fn run_ringbridge() {
    let (mut tx, mut rx) = SpscQueue::<u64>::new(CAPACITY).split();
    per_item(
        move |v| tx.try_enqueue(v).map_err(|e| e.into_inner()),
        move || rx.try_dequeue().ok(),
    );
}

/// The per-item two-thread run of `rtrb::RingBuffer`.
fn run_rtrb() {
    let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    per_item(
        move |v| {
            p.push(v).map_err(|e| match e {
                rtrb::PushError::Full(back) => back,
            })
        },
        move || q.pop().ok(),
    );
}

/// Runs of each queue in one round of [`interleaved_rounds`].
const RUNS_PER_ROUND: usize = 3;

/// Seconds one run of `f` takes.
fn time(f: fn()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// `SpscQueue` against `rtrb` in interleaved rounds, in this one process, so
/// that both see the same machine state (criterion runs one benchmark after
/// the other, and on a shared machine the load changes in between).
///
/// Each round times [`RUNS_PER_ROUND`] per-item two-thread runs of each
/// queue ([`ITEMS`] `u64`s, capacity [`CAPACITY`], the same [`per_item`]
/// loop) in the order ours, rtrb, rtrb, ours, ... (the next round starts with
/// the other one), and prints the rate ratio `ours / rtrb` (above 1: ours is
/// faster). A warm-up run of each comes first and is not counted. At the end
/// it prints the median ratio, the range and the mean rates.
fn interleaved_rounds(rounds: usize) {
    println!(
        "spsc_interleaved_rtrb: {rounds} rounds of {RUNS_PER_ROUND} runs each, \
         {ITEMS} u64 items per run, capacity {CAPACITY}, two threads; ratio = ours/rtrb items per second"
    );
    time(run_ringbridge);
    time(run_rtrb);
    let per_round = (ITEMS * RUNS_PER_ROUND as u64) as f64;
    let mut ratios = Vec::with_capacity(rounds);
    let (mut ours_total, mut rtrb_total) = (0.0, 0.0);
    for round in 0..rounds {
        let (mut ours, mut theirs) = (0.0, 0.0);
        for run in 0..RUNS_PER_ROUND {
            if (round + run) % 2 == 0 {
                ours += time(run_ringbridge);
                theirs += time(run_rtrb);
            } else {
                theirs += time(run_rtrb);
                ours += time(run_ringbridge);
            }
        }
        ours_total += ours;
        rtrb_total += theirs;
        let ratio = theirs / ours;
        println!(
            "  round {round:2}: ours {:6.1} M/s  rtrb {:6.1} M/s  ratio {ratio:.3}",
            per_round / ours / 1e6,
            per_round / theirs / 1e6,
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let median = if rounds % 2 == 1 {
        ratios[rounds / 2]
    } else {
        (ratios[rounds / 2 - 1] + ratios[rounds / 2]) / 2.0
    };
    println!(
        "spsc_interleaved_rtrb: median ratio {median:.3}, range {:.3}..{:.3}; \
         mean rates ours {:.1} M/s, rtrb {:.1} M/s",
        ratios[0],
        ratios[rounds - 1],
        per_round * rounds as f64 / ours_total / 1e6,
        per_round * rounds as f64 / rtrb_total / 1e6,
    );
}

criterion_group!(benches, single_thread, two_thread);

fn main() {
    // Cargo passes `--bench` to a real benchmark run; without it (`cargo
    // test --benches`) one round is a smoke test, as criterion runs each of
    // its benchmarks once then.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    // A filter argument (criterion's, a substring here) selects the rounds
    // if it matches their name.
    let filter = args.iter().find(|a| !a.starts_with('-'));
    if filter.is_none_or(|f| "spsc_interleaved_rtrb".contains(f.as_str())) {
        let rounds = if bench {
            std::env::var("QUEUE_ROUNDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(21)
        } else {
            1
        };
        interleaved_rounds(rounds);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
