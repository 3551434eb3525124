//! Behaviour of `SpscQueue` and its halves, on one thread (and a little on
//! two). Miri-friendly: under `cfg(miri)` the loop counts are small.
//!
//! `MIRIFLAGS=-Zmiri-strict-provenance cargo +nightly miri test --test queue`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringbridge::queue::{CapacityError, PopError, PushError};
use ringbridge::{MessageEnvelope, QueueStats, SpscQueue};

/// Scales a loop count down under Miri.
const fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

#[test]
fn capacity_rounds_up_to_a_power_of_two() {
    for (asked, got) in [
        (0, 1),
        (1, 1),
        (2, 2),
        (3, 4),
        (5, 8),
        (1000, 1024),
        (1024, 1024),
        (1025, 2048),
    ] {
        let q = SpscQueue::<u64>::new(asked);
        assert_eq!(q.capacity(), got, "new({asked})");
        let (tx, rx) = q.split();
        assert_eq!(tx.capacity(), got);
        assert_eq!(rx.capacity(), got);
        assert_eq!(tx.slots(), got);
    }
    assert_eq!(SpscQueue::<u8>::try_new(3).unwrap().capacity(), 4);
}

#[test]
fn try_new_rejects_a_capacity_without_a_next_power_of_two() {
    let err = SpscQueue::<u8>::try_new(usize::MAX).unwrap_err();
    assert_eq!(
        err,
        CapacityError::Overflow {
            requested: usize::MAX
        }
    );
    assert!(err.to_string().contains(&usize::MAX.to_string()), "{err}");
    let err = SpscQueue::<u8>::try_new((1 << (usize::BITS - 1)) + 1).unwrap_err();
    assert!(matches!(err, CapacityError::Overflow { .. }));
    // The largest power of two is fine to round to, but then too large.
    let err = SpscQueue::<u16>::try_new(1 << (usize::BITS - 1)).unwrap_err();
    assert!(matches!(err, CapacityError::TooLarge { .. }), "{err:?}");
}

#[test]
fn try_new_rejects_a_buffer_over_isize_max_bytes() {
    let err = SpscQueue::<[u8; 1 << 20]>::try_new(1 << 44).unwrap_err();
    assert_eq!(
        err,
        CapacityError::TooLarge {
            capacity: 1 << 44,
            elem_size: 1 << 20
        }
    );
    assert!(err.to_string().contains("isize::MAX"), "{err}");
    // Just over the limit after rounding: 2^62 slots of 2 bytes = 2^63 > isize::MAX.
    let err = SpscQueue::<u16>::try_new((1 << 61) + 1).unwrap_err();
    assert!(
        matches!(err, CapacityError::TooLarge { capacity, elem_size: 2 } if capacity == 1 << 62)
    );
}

