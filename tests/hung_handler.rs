//! A handler that never returns costs its own thread and nothing more
//! (issue 23, item 6). After an emulated block hangs, the rest of that
//! block stops, and another bridge of the same process, emulating a block
//! with the same library, launches, streams about as fast as before and
//! shuts down cleanly. Alone in its binary: the hung thread stays for the
//! rest of the process.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ringbridge::fallback::RustHandler;
use ringbridge::{Backend, Bridge, Error, Kernel};

/// The flags value that makes the handler hang.
const HANG: u32 = 0xdead;

/// Set once the hang was entered (the handler's thread then spins forever,
/// as the endless loop of a real hung handler does: one core).
static HUNG: AtomicBool = AtomicBool::new(false);

/// Echoes, except for a request flagged `HANG`, which never returns.
fn echo_or_hang() -> RustHandler {
    RustHandler::new(|hdr, input, out| {
        if hdr.flags == HANG {
            HUNG.store(true, Ordering::SeqCst);
            loop {
                std::hint::spin_loop();
            }
        }
        out[..input.len()].copy_from_slice(input);
        Ok(input.len())
    })
}

fn emulated(hang_timeout: Duration) -> ringbridge::BridgeBuilder {
    Bridge::builder()
        .backend(Backend::Fallback)
        .emulate_block(64)
        .kernel(Kernel::RustHandler(echo_or_hang()))
        .hang_timeout(hang_timeout)
        .shutdown_timeout(Duration::from_secs(2))
}

/// Seconds a fresh emulated bridge takes to echo `n` 16-byte messages
/// (the best of three runs, so one descheduling does not decide), after
/// which it shuts down cleanly.
fn stream_seconds(n: u64) -> f64 {
    let bridge = emulated(Duration::from_secs(20))
        .launch()
        .expect("an emulated bridge launches");
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut sent = 0u64;
        let mut received = 0u64;
        while received < n {
            while sent < n && sent - received < 64 {
                match bridge.try_send(&sent.to_le_bytes()) {
                    Ok(_) => sent += 1,
                    Err(Error::Full) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            let reply = bridge.recv().expect("a reply");
            assert_eq!(reply.payload.len(), 8);
            received += 1;
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    bridge
        .shutdown()
        .expect("the healthy bridge shuts down cleanly");
    best
}

/// The share of one core the whole process uses over `spell`.
fn process_cpu_share(spell: Duration) -> f64 {
    let (before, start) = (common::process_cpu_seconds(), Instant::now());
    std::thread::sleep(spell);
    (common::process_cpu_seconds() - before) / start.elapsed().as_secs_f64()
}

#[test]
fn a_hung_handler_costs_its_thread_and_nothing_more() {
    common::within(120, "a hung handler beside a healthy bridge", || {
        const N: u64 = 5_000;
        let before = stream_seconds(N);

        let hung = emulated(Duration::from_millis(300)).launch().unwrap();
        hung.send_with_flags(HANG, b"never answered").unwrap();
        let err = hung.recv().expect_err("the hung bridge reports its hang");
        assert!(
            matches!(err, Error::KernelHung { .. }),
            "expected KernelHung, got {err:?}"
        );
        assert!(HUNG.load(Ordering::SeqCst));
        // The kernel cannot be stopped: shutdown says so (and leaks it).
        assert!(hung.shutdown().is_err());

        let cpu_share = process_cpu_share(Duration::from_secs(1));
        eprintln!(
            "after the hang: the process uses {:.1}% of a core",
            cpu_share * 100.0
        );
        // The spinning handler's core, and nothing more of the block (its
        // other 63 threads) or of the bridge's machinery.
        assert!(
            cpu_share < 1.25,
            "after the hang the process uses {:.0}% of a core: more than the hung thread",
            cpu_share * 100.0
        );
        let after = stream_seconds(N);
        eprintln!("healthy stream of {N}: {before:.3} s before the hang, {after:.3} s after");
        assert!(
            after <= before * 1.5 + 0.05,
            "a healthy bridge slowed from {before:.3} s to {after:.3} s after another one hung"
        );
    });
}
