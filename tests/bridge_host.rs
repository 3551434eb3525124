//! The bridge end to end on the host fallback, which runs the device half's
//! C++ serve loop and handlers on a CPU thread. These run everywhere (CI).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringbridge::fallback::RustHandler;
use ringbridge::layout::{KIND_ERROR, KIND_REPLY};
use ringbridge::ring::SlotFormat;
use ringbridge::{Backend, Bridge, Error, Kernel};

fn host() -> ringbridge::BridgeBuilder {
    Bridge::builder().backend(Backend::Fallback)
}

#[test]
fn round_trip_echoes_payload_plus_one_and_correlation() {
    let bridge = host().capacity(4).launch().unwrap();
    assert_eq!(bridge.backend(), Backend::Fallback);
    for i in 0..100u32 {
        let payload = i.to_le_bytes();
        let reply = bridge.round_trip(&payload).unwrap();
        assert_eq!(reply.header.kind, KIND_REPLY);
        assert_eq!(reply.header.correlation, u64::from(i));
        assert_eq!(reply.payload, common::echoed(&payload));
    }
    let stats = bridge.stats();
    assert_eq!((stats.sent, stats.received, stats.in_flight), (100, 100, 0));
    bridge.shutdown().unwrap();
}

#[test]
fn million_messages_through_tiny_rings_keep_order() {
    const N: u64 = 1_000_000;
    let bridge = host().capacity(4).slot_size(64).launch().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                bridge.send(&i.to_le_bytes()).unwrap();
            }
        });
        for i in 0..N {
            let r = bridge.recv().unwrap();
            assert_eq!(r.header.correlation, i, "reply out of order");
            assert_eq!(r.payload, common::echoed(&i.to_le_bytes()));
        }
    });
    assert!(
        matches!(bridge.try_recv(), Err(Error::Empty)),
        "a duplicate reply"
    );
    assert_eq!(bridge.stats().received, N);
}

#[test]
fn backpressure_in_both_directions_loses_nothing() {
    let bridge = host().capacity(4).launch().unwrap();
    // Nobody receives: the kernel fills K2H (4), then H2K fills (4); a
    // waiting sender reclaiming room sets one reply aside, no more.
    let sent = common::fill_both_rings(&bridge);
    assert_eq!(sent, 9, "4 slots in H2K plus 4 in K2H plus 1 set aside");
    assert!(matches!(
        bridge.send_timeout(b"x", Duration::from_millis(10)),
        Err(Error::Timeout { op: "send", .. })
    ));
    for i in 0..sent {
        let r = bridge.recv().unwrap();
        assert_eq!(r.header.correlation, i);
    }
    assert!(matches!(
        bridge.recv_timeout(Duration::from_millis(10)),
        Err(Error::Timeout { op: "recv", .. })
    ));
}

/// The fallback claims the next reply slot's cache lines ahead of time only
/// while that slot is free: with K2H full, the next slot holds a reply the
/// host has not read, and touching it would zero that reply's sequence and
/// a payload word (seen as corruption or a wrong payload here).
#[test]
fn full_reply_ring_keeps_every_unread_reply_intact() {
    let bridge = host().capacity(2).slot_size(128).launch().unwrap();
    // Position 0 first, so the replies below sit at positions 1 and 2 and
    // a zeroed sequence word would not match.
    let payload = |i: u8| -> Vec<u8> { (0..64).map(|k| k ^ i.wrapping_mul(37)).collect() };
    assert_eq!(
        bridge.round_trip(&payload(0)).unwrap().payload,
        common::echoed(&payload(0))
    );
    for i in 1..=4u8 {
        bridge.send(&payload(i)).unwrap(); // 2 replies fill K2H, 2 requests H2K
    }
    // Let the fallback publish both replies and stop at the full K2H ring.
    std::thread::sleep(Duration::from_millis(50));
    for i in 1..=4u8 {
        let r = bridge.recv().unwrap();
        assert_eq!(r.header.correlation, u64::from(i));
        assert_eq!(r.payload, common::echoed(&payload(i)), "reply {i}");
    }
    bridge.shutdown().unwrap();
}

