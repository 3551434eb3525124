//! Issue 23, item 7: when the block emulation cannot start all of a block's
//! threads, the launch fails with an error, and the threads it did start are
//! stopped and the library's lock released: later emulated bridges still
//! run. Alone in its binary: it sets an environment variable the emulation
//! reads (`RINGBRIDGE_EMU_FAIL_THREAD`, a test hook that fails the creation
//! of one thread as `pthread_create` would).

mod common;

use ringbridge::{Backend, Bridge};

#[test]
fn a_block_that_cannot_start_fails_its_launch_and_leaves_the_emulation_usable() {
    common::within(60, "emulation start failure", || {
        let emulated = || {
            Bridge::builder()
                .backend(Backend::Fallback)
                .emulate_block(64)
                .launch_timeout(std::time::Duration::from_secs(10))
                .launch()
        };
        // SAFETY: the only test of this binary: no other thread reads or
        // writes the environment meanwhile.
        unsafe { std::env::set_var("RINGBRIDGE_EMU_FAIL_THREAD", "40") };
        let err = emulated().unwrap_err();
        println!("a block of 64 missing thread 40: {err}");
        // SAFETY: as above.
        unsafe { std::env::remove_var("RINGBRIDGE_EMU_FAIL_THREAD") };
        let bridge = emulated().unwrap();
        assert_eq!(bridge.round_trip(b"a").unwrap().payload, b"b");
        bridge.shutdown().unwrap();
    });
}
