//! Property tests: random operation sequences against the ring halves, with
//! and without random corruption of the words the other side writes. The
//! consumer either hands out exactly the next message that was sent, or
//! returns `RingCorrupted`: never a wrong message, never a panic.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use ringbridge::backend::SharedMemory;
use ringbridge::error::RingId;
use ringbridge::fallback::HostMemory;
use ringbridge::layout::{KIND_REPLY, RING_HEADER_SIZE, RingHeader};
use ringbridge::ring::{RegionLayout, RingSpec};
use ringbridge::{Error, word_of};

#[derive(Clone, Debug)]
enum Op {
    Push { len: usize, flags: u32 },
    Pop,
}

/// Ways to corrupt what the producer publishes (each one the consumer can detect).
#[derive(Clone, Debug)]
enum Corruption {
    HeadBackwards,
    HeadFarAhead(u64),
    HeadPastWritten,
    SeqWrong(u64),
    KindUnknown(u32),
    LenTooLong(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..=96, any::<u32>()).prop_map(|(len, flags)| Op::Push { len, flags }),
        Just(Op::Pop),
    ]
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        Just(Corruption::HeadBackwards),
        (9u64..1 << 40).prop_map(Corruption::HeadFarAhead),
        Just(Corruption::HeadPastWritten),
        (1u64..1 << 20).prop_map(Corruption::SeqWrong),
        (4u32..).prop_map(Corruption::KindUnknown),
        (97u32..).prop_map(Corruption::LenTooLong),
    ]
}

fn payload(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|k| (n as usize * 31 + k) as u8).collect()
}

struct Rig {
    layout: RegionLayout,
    mem: std::sync::Arc<HostMemory>,
}

impl Rig {
    fn new(capacity: usize) -> Self {
        let layout = RegionLayout::new(RingSpec::new(capacity, 128).unwrap()).unwrap();
        let mem = HostMemory::new(layout.total_bytes).unwrap();
        layout.init(&*mem);
        Self { layout, mem }
    }
    fn word(&self, w: usize) -> &std::sync::atomic::AtomicU64 {
        &self.mem.words()[self.layout.k2h_offset / 8 + w]
    }
    fn slot_word(&self, pos: u64, w: usize) -> &std::sync::atomic::AtomicU64 {
        let cap = self.layout.spec.capacity() as u64;
        let slot_words = self.layout.spec.slot_size() / 8;
        let base = (self.layout.k2h_offset + RING_HEADER_SIZE) / 8;
        &self.mem.words()[base + (pos % cap) as usize * slot_words + w]
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 512 }, ..ProptestConfig::default() })]

    /// Without corruption the ring is an exact FIFO with the right capacity.
    #[test]
    fn fifo_matches_a_model(cap_log in 0u32..4, ops in prop::collection::vec(op(), 1..200)) {
        let cap = 1usize << cap_log;
        let rig = Rig::new(cap);
        let (mut tx, mut rx) = rig.layout.ring_pair(&rig.mem, RingId::K2h);
        let mut model: VecDeque<(u64, u32, Vec<u8>)> = VecDeque::new();
        let mut n = 0u64;
        for op in ops {
            match op {
                Op::Push { len, flags } => {
                    let p = payload(n, len);
                    let r = tx.try_push(KIND_REPLY, flags, n, &p).unwrap();
                    if model.len() < cap {
                        prop_assert_eq!(r, Some(n));
                        model.push_back((n, flags, p));
                        n += 1;
                    } else {
                        prop_assert_eq!(r, None);
                    }
                }
                Op::Pop => {
                    let got = rx.try_pop_with(|h, p| (h.seq, h.flags, p.to_vec())).unwrap();
                    prop_assert_eq!(got, model.pop_front());
                }
            }
        }
    }

    /// With one corruption at a random moment, every message handed out is
    /// the one that was sent, and the corruption is reported.
    #[test]
    fn corruption_is_reported_never_delivered(
        ops in prop::collection::vec(op(), 1..120),
        at in 0usize..120,
        what in corruption(),
    ) {
        let cap = 4usize;
        let rig = Rig::new(cap);
        let (mut tx, mut rx) = rig.layout.ring_pair(&rig.mem, RingId::K2h);
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut n = 0u64;
        let head_w = word_of!(RingHeader, head);
        for (i, op) in ops.into_iter().enumerate() {
            if i == at {
                // The consumer's next position and the producer's head.
                let next = n - model.len() as u64;
                let head = rig.word(head_w).load(Ordering::Relaxed);
                match &what {
                    Corruption::HeadBackwards if next > 0 => {
                        rig.word(head_w).store(next - 1, Ordering::Release);
                    }
                    Corruption::HeadFarAhead(d) => {
                        rig.word(head_w).store(next + cap as u64 + d, Ordering::Release);
                    }
                    Corruption::HeadPastWritten if model.len() < cap => {
                        rig.word(head_w).store(head + 1, Ordering::Release);
                    }
                    Corruption::SeqWrong(d) if !model.is_empty() => {
                        rig.slot_word(next, 0).store(next + d, Ordering::Relaxed);
                    }
                    Corruption::KindUnknown(k) if !model.is_empty() => {
                        let w = rig.slot_word(next, 2);
                        let v = w.load(Ordering::Relaxed);
                        w.store((v & !0xffff_ffff) | u64::from(*k), Ordering::Relaxed);
                    }
                    Corruption::LenTooLong(l) if !model.is_empty() => {
                        let w = rig.slot_word(next, 2);
                        let v = w.load(Ordering::Relaxed);
                        w.store((v & 0xffff_ffff) | (u64::from(*l) << 32), Ordering::Relaxed);
                    }
                    _ => break, // nothing to corrupt in this state
                }
                // Drain: every delivered message must be exact, then an error.
                loop {
                    match rx.try_pop_with(|h, p| (h.seq, p.to_vec())) {
                        Ok(Some(got)) => prop_assert_eq!(Some(got), model.pop_front()),
                        Ok(None) => prop_assert!(false, "corruption {:?} went unnoticed", what),
                        Err(Error::RingCorrupted { ring: RingId::K2h, .. }) => break,
                        Err(e) => prop_assert!(false, "unexpected error {}", e),
                    }
                }
                break;
            }
            match op {
                Op::Push { len, flags } => {
                    let p = payload(n, len);
                    if tx.try_push(KIND_REPLY, flags, n, &p).unwrap().is_some() {
                        model.push_back((n, p));
                        n += 1;
                    }
                }
                Op::Pop => {
                    let got = rx.try_pop_with(|h, p| (h.seq, p.to_vec())).unwrap();
                    prop_assert_eq!(got, model.pop_front());
                }
            }
        }
    }
}
