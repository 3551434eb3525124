//! In-place batches on the host fallback: `Bridge::reserve` and
//! `Bridge::send_in_place` write requests straight into ring slots (lane
//! format: through a stack staging buffer), publish them together, and
//! refuse bad input with a typed error having published nothing.

use ringbridge::ring::SlotFormat;
use ringbridge::{Backend, Bridge, Error};

fn bridge(format: SlotFormat, capacity: usize, slot_size: usize) -> Bridge {
    Bridge::builder()
        .backend(Backend::Fallback)
        .format(format)
        .capacity(capacity)
        .slot_size(slot_size)
        .launch()
        .unwrap()
}

/// Payload of request `i`: its length varies with `i` (0 to `max`), its
/// bytes with `i` and their index.
fn payload(i: u64, max: usize) -> Vec<u8> {
    let len = (i as usize * 7) % (max + 1);
    (0..len)
        .map(|k| (i as u8).wrapping_mul(13) ^ k as u8)
        .collect()
}

/// Receives `n` replies and checks each against request `first + j`.
fn expect_replies(bridge: &Bridge, first: u64, n: u64, max: usize) {
    let mut got = 0u64;
    while got < n {
        bridge
            .recv_batch(64, |h, p| {
                let i = first + got;
                assert_eq!(h.correlation, i);
                let want: Vec<u8> = payload(i, max).iter().map(|b| b.wrapping_add(1)).collect();
                assert_eq!(p, want, "reply {i}");
                got += 1;
            })
            .unwrap();
    }
}

fn many_messages(format: SlotFormat, slot_size: usize) {
    let b = bridge(format, 16, slot_size);
    assert_eq!(b.format(), format);
    let max = b.max_payload();
    let mut next = 0u64;
    // Batches of every size up to the ring's, many laps round it.
    for round in 0..300u64 {
        let n = (round % 16 + 1) as usize;
        let first = b
            .send_in_place(n, |k, buf| {
                assert_eq!(buf.len(), max);
                let p = payload(next + k as u64, max);
                buf[..p.len()].copy_from_slice(&p);
                p.len()
            })
            .unwrap();
        assert_eq!(first, next);
        expect_replies(&b, first, n as u64, max);
        next += n as u64;
    }
    // The chunk API, written message by message.
    for _ in 0..50 {
        let mut chunk = b.reserve(5).unwrap();
        assert_eq!(chunk.first_seq(), next);
        for k in 0..5u64 {
            let p = payload(next + k, max);
            let seq = chunk
                .write_with(|buf| {
                    buf[..p.len()].copy_from_slice(&p);
                    p.len()
                })
                .unwrap();
            assert_eq!(seq, next + k);
        }
        assert_eq!(chunk.publish().unwrap(), next);
        expect_replies(&b, next, 5, max);
        next += 5;
    }
    let stats = b.stats();
    assert_eq!((stats.sent, stats.received), (next, next));
    b.shutdown().unwrap();
}

#[test]
fn many_in_place_messages_slots() {
    many_messages(SlotFormat::Slots, 128);
    many_messages(SlotFormat::Slots, 4096);
}

#[test]
fn many_in_place_messages_lanes() {
    // A 64-byte builder slot: a lane slot of 128 bytes, whose lanes carry
    // more than the bridge's 32-byte limit.
    many_messages(SlotFormat::Lanes, 64);
    many_messages(SlotFormat::Lanes, 256);
}

/// Both formats, each bad input: a typed error and nothing sent.
fn bad_input(format: SlotFormat) {
    let b = bridge(format, 8, 64);
    let max = b.max_payload();
    assert_eq!(max, 32);

    // A reservation larger than the ring.
    assert!(matches!(b.reserve(9), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        b.send_in_place(9, |_, _| 0),
        Err(Error::InvalidArgument(_))
    ));

    // A payload longer than the bridge's limit (in lanes, still within the
    // lane slot's 56 bytes): the whole batch is refused.
    let err = b
        .send_in_place(3, |i, buf| if i == 2 { max + 1 } else { buf.len() })
        .unwrap_err();
    assert!(
        matches!(err, Error::PayloadTooLarge { len: 33, max: 32 }),
        "{err:?}"
    );
    let err = b.send_in_place(1, |_, _| usize::MAX).unwrap_err();
    assert!(matches!(
        err,
        Error::PayloadTooLarge {
            len: usize::MAX,
            ..
        }
    ));

    // A chunk not filled: publish refuses, sends nothing.
    let mut chunk = b.reserve(3).unwrap();
    chunk.write(b"a").unwrap();
    chunk.write(b"b").unwrap();
    assert!(matches!(chunk.publish(), Err(Error::InvalidArgument(_))));

    // Writing past the reservation, and a too-long payload in a chunk: the
    // chunk stays as it was, and publishes what was written correctly.
    let mut chunk = b.reserve(1).unwrap();
    let err = chunk.write_with(|buf| buf.len() + 1).unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { len: 33, max: 32 }));
    assert_eq!(chunk.written(), 0);
    chunk.write(b"ok").unwrap();
    assert!(matches!(chunk.write(b"x"), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        chunk.write_with(|_| unreachable!("not called")),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(chunk.publish().unwrap(), 0);

    // Only that one went out, and the bridge is still up.
    assert_eq!(b.recv().unwrap().payload, b"pl");
    assert_eq!(b.stats().sent, 1);
    assert_eq!(b.round_trip(b"y").unwrap().payload, b"z");
}

#[test]
fn bad_input_is_a_typed_error_and_sends_nothing_slots() {
    bad_input(SlotFormat::Slots);
}

#[test]
fn bad_input_is_a_typed_error_and_sends_nothing_lanes() {
    bad_input(SlotFormat::Lanes);
}

/// A chunk dropped without publishing sends nothing, even fully written, and
/// the positions it held are reused by the next send.
fn dropped_chunk(format: SlotFormat) {
    let b = bridge(format, 4, 64);
    for round in 0..10u8 {
        let mut chunk = b.reserve(4).unwrap();
        for k in 0..4u8 {
            chunk
                .write_with(|buf| {
                    buf[0] = 100 + k;
                    1
                })
                .unwrap();
        }
        drop(chunk);
        assert_eq!(b.stats().sent, u64::from(round));
        // Give the serve loop time to (wrongly) see anything.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(matches!(b.try_recv(), Err(Error::Empty)));
        let reply = b.round_trip(&[round]).unwrap();
        assert_eq!(reply.header.correlation, u64::from(round));
        assert_eq!(reply.payload, [round + 1]);
    }
    assert_eq!((b.stats().sent, b.stats().received), (10, 10));
    b.shutdown().unwrap();
}

#[test]
fn dropped_chunk_sends_nothing_slots() {
    dropped_chunk(SlotFormat::Slots);
}

#[test]
fn dropped_chunk_sends_nothing_lanes() {
    dropped_chunk(SlotFormat::Lanes);
}

/// A chunk left unpublished while its bridge is shut down: publishing then
/// is an error and sends nothing.
#[test]
fn publish_after_shutdown_is_refused() {
    let b = bridge(SlotFormat::Slots, 4, 64);
    let mut chunk = b.reserve(1).unwrap();
    chunk.write(b"late").unwrap();
    // `shutdown` needs no sending lock.
    b.shutdown().unwrap();
    assert!(matches!(chunk.publish(), Err(Error::ShutDown)));
    assert_eq!(b.stats().sent, 0);
}