#[test]
#[cfg(not(miri))] // Miri treats a failed huge allocation as resource exhaustion.
fn try_new_reports_an_allocation_failure() {
    // 2^62 bytes is below isize::MAX but far beyond any address space.
    let err = SpscQueue::<u8>::try_new(1 << 62).unwrap_err();
    assert!(
        matches!(err, CapacityError::Alloc { capacity, elem_size: 1, .. } if capacity == 1 << 62),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
#[should_panic(expected = "power of two")]
fn new_panics_where_try_new_fails() {
    let _ = SpscQueue::<u8>::new(usize::MAX);
}

#[test]
fn zero_sized_items_work() {
    let (mut tx, mut rx) = SpscQueue::<()>::new(2).split();
    tx.try_enqueue(()).unwrap();
    tx.try_enqueue(()).unwrap();
    assert!(tx.try_enqueue(()).is_err());
    assert_eq!(rx.try_dequeue(), Ok(()));
    assert_eq!(rx.pop_into(&mut [(); 4]), 1);
    assert_eq!(tx.push_slice(&[(); 3]), 2);
    assert_eq!(rx.len(), 2);
}

#[test]
fn a_huge_queue_of_zero_sized_items_is_built_at_once() {
    let (mut tx, rx) = SpscQueue::<()>::new(1 << 60).split();
    assert_eq!(tx.capacity(), 1 << 60);
    assert_eq!(tx.push_slice(&[(); 1000]), 1000);
    assert_eq!(rx.len(), 1000);
}

#[test]
fn items_come_out_in_fifo_order() {
    let (mut tx, mut rx) = SpscQueue::<u32>::new(16).split();
    assert_eq!(rx.try_dequeue(), Err(PopError::Empty));
    for i in 0..10 {
        tx.try_enqueue(i).unwrap();
    }
    assert_eq!(tx.len(), 10);
    assert_eq!(rx.len(), 10);
    for i in 0..10 {
        assert_eq!(rx.try_dequeue(), Ok(i));
    }
    assert_eq!(rx.try_dequeue(), Err(PopError::Empty));
    assert!(rx.is_empty() && tx.is_empty());
}

#[test]
fn a_full_queue_gives_the_item_back_and_counts_it_dropped() {
    let (mut tx, mut rx) = SpscQueue::<String>::new(2).split();
    tx.try_enqueue("a".into()).unwrap();
    assert!(!tx.is_full());
    tx.try_enqueue("b".into()).unwrap();
    assert!(tx.is_full() && rx.is_full());
    assert_eq!(tx.slots(), 0);
    let err = tx.try_enqueue("c".into()).unwrap_err();
    assert!(matches!(&err, PushError::Full(s) if s == "c"));
    assert_eq!(format!("{err:?}"), "Full(..)");
    assert_eq!(err.to_string(), "queue is full");
    assert_eq!(err.into_inner(), "c");
    let back = tx.try_enqueue("d".into()).unwrap_err().into_inner();
    assert_eq!(back, "d");
    assert_eq!(tx.stats().dropped, 2);
    assert_eq!(rx.try_dequeue().as_deref(), Ok("a"));
    assert_eq!(tx.slots(), 1);
    tx.try_enqueue(back).unwrap();
    assert_eq!(rx.try_dequeue().as_deref(), Ok("b"));
    assert_eq!(rx.try_dequeue().as_deref(), Ok("d"));
    assert_eq!(tx.stats().dropped, 2);
}

#[test]
fn stats_count_every_operation() {
    let q = SpscQueue::<u64>::new(4);
    assert_eq!(q.stats(), QueueStats::default());
    let (mut tx, mut rx) = q.split();
    for i in 0..3 {
        tx.try_enqueue(i).unwrap();
    }
    rx.try_dequeue().unwrap();
    rx.try_dequeue().unwrap();
    tx.try_enqueue(3).unwrap(); // depth back to 2; max stays 3
    let expect = QueueStats {
        enqueued: 4,
        dequeued: 2,
        dropped: 0,
        depth: 2,
        max_depth: 3,
    };
    assert_eq!(tx.stats(), expect);
    assert_eq!(rx.stats(), expect);
    tx.try_enqueue(4).unwrap();
    tx.try_enqueue(5).unwrap(); // full: depth 4
    assert!(tx.try_enqueue(6).is_err());
    assert!(tx.try_enqueue(6).is_err());
    let expect = QueueStats {
        enqueued: 6,
        dequeued: 2,
        dropped: 2,
        depth: 4,
        max_depth: 4,
    };
    assert_eq!(rx.stats(), expect);
    while rx.try_dequeue().is_ok() {}
    assert!(rx.try_dequeue().is_err()); // empty pops are not counted
    let expect = QueueStats {
        enqueued: 6,
        dequeued: 6,
        dropped: 2,
        depth: 0,
        max_depth: 4,
    };
    assert_eq!(tx.stats(), expect);
}

#[test]
fn max_depth_is_exact_even_when_the_producer_cache_is_stale() {
    let (mut tx, mut rx) = SpscQueue::<u64>::new(8).split();
    for _ in 0..3 {
        tx.try_enqueue(0).unwrap();
    }
    for _ in 0..3 {
        rx.try_dequeue().unwrap();
    }
    // The producer has not looked at `tail` since; the depth is 1, not 4.
    tx.try_enqueue(0).unwrap();
    assert_eq!(tx.stats().max_depth, 3);
    for _ in 0..3 {
        tx.try_enqueue(0).unwrap();
    }
    assert_eq!(tx.stats().max_depth, 4);
    assert_eq!(tx.stats().depth, 4);
}

#[test]
fn max_depth_after_a_consumer_reset_records_the_next_high() {
    // The producer must not keep the old maximum to compare against: a
    // reset by the consumer lowers it, and a lower new high must count.
    let (mut tx, mut rx) = SpscQueue::<u64>::new(8).split();
    for i in 0..6 {
        tx.try_enqueue(i).unwrap();
    }
    while rx.try_dequeue().is_ok() {}
    rx.reset_stats();
    assert_eq!(tx.stats().max_depth, 0);
    for i in 0..3 {
        tx.try_enqueue(i).unwrap();
    }
    assert_eq!(rx.stats().max_depth, 3);
    for _ in 0..9 {
        let _ = tx.try_enqueue(0);
    }
    assert_eq!((rx.stats().max_depth, rx.stats().dropped), (8, 4));
}

#[test]
fn batch_stats_count_items() {
    let (mut tx, mut rx) = SpscQueue::<u8>::new(4).split();
    assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5, 6]), 4);
    let mut out = [0; 3];
    assert_eq!(rx.pop_into(&mut out), 3);
    let expect = QueueStats {
        enqueued: 4,
        dequeued: 3,
        dropped: 2,
        depth: 1,
        max_depth: 4,
    };
    assert_eq!(rx.stats(), expect);
}

