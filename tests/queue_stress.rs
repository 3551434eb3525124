//! Two threads push 10^7 sequence-numbered items through a capacity-64 queue;
//! the consumer checks that each item is the next expected one (no loss, no
//! duplicate, order kept). One test per API: per item, slice batches
//! (`push_slice`/`pop_into`) and iterator batches (`push_iter`/`pop_each`).
//!
//! The tests take a lock so they never run at the same time: each spins two
//! threads, and this machine may have only two cores.

use std::sync::Mutex;
use std::thread;

use ringbridge::SpscQueue;

const ITEMS: u64 = 10_000_000;
const CAPACITY: usize = 64;

static SERIAL: Mutex<()> = Mutex::new(());

/// Spins a little, then yields, so that a waiting thread does not starve the
/// other one when there are fewer free cores than spinning threads.
struct Backoff(u32);

impl Backoff {
    fn snooze(&mut self) {
        if self.0 < 64 {
            std::hint::spin_loop();
            self.0 += 1;
        } else {
            thread::yield_now();
        }
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

#[test]
fn per_item_api_moves_every_item_once_in_order() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut tx, mut rx) = SpscQueue::<u64>::new(CAPACITY).split();
    let producer = thread::spawn(move || {
        let mut backoff = Backoff(0);
        for i in 0..ITEMS {
            let mut item = i;
            loop {
                match tx.try_enqueue(item) {
                    Ok(()) => break,
                    Err(e) => {
                        item = e.into_inner();
                        backoff.snooze();
                    }
                }
            }
            backoff.reset();
        }
        tx
    });
    let mut expected = 0u64;
    let mut backoff = Backoff(0);
    while expected < ITEMS {
        match rx.try_dequeue() {
            Ok(v) => {
                assert_eq!(v, expected, "lost, duplicated or reordered item");
                expected += 1;
                backoff.reset();
            }
            Err(_) => backoff.snooze(),
        }
    }
    let tx = producer.join().unwrap();
    assert!(rx.try_dequeue().is_err(), "an extra item appeared");
    let stats = rx.stats();
    assert_eq!(
        (stats.enqueued, stats.dequeued, stats.depth),
        (ITEMS, ITEMS, 0)
    );
    assert!(stats.max_depth >= 1 && stats.max_depth <= CAPACITY as u64);
    assert_eq!(tx.stats(), stats);
}

#[test]
fn batch_api_moves_every_item_once_in_order() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut tx, mut rx) = SpscQueue::<u64>::new(CAPACITY).split();
    let producer = thread::spawn(move || {
        let mut backoff = Backoff(0);
        let mut batch = [0u64; 48];
        let mut next = 0u64;
        // Vary the batch size so batches straddle the end of the buffer at
        // every offset.
        let mut size = 1usize;
        while next < ITEMS {
            let n = (size as u64).min(ITEMS - next) as usize;
            for (k, slot) in batch[..n].iter_mut().enumerate() {
                *slot = next + k as u64;
            }
            let mut sent = 0;
            while sent < n {
                let pushed = tx.push_slice(&batch[sent..n]);
                if pushed == 0 {
                    backoff.snooze();
                } else {
                    backoff.reset();
                }
                sent += pushed;
            }
            next += n as u64;
            size = size % 47 + 1;
        }
    });
    let mut expected = 0u64;
    let mut backoff = Backoff(0);
    let mut buf = [0u64; 37];
    let mut size = 1usize;
    while expected < ITEMS {
        let n = rx.pop_into(&mut buf[..size]);
        if n == 0 {
            backoff.snooze();
        } else {
            backoff.reset();
        }
        for &v in &buf[..n] {
            assert_eq!(v, expected, "lost, duplicated or reordered item");
            expected += 1;
        }
        size = size % 37 + 1;
    }
    producer.join().unwrap();
    assert_eq!(rx.pop_into(&mut buf), 0, "an extra item appeared");
    let stats = rx.stats();
    assert_eq!(
        (stats.enqueued, stats.dequeued, stats.depth),
        (ITEMS, ITEMS, 0)
    );
}

#[test]
fn iterator_batch_api_moves_every_item_once_in_order() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut tx, mut rx) = SpscQueue::<u64>::new(CAPACITY).split();
    let producer = thread::spawn(move || {
        let mut backoff = Backoff(0);
        let mut next = 0u64;
        let mut size = 1u64;
        while next < ITEMS {
            let pushed = tx.push_iter(next..(next + size).min(ITEMS));
            if pushed == 0 {
                backoff.snooze();
            } else {
                backoff.reset();
            }
            next += pushed as u64;
            size = size % 53 + 1;
        }
    });
    let mut expected = 0u64;
    let mut backoff = Backoff(0);
    let mut size = 1usize;
    while expected < ITEMS {
        let n = rx.pop_each(size, |v| {
            assert_eq!(v, expected, "lost, duplicated or reordered item");
            expected += 1;
        });
        if n == 0 {
            backoff.snooze();
        } else {
            backoff.reset();
        }
        size = size % 41 + 1;
    }
    producer.join().unwrap();
    assert_eq!(
        rx.pop_each(usize::MAX, |_| panic!("an extra item appeared")),
        0
    );
    let stats = rx.stats();
    assert_eq!(
        (stats.enqueued, stats.dequeued, stats.depth),
        (ITEMS, ITEMS, 0)
    );
}
