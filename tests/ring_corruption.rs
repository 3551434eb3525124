//! The host halves treat shared memory as untrusted: every way the other
//! side can corrupt a ring becomes `Error::RingCorrupted`, never an
//! out-of-bounds access or a wrong message.

use ringbridge::backend::SharedMemory;
use ringbridge::error::RingId;
use ringbridge::fallback::HostMemory;
use ringbridge::layout::{
    KIND_ERROR, KIND_EVENT, KIND_NO_REPLY, KIND_REPLY, KIND_REQUEST, RING_HEADER_SIZE,
};
use ringbridge::ring::{RegionLayout, RingSpec};
use ringbridge::{Error, word_of};
use std::sync::atomic::Ordering;

struct Fixture {
    layout: RegionLayout,
    mem: std::sync::Arc<HostMemory>,
}

impl Fixture {
    fn new() -> Self {
        let layout = RegionLayout::new(RingSpec::new(4, 64).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        Self { layout, mem }
    }
    fn ring_word(&self, ring: RingId, word: usize) -> &std::sync::atomic::AtomicU64 {
        &self.mem.words()[self.layout.ring_offset(ring) / 8 + word]
    }
    /// Word `word` of slot `slot` of the K2H ring.
    fn slot_word(&self, slot: usize, word: usize) -> &std::sync::atomic::AtomicU64 {
        let base = (self.layout.k2h_offset + RING_HEADER_SIZE) / 8;
        &self.mem.words()[base + slot * 8 + word]
    }
}

fn corrupted(r: Result<Option<()>, Error>) -> String {
    match r {
        Err(Error::RingCorrupted { ring, what }) => format!("{ring}: {what}"),
        other => panic!("expected RingCorrupted, got {other:?}"),
    }
}

#[test]
fn head_running_more_than_a_capacity_ahead() {
    let f = Fixture::new();
    let (_tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
    f.ring_word(RingId::K2h, word_of!(ringbridge::layout::RingHeader, head))
        .store(5, Ordering::Release);
    let what = corrupted(rx.try_pop_with(|_, _| ()));
    assert!(what.contains("K2H") && what.contains("ahead"), "{what}");
}

#[test]
fn head_going_backwards() {
    let f = Fixture::new();
    let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
    for _ in 0..3 {
        tx.try_push(KIND_REPLY, 0, 0, b"ok").unwrap();
    }
    assert!(rx.try_pop_with(|_, _| ()).unwrap().is_some());
    assert!(rx.try_pop_with(|_, _| ()).unwrap().is_some());
    assert!(rx.try_pop_with(|_, _| ()).unwrap().is_some());
    f.ring_word(RingId::K2h, 0).store(1, Ordering::Release);
    let what = corrupted(rx.try_pop_with(|_, _| ()));
    assert!(what.contains("backwards"), "{what}");
}

#[test]
fn length_beyond_the_slot() {
    let f = Fixture::new();
    let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
    tx.try_push(KIND_REPLY, 0, 0, b"ok").unwrap();
    // Word 2 of the header is {kind: u32, len: u32}; len is the high half.
    let w = f.slot_word(0, 2);
    let v = w.load(Ordering::Relaxed);
    w.store((v & 0xffff_ffff) | (4096u64 << 32), Ordering::Relaxed);
    let what = corrupted(rx.try_pop_with(|_, _| ()));
    assert!(what.contains("exceeds"), "{what}");
}

#[test]
fn unknown_kind() {
    let f = Fixture::new();
    let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
    tx.try_push(KIND_REQUEST, 0, 0, b"a request on the reply ring")
        .unwrap();
    let what = corrupted(rx.try_pop_with(|_, _| ()));
    assert!(what.contains("kind"), "{what}");
}

#[test]
fn stale_slot_from_an_earlier_lap() {
    let f = Fixture::new();
    let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
    for _ in 0..4 {
        tx.try_push(KIND_REPLY, 0, 0, b"lap0").unwrap();
        rx.try_pop_with(|_, _| ()).unwrap().unwrap();
    }
    // The producer claims a 5th message but never wrote slot 0 again: the
    // slot still carries sequence 0 from the first lap.
    f.ring_word(RingId::K2h, 0).store(5, Ordering::Release);
    let what = corrupted(rx.try_pop_with(|_, _| ()));
    assert!(what.contains("stale"), "{what}");
}

#[test]
fn tail_running_past_what_was_published() {
    let f = Fixture::new();
    let (mut tx, _rx) = f.layout.ring_pair(&f.mem, RingId::H2k);
    for _ in 0..4 {
        tx.try_push(KIND_REQUEST, 0, 0, b"x").unwrap();
    }
    let tail = f.ring_word(RingId::H2k, word_of!(ringbridge::layout::RingHeader, tail));
    tail.store(9, Ordering::Release);
    match tx.try_push(KIND_REQUEST, 0, 0, b"y") {
        Err(Error::RingCorrupted {
            ring: RingId::H2k,
            what,
        }) => assert!(what.contains("tail"), "{what}"),
        other => panic!("expected RingCorrupted, got {other:?}"),
    }
}

#[test]
fn a_valid_sequence_passes_validation() {
    let f = Fixture::new();
    let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
    for lap in 0..10u64 {
        for i in 0..4u64 {
            let n = lap * 4 + i;
            assert_eq!(
                tx.try_push(KIND_REPLY, 1, n, &n.to_le_bytes()).unwrap(),
                Some(n)
            );
        }
        assert_eq!(tx.try_push(KIND_REPLY, 0, 0, b"full").unwrap(), None);
        for i in 0..4u64 {
            let n = lap * 4 + i;
            let got = rx
                .try_pop_with(|h, p| (h.seq, h.correlation, p.to_vec()))
                .unwrap();
            assert_eq!(got, Some((n, n, n.to_le_bytes().to_vec())));
        }
    }
}

/// K2H carries, besides replies and error replies, events (with a payload)
/// and no-reply marks (without): the consumer hands all four over as they
/// are, in order.
#[test]
fn k2h_accepts_events_and_no_reply_marks() {
    let f = Fixture::new();
    let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
    tx.try_push(KIND_REPLY, 0, 0, b"r").unwrap().unwrap();
    tx.try_push(KIND_EVENT, 7, 0, b"event zero")
        .unwrap()
        .unwrap();
    tx.try_push(KIND_NO_REPLY, 0, 1, b"").unwrap().unwrap();
    tx.try_push(KIND_ERROR, 3, 2, b"").unwrap().unwrap();
    let mut got = Vec::new();
    while let Some(m) = rx
        .try_pop_with(|h, p| (h.seq, h.kind, h.correlation, h.flags, p.to_vec()))
        .unwrap()
    {
        got.push(m);
    }
    assert_eq!(
        got,
        [
            (0, KIND_REPLY, 0, 0, b"r".to_vec()),
            (1, KIND_EVENT, 0, 7, b"event zero".to_vec()),
            (2, KIND_NO_REPLY, 1, 0, vec![]),
            (3, KIND_ERROR, 2, 3, vec![]),
        ]
    );
}

/// A no-reply mark carries nothing: one with a payload is corruption.
#[test]
fn a_no_reply_mark_with_a_payload() {
    let f = Fixture::new();
    let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
    tx.try_push(KIND_NO_REPLY, 0, 0, b"x").unwrap();
    let what = corrupted(rx.try_pop_with(|_, _| ()));
    assert!(
        what.contains("no-reply") && what.contains("1-byte"),
        "{what}"
    );
}

/// Kinds beyond the five, and requests or events where they do not
/// belong, stay corruption.
#[test]
fn unknown_kinds_stay_corruption() {
    for kind in [0, 6, 255, u32::MAX] {
        let f = Fixture::new();
        let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::K2h);
        tx.try_push(kind, 0, 0, b"").unwrap();
        let what = corrupted(rx.try_pop_with(|_, _| ()));
        assert!(what.contains(&format!("kind {kind}")), "{what}");
    }
    // H2K takes requests only.
    for kind in [KIND_REPLY, KIND_EVENT, KIND_NO_REPLY] {
        let f = Fixture::new();
        let (mut tx, mut rx) = f.layout.ring_pair(&f.mem, RingId::H2k);
        tx.try_push(kind, 0, 0, b"").unwrap();
        let what = corrupted(rx.try_pop_with(|_, _| ()));
        assert!(what.starts_with("H2K") && what.contains("kind"), "{what}");
    }
}