#[test]
fn batches_cross_small_rings_in_order() {
    let bridge = host().capacity(8).launch().unwrap();
    common::stream_echo(&bridge, 10_000, 100, 64, |i| {
        (i as u32).to_le_bytes().to_vec()
    });
}

#[test]
fn every_slot_size_carries_its_largest_payload() {
    for shift in 6..=16 {
        let slot = 1usize << shift;
        let bridge = host().capacity(2).slot_size(slot).launch().unwrap();
        assert_eq!(bridge.max_payload(), slot - 32);
        for len in [0, 1, 7, 8, 15, 16, 17, slot - 33, slot - 32] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
            let r = bridge.round_trip(&payload).unwrap();
            assert_eq!(r.payload, common::echoed(&payload), "slot {slot} len {len}");
        }
        assert!(matches!(
            bridge.send(&vec![0; slot - 31]),
            Err(Error::PayloadTooLarge { .. })
        ));
    }
}

#[test]
fn scale_kernel_multiplies_f32_and_rejects_ragged_payloads() {
    let bridge = host()
        .kernel(Kernel::ScaleF32 { factor: -1.5 })
        .slot_size(128)
        .launch()
        .unwrap();
    let xs: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 2.0).collect();
    bridge.send_pod(&xs).unwrap();
    let ys = bridge.recv_pod::<f32>().unwrap();
    assert_eq!(ys, xs.iter().map(|x| x * -1.5).collect::<Vec<_>>());
    let r = bridge.round_trip(&[1, 2, 3]).unwrap();
    assert_eq!(r.header.kind, KIND_ERROR);
    assert_eq!(r.header.flags, 1);
    assert!(r.payload.is_empty());
}

#[test]
fn custom_host_handler_runs_in_the_serve_loop() {
    let reverse = RustHandler::new(|h, input, out| {
        if h.flags == 7 {
            return Err(42);
        }
        for (o, i) in out.iter_mut().zip(input.iter().rev()) {
            *o = *i;
        }
        Ok(input.len())
    });
    let bridge = host()
        .kernel(Kernel::RustHandler(reverse))
        .launch()
        .unwrap();
    assert_eq!(bridge.round_trip(b"stressed").unwrap().payload, b"desserts");
    bridge.send_with_flags(7, b"x").unwrap();
    let r = bridge.recv().unwrap();
    assert!(r.is_error());
    assert_eq!(r.header.flags, 42);
}

#[test]
fn slow_handler_still_answers_everything() {
    let slow = RustHandler::new(|_, input, out| {
        std::thread::sleep(Duration::from_millis(3));
        out[..input.len()].copy_from_slice(input);
        Ok(input.len())
    });
    let bridge = host()
        .capacity(2)
        .kernel(Kernel::RustHandler(slow))
        .launch()
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..50u8 {
                bridge.send(&[i]).unwrap();
            }
        });
        for i in 0..50u8 {
            assert_eq!(bridge.recv().unwrap().payload, [i]);
        }
    });
}