#[test]
fn reset_stats_restarts_the_counters() {
    let (mut tx, mut rx) = SpscQueue::<u64>::new(4).split();
    for i in 0..4 {
        tx.try_enqueue(i).unwrap();
    }
    assert!(tx.try_enqueue(9).is_err());
    rx.try_dequeue().unwrap();
    tx.reset_stats();
    let expect = QueueStats {
        enqueued: 0,
        dequeued: 0,
        dropped: 0,
        depth: 3,
        max_depth: 3,
    };
    assert_eq!(tx.stats(), expect);
    assert_eq!(rx.stats(), expect);
    tx.try_enqueue(4).unwrap();
    assert!(tx.try_enqueue(10).is_err());
    rx.try_dequeue().unwrap();
    rx.try_dequeue().unwrap();
    let expect = QueueStats {
        enqueued: 1,
        dequeued: 2,
        dropped: 1,
        depth: 2,
        max_depth: 4,
    };
    assert_eq!(tx.stats(), expect);
    while rx.try_dequeue().is_ok() {}
    rx.reset_stats();
    assert_eq!(tx.stats(), QueueStats::default());
    let q = SpscQueue::<u8>::new(2);
    q.reset_stats();
    assert_eq!(q.stats(), QueueStats::default());
}

#[test]
fn wraps_around_many_times_with_capacity_1_and_2() {
    let laps = scaled(10_000, 50) as u64;
    let (mut tx, mut rx) = SpscQueue::<u64>::new(1).split();
    for i in 0..laps {
        tx.try_enqueue(i).unwrap();
        assert_eq!(tx.try_enqueue(u64::MAX).unwrap_err().into_inner(), u64::MAX);
        assert_eq!(rx.try_dequeue(), Ok(i));
        assert_eq!(rx.try_dequeue(), Err(PopError::Empty));
    }
    assert_eq!(rx.stats().dropped, laps);

    let (mut tx, mut rx) = SpscQueue::<u64>::new(2).split();
    tx.try_enqueue(0).unwrap();
    for i in 1..laps {
        tx.try_enqueue(i).unwrap(); // full now
        assert!(tx.is_full());
        assert_eq!(rx.try_dequeue(), Ok(i - 1));
    }
    assert_eq!(rx.try_dequeue(), Ok(laps - 1));
    assert!(rx.is_empty());
    assert_eq!(
        tx.stats(),
        QueueStats {
            enqueued: laps,
            dequeued: laps,
            dropped: 0,
            depth: 0,
            max_depth: 2
        }
    );
}

