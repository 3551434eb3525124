//! SPSC queue throughput: ringbridge's `SpscQueue` (per-item API, and the
//! batch APIs `push_slice`/`pop_into` and `push_iter`/`pop_each`) against
//! `rtrb::RingBuffer` (per item and chunks) and `crossbeam_queue::ArrayQueue`,
//! side by side.
//!
//! `cargo bench --bench queue` (about a minute).

use std::hint::black_box;
use std::thread;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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

    g.bench_function("ringbridge", |b| {
        b.iter(|| {
            let (mut tx, mut rx) = SpscQueue::<u64>::new(CAPACITY).split();
            per_item(
                move |v| tx.try_enqueue(v).map_err(|e| e.into_inner()),
                move || rx.try_dequeue().ok(),
            );
        })
    });

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

    g.bench_function("rtrb", |b| {
        b.iter(|| {
            let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(CAPACITY);
            per_item(
                move |v| {
                    p.push(v).map_err(|e| match e {
                        rtrb::PushError::Full(back) => back,
                    })
                },
                move || q.pop().ok(),
            );
        })
    });

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

criterion_group!(benches, single_thread, two_thread);
criterion_main!(benches);
