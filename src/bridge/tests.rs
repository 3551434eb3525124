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
