//! The receive paths against K2H messages a kernel's handler leaves when it
//! answers with nothing (no-reply marks) or sends on its own (events), on
//! [`fake`] bridges.

use super::builder::slots_only;
use super::receive::{K2hConsumer, ReceiveState};
use super::*;
use crate::error::RingId;
use crate::fallback::HostMemory;
use crate::layout::KIND_REPLY;
use crate::layout::{KIND_EVENT, KIND_NO_REPLY};
use crate::message::{MessageEnvelope, MessageHeader};
use crate::ring::{LaneConsumer, RegionLayout, RingRef};
use crate::user_kernel::HandlerTraits;

fn kinds(stats: BridgeStats) -> (u64, u64, u64, u64, u64) {
    (
        stats.sent,
        stats.received,
        stats.no_reply,
        stats.events,
        stats.in_flight,
    )
}

/// No-reply marks are never returned, but counted as answers.
#[test]
fn no_reply_marks_are_consumed_silently_and_counted() {
    let (bridge, mut dev) = fake::bridge();
    for _ in 0..3 {
        bridge.send(b"q").unwrap();
    }
    for _ in 0..3 {
        dev.request();
    }
    dev.no_reply(0);
    dev.reply(1, b"one");
    dev.no_reply(2);
    let r = bridge.recv().unwrap();
    assert_eq!((r.header.correlation, r.payload), (1, b"one".to_vec()));
    assert_eq!(kinds(bridge.stats()), (3, 1, 1, 0, 1));
    // The mark left: nothing to return, yet the request is answered.
    assert!(matches!(bridge.try_recv(), Err(Error::Empty)));
    assert_eq!(kinds(bridge.stats()), (3, 1, 2, 0, 0));
    // Nothing outstanding now.
    let seq = bridge.send(b"x").unwrap();
    dev.request();
    dev.no_reply(seq);
    let err = bridge.recv_timeout(Duration::from_millis(20)).unwrap_err();
    assert!(matches!(err, Error::Timeout { op: "recv", .. }), "{err:?}");
    assert_eq!(kinds(bridge.stats()), (4, 1, 3, 0, 0));
    for _ in 0..2 {
        bridge.send(b"x").unwrap();
        dev.request();
    }
    dev.no_reply(4);
    dev.reply(5, b"five");
    assert_eq!(
        bridge.recv_with(|h, p| (h.correlation, p.len())).unwrap(),
        (5, 4)
    );
}

/// Events come back like replies, in K2H order, and answer no request.
#[test]
fn events_are_returned_in_order_and_do_not_answer_requests() {
    let (bridge, mut dev) = fake::bridge();
    let seq = bridge.send(b"q").unwrap();
    dev.request();
    dev.event(0, b"e0");
    dev.reply(seq, b"r");
    dev.event(1, b"e1");
    let m = bridge.recv().unwrap();
    assert!(m.is_event() && !m.is_reply());
    assert_eq!((m.event_seq(), m.payload.as_slice()), (Some(0), &b"e0"[..]));
    assert_eq!(kinds(bridge.stats()), (1, 0, 0, 1, 1));
    let m = bridge.recv().unwrap();
    assert!(m.is_reply() && m.event_seq().is_none());
    let m = bridge.recv().unwrap();
    assert_eq!((m.event_seq(), m.header.seq), (Some(1), 2));
    assert_eq!(kinds(bridge.stats()), (1, 1, 0, 2, 0));
}

/// A round trip keeps the events it meets, in order, for the next
/// receives, which return them before anything later in K2H.
#[test]
fn a_round_trip_sets_events_aside_for_the_next_receives() {
    let (bridge, mut dev) = fake::bridge();
    std::thread::scope(|s| {
        s.spawn(|| {
            let seq = dev.request();
            dev.event(0, b"a");
            dev.event(1, b"b");
            dev.reply(seq, b"reply");
            dev.event(2, b"c");
            let seq = dev.request();
            dev.reply(seq, b"second");
        });
        let reply = bridge.round_trip(b"x").unwrap();
        assert_eq!(reply.payload, b"reply");
        // It reads what K2H holds, so the event after its reply may be
        // taken (and set aside) too.
        let stats = kinds(bridge.stats());
        assert!(
            stats == (1, 1, 0, 2, 0) || stats == (1, 1, 0, 3, 0),
            "{stats:?}"
        );
        // Still set aside: a second round trip adds nothing before them.
        assert_eq!(bridge.round_trip(b"y").unwrap().payload, b"second");
    });
    // The set-aside events first (try_recv too), then the ring's.
    let got = [
        bridge.try_recv().unwrap(),
        bridge.recv().unwrap(),
        bridge.recv_timeout(Duration::from_secs(5)).unwrap(),
    ];
    let numbers: Vec<_> = got.iter().map(MessageEnvelope::event_seq).collect();
    assert_eq!(numbers, [Some(0), Some(1), Some(2)]);
    assert_eq!(kinds(bridge.stats()), (2, 2, 0, 3, 0));
    assert!(matches!(bridge.try_recv(), Err(Error::Empty)));
}