#[test]
fn batches_fill_partially_and_wrap_around() {
    let (mut tx, mut rx) = SpscQueue::<u32>::new(8).split();
    let mut out = [0u32; 16];
    assert_eq!(rx.pop_into(&mut out), 0);
    assert_eq!(tx.push_slice(&[]), 0);
    assert_eq!(tx.push_slice(&[0, 1, 2, 3, 4, 5]), 6);
    assert_eq!(tx.slots(), 2);
    assert_eq!(rx.pop_into(&mut out[..4]), 4);
    assert_eq!(out[..4], [0, 1, 2, 3]);
    // Slots 6, 7, then 0..4: wraps past the end of the buffer.
    assert_eq!(tx.push_slice(&[6, 7, 8, 9, 10, 11, 12, 13, 14]), 6);
    assert!(tx.is_full());
    assert_eq!(tx.push_slice(&[99]), 0);
    assert_eq!(rx.len(), 8);
    // Reading wraps too.
    assert_eq!(rx.pop_into(&mut out), 8);
    assert_eq!(out[..8], [4, 5, 6, 7, 8, 9, 10, 11]);
    // Mixed with single-item operations.
    tx.try_enqueue(20).unwrap();
    assert_eq!(tx.push_slice(&[21, 22]), 2);
    assert_eq!(rx.try_dequeue(), Ok(20));
    assert_eq!(rx.pop_into(&mut out[..1]), 1);
    assert_eq!(out[0], 21);
    assert_eq!(rx.try_dequeue(), Ok(22));
    assert_eq!(rx.stats().dropped, 3 + 1);
}

