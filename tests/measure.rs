//! `ringbridge::measure` on the fallback backend's echo kernel (replies are each
//! byte + 1): checked replies, the index of a refused one, and `n == 0`.

#![cfg(not(loom))]

use ringbridge::measure::{self, warmup_rounds};
use ringbridge::{Backend, Bridge, Error, MessageHeader};

fn echo() -> Bridge {
    Bridge::builder()
        .backend(Backend::Fallback)
        .capacity(64)
        .slot_size(64)
        .launch()
        .expect("host bridge")
}

/// Message `i`: its index, little-endian, in 8 bytes.
fn fill(i: u64, buf: &mut [u8]) -> usize {
    buf[..8].copy_from_slice(&i.to_le_bytes());
    8
}

/// The echo kernel's reply to message `i`.
fn is_echo(i: u64, _: &MessageHeader, reply: &[u8]) -> Result<(), String> {
    let want = i.to_le_bytes().map(|b| b.wrapping_add(1));
    if reply == want {
        Ok(())
    } else {
        Err(format!("reply {reply:?}, expected {want:?}"))
    }
}

#[test]
fn round_trips_checks_every_reply_and_times_all_but_the_warmup() {
    let bridge = echo();
    let mut checked = Vec::new();
    let l = measure::round_trips(&bridge, 300, fill, |i, h, p| {
        checked.push(i);
        is_echo(i, h, p)
    })
    .unwrap();
    assert_eq!(checked, (0..300).collect::<Vec<_>>());
    assert_eq!(l.samples, 300 - warmup_rounds(300));
    assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99);
    assert!(l.p99 <= l.p999 && l.p999 <= l.max && l.mean <= l.max);
    assert_eq!(bridge.stats().in_flight, 0);
}

#[test]
fn round_trips_reports_the_message_a_check_refused() {
    let bridge = echo();
    let err = measure::round_trips(&bridge, 100, fill, |i, h, p| {
        if i == 42 {
            Err("forty-two".into())
        } else {
            is_echo(i, h, p)
        }
    })
    .unwrap_err();
    match &err {
        Error::CheckFailed { index: 42, what } => assert_eq!(what, "forty-two"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("message 42"), "{err}");
    // A wrong payload is refused by the echo check at its first message.
    let err = measure::round_trips(
        &bridge,
        5,
        |_, buf| {
            buf[0] = 7;
            1
        },
        is_echo,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::CheckFailed { index: 0, .. }),
        "{err:?}"
    );
    // The bridge stays usable.
    assert_eq!(bridge.round_trip(&[1]).unwrap().payload, [2]);
}

#[test]
fn stream_checks_every_reply_in_order() {
    let bridge = echo();
    let mut next = 0u64;
    let rate = measure::stream(&bridge, 20_001, 33, fill, |i, h, p| {
        assert_eq!(i, next, "in order");
        next += 1;
        is_echo(i, h, p)
    })
    .unwrap();
    assert_eq!((rate.messages, next), (20_001, 20_001));
    assert!(rate.seconds > 0.0 && rate.msgs_per_s > 0.0);
    assert!((rate.bytes_per_s - 8.0 * rate.msgs_per_s).abs() <= 1e-9 * rate.bytes_per_s);
    // A batch larger than the ring is cut to the ring.
    assert_eq!(
        measure::stream(&bridge, 1000, 10_000, fill, is_echo)
            .unwrap()
            .messages,
        1000
    );
}

#[test]
fn stream_reports_the_message_a_check_refused_and_drains_the_rest() {
    let bridge = echo();
    for k in [0, 1, 63, 64, 999] {
        let err = measure::stream(&bridge, 1000, 16, fill, |i, h, p| {
            if i == k {
                Err(format!("refused {i}"))
            } else {
                is_echo(i, h, p)
            }
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::CheckFailed { index, what } if *index == k && *what == format!("refused {k}")),
            "{err:?}"
        );
        assert_eq!(bridge.stats().in_flight, 0, "drained after {k}");
    }
    assert_eq!(
        measure::stream(&bridge, 100, 8, fill, is_echo)
            .unwrap()
            .messages,
        100
    );
}

#[test]
fn a_payload_error_ends_stream_without_hanging() {
    let bridge = echo();
    let err = measure::stream(
        &bridge,
        1000,
        10,
        |i, buf| {
            if i == 500 {
                buf.len() + 1
            } else {
                fill(i, buf)
            }
        },
        is_echo,
    )
    .unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err:?}");
    assert_eq!(bridge.stats().in_flight, 0);
}

#[test]
fn zero_messages_is_an_invalid_argument() {
    let bridge = echo();
    assert!(matches!(
        measure::round_trips(&bridge, 0, fill, is_echo),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        measure::stream(&bridge, 0, 8, fill, is_echo),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        measure::stream(&bridge, 8, 0, fill, is_echo),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn outstanding_replies_are_refused_before_sending() {
    let bridge = echo();
    bridge.send(&[1]).unwrap();
    assert!(matches!(
        measure::round_trips(&bridge, 3, fill, is_echo),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        measure::stream(&bridge, 3, 1, fill, is_echo),
        Err(Error::InvalidArgument(_))
    ));
    bridge.recv().unwrap();
    assert_eq!(
        measure::round_trips(&bridge, 3, fill, is_echo)
            .unwrap()
            .samples,
        3
    );
}

/// Every sending path can set the header's `flags` (an opcode): the echo
/// kernel echoes them, so each reply shows what its request carried.
#[test]
fn flags_reach_the_kernel_on_every_sending_path() {
    let bridge = echo();
    // measure::round_trips_with_flags: request i carries flags i % 5.
    let mut seen = Vec::new();
    measure::round_trips_with_flags(
        &bridge,
        20,
        |i| (i % 5) as u32,
        fill,
        |i, h, p| {
            seen.push(h.flags);
            is_echo(i, h, p)
        },
    )
    .unwrap();
    assert_eq!(seen, (0..20).map(|i| i % 5).collect::<Vec<u32>>());

    // A chunk written in place.
    let mut chunk = bridge.reserve(2).unwrap();
    chunk.write_with_flags(11, |buf| fill(0, buf)).unwrap();
    chunk.write_with(|buf| fill(1, buf)).unwrap();
    chunk.publish().unwrap();
    assert_eq!(bridge.recv().unwrap().header.flags, 11);
    assert_eq!(bridge.recv().unwrap().header.flags, 0);

    // A timed round trip.
    let reply = bridge
        .round_trip_timeout_with_flags(12, b"t", std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!((reply.header.flags, reply.payload), (12, b"u".to_vec()));

    // The async bridge's plain send.
    let bridge = ringbridge::AsyncBridge::new(bridge);
    futures::executor::block_on(async {
        bridge.send_with_flags(13, b"a").await.unwrap();
        assert_eq!(bridge.recv().await.unwrap().header.flags, 13);
    });

    // A striped bridge's round-robin send.
    let striped =
        ringbridge::StripedBridge::launch(Bridge::builder().backend(Backend::Fallback), 2).unwrap();
    striped.send_with_flags(14, b"s").unwrap();
    assert_eq!(striped.stripe(0).recv().unwrap().header.flags, 14);
}
