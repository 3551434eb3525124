//! Loom models of the queue: every interleaving (and every weak-memory
//! outcome loom models) of a producer and a consumer thread, with loom's
//! `UnsafeCell` checking that no slot is read while written.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test queue_loom`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use ringbridge::SpscQueue;

/// Pushes `item`, yielding to loom while the queue is full.
fn push<T>(tx: &mut ringbridge::Producer<T>, mut item: T) {
    loop {
        match tx.try_enqueue(item) {
            Ok(()) => return,
            Err(e) => {
                item = e.into_inner();
                thread::yield_now();
            }
        }
    }
}

/// Pops one item, yielding to loom while the queue is empty.
fn pop<T>(rx: &mut ringbridge::Consumer<T>) -> T {
    loop {
        match rx.try_dequeue() {
            Ok(v) => return v,
            Err(_) => thread::yield_now(),
        }
    }
}

/// Moves `items` sequence numbers through a capacity-2 queue and checks them.
fn sequence_through_capacity_2(items: u32) {
    let (mut tx, mut rx) = SpscQueue::<u32>::new(2).split();
    let producer = thread::spawn(move || {
        for i in 0..items {
            push(&mut tx, i);
        }
        tx
    });
    for i in 0..items {
        assert_eq!(pop(&mut rx), i);
    }
    let tx = producer.join().unwrap();
    assert!(rx.try_dequeue().is_err());
    let s = tx.stats();
    let n = u64::from(items);
    assert_eq!((s.enqueued, s.dequeued, s.depth), (n, n, 0));
    assert!(s.max_depth >= 1 && s.max_depth <= 2);
}

#[test]
fn items_cross_a_capacity_2_queue_in_order() {
    // Three items through two slots: the queue fills, empties and wraps.
    // Every interleaving, no preemption bound.
    loom::model(|| sequence_through_capacity_2(3));
}

#[test]
fn four_items_wrap_twice_with_bounded_preemption() {
    // Four items wrap the buffer twice; unbounded this takes minutes, so
    // bound the preemptions (loom's recommended way to scale a model).
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| sequence_through_capacity_2(4));
}

#[test]
fn non_copy_items_cross_a_capacity_2_queue_in_order() {
    loom::model(|| {
        let (mut tx, mut rx) = SpscQueue::<Box<u32>>::new(2).split();
        let producer = thread::spawn(move || {
            for i in 0..3 {
                push(&mut tx, Box::new(i));
            }
        });
        for i in 0..3 {
            assert_eq!(*pop(&mut rx), i);
        }
        producer.join().unwrap();
    });
}

#[test]
fn batches_cross_a_capacity_2_queue_in_order() {
    loom::model(|| {
        let (mut tx, mut rx) = SpscQueue::<u32>::new(2).split();
        let producer = thread::spawn(move || {
            let items = [0, 1, 2, 3];
            let mut sent = 0;
            while sent < items.len() {
                let n = tx.push_slice(&items[sent..]);
                if n == 0 {
                    thread::yield_now();
                }
                sent += n;
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u32; 2];
        while got.len() < 4 {
            let n = rx.pop_into(&mut buf);
            if n == 0 {
                thread::yield_now();
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, [0, 1, 2, 3]);
        producer.join().unwrap();
    });
}

#[test]
fn iterator_batches_of_non_copy_items_cross_a_capacity_2_queue_in_order() {
    loom::model(|| {
        let (mut tx, mut rx) = SpscQueue::<Box<u32>>::new(2).split();
        let producer = thread::spawn(move || {
            let mut items = (0..3).map(Box::new);
            let mut sent = 0;
            while sent < 3 {
                let n = tx.push_iter(&mut items);
                if n == 0 {
                    thread::yield_now();
                }
                sent += n;
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            if rx.pop_each(2, |b| got.push(*b)) == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(got, [0, 1, 2]);
        producer.join().unwrap();
    });
}

/// Counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn leftovers_are_dropped_exactly_once_whoever_goes_last() {
    // The consumer takes one item and drops its half while the producer is
    // still pushing; whichever half is dropped last frees the leftovers.
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut tx, mut rx) = SpscQueue::<Tracked>::new(2).split();
        let d = Arc::clone(&drops);
        let producer = thread::spawn(move || {
            for _ in 0..3 {
                let mut item = Tracked(Arc::clone(&d));
                // Give up once the consumer is gone; the item is dropped here.
                while let Err(e) = tx.try_enqueue(item) {
                    if tx.is_abandoned() {
                        return;
                    }
                    item = e.into_inner();
                    thread::yield_now();
                }
            }
        });
        drop(pop(&mut rx));
        drop(rx);
        producer.join().unwrap();
        // Three items were made; all are gone, each dropped once.
        assert_eq!(drops.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn consumer_that_sees_abandonment_finds_every_item() {
    loom::model(|| {
        let (mut tx, mut rx) = SpscQueue::<u32>::new(2).split();
        let producer = thread::spawn(move || {
            tx.try_enqueue(1).unwrap();
            tx.try_enqueue(2).unwrap();
            // `tx` dropped here.
        });
        let mut got = Vec::new();
        loop {
            let gone = rx.is_abandoned();
            while let Ok(v) = rx.try_dequeue() {
                got.push(v);
            }
            if gone {
                break;
            }
            thread::yield_now();
        }
        assert_eq!(got, [1, 2]);
        producer.join().unwrap();
    });
}

#[test]
fn producer_sees_consumer_abandon_it() {
    loom::model(|| {
        let (mut tx, rx) = SpscQueue::<u32>::new(1).split();
        let consumer = thread::spawn(move || drop(rx));
        tx.try_enqueue(1).unwrap();
        while !tx.is_abandoned() {
            thread::yield_now();
        }
        consumer.join().unwrap();
        assert!(tx.is_abandoned());
    });
}