#[test]
fn batches_preserve_order_over_many_laps() {
    let (mut tx, mut rx) = SpscQueue::<u64>::new(8).split();
    let total = scaled(100_000, 500) as u64;
    let (mut next_in, mut next_out) = (0u64, 0u64);
    let mut buf = [0u64; 5];
    let mut chunk = 1;
    while next_out < total {
        let items: Vec<u64> = (next_in..(next_in + chunk).min(total)).collect();
        next_in += tx.push_slice(&items) as u64;
        let n = rx.pop_into(&mut buf[..(chunk as usize % 5) + 1]);
        for &v in &buf[..n] {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        chunk = chunk % 7 + 1;
    }
    assert_eq!(next_in, total);
}

#[test]
fn push_iter_takes_only_what_fits_and_pop_each_hands_items_over() {
    let (mut tx, mut rx) = SpscQueue::<String>::new(4).split();
    assert_eq!(tx.push_iter(std::iter::empty()), 0);
    assert_eq!(rx.pop_each(10, |_| unreachable!()), 0);
    let mut words = (0..10).map(|i| i.to_string());
    assert_eq!(tx.push_iter(&mut words), 4);
    assert_eq!(
        words.next().as_deref(),
        Some("4"),
        "an item that did not fit was taken"
    );
    assert_eq!(tx.push_iter(&mut words), 0);
    let mut got = Vec::new();
    assert_eq!(rx.pop_each(0, |s| got.push(s)), 0);
    assert_eq!(rx.pop_each(3, |s| got.push(s)), 3);
    assert_eq!(got, ["0", "1", "2"]);
    // Wraps: slots 0..3 are free again, item "3" sits in slot 3.
    assert_eq!(tx.push_iter(&mut words), 3);
    assert_eq!(words.next().as_deref(), Some("8"));
    got.clear();
    assert_eq!(rx.pop_each(usize::MAX, |s| got.push(s)), 4);
    assert_eq!(got, ["3", "5", "6", "7"]);
    // An iterator without an upper bound.
    let mut k = 0;
    let endless = std::iter::from_fn(|| {
        k += 1;
        Some(k.to_string())
    });
    assert_eq!(tx.push_iter(endless), 4);
    assert_eq!(rx.len(), 4);
    let s = rx.stats();
    assert_eq!(
        (s.enqueued, s.dequeued, s.dropped, s.depth, s.max_depth),
        (11, 7, 0, 4, 4)
    );
}

#[test]
fn iterator_batches_preserve_order_over_many_laps() {
    let (mut tx, mut rx) = SpscQueue::<u64>::new(8).split();
    let total = scaled(100_000, 500) as u64;
    let (mut next_in, mut next_out) = (0u64, 0u64);
    let mut chunk = 1;
    while next_out < total {
        next_in += tx.push_iter(next_in..(next_in + chunk).min(total)) as u64;
        rx.pop_each((chunk as usize % 5) + 1, |v| {
            assert_eq!(v, next_out);
            next_out += 1;
        });
        chunk = chunk % 7 + 1;
    }
    assert_eq!(next_in, total);
}

/// Counts its drops in a shared counter.
#[derive(Debug)]
struct Tracked {
    id: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn tracked(id: usize, drops: &Arc<AtomicUsize>) -> Tracked {
    Tracked {
        id,
        drops: Arc::clone(drops),
    }
}

#[test]
fn items_left_behind_are_dropped_exactly_once_in_either_drop_order() {
    for producer_first in [true, false] {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut tx, mut rx) = SpscQueue::<Tracked>::new(4).split();
        // Wrap around first so the leftovers straddle the end of the buffer.
        for id in 0..3 {
            tx.try_enqueue(tracked(id, &drops)).unwrap();
        }
        for id in 0..3 {
            assert_eq!(rx.try_dequeue().unwrap().id, id);
        }
        assert_eq!(drops.load(Ordering::SeqCst), 3);
        for id in 3..7 {
            tx.try_enqueue(tracked(id, &drops)).unwrap();
        }
        let refused = tx.try_enqueue(tracked(7, &drops)).unwrap_err().into_inner();
        drop(refused);
        assert_eq!(rx.try_dequeue().unwrap().id, 3);
        assert_eq!(drops.load(Ordering::SeqCst), 5);
        // Items 4, 5, 6 are left in the queue.
        if producer_first {
            drop(tx);
            assert_eq!(
                drops.load(Ordering::SeqCst),
                5,
                "consumer still holds the queue"
            );
            drop(rx);
        } else {
            drop(rx);
            assert_eq!(
                drops.load(Ordering::SeqCst),
                5,
                "producer still holds the queue"
            );
            drop(tx);
        }
        assert_eq!(
            drops.load(Ordering::SeqCst),
            8,
            "producer_first = {producer_first}"
        );
    }
}

#[test]
fn an_unsplit_queue_and_an_empty_one_drop_nothing_extra() {
    let drops = Arc::new(AtomicUsize::new(0));
    drop(SpscQueue::<Tracked>::new(4));
    let (mut tx, mut rx) = SpscQueue::<Tracked>::new(2).split();
    tx.try_enqueue(tracked(0, &drops)).unwrap();
    drop(rx.try_dequeue().unwrap());
    drop((tx, rx));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_full_queue_of_boxes_is_freed() {
    // Miri's leak checker verifies that nothing is left behind.
    let (mut tx, rx) = SpscQueue::<Box<u64>>::new(4).split();
    for i in 0..4 {
        tx.try_enqueue(Box::new(i)).unwrap();
    }
    drop(rx);
    drop(tx);
}

#[test]
fn a_panicking_iterator_publishes_what_it_yielded() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (mut tx, mut rx) = SpscQueue::<Tracked>::new(8).split();
    let mut id = 0;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tx.push_iter(std::iter::from_fn(|| {
            assert!(id < 3, "iterator gives up");
            id += 1;
            Some(tracked(id, &drops))
        }))
    }));
    assert!(result.is_err());
    assert_eq!(rx.len(), 3);
    assert_eq!(tx.stats().max_depth, 3);
    let mut ids = Vec::new();
    rx.pop_each(usize::MAX, |t| ids.push(t.id));
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn a_panicking_consumer_closure_loses_and_duplicates_nothing() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (mut tx, mut rx) = SpscQueue::<Tracked>::new(8).split();
    assert_eq!(tx.push_iter((0..6).map(|i| tracked(i, &drops))), 6);
    let mut seen = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.pop_each(usize::MAX, |t| {
            seen.push(t.id);
            assert!(t.id != 2, "consumer gives up");
        })
    }));
    assert!(result.is_err());
    // Items 0, 1 and 2 were handed over (and dropped by the closure or its
    // unwinding); 3, 4 and 5 are still queued.
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    assert_eq!(rx.len(), 3);
    assert_eq!(rx.stats().dequeued, 3);
    assert_eq!(rx.try_dequeue().unwrap().id, 3);
    drop((tx, rx));
    assert_eq!(drops.load(Ordering::SeqCst), 6);
}