/// `recv_batch` hands out the set-aside events first, then the ring's
/// messages, passing no-reply marks over uncounted.
#[test]
fn recv_batch_honours_the_set_aside_events_and_skips_marks() {
    let (bridge, mut dev) = fake::bridge();
    std::thread::scope(|s| {
        s.spawn(|| {
            let seq = dev.request();
            dev.event(0, b"a");
            dev.reply(seq, b"r");
        });
        bridge.round_trip(b"x").unwrap();
    });
    for _ in 0..2 {
        bridge.send(b"q").unwrap();
        dev.request();
    }
    dev.no_reply(1);
    dev.event(1, b"b");
    dev.reply(2, b"s");
    let mut got = Vec::new();
    while got.len() < 3 {
        let n = bridge
            .recv_batch(8, |h, p| got.push((h.kind, h.correlation, p.to_vec())))
            .unwrap();
        assert!(n >= 1);
    }
    assert_eq!(
        got,
        [
            (KIND_EVENT, 0, b"a".to_vec()),
            (KIND_EVENT, 1, b"b".to_vec()),
            (KIND_REPLY, 2, b"s".to_vec()),
        ]
    );
    assert_eq!(kinds(bridge.stats()), (3, 2, 1, 2, 0));
    // max bounds the set-aside events too.
    std::thread::scope(|s| {
        s.spawn(|| {
            let seq = dev.request();
            dev.event(2, b"c");
            dev.event(3, b"d");
            dev.reply(seq, b"r");
        });
        bridge.round_trip(b"x").unwrap();
    });
    let mut got = Vec::new();
    assert_eq!(
        bridge
            .recv_batch(1, |h, _| got.push(h.correlation))
            .unwrap(),
        1
    );
    assert_eq!(
        bridge
            .recv_batch(8, |h, _| got.push(h.correlation))
            .unwrap(),
        1
    );
    assert_eq!(got, [2, 3]);
}

/// A round trip answered with nothing completes with a no-reply answer
/// (issue 28, item 2); events met on the way go to the receive calls.
#[test]
fn a_round_trip_answered_with_nothing_is_a_no_reply_answer() {
    let (bridge, mut dev) = fake::bridge();
    std::thread::scope(|s| {
        s.spawn(|| {
            let seq = dev.request();
            dev.event(0, b"e");
            dev.no_reply(seq);
            let seq = dev.request();
            dev.reply(seq, b"ok");
        });
        let answer = bridge.round_trip(b"one-way").unwrap();
        assert!(answer.is_no_reply(), "{answer:?}");
        assert_eq!((answer.header.correlation, answer.payload.len()), (0, 0));
        assert_eq!(bridge.round_trip(b"x").unwrap().payload, b"ok");
    });
    assert_eq!(kinds(bridge.stats()), (2, 1, 1, 1, 0));
    assert_eq!(bridge.recv().unwrap().event_seq(), Some(0));
}

/// Events go to a subscriber while one is alive, and never to the receive
/// calls then; round trips and plain receives go on beside it.
#[test]
fn events_reach_the_subscriber_while_round_trips_run() {
    let (bridge, mut dev) = fake::bridge();
    let events = bridge.events();
    std::thread::scope(|s| {
        s.spawn(|| {
            let seq = dev.request();
            dev.event(0, b"a");
            dev.reply(seq, b"r");
            let seq = dev.request();
            dev.event(1, b"b");
            dev.reply(seq, b"plain");
        });
        assert_eq!(bridge.round_trip(b"x").unwrap().payload, b"r");
        assert_eq!(events.recv().unwrap().payload, b"a");
        bridge.send(b"y").unwrap();
        assert_eq!(bridge.recv().unwrap().payload, b"plain");
        assert_eq!(
            events.recv_timeout(Duration::from_secs(5)).unwrap().payload,
            b"b"
        );
    });
    assert!(matches!(events.try_recv(), Err(Error::Empty)));
    drop(events);
    // No subscriber: events go to the receive calls again.
    dev.event(2, b"c");
    assert_eq!(bridge.recv().unwrap().event_seq(), Some(2));
}

/// `recv_pod` does not turn an event into values: it says so and keeps
/// the event for the next receive.
#[test]
fn recv_pod_leaves_an_event_in_place() {
    let (bridge, mut dev) = fake::bridge();
    bridge.send(b"q").unwrap();
    dev.request();
    dev.no_reply(0);
    dev.event(0, &[1, 0, 0, 0]);
    bridge.send(b"q").unwrap();
    dev.request();
    dev.reply(1, &7u32.to_ne_bytes());
    let err = bridge.recv_pod::<u32>().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(w) if w.contains("event 0")),
        "{err:?}"
    );
    assert_eq!(bridge.recv().unwrap().event_seq(), Some(0));
    assert_eq!(bridge.recv_pod::<u32>().unwrap(), [7]);
}

