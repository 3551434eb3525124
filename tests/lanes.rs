//! The lane format ("flagged lanes"): the bridge end to end on the host
//! fallback (the device half's C++ lane serve loop on a CPU thread), and the
//! host ring halves against hand-corrupted lane memory: a message is
//! delivered only whole, never torn, never from an earlier lap. The ring
//! tests also run under Miri (`cargo +nightly miri test --test lanes`).

#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ringbridge::backend::SharedMemory;
use ringbridge::error::RingId;
use ringbridge::fallback::HostMemory;
use ringbridge::fallback::RustHandler;
use ringbridge::layout::{
    KIND_ERROR, KIND_EVENT, KIND_NO_REPLY, KIND_REPLY, KIND_REQUEST, RING_HEADER_SIZE,
    lane_header_word, lane_tag,
};
use ringbridge::ring::{LANE_TORN_POLLS, RegionLayout, RingSpec, SlotFormat};
use ringbridge::{Backend, Bridge, Error, Kernel};

fn lanes() -> ringbridge::BridgeBuilder {
    Bridge::builder()
        .backend(Backend::Fallback)
        .format(SlotFormat::Lanes)
}

fn pattern(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (i.wrapping_mul(31) as usize + k * 7) as u8)
        .collect()
}

// ---------------------------------------------------------------------------
// The bridge, end to end.
// ---------------------------------------------------------------------------

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn auto_is_slots_on_the_host_fallback() {
    // Lanes are the CUDA fast path (tests/bridge_cuda.rs checks that Auto
    // picks them there); on the fallback head-then-payload measured faster.
    for (slot, want, lane_slot) in [
        (64, SlotFormat::Slots, 64),
        (128, SlotFormat::Slots, 128),
        (256, SlotFormat::Slots, 256),
        (1024, SlotFormat::Slots, 1024),
    ] {
        let b = Bridge::builder()
            .backend(Backend::Fallback)
            .capacity(2)
            .slot_size(slot)
            .launch()
            .unwrap();
        assert_eq!(b.format(), want, "slot {slot}");
        assert_eq!(b.spec().format(), want);
        assert_eq!(b.spec().slot_size(), lane_slot, "slot {slot}");
        assert_eq!(b.max_payload(), slot - 32, "slot {slot}");
        let p = pattern(slot as u64, slot - 32);
        assert_eq!(b.round_trip(&p).unwrap().payload, common::echoed(&p));
    }
    // `ringbridge echo --payload 64` asks for slot_size_for(64) = 128: Auto
    // keeps slots on the host fallback (lanes are the CUDA fast path).
    let b = Bridge::builder()
        .backend(Backend::Fallback)
        .slot_size(RingSpec::slot_size_for(64))
        .launch()
        .unwrap();
    assert_eq!(b.format(), SlotFormat::Slots);
    let slots = Bridge::builder()
        .backend(Backend::Fallback)
        .format(SlotFormat::Slots)
        .launch()
        .unwrap();
    assert_eq!(slots.format(), SlotFormat::Slots);
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn lanes_are_refused_beyond_248_bytes() {
    let err = lanes().slot_size(512).launch().unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("248")),
        "{err}"
    );
    // 256-byte builder slots (224 bytes) fit a 512-byte lane slot.
    let b = lanes().capacity(2).slot_size(256).launch().unwrap();
    assert_eq!((b.format(), b.spec().slot_size()), (SlotFormat::Lanes, 512));
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn every_payload_length_round_trips() {
    for slot in [64, 128, 256] {
        let bridge = lanes().capacity(2).slot_size(slot).launch().unwrap();
        assert_eq!(bridge.format(), SlotFormat::Lanes);
        let max = bridge.max_payload();
        assert_eq!(max, slot - 32);
        for len in 0..=max {
            let p = pattern(len as u64, len);
            let r = bridge.round_trip(&p).unwrap();
            assert_eq!(r.header.kind, KIND_REPLY);
            assert_eq!(r.header.len as usize, len);
            assert_eq!(r.payload, common::echoed(&p), "slot {slot} len {len}");
        }
        assert!(matches!(
            bridge.send(&vec![0; max + 1]),
            Err(Error::PayloadTooLarge { .. })
        ));
    }
}