#[test]
fn each_half_sees_the_other_abandon_it() {
    let (tx, rx) = SpscQueue::<u8>::new(2).split();
    assert!(!tx.is_abandoned());
    assert!(!rx.is_abandoned());
    drop(rx);
    assert!(tx.is_abandoned());

    let (mut tx, mut rx) = SpscQueue::<u8>::new(2).split();
    tx.try_enqueue(1).unwrap();
    drop(tx);
    assert!(rx.is_abandoned());
    assert_eq!(rx.try_dequeue(), Ok(1));
    assert_eq!(rx.try_dequeue(), Err(PopError::Empty));
}

#[test]
fn abandonment_across_threads_loses_nothing() {
    let n = scaled(10_000, 100) as u64;
    let (mut tx, mut rx) = SpscQueue::<u64>::new(16).split();
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            let mut item = i;
            while let Err(e) = tx.try_enqueue(item) {
                item = e.into_inner();
                std::thread::yield_now();
            }
        }
    });
    let mut expected = 0;
    loop {
        // Check before draining: once abandoned, the drain sees everything.
        let gone = rx.is_abandoned();
        while let Ok(v) = rx.try_dequeue() {
            assert_eq!(v, expected);
            expected += 1;
        }
        if gone {
            break;
        }
        std::thread::yield_now();
    }
    assert_eq!(expected, n);
    producer.join().unwrap();
}

#[test]
fn message_envelopes_pass_through() {
    let (mut tx, mut rx) = SpscQueue::<MessageEnvelope>::new(4).split();
    let msgs: Vec<_> = (0..3)
        .map(|i| MessageEnvelope::request(i, vec![i as u8; i as usize * 10]))
        .collect();
    for m in &msgs {
        tx.try_enqueue(m.clone()).unwrap();
    }
    tx.try_enqueue(MessageEnvelope::default()).unwrap();
    let back = tx.try_enqueue(msgs[0].clone()).unwrap_err().into_inner();
    assert_eq!(back, msgs[0]);
    for m in &msgs {
        assert_eq!(&rx.try_dequeue().unwrap(), m);
    }
    assert_eq!(rx.try_dequeue().unwrap(), MessageEnvelope::default());
    // Leftovers with heap payloads are freed (Miri checks for leaks).
    tx.try_enqueue(MessageEnvelope::request(9, vec![1; 100]))
        .unwrap();
}

#[test]
fn halves_are_send_and_debug() {
    fn assert_send<S: Send>(_: &S) {}
    let (tx, rx) = SpscQueue::<String>::new(4).split();
    assert_send(&tx);
    assert_send(&rx);
    assert!(format!("{tx:?}").contains("capacity: 4"));
    assert!(format!("{rx:?}").contains("len: 0"));
    assert!(format!("{:?}", SpscQueue::<u8>::new(2)).contains("SpscQueue"));
}

