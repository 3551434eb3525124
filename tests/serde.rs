//! The report types serialize with the `serde` feature (issue 28, item 5):
//! `cargo test --features serde --test serde`.
#![cfg(feature = "serde")]

use ringbridge::{Backend, Bridge};

#[test]
fn bridge_stats_serialize_with_every_counter() {
    let bridge = Bridge::builder()
        .backend(Backend::Fallback)
        .launch()
        .unwrap();
    bridge.round_trip(b"a").unwrap();
    let json = serde_json::to_value(bridge.stats()).unwrap();
    assert_eq!(json["sent"], 1);
    assert_eq!(json["received"], 1);
    assert_eq!(json["in_flight"], 0);
    assert!(json["kernel"].is_object(), "{json}");
    let latency =
        ringbridge::measure::round_trips(&bridge, 100, |_, _| 1, |_, _, _| Ok(())).unwrap();
    let json = serde_json::to_value(latency).unwrap();
    assert!(json["p50"].is_object(), "{json}");
}