/// The async calls follow the same rules: events met by an async round
/// trip reach the next receives; a request answered with nothing is a
/// no-reply answer; a round trip dropped after sending loses nothing and
/// its answer is dropped when it comes.
#[test]
fn async_round_trips_leave_events_to_the_receives_and_answer_no_reply() {
    use crate::AsyncBridge;
    use std::future::Future;
    use std::task::Context;

    let (bridge, mut dev) = fake::bridge();
    let bridge = AsyncBridge::new(bridge);
    std::thread::scope(|s| {
        s.spawn(|| {
            let seq = dev.request();
            dev.event(0, b"a");
            dev.reply(seq, b"r");
            let seq = dev.request();
            dev.event(1, b"b");
            dev.no_reply(seq);
        });
        let reply = futures::executor::block_on(bridge.round_trip(b"x")).unwrap();
        assert_eq!(reply.payload, b"r");
        let answer = futures::executor::block_on(bridge.round_trip(b"y")).unwrap();
        assert!(answer.is_no_reply() && answer.header.correlation == 1);
    });
    let got = futures::executor::block_on(bridge.recv()).unwrap();
    assert_eq!(got.event_seq(), Some(0));
    let got = futures::executor::block_on(bridge.recv()).unwrap();
    assert_eq!(got.event_seq(), Some(1));

    // A round trip polled until its request is out and an event came,
    // then dropped: the event is kept, the abandoned reply dropped.
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(bridge.round_trip(b"z"));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    let seq = dev.request();
    dev.event(2, b"c");
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    drop(fut);
    dev.reply(seq, b"orphan");
    dev.event(3, b"d");
    let mut got = Vec::new();
    futures::executor::block_on(async {
        while got.len() < 2 {
            bridge
                .recv_batch(8, |h, _| got.push(h.correlation))
                .await
                .unwrap();
        }
    });
    assert_eq!(got, [2, 3]);
    let stats = bridge.bridge().stats();
    assert_eq!((stats.received, stats.events, stats.in_flight), (2, 4, 0));
    // Issue 23, item 1: a blocking receive after the abandoned answer does
    // not leave a later async round trip waiting forever.
    std::thread::scope(|s| {
        s.spawn(|| {
            let seq = dev.request();
            dev.reply(seq, b"fine");
        });
        let reply = futures::executor::block_on(bridge.round_trip(b"w")).unwrap();
        assert_eq!(reply.payload, b"fine");
    });
}

/// The lane format carries no-reply marks too (never events).
#[test]
fn lane_bridges_consume_no_reply_marks() {
    let layout = RegionLayout::new(RingSpec::lanes(8, 128).unwrap()).unwrap();
    let mem = HostMemory::new(layout.total_bytes).unwrap();
    layout.init(&*mem);
    let (mut k2h, _) = layout.lane_pair(&mem, RingId::K2h);
    let rx = RingRef::new(mem.clone(), &layout, RingId::K2h);
    let mut side = ReceiveState::new(K2hConsumer::Lanes(LaneConsumer::new(rx)));
    k2h.try_push(KIND_NO_REPLY, 0, b"").unwrap().unwrap();
    k2h.try_push(KIND_REPLY, 0, b"r").unwrap().unwrap();
    let (bridge, _dev) = fake::bridge();
    let got = bridge
        .pop_message(&mut side, &mut |h: &MessageHeader, p: &[u8]| {
            (h.correlation, p.to_vec())
        })
        .unwrap();
    assert_eq!(got, Some((1, b"r".to_vec())));
    assert_eq!((side.no_reply, side.events, side.answered()), (1, 0, 2));
}

/// Format selection by a user kernel's traits.
#[test]
fn kernels_that_send_or_cooperate_run_in_slots_only() {
    let sends = HandlerTraits {
        sends: true,
        ..HandlerTraits::default()
    };
    let both = HandlerTraits {
        cooperative: true,
        ..sends
    };
    assert_eq!(slots_only("k", HandlerTraits::default()), None);
    assert_eq!(slots_only("k", sends).unwrap(), "kernel k sends messages");
    assert_eq!(
        slots_only("k", both).unwrap(),
        "kernel k is cooperative and sends messages"
    );
    let chunkwise = HandlerTraits {
        chunkwise: true,
        ..HandlerTraits::default()
    };
    assert_eq!(slots_only("k", chunkwise), None);

    let b = Bridge::builder().slot_size(64);
    let why = || slots_only("k", sends);
    // Auto: lanes on CUDA for a small slot, unless the kernel needs slots.
    assert!(b.lanes_for(Backend::Cuda, None).unwrap());
    assert!(!b.lanes_for(Backend::Cuda, why()).unwrap());
    assert!(!b.lanes_for(Backend::Fallback, None).unwrap());
    // Asked for lanes: refused for such a kernel, on either backend.
    let lanes = b.clone().format(SlotFormat::Lanes);
    for backend in [Backend::Cuda, Backend::Fallback] {
        assert!(lanes.lanes_for(backend, None).unwrap());
        let err = lanes.lanes_for(backend, why()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(w)
                if w.contains("kernel k sends messages") && w.contains("slot format only")),
            "{err:?}"
        );
    }
    let slots = b.format(SlotFormat::Slots);
    assert!(!slots.lanes_for(Backend::Cuda, why()).unwrap());
}