#[test]
#[cfg(not(miri))] // proptest is far too slow under Miri
fn matches_a_vecdeque_model() {
    use proptest::prelude::*;
    use std::collections::VecDeque;
    #[derive(Clone, Debug)]
    enum Op {
        Push(u16),
        Pop,
        PushSlice(Vec<u16>),
        PopInto(usize),
        PushIter(Vec<u16>),
        PopEach(usize),
        Reset,
    }
    let op = prop_oneof![
        any::<u16>().prop_map(Op::Push),
        Just(Op::Pop),
        proptest::collection::vec(any::<u16>(), 0..10).prop_map(Op::PushSlice),
        (0usize..10).prop_map(Op::PopInto),
        proptest::collection::vec(any::<u16>(), 0..10).prop_map(Op::PushIter),
        (0usize..10).prop_map(Op::PopEach),
        Just(Op::Reset),
    ];
    proptest!(|(cap in 0usize..9, ops in proptest::collection::vec(op, 0..200))| {
        let (mut tx, mut rx) = SpscQueue::<u16>::new(cap).split();
        let cap = tx.capacity();
        let mut model = VecDeque::new();
        let (mut enq, mut deq, mut dropped, mut max) = (0u64, 0u64, 0u64, 0u64);
        for op in ops {
            match op {
                Op::Push(v) => match tx.try_enqueue(v) {
                    Ok(()) => {
                        prop_assert!(model.len() < cap);
                        model.push_back(v);
                        enq += 1;
                    }
                    Err(e) => {
                        prop_assert_eq!(model.len(), cap);
                        prop_assert_eq!(e.into_inner(), v);
                        dropped += 1;
                    }
                },
                Op::Pop => match rx.try_dequeue() {
                    Ok(v) => { prop_assert_eq!(Some(v), model.pop_front()); deq += 1; }
                    Err(PopError::Empty) => prop_assert!(model.is_empty()),
                },
                Op::PushSlice(items) => {
                    let n = tx.push_slice(&items);
                    prop_assert_eq!(n, items.len().min(cap - model.len()));
                    model.extend(&items[..n]);
                    enq += n as u64;
                    dropped += (items.len() - n) as u64;
                }
                Op::PopInto(k) => {
                    let mut out = vec![0; k];
                    let n = rx.pop_into(&mut out);
                    prop_assert_eq!(n, k.min(model.len()));
                    for v in &out[..n] { prop_assert_eq!(Some(*v), model.pop_front()); }
                    deq += n as u64;
                }
                Op::PushIter(items) => {
                    let mut it = items.iter().copied();
                    let n = tx.push_iter(&mut it);
                    prop_assert_eq!(n, items.len().min(cap - model.len()));
                    prop_assert_eq!(it.len(), items.len() - n);
                    model.extend(&items[..n]);
                    enq += n as u64;
                }
                Op::PopEach(k) => {
                    let mut out = Vec::new();
                    let n = rx.pop_each(k, |v| out.push(v));
                    prop_assert_eq!(n, k.min(model.len()));
                    prop_assert_eq!(out.len(), n);
                    for v in out { prop_assert_eq!(Some(v), model.pop_front()); }
                    deq += n as u64;
                }
                Op::Reset => {
                    tx.reset_stats();
                    enq = 0; deq = 0; dropped = 0; max = model.len() as u64;
                }
            }
            max = max.max(model.len() as u64);
            prop_assert_eq!(tx.len(), model.len());
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(tx.slots(), cap - model.len());
            let depth = model.len() as u64;
            let expect =
                QueueStats { enqueued: enq, dequeued: deq, dropped, depth, max_depth: max };
            prop_assert_eq!(rx.stats(), expect);
        }
    });
}
