//! The key-value store on the host fallback, every answer checked: a mixed
//! load against a `HashMap` model, the fill event, the requests answered
//! with nothing, the error replies, a full table, the table read back after
//! shutdown; the same load on an emulated GPU block (many threads serving
//! one batch at once); and the kernel's PTX when nvcc built it.

use std::time::Duration;

use kv_store::*;
use ringbridge::layout::KIND_EVENT;
use ringbridge::{Backend, Bridge, BridgeBuilder};

const CAPACITY: u64 = 1 << 20;

/// Runs `ops` mixed requests through a bridge from `builder` (made with
/// `param`) and checks everything a run leaves behind.
fn checked_run(builder: BridgeBuilder, param: KvParam, ops: u64, keyspace: u64, seed: u64) {
    let bridge = builder.launch().unwrap();
    let load = mixed_load(&bridge, ops, keyspace, 256, seed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(load.puts + load.gets, ops);
    // A fair coin: about half of each, and both kinds of GET answers seen.
    assert!(
        load.puts > ops * 2 / 5 && load.gets > ops * 2 / 5,
        "{load:?}"
    );
    assert!(load.found > 0 && load.found < load.gets);
    assert!(
        load.model.len() as u64 > param.threshold,
        "the load must pass the threshold"
    );
    // Exactly one fill event, sent by the PUT that made the count equal the
    // threshold.
    assert_eq!(load.events, [(param.threshold, param.capacity)]);
    // After the last round's barrier nothing is outstanding: an exact count.
    let count = value_of(&bridge.round_trip(&request(OP_COUNT, 0, 0)).unwrap()).unwrap();
    assert_eq!(count, load.model.len() as u64);
    let stats = bridge.stats();
    assert_eq!(stats.no_reply, load.puts, "every PUT answered with nothing");
    assert_eq!(stats.events, 1);
    assert_eq!(stats.sent, ops + load.rounds + 1);
    assert_eq!(stats.in_flight, 0);
    bridge.shutdown().unwrap();
    // Read back after shutdown: every key with its last value, nothing else.
    let table = bridge.download(0).unwrap();
    assert_eq!(table.len() as u64, param.capacity * ENTRY_BYTES as u64);
    assert_eq!(table_contents(&table).unwrap(), load.model);
    let count = bridge.download_pod::<u64>(1).unwrap();
    assert_eq!(count, [load.model.len() as u64]);
}

#[test]
fn a_mixed_load_is_answered_as_a_hash_map_would() {
    let param = KvParam {
        capacity: CAPACITY,
        threshold: 20_000,
    };
    checked_run(
        bridge_builder(param).backend(Backend::Fallback),
        param,
        200_000,
        50_000,
        0x5eed,
    );
}

fn host_bridge(param: KvParam) -> Bridge {
    bridge_builder(param)
        .backend(Backend::Fallback)
        .launch()
        .unwrap()
}

#[test]
fn puts_answer_with_nothing_and_bad_requests_with_their_error() {
    let bridge = host_bridge(KvParam {
        capacity: 1 << 10,
        threshold: 100,
    });
    let error_of = |payload: &[u8]| {
        let m = bridge.round_trip(payload).unwrap();
        assert!(m.is_error(), "{m:?}");
        m.header.flags
    };
    assert_eq!(error_of(&request(OP_GET, 7, 0)), ERR_NOT_FOUND);
    // A PUT's round trip completes with a no-reply answer.
    let put = bridge.round_trip(&request(OP_PUT, 7, 70)).unwrap();
    assert!(put.is_no_reply(), "{put:?}");
    assert_eq!(
        value_of(&bridge.round_trip(&request(OP_GET, 7, 0)).unwrap()).unwrap(),
        70
    );
    // Overwrite, then the largest key and a value of 0.
    bridge.send(&request(OP_PUT, 7, 71)).unwrap();
    bridge.send(&request(OP_PUT, MAX_KEY, 0)).unwrap();
    let seq = bridge.send(&request(OP_GET, 7, 0)).unwrap();
    let m = bridge.recv().unwrap();
    assert_eq!((m.header.correlation, value_of(&m).unwrap()), (seq, 71));
    assert_eq!(
        value_of(&bridge.round_trip(&request(OP_GET, MAX_KEY, 0)).unwrap()).unwrap(),
        0
    );
    assert_eq!(error_of(&request(OP_GET, 0, 0)), ERR_BAD_KEY);
    assert_eq!(error_of(&request(OP_PUT, 0, 1)), ERR_BAD_KEY);
    assert_eq!(error_of(&request(OP_PUT, 1 << 63, 1)), ERR_BAD_KEY);
    assert_eq!(error_of(&request(OP_GET, 8, 0)[..23]), ERR_BAD_REQUEST);
    assert_eq!(error_of(&[0; 25]), ERR_BAD_REQUEST);
    assert_eq!(error_of(&request(9, 7, 0)), ERR_BAD_REQUEST);
    assert_eq!(
        value_of(&bridge.round_trip(&request(OP_COUNT, 0, 0)).unwrap()).unwrap(),
        2
    );
    let stats = bridge.stats();
    assert_eq!((stats.no_reply, stats.events), (3, 0));
    bridge.shutdown().unwrap();
    let table = table_contents(&bridge.download(0).unwrap()).unwrap();
    assert_eq!(table, [(7, 71), (MAX_KEY, 0)].into_iter().collect());
}

#[test]
fn a_full_table_refuses_new_keys_and_sends_its_event_once() {
    let bridge = host_bridge(KvParam {
        capacity: 4,
        threshold: 4,
    });
    for key in 1..=4 {
        bridge.send(&request(OP_PUT, key * 1000, key)).unwrap();
    }
    // The fourth key sends the event: it arrives before the next answer.
    let m = bridge.recv().unwrap();
    assert_eq!((m.header.kind, m.header.flags), (KIND_EVENT, EVENT_FILL));
    assert_eq!(m.payload, [4u64.to_le_bytes(), 4u64.to_le_bytes()].concat());
    let full = bridge.round_trip(&request(OP_PUT, 5000, 5)).unwrap();
    assert!(full.is_error() && full.header.flags == ERR_FULL, "{full:?}");
    // Existing keys still take new values, and are found.
    assert!(
        bridge
            .round_trip(&request(OP_PUT, 3000, 33))
            .unwrap()
            .is_no_reply()
    );
    for (key, want) in [(1000, 1), (2000, 2), (3000, 33), (4000, 4)] {
        assert_eq!(
            value_of(&bridge.round_trip(&request(OP_GET, key, 0)).unwrap()).unwrap(),
            want
        );
    }
    assert_eq!(
        bridge
            .round_trip(&request(OP_GET, 5000, 0))
            .unwrap()
            .header
            .flags,
        ERR_NOT_FOUND
    );
    assert_eq!(bridge.stats().events, 1);
    bridge.shutdown().unwrap();
}

/// Rounds of 64 PUTs of one new key each, published with one store
/// (send_batch), so that a block of 64 threads or more takes them as one
/// batch and its threads race to insert the key: one key, inserted once,
/// with one of the values.
fn racing_puts(bridge: &Bridge) {
    for round in 0..20u64 {
        let key = 1000 + round;
        let puts: Vec<[u8; 24]> = (1..=64)
            .map(|v| request(OP_PUT, key, round * 100 + v))
            .collect();
        bridge.send_batch(&puts).unwrap();
        // The GET's answer comes after the PUTs' marks, which recv skips.
        let seq = bridge.send(&request(OP_GET, key, 0)).unwrap();
        let m = bridge.recv().unwrap();
        assert_eq!(m.header.correlation, seq);
        let got = value_of(&m).unwrap();
        assert!(
            (round * 100 + 1..=round * 100 + 64).contains(&got),
            "key {key}: {got}"
        );
        let count = value_of(&bridge.round_trip(&request(OP_COUNT, 0, 0)).unwrap()).unwrap();
        assert_eq!(
            count,
            round + 1,
            "one key inserted once, however many PUTs raced"
        );
    }
}

/// The GPU runs a batch's requests at once, one per thread: the block
/// emulation does the same with CPU threads, so the table's atomic insert
/// and count are exercised by many threads. (On a 2-vCPU machine the
/// threads seldom interleave inside a handler, so a lost race is not
/// certain to show here; the GPU test runs the same racing PUTs.) First
/// the racing PUTs, then the mixed load.
#[test]
fn an_emulated_gpu_block_serves_the_same_load() {
    let param = KvParam {
        capacity: 1 << 16,
        threshold: 3_000,
    };
    let builder = || {
        bridge_builder(param)
            .backend(Backend::Fallback)
            .emulate_block(64)
            .hang_timeout(Duration::from_secs(20))
    };
    let bridge = builder().launch().unwrap();
    racing_puts(&bridge);
    bridge.shutdown().unwrap();
    drop(bridge);

    checked_run(builder(), param, 20_000, 8_000, 0xb10c);
}

// `const PTX: Option<&str>`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/kv_ptx.rs"));

/// Whether nvcc built the kernel (then `PTX` is its PTX); without, says
/// "skipped", or fails under `RINGBRIDGE_REQUIRE_NVCC=1`.
fn ptx_or_skip() -> Option<&'static str> {
    if let Some(ptx) = PTX {
        assert!(kv_store().fatbin().is_some(), "a PTX but no fatbin");
        return Some(ptx);
    }
    let why = kv_store().no_fatbin_reason();
    assert!(
        std::env::var_os("RINGBRIDGE_REQUIRE_NVCC").is_none(),
        "RINGBRIDGE_REQUIRE_NVCC is set but the kernel was not compiled: {why}"
    );
    println!("skipped: no PTX ({why})");
    None
}