fn million_through(capacity: usize, n: u64) {
    let bridge = lanes().capacity(capacity).slot_size(128).launch().unwrap();
    let max = bridge.max_payload();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..n {
                let len = (i as usize * 13) % (max + 1);
                bridge.send_with_flags(i as u32, &pattern(i, len)).unwrap();
            }
        });
        for i in 0..n {
            let r = bridge.recv().unwrap();
            assert_eq!(r.header.correlation, i, "reply out of order");
            assert_eq!(r.header.seq, i);
            assert_eq!(r.header.flags, i as u32);
            let len = (i as usize * 13) % (max + 1);
            assert_eq!(r.payload, common::echoed(&pattern(i, len)), "message {i}");
        }
    });
    assert!(
        matches!(bridge.try_recv(), Err(Error::Empty)),
        "a duplicate reply"
    );
    let stats = bridge.stats();
    assert_eq!((stats.sent, stats.received), (n, n));
    bridge.shutdown().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn a_million_messages_through_capacity_four_keep_order() {
    million_through(4, 1_000_000);
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn messages_through_capacity_two_keep_order() {
    million_through(2, 300_000);
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn backpressure_in_both_directions_loses_nothing() {
    let bridge = lanes().capacity(4).launch().unwrap();
    let sent = common::fill_both_rings(&bridge);
    // K2H full (4 replies) and H2K full (4 requests), plus the one reply a
    // waiting sender sets aside when it reclaims room: no more, no fewer.
    assert_eq!(sent, 9);
    for i in 0..sent {
        let r = bridge.recv().unwrap();
        assert_eq!(r.header.correlation, i);
        assert_eq!(r.payload, common::echoed(&i.to_le_bytes()));
    }
    assert!(matches!(bridge.try_recv(), Err(Error::Empty)));
    // And it keeps serving.
    assert_eq!(bridge.round_trip(b"z").unwrap().payload, b"{");
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn batches_cross_small_rings_in_order() {
    let bridge = lanes().capacity(4).slot_size(128).launch().unwrap();
    common::stream_echo(&bridge, 20_000, 37, 16, |i| pattern(i, (i % 97) as usize));
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn scale_kernel_in_lanes() {
    let bridge = lanes()
        .kernel(Kernel::ScaleF32 { factor: 2.5 })
        .slot_size(128)
        .launch()
        .unwrap();
    let xs: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    bridge.send_pod(&xs).unwrap();
    assert_eq!(
        bridge.recv_pod::<f32>().unwrap(),
        xs.iter().map(|x| x * 2.5).collect::<Vec<_>>()
    );
    let r = bridge.round_trip(&[1, 2, 3]).unwrap();
    assert_eq!((r.header.kind, r.header.flags), (KIND_ERROR, 1));
    assert!(r.payload.is_empty());
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn custom_host_handler_in_lanes() {
    let reverse = RustHandler::new(|h, input, out| {
        if h.flags == 7 {
            return Err(42);
        }
        if h.flags == 9 {
            // The request header the handler sees: seq = its H2K position.
            out[..8].copy_from_slice(&h.seq.to_le_bytes());
            return Ok(8);
        }
        for (o, i) in out.iter_mut().zip(input.iter().rev()) {
            *o = *i;
        }
        Ok(input.len())
    });
    let bridge = lanes()
        .kernel(Kernel::RustHandler(reverse))
        .launch()
        .unwrap();
    assert_eq!(bridge.format(), SlotFormat::Lanes);
    assert_eq!(bridge.round_trip(b"stressed").unwrap().payload, b"desserts");
    bridge.send_with_flags(7, b"x").unwrap();
    let r = bridge.recv().unwrap();
    assert!(r.is_error());
    assert_eq!(r.header.flags, 42);
    bridge.send_with_flags(9, b"").unwrap();
    assert_eq!(bridge.recv().unwrap().payload, 2u64.to_le_bytes());
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn replies_before_a_panic_are_delivered_then_the_panic() {
    let handler = RustHandler::new(|h, input, out| {
        if h.flags == 0xDEAD {
            panic!("lane handler exploded on purpose");
        }
        out[..input.len()].copy_from_slice(input);
        Ok(input.len())
    });
    let bridge = lanes()
        .kernel(Kernel::RustHandler(handler))
        .launch()
        .unwrap();
    // All in one batch for the serve loop: the replies before the panic
    // still arrive, whole.
    let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 20]).collect();
    bridge.send_batch(&msgs).unwrap();
    bridge.send_with_flags(0xDEAD, b"boom").unwrap();
    for i in 0..5u8 {
        assert_eq!(bridge.recv().unwrap().payload, vec![i; 20]);
    }
    let err = bridge.recv().unwrap_err();
    assert!(
        matches!(&err, Error::HandlerPanicked(m) if m.contains("on purpose")),
        "got {err}"
    );
}

/// The lane loop releases the H2K tail lazily, a quarter ring at a time
/// (kernels/ringbridge.cuh, "Timing of the lane serve loop"), but a ring it
/// drained is released whole once it idles: a producer then gets every slot.
#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn a_drained_ring_is_released_whole_while_the_loop_idles() {
    let closed = Arc::new(AtomicBool::new(false));
    let gate = Arc::clone(&closed);
    let handler = common::echo_after(move || {
        // Acquire: pairs with the test's release store; only a flag.
        while gate.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
    });
    let bridge = lanes()
        .capacity(16)
        .hang_timeout(Duration::from_secs(60))
        .kernel(Kernel::RustHandler(handler))
        .launch()
        .unwrap();
    // 15 round trips: released at 4, 8 and 12; the last 3 only by idling.
    for i in 0..15u8 {
        assert_eq!(bridge.round_trip(&[i]).unwrap().payload, [i]);
    }
    std::thread::sleep(Duration::from_millis(100));
    // The loop now holds the next batch in the handler, releasing nothing:
    // the producer has exactly the slots released before.
    closed.store(true, Ordering::Release);
    let mut sent = 0u8;
    loop {
        match bridge.try_send(&[sent]) {
            Ok(_) => sent += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(sent <= 16, "more than a ring's worth of room");
    }
    assert_eq!(sent, 16, "slots read before the pause were never released");
    closed.store(false, Ordering::Release);
    for i in 0..sent {
        assert_eq!(bridge.recv().unwrap().payload, [i]);
    }
    bridge.shutdown().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn shutdown_while_busy_stops_both_sides() {
    let bridge = Arc::new(lanes().capacity(2).launch().unwrap());
    let start = Arc::new(Barrier::new(3));
    let sender = {
        let (b, start) = (Arc::clone(&bridge), Arc::clone(&start));
        std::thread::spawn(move || {
            start.wait();
            let mut n = 0u64;
            while b.send(&n.to_le_bytes()).is_ok() {
                n += 1;
            }
            n
        })
    };
    let receiver = {
        let (b, start) = (Arc::clone(&bridge), Arc::clone(&start));
        std::thread::spawn(move || {
            start.wait();
            let mut n = 0u64;
            while let Ok(r) = b.recv() {
                assert_eq!(r.header.correlation, n);
                assert_eq!(r.payload, common::echoed(&n.to_le_bytes()));
                n += 1;
            }
            n
        })
    };
    start.wait();
    std::thread::sleep(Duration::from_millis(200));
    bridge.shutdown().unwrap();
    let sent = sender.join().unwrap();
    let got = receiver.join().unwrap();
    assert!(got <= sent && sent > 0, "sent {sent}, got {got}");
    assert!(matches!(bridge.send(b"x"), Err(Error::ShutDown)));
}

// ---------------------------------------------------------------------------
// The ring halves against hand-written lane memory.
// ---------------------------------------------------------------------------

/// A lane-format region with raw access to the H2K lanes.
struct Rig {
    layout: RegionLayout,
    mem: Arc<HostMemory>,
}

impl Rig {
    /// `capacity` slots of `slot` bytes (lanes) per ring.
    fn new(capacity: usize, slot: usize) -> Self {
        let layout = RegionLayout::new(RingSpec::lanes(capacity, slot).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        Self { layout, mem }
    }

    /// (data, tag) of lane `k` of the H2K slot of position `pos`.
    fn lane(&self, pos: u64, k: usize) -> (&AtomicU64, &AtomicU64) {
        let spec = self.layout.spec;
        let slot = (pos as usize) & (spec.capacity() - 1);
        let base = (self.layout.h2k_offset + RING_HEADER_SIZE + slot * spec.slot_size()) / 8;
        let w = self.mem.words();
        (&w[base + 2 * k], &w[base + 2 * k + 1])
    }

    /// Writes lane `k` of the slot of `pos` as a writer of position field
    /// `seq` (the position `seq - 1`) would: data, then its tag (release).
    fn put(&self, pos: u64, k: usize, data: u64, seq: u64) {
        self.put_raw(pos, k, data, lane_tag(seq - 1, data));
    }

    /// Writes lane `k` of the slot of `pos` with this exact tag.
    fn put_raw(&self, pos: u64, k: usize, data: u64, tag: u64) {
        let (d, t) = self.lane(pos, k);
        d.store(data, Ordering::Relaxed);
        t.store(tag, Ordering::Release);
    }

    /// The lanes of a request at `pos` with this payload, as (lane, data,
    /// position field): lane 0 first.
    fn message_lanes(pos: u64, kind: u32, payload: &[u8]) -> Vec<(usize, u64, u64)> {
        let mut out = vec![(0, lane_header_word(kind, payload.len() as u32, 5), pos + 1)];
        for (i, c) in payload.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            out.push((1 + i, u64::from_ne_bytes(b), pos + 1));
        }
        out
    }
}

type Got = Option<(u64, u64, u32, Vec<u8>)>;

fn pop(rx: &mut ringbridge::ring::LaneConsumer) -> Result<Got, Error> {
    rx.try_pop_with(|h, p| (h.seq, h.correlation, h.flags, p.to_vec()))
}

fn corrupted(r: Result<Got, Error>) -> String {
    match r {
        Err(Error::RingCorrupted { ring, what }) => format!("{ring}: {what}"),
        other => panic!("expected RingCorrupted, got {other:?}"),
    }
}

#[test]
fn a_torn_message_waits_until_every_lane_arrives() {
    let rig = Rig::new(4, 128); // 7 payload lanes
    let (_tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    let payload = pattern(3, 50); // 7 payload lanes
    let lanes = Rig::message_lanes(0, KIND_REQUEST, &payload);
    // Every order of arrival that is not complete: in order, reversed,
    // header first, header last.
    let orders: Vec<Vec<usize>> = vec![
        (0..lanes.len()).collect(),
        (0..lanes.len()).rev().collect(),
        [3, 0, 6, 1, 5, 2, 4, 7].to_vec(),
    ];
    for (round, order) in orders.iter().enumerate() {
        let pos = round as u64;
        let lanes = Rig::message_lanes(pos, KIND_REQUEST, &payload);
        for (i, &k) in order.iter().enumerate() {
            assert!(!rx.ready().unwrap(), "round {round}: {i} lanes only");
            assert_eq!(pop(&mut rx).unwrap(), None, "round {round}: delivered torn");
            let (lane, data, tag) = lanes[k];
            rig.put(pos, lane, data, tag);
        }
        assert!(rx.ready().unwrap());
        assert_eq!(
            pop(&mut rx).unwrap(),
            Some((pos, pos, 5, payload.clone())),
            "round {round}: whole"
        );
    }
}

#[test]
fn lanes_of_earlier_laps_are_never_current() {
    let rig = Rig::new(2, 128);
    let (mut tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    // Lap 0: two full-length messages; drain them.
    for i in 0..2 {
        tx.try_push(KIND_REQUEST, 1, &pattern(i, 56))
            .unwrap()
            .unwrap();
    }
    for i in 0..2 {
        assert_eq!(pop(&mut rx).unwrap().unwrap().3, pattern(i, 56));
    }
    // Lap 1, slot 0: a message of length 0 (lane 0 only) leaves lanes 1..7
    // with lap 0's tag 1.
    tx.try_push(KIND_REQUEST, 2, b"").unwrap().unwrap();
    assert_eq!(pop(&mut rx).unwrap(), Some((2, 2, 2, vec![])));
    tx.try_push(KIND_REQUEST, 3, b"x").unwrap().unwrap();
    assert_eq!(pop(&mut rx).unwrap(), Some((3, 3, 3, b"x".to_vec())));
    // Lap 2, slot 0 (position 4): written by hand, lane by lane, header
    // first. Its lanes 2..7 carry tag 1 (two laps back): stale, not corrupt,
    // and never taken as current.
    let payload = pattern(4, 56);
    let lanes = Rig::message_lanes(4, KIND_REQUEST, &payload);
    for (i, &(lane, data, tag)) in lanes.iter().enumerate() {
        assert_eq!(pop(&mut rx).unwrap(), None, "{i} of {} lanes", lanes.len());
        rig.put(4, lane, data, tag);
    }
    assert_eq!(pop(&mut rx).unwrap(), Some((4, 4, 5, payload)));
    // A lane that keeps the previous lap's tag (with the new header current)
    // holds the message back however long it stays so.
    let payload = pattern(5, 9);
    let lanes = Rig::message_lanes(5, KIND_REQUEST, &payload);
    rig.put(5, lanes[0].0, lanes[0].1, lanes[0].2);
    rig.put(5, lanes[2].0, lanes[2].1, lanes[2].2);
    // Lane 1 of slot 1 still carries position 3's tag 4 (and its data).
    for _ in 0..100 {
        assert_eq!(pop(&mut rx).unwrap(), None);
    }
    rig.put(5, lanes[1].0, lanes[1].1, lanes[1].2);
    assert_eq!(pop(&mut rx).unwrap(), Some((5, 5, 5, payload)));
}

/// A lane seen in two pieces (the current tag with data an earlier write
/// left) is never delivered: the consumer reads it again and delivers the
/// message once the lane is whole.
#[test]
fn a_torn_lane_is_not_delivered() {
    let rig = Rig::new(4, 64); // 3 payload lanes
    let (_tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    let payload = pattern(7, 20);
    let lanes = Rig::message_lanes(0, KIND_REQUEST, &payload);
    for &(lane, data, seq) in &lanes {
        rig.put(0, lane, data, seq);
    }
    // Every lane in turn: its data word from an earlier write (0, or the
    // data of another lane), its tag the current one.
    for &(lane, data, seq) in &lanes {
        for stale in [0, data ^ 1, data.rotate_left(8)] {
            rig.put_raw(0, lane, stale, lane_tag(seq - 1, data));
            assert!(!rx.ready().unwrap(), "lane {lane} torn ({stale:#x})");
            assert_eq!(pop(&mut rx).unwrap(), None, "lane {lane} torn delivered");
        }
        rig.put(0, lane, data, seq); // the second half lands
    }
    assert_eq!(pop(&mut rx).unwrap(), Some((0, 0, 5, payload)));
}

/// The other direction: the host's consumer of the GPU's replies (K2H)
/// never delivers a torn reply lane either.
#[test]
fn a_torn_reply_lane_is_not_delivered() {
    let rig = Rig::new(4, 64);
    let (mut tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::K2h);
    tx.try_push(KIND_REPLY, 0, b"abcdefgh").unwrap().unwrap();
    let base = (rig.layout.k2h_offset + RING_HEADER_SIZE) / 8;
    let w = rig.mem.words();
    let (d, t) = (&w[base + 2], &w[base + 3]); // lane 1 of slot 0
    let data = d.load(Ordering::Relaxed);
    assert_eq!(t.load(Ordering::Relaxed), lane_tag(0, data));
    d.store(u64::from_ne_bytes(*b"abcdXXXX"), Ordering::Relaxed);
    assert!(rx.try_pop_with(|_, p| p.to_vec()).unwrap().is_none());
    d.store(data, Ordering::Relaxed);
    assert_eq!(
        rx.try_pop_with(|_, p| p.to_vec()).unwrap(),
        Some(b"abcdefgh".to_vec())
    );
}

/// A no-reply mark is a single-lane message on K2H (correlation: its
/// position, as for every lane message); one that claims a payload is
/// corruption, and so is an event, which the lane format never carries.
#[test]
fn k2h_lanes_take_no_reply_marks_but_no_events() {
    let rig = Rig::new(4, 64);
    let (mut tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::K2h);
    tx.try_push(KIND_REPLY, 1, b"r").unwrap().unwrap();
    tx.try_push(KIND_NO_REPLY, 0, b"").unwrap().unwrap();
    let got = rx.try_pop_with(|h, p| (h.kind, h.correlation, p.to_vec()));
    assert_eq!(got.unwrap(), Some((KIND_REPLY, 0, b"r".to_vec())));
    let got = rx.try_pop_with(|h, p| (h.kind, h.correlation, p.to_vec()));
    assert_eq!(got.unwrap(), Some((KIND_NO_REPLY, 1, vec![])));

    tx.try_push(KIND_NO_REPLY, 0, b"x").unwrap().unwrap();
    let what = corrupted(pop(&mut rx));
    assert!(
        what.starts_with("K2H") && what.contains("no-reply"),
        "{what}"
    );

    let rig = Rig::new(4, 64);
    let (mut tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::K2h);
    tx.try_push(KIND_EVENT, 0, b"tick").unwrap().unwrap();
    let what = corrupted(pop(&mut rx));
    assert!(what.starts_with("K2H") && what.contains("event"), "{what}");
}

/// A lane that stays torn is corruption, after LANE_TORN_POLLS reads in a
/// row (a real tear lasts far shorter); one whole read resets the count.
#[test]
#[cfg_attr(miri, ignore)] // 2^16 polls
fn a_lane_that_stays_torn_is_corruption() {
    let rig = Rig::new(4, 64);
    let (_tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    let word = lane_header_word(KIND_REQUEST, 8, 0);
    rig.put_raw(0, 0, word, lane_tag(0, word));
    rig.put_raw(0, 1, 1, lane_tag(0, 2));
    for _ in 1..LANE_TORN_POLLS {
        assert_eq!(pop(&mut rx).unwrap(), None);
    }
    // A read that finds the lane stale (not torn) starts the count again.
    rig.put_raw(0, 1, 0, 0);
    assert_eq!(pop(&mut rx).unwrap(), None);
    rig.put_raw(0, 1, 1, lane_tag(0, 2));
    for _ in 1..LANE_TORN_POLLS {
        assert_eq!(pop(&mut rx).unwrap(), None);
    }
    let what = corrupted(pop(&mut rx));
    assert!(
        what.contains("lane 1") && what.contains("reads in a row"),
        "{what}"
    );
}

#[test]
fn a_tag_from_the_future_is_corruption() {
    let rig = Rig::new(4, 64);
    let (_tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    // Lane 0 of position 0 carries position 4's tag (a lap ahead).
    rig.put(0, 0, lane_header_word(KIND_REQUEST, 0, 0), 5);
    let what = corrupted(pop(&mut rx));
    assert!(what.contains("H2K") && what.contains("tag 5"), "{what}");
}

#[test]
fn a_payload_lane_from_the_future_is_corruption() {
    let rig = Rig::new(4, 64);
    let (_tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    rig.put(0, 0, lane_header_word(KIND_REQUEST, 9, 0), 1);
    rig.put(0, 1, 0, 1);
    rig.put(0, 2, 0, 2); // a tag not congruent to position 0's
    let what = corrupted(pop(&mut rx));
    assert!(what.contains("lane 2") && what.contains("tag 2"), "{what}");
}

#[test]
fn a_bad_length_or_kind_is_corruption() {
    let rig = Rig::new(4, 64); // 24 payload bytes
    let (_tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    rig.put(0, 0, lane_header_word(KIND_REQUEST, 25, 0), 1);
    let what = corrupted(pop(&mut rx));
    assert!(what.contains("length 25"), "{what}");

    let rig = Rig::new(4, 64);
    let (_tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    rig.put(0, 0, lane_header_word(KIND_REPLY, 0, 0), 1); // a reply on H2K
    let what = corrupted(pop(&mut rx));
    assert!(what.contains("kind 2"), "{what}");

    // And on K2H, a request kind.
    let rig = Rig::new(4, 64);
    let (mut tx, mut rx) = rig.layout.lane_pair(&rig.mem, RingId::K2h);
    tx.try_push(KIND_REQUEST, 0, b"").unwrap().unwrap();
    assert!(matches!(
        rx.try_pop_with(|_, _| ()),
        Err(Error::RingCorrupted { .. })
    ));
}

#[test]
fn a_tail_past_what_was_written_is_corruption() {
    let rig = Rig::new(2, 64);
    let (mut tx, _rx) = rig.layout.lane_pair(&rig.mem, RingId::H2k);
    tx.try_push(KIND_REQUEST, 0, b"a").unwrap().unwrap();
    tx.try_push(KIND_REQUEST, 0, b"b").unwrap().unwrap();
    rig.mem.words()
        [rig.layout.h2k_offset / 8 + ringbridge::word_of!(ringbridge::layout::RingHeader, tail)]
    .store(3, Ordering::Release);
    assert!(matches!(
        tx.try_push(KIND_REQUEST, 0, b"c"),
        Err(Error::RingCorrupted { .. })
    ));
}

#[test]
fn spec_and_slot_sizes() {
    assert_eq!(RingSpec::lane_slot_size_for(24), Some(64));
    assert_eq!(RingSpec::lane_slot_size_for(25), Some(128));
    assert_eq!(RingSpec::lane_slot_size_for(56), Some(128));
    assert_eq!(RingSpec::lane_slot_size_for(57), Some(256));
    assert_eq!(RingSpec::lane_slot_size_for(120), Some(256));
    assert_eq!(RingSpec::lane_slot_size_for(248), Some(512));
    assert_eq!(RingSpec::lane_slot_size_for(249), None);
    let s = RingSpec::lanes(3, 256).unwrap();
    assert_eq!((s.capacity(), s.max_payload()), (4, 120));
    assert!(RingSpec::lanes(4, 1024).is_err());
}
