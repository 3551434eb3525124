use std::sync::atomic::Ordering::Relaxed;

use super::*;
use crate::error::RingId;
use crate::layout::RingHeader;
use crate::ring::RegionLayout;

/// A group's regions lie one stride apart in one allocation, and each is
/// its own stripe's: corrupting stripe 1's K2H head fails stripe 1 alone.
#[test]
fn each_group_region_belongs_to_its_stripe() {
    let bridges = Bridge::builder()
        .backend(Backend::Fallback)
        .capacity(4)
        .launch_group(3)
        .unwrap();
    for b in &bridges {
        assert_eq!(b.round_trip(b"a").unwrap().payload, b"b");
    }
    let layout = RegionLayout::new(bridges[1].spec()).unwrap();
    let base = |i: usize| bridges[i].state.memory.device_address();
    assert_eq!(base(1) - base(0), layout.stripe_stride() as u64);
    assert_eq!(base(2) - base(1), layout.stripe_stride() as u64);

    // Relaxed: the kernel of stripe 1 is idle and the host validates
    // whatever it reads; this only has to land.
    let head = layout.k2h_offset / 8 + crate::word_of!(RingHeader, head);
    bridges[1].state.memory.words()[head].store(1000, Relaxed);
    let err = bridges[1].recv().unwrap_err();
    assert!(
        matches!(
            err,
            Error::RingCorrupted {
                ring: RingId::K2h,
                ..
            }
        ),
        "{err:?}"
    );
    for i in [0, 2] {
        assert_eq!(bridges[i].round_trip(b"y").unwrap().payload, b"z");
    }
}

/// Issue 23, item 7: a kernel that does not stop is reported, and its
/// memory leaked, once per bridge: a second `shutdown` (the one `drop`
/// makes) neither waits again nor leaks (or warns) a second time.
#[test]
fn a_kernel_that_does_not_stop_is_leaked_once() {
    use std::sync::Arc as StdArc;
    use std::sync::atomic::AtomicBool;
    let gate = StdArc::new(AtomicBool::new(false));
    let open = StdArc::clone(&gate);
    let stuck = crate::fallback::RustHandler::new(move |_, input, out| {
        // Acquire: pairs with the release below; only the flag matters.
        while !open.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        out[..input.len()].copy_from_slice(input);
        Ok(input.len())
    });
    let bridge = Bridge::builder()
        .backend(Backend::Fallback)
        .kernel(Kernel::RustHandler(stuck))
        .shutdown_timeout(Duration::from_millis(50))
        .launch()
        .unwrap();
    bridge.send(b"x").unwrap();
    std::thread::sleep(Duration::from_millis(20)); // the handler is stuck
    let refs = || Arc::strong_count(&bridge.state.memory);
    let before = refs();
    assert!(matches!(
        bridge.shutdown(),
        Err(Error::Timeout { op: "shutdown", .. })
    ));
    assert_eq!(refs(), before + 1, "one reference leaked");
    assert!(matches!(
        bridge.shutdown(),
        Err(Error::Timeout { op: "shutdown", .. })
    ));
    assert_eq!(refs(), before + 1, "leaked once, not twice");
    // Release: lets the serving thread finish (the leak stays a leak).
    gate.store(true, Ordering::Release);
}