#[test]
fn the_ptx_has_the_entry_with_the_launch_arguments() {
    let Some(ptx) = ptx_or_skip() else { return };
    let start = ptx
        .find(".entry kv_store(")
        .expect("no `.entry kv_store` in the PTX");
    let signature = &ptx[start..start + ptx[start..].find(')').unwrap()];
    assert!(
        signature.contains(".param .align 16 .b8 kv_store_param_3[1168]"),
        "the fourth parameter is not the 1168-byte launch arguments:\n{signature}"
    );
    assert_eq!(size_of::<ringbridge::layout::LaunchArgs>(), 1168);
    assert!(kv_store().traits().sends && !kv_store().traits().cooperative);
}

/// Whether the CUDA driver loaded is ringbridge's simulated one (the
/// project's test runs), not a GPU's.
fn simulated() -> bool {
    ringbridge::cuda::driver_library().is_some_and(|l| l.simulated)
}

/// The same checked load on the GPU, when there is one (or on the
/// simulated driver, with a smaller load: its blocks are CPU threads):
/// skipped without one, failed instead under `RINGBRIDGE_REQUIRE_GPU=1`,
/// which also refuses the simulated driver.
#[test]
fn the_gpu_answers_the_same_load_when_there_is_one() {
    let sim = simulated();
    let (ops, keyspace, threshold) = if sim {
        (4_000, 1_024, 200)
    } else {
        (200_000, 50_000, 20_000)
    };
    let param = KvParam {
        capacity: CAPACITY,
        threshold,
    };
    let (backend, why) = bridge_builder(param)
        .backend(Backend::Auto)
        .resolve_backend()
        .unwrap();
    if backend != Backend::Cuda {
        assert!(
            std::env::var("RINGBRIDGE_REQUIRE_GPU").map_or(true, |v| v != "1"),
            "RINGBRIDGE_REQUIRE_GPU=1 but {why}"
        );
        println!("skipped: {why}");
        return;
    }
    assert!(
        !(sim && std::env::var("RINGBRIDGE_REQUIRE_GPU").is_ok_and(|v| v == "1")),
        "RINGBRIDGE_REQUIRE_GPU=1 but the driver is the simulated one"
    );
    println!("on {}", if sim { "the simulated driver" } else { "a GPU" });
    let cuda = || {
        let b = bridge_builder(param).backend(Backend::Cuda);
        if sim {
            let long = std::time::Duration::from_secs(60);
            b.block_size(64).hang_timeout(long).shutdown_timeout(long)
        } else {
            b
        }
    };
    let bridge = cuda().launch().unwrap();
    racing_puts(&bridge);
    bridge.shutdown().unwrap();
    drop(bridge);
    checked_run(cuda(), param, ops, keyspace, 0x6e0);
}
