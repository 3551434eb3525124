//! The GPU's block-parallel serve loops (the chunkwise batch spread over a
//! block, one warp per lane slot, the per-request path with many threads)
//! run by CPU threads that emulate a CUDA block: barriers, warp shuffle and
//! votes (`kernels/host/block_emulation.cpp`). The fallback proper is a
//! block of one thread and cannot show a missing barrier or a race between
//! warps; these can, without a GPU. Each test runs under a deadline, so a
//! barrier that pairs wrongly is reported as a hang, not waited on forever.

mod common;

use std::sync::Mutex;

use ringbridge::fallback::RustHandler;
use ringbridge::layout::KIND_ERROR;
use ringbridge::ring::SlotFormat;
use ringbridge::{Backend, Bridge, Kernel};

/// One emulated block at a time (each bridge could run in its own copy of
/// the library, but blocks of threads side by side crowd a 2-core machine).
static ONE_BLOCK: Mutex<()> = Mutex::new(());

fn emulated(threads: u32) -> ringbridge::BridgeBuilder {
    // Emulated barriers are slow (futex rounds on a small machine), and a
    // turn that serves nothing beats only once per check_interval turns.
    Bridge::builder()
        .backend(Backend::Fallback)
        .emulate_block(threads)
        .hang_timeout(std::time::Duration::from_secs(20))
        .shutdown_timeout(std::time::Duration::from_secs(20))
}

/// Streams `n` messages whose lengths cycle through 0..=max through
/// `builder`'s echo bridge, in send batches of 50, checking every reply.
fn stream_mixed_lengths(builder: ringbridge::BridgeBuilder, n: u64) {
    let bridge = builder.launch().unwrap();
    let max = bridge.max_payload() as u64;
    common::stream_echo(&bridge, n, 50, 256, |i| {
        let len = (i * 7 + i / 3) % (max + 1);
        (0..len).map(|k| (k * 31 + i) as u8).collect()
    });
    bridge.shutdown().unwrap();
}

#[test]
fn chunkwise_batches_over_blocks_of_every_shape() {
    let _one = ONE_BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    for (threads, slot) in [(1, 64), (16, 64), (16, 4096), (33, 256), (64, 1024)] {
        common::within(
            120,
            &format!("chunkwise, {threads} threads, slot {slot}"),
            move || {
                let b = emulated(threads)
                    .capacity(4)
                    .slot_size(slot)
                    .format(SlotFormat::Slots);
                stream_mixed_lengths(b, 3_000);
            },
        );
    }
}

#[test]
fn a_block_of_16_serves_a_round_trip() {
    let _one = ONE_BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    common::within(60, "block of 16", || {
        let bridge = emulated(16).launch().unwrap();
        assert_eq!(bridge.format(), SlotFormat::Slots);
        assert_eq!(bridge.round_trip(b"ab").unwrap().payload, b"bc");
    });
}

#[test]
fn lanes_over_one_warp_a_partial_warp_and_two_warps() {
    let _one = ONE_BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    for threads in [32, 33, 64] {
        common::within(120, &format!("lanes, {threads} threads"), move || {
            let b = emulated(threads)
                .capacity(4)
                .slot_size(128)
                .format(SlotFormat::Lanes);
            stream_mixed_lengths(b, 3_000);
        });
    }
}

#[test]
fn scale_batches_with_error_replies_among_good_ones() {
    let _one = ONE_BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    common::within(120, "scale, 48 threads", || {
        common::scale_batches_of_mixed_lengths(
            emulated(48).kernel(Kernel::ScaleF32 { factor: 2.0 }),
        );
    });
}

#[test]
fn per_request_handlers_with_many_threads() {
    let _one = ONE_BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    common::within(120, "callback, 40 threads", || {
        // Odd lengths get an error reply; the rest are reversed.
        let reverse = RustHandler::new(|h, input, out| {
            if h.len % 2 == 1 {
                return Err(9);
            }
            for (o, i) in out.iter_mut().zip(input.iter().rev()) {
                *o = *i;
            }
            Ok(input.len())
        });
        let bridge = emulated(40)
            .capacity(8)
            .slot_size(256)
            .kernel(Kernel::RustHandler(reverse))
            .launch()
            .unwrap();
        let msg = |i: u64| -> Vec<u8> { (0..i % 50).map(|k| k as u8).collect() };
        common::stream_checked(&bridge, 400, 30, 64, msg, |i, h, p| {
            let m = msg(i);
            if m.len() % 2 == 1 {
                assert_eq!((h.kind, h.flags), (KIND_ERROR, 9), "message {i}");
            } else {
                let want: Vec<u8> = m.iter().rev().copied().collect();
                assert_eq!(p, want.as_slice(), "message {i}");
            }
        });
    });
}

/// A handler that sleeps `ms` milliseconds, then echoes: the emulated
/// block's threads sleep in parallel, so a slow batch costs no CPU.
fn sleeping_echo(ms: u64) -> RustHandler {
    common::echo_after(move || std::thread::sleep(std::time::Duration::from_millis(ms)))
}

#[test]
fn shutdown_during_a_busy_stream_slots() {
    let _one = ONE_BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    common::within(60, "shutdown, slots, 16 threads", || {
        common::shutdown_during_a_busy_stream(
            emulated(16)
                .format(SlotFormat::Slots)
                .kernel(Kernel::RustHandler(sleeping_echo(5))),
        );
    });
}

#[test]
fn shutdown_during_a_busy_stream_lanes() {
    let _one = ONE_BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    common::within(60, "shutdown, lanes, 32 threads", || {
        common::shutdown_during_a_busy_stream(
            emulated(32)
                .format(SlotFormat::Lanes)
                .kernel(Kernel::RustHandler(sleeping_echo(5))),
        );
    });
}

/// An emulated block stops within the default shutdown timeout (2 s) in
/// either format, busy just before or idle for a while. The lane format's
/// idle turns pass three barriers of 64 threads each, and terminate was
/// looked at only every check_interval turns: shutdown took about 3 s and
/// leaked the bridge.
#[test]
fn an_emulated_block_stops_within_the_default_shutdown_timeout() {
    let _one = ONE_BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    common::within(60, "shutdown of an emulated block", || {
        for format in [SlotFormat::Slots, SlotFormat::Lanes] {
            for idle_ms in [0, 300] {
                let bridge = Bridge::builder()
                    .backend(Backend::Fallback)
                    .emulate_block(64)
                    .format(format)
                    .slot_size(64)
                    .launch()
                    .unwrap();
                for _ in 0..10 {
                    bridge.round_trip(b"x").unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(idle_ms));
                bridge
                    .shutdown()
                    .unwrap_or_else(|e| panic!("{format:?}, idle {idle_ms} ms: {e}"));
            }
        }
    });
}
