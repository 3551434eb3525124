//! A bridge whose device half the test plays by hand, through the ring
//! halves of the other side: no serve loop, so a test can put any K2H
//! message (events, no-reply marks) in front of the bridge's receive paths.

use super::launch::Launched;
use super::*;
use crate::error::RingId;
use crate::fallback::HostMemory;
use crate::layout::KIND_REPLY;
use crate::layout::{KIND_EVENT, KIND_NO_REPLY};
use crate::ring::{RegionLayout, RingConsumer, RingProducer};
use crate::wait::WaitPolicy;
use std::time::Instant;

/// "Finishes" as soon as the bridge asks it to stop.
struct FakeEngine(Control);

impl Engine for FakeEngine {
    fn poll(&self) -> Result<bool> {
        Ok(self.0.terminate_requested())
    }
}

/// The device's ends of a fake bridge's rings.
pub(crate) struct Device {
    pub(crate) h2k: RingConsumer,
    pub(crate) k2h: RingProducer,
}

impl Device {
    /// Takes the next request, waiting for it: its `seq`.
    pub(crate) fn request(&mut self) -> u64 {
        loop {
            if let Some(seq) = self.h2k.try_pop_with(|h, _| h.seq).unwrap() {
                return seq;
            }
            std::thread::yield_now();
        }
    }

    /// The next request's `seq`, or `None` when none comes within
    /// `idle`.
    pub(crate) fn request_within(&mut self, idle: Duration) -> Option<u64> {
        let deadline = Instant::now() + idle;
        while Instant::now() < deadline {
            if let Some(seq) = self.h2k.try_pop_with(|h, _| h.seq).unwrap() {
                return Some(seq);
            }
            std::thread::yield_now();
        }
        None
    }

    /// Publishes one K2H message, waiting for room (at most 10 s: then
    /// the test fails instead of hanging).
    pub(crate) fn push(&mut self, kind: u32, flags: u32, correlation: u64, payload: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .k2h
            .try_push(kind, flags, correlation, payload)
            .unwrap()
            .is_none()
        {
            assert!(Instant::now() < deadline, "K2H stayed full");
            std::thread::yield_now();
        }
    }

    pub(crate) fn reply(&mut self, correlation: u64, payload: &[u8]) {
        self.push(KIND_REPLY, 0, correlation, payload);
    }

    pub(crate) fn no_reply(&mut self, correlation: u64) {
        self.push(KIND_NO_REPLY, 0, correlation, &[]);
    }

    pub(crate) fn event(&mut self, number: u64, payload: &[u8]) {
        self.push(KIND_EVENT, 0, number, payload);
    }
}

/// A slot-format bridge of 16 slots of 64 bytes, and its device ends.
pub(crate) fn bridge() -> (Bridge, Device) {
    let layout = RegionLayout::new(RingSpec::new(16, 64).unwrap()).unwrap();
    let mem = HostMemory::new(layout.total_bytes).unwrap();
    layout.init(&*mem);
    let (_, h2k) = layout.ring_pair(&mem, RingId::H2k);
    let (k2h, _) = layout.ring_pair(&mem, RingId::K2h);
    let builder = Bridge::builder()
        .backend(Backend::Fallback)
        // No heartbeat here: never take the quiet device for a hang.
        .hang_timeout(Duration::from_secs(3600))
        // No doorbell rung by the test: never park on it.
        .wait_policy(WaitPolicy::Backoff);
    let bridge = Bridge::assemble(
        &builder,
        &layout,
        Launched {
            memory: mem.clone(),
            engine: Box::new(FakeEngine(layout.control(&mem))),
            buffers: Arc::new(Buffers::none()),
            args: LaunchArgs::default(),
        },
        Backend::Fallback,
        "fake",
        layout.spec.max_payload(),
        0,
    )
    .expect("a bridge without a call ring starts no thread");
    (bridge, Device { h2k, k2h })
}