#[test]
fn shutdown_while_busy_stops_both_sides_with_errors_not_hangs() {
    let bridge = Arc::new(host().capacity(4).launch().unwrap());
    let sender = {
        let b = Arc::clone(&bridge);
        std::thread::spawn(move || {
            let mut n = 0u64;
            loop {
                match b.send(&n.to_le_bytes()) {
                    Ok(_) => n += 1,
                    Err(e) => return (n, e),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    bridge.shutdown().unwrap();
    let (sent, err) = sender.join().unwrap();
    assert!(sent >= 8, "the sender made progress before shutdown");
    assert!(matches!(err, Error::ShutDown), "got {err}");
    assert!(matches!(bridge.send(b"late"), Err(Error::ShutDown)));
    bridge.shutdown().unwrap(); // idempotent
}

#[test]
fn replies_published_before_a_panic_are_delivered_then_the_panic() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let handler = RustHandler::new(move |h, input, out| {
        c.fetch_add(1, Ordering::Relaxed);
        if h.flags == 0xDEAD {
            panic!("handler exploded on purpose");
        }
        out[..input.len()].copy_from_slice(input);
        Ok(input.len())
    });
    let bridge = host()
        .kernel(Kernel::RustHandler(handler))
        .launch()
        .unwrap();
    for i in 0..5u8 {
        bridge.send(&[i]).unwrap();
    }
    bridge.send_with_flags(0xDEAD, b"boom").unwrap();
    for i in 0..5u8 {
        assert_eq!(bridge.recv().unwrap().payload, [i]);
    }
    let t0 = Instant::now();
    let err = bridge.recv().unwrap_err();
    assert!(
        matches!(&err, Error::HandlerPanicked(m) if m.contains("on purpose")),
        "got {err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        bridge.send(b"after"),
        Err(Error::HandlerPanicked(_))
    ));
    bridge.shutdown().unwrap();
}

/// One `send_batch` publishes every request with one head store, so the
/// serving thread takes them as one batch: the replies before the failing
/// request are delivered whole and in order, nothing from it on.
#[test]
fn a_panic_mid_batch_delivers_the_replies_before_it_and_nothing_after() {
    let handler = RustHandler::new(|_, input, out| {
        assert_ne!(input, b"boom", "handler exploded on purpose");
        out[..input.len()].copy_from_slice(input);
        Ok(input.len())
    });
    let bridge = host()
        .kernel(Kernel::RustHandler(handler))
        .launch()
        .unwrap();
    let batch: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"boom", b"e", b"f"];
    bridge.send_batch(&batch).unwrap();
    for want in [b"a", b"b", b"c", b"d"] {
        let reply = bridge.recv().unwrap();
        assert_eq!(reply.payload, want);
    }
    let err = bridge.recv().unwrap_err();
    assert!(
        matches!(&err, Error::HandlerPanicked(m) if m.contains("on purpose")),
        "got {err}"
    );
    assert_eq!(bridge.stats().received, 4);
    bridge.shutdown().unwrap();
}

#[test]
fn a_handler_that_never_returns_is_reported_as_hung_and_shutdown_times_out() {
    let stuck = RustHandler::new(|_, _, _| {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    });
    let bridge = host()
        .kernel(Kernel::RustHandler(stuck))
        .hang_timeout(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_millis(100))
        .launch()
        .unwrap();
    bridge.send(b"never answered").unwrap();
    let t0 = Instant::now();
    let err = bridge.recv().unwrap_err();
    assert!(matches!(err, Error::KernelHung { .. }), "got {err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The thread still runs: shutdown must not free its memory or wait forever.
    assert!(matches!(
        bridge.shutdown(),
        Err(Error::Timeout { op: "shutdown", .. })
    ));
}

#[test]
fn bad_configurations_are_typed_errors() {
    assert!(matches!(
        host().capacity(0).launch(),
        Err(Error::InvalidCapacity { .. })
    ));
    assert!(matches!(
        host().capacity(usize::MAX).launch(),
        Err(Error::InvalidCapacity { .. })
    ));
    assert!(matches!(
        host().slot_size(96).launch(),
        Err(Error::InvalidSlotSize { .. })
    ));
    assert!(matches!(
        host().slot_size(32).launch(),
        Err(Error::InvalidSlotSize { .. })
    ));
    assert!(matches!(
        host().slot_size(1 << 30).launch(),
        Err(Error::InvalidSlotSize { .. })
    ));
    assert!(matches!(
        host().block_size(0).launch(),
        Err(Error::InvalidArgument(_))
    ));
    let custom = Kernel::Custom {
        image: Arc::from(&b"not a kernel"[..]),
        entry: "nope".into(),
        grid: 1,
        block: 32,
    };
    assert!(matches!(
        host().kernel(custom).launch(),
        Err(Error::InvalidArgument(_))
    ));
    let handler = Kernel::RustHandler(RustHandler::new(|_, _, _| Ok(0)));
    assert!(matches!(
        Bridge::builder()
            .backend(Backend::Cuda)
            .kernel(handler)
            .launch(),
        Err(Error::InvalidArgument(_))
    ));
    assert!("tpu".parse::<Backend>().is_err());
}

/// Issue 28, item 3: a round trip beside unanswered plain sends gets its
/// own reply; the plain replies stay for `recv`, in order.
#[test]
fn round_trip_beside_unanswered_sends_gets_its_own_reply() {
    let bridge = host().launch().unwrap();
    let a = bridge.send(b"a").unwrap();
    let b = bridge.send(b"b").unwrap();
    assert_eq!(bridge.round_trip(b"c").unwrap().payload, b"d");
    let r = bridge.recv().unwrap();
    assert_eq!((r.header.correlation, r.payload), (a, b"b".to_vec()));
    let r = bridge.recv().unwrap();
    assert_eq!((r.header.correlation, r.payload), (b, b"c".to_vec()));
    assert!(matches!(bridge.try_recv(), Err(Error::Empty)));
}

#[test]
fn scale_batches_of_mixed_lengths() {
    common::scale_batches_of_mixed_lengths(host().kernel(Kernel::ScaleF32 { factor: 2.0 }));
}

/// A handler that busy-waits `us` microseconds, then echoes.
fn spinning_echo(us: u64) -> RustHandler {
    common::echo_after(move || {
        let until = Instant::now() + Duration::from_micros(us);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    })
}

/// A saturated stream through a handler of 50 us a request, at the default
/// hang timeout: the heartbeat follows time, not turns or requests, so a
/// loop that makes progress is never taken for a hang, however slow each
/// batch of requests is (a full batch of the fallback is 64 of them, 3.2 ms).
fn slow_handler_stream_is_not_a_hang(format: SlotFormat) {
    let bridge = host()
        .capacity(256)
        .format(format)
        .kernel(Kernel::RustHandler(spinning_echo(50)))
        .launch()
        .unwrap();
    let payload = |i: u64| i.to_le_bytes().to_vec();
    common::stream_checked(&bridge, 20_000, 128, 256, payload, |i, h, p| {
        assert_eq!(
            (h.kind, p),
            (KIND_REPLY, payload(i).as_slice()),
            "reply {i}"
        );
    });
    bridge.shutdown().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn slow_handler_stream_is_not_a_hang_slots() {
    slow_handler_stream_is_not_a_hang(SlotFormat::Slots);
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn slow_handler_stream_is_not_a_hang_lanes() {
    slow_handler_stream_is_not_a_hang(SlotFormat::Lanes);
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn shutdown_during_a_busy_stream_slots() {
    common::shutdown_during_a_busy_stream(
        host()
            .format(SlotFormat::Slots)
            .kernel(Kernel::RustHandler(spinning_echo(200))),
    );
}

#[test]
#[cfg_attr(miri, ignore = "the fallback serve loop is C++")]
fn shutdown_during_a_busy_stream_lanes() {
    common::shutdown_during_a_busy_stream(
        host()
            .format(SlotFormat::Lanes)
            .kernel(Kernel::RustHandler(spinning_echo(200))),
    );
}

/// Issue 23, item 7: a `recv_with` closure that panics leaves the message
/// where it was (documented on `recv_with`): the next receive delivers it,
/// once, and the bridge goes on.
#[test]
fn a_panicking_receive_closure_leaves_the_message_for_the_next_receive() {
    let bridge = host().launch().unwrap();
    let seq = bridge.send(b"a").unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bridge.recv_with(|_, _| -> () { panic!("the caller's closure") })
    }));
    assert!(caught.is_err());
    let r = bridge.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((r.header.correlation, r.payload), (seq, b"b".to_vec()));
    assert!(matches!(bridge.try_recv(), Err(Error::Empty)));
    assert_eq!(bridge.round_trip(b"c").unwrap().payload, b"d");
}
