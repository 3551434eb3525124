//! Runs the key-value store on `Backend::Auto` (the GPU when there is one,
//! else the host fallback; with `RINGBRIDGE_REQUIRE_GPU=1`, the GPU or
//! failure): a checked mixed load of PUTs and GETs, the fill
//! event, GET round-trip latency, and the table read back after shutdown.

use std::process::ExitCode;

use kv_store::{
    KvParam, OP_COUNT, OP_GET, bridge_builder, mixed_load, request, table_contents, value_of,
};
use ringbridge::{Backend, measure};

const CAPACITY: u64 = 1 << 20;
const THRESHOLD: u64 = 20_000;
const OPS: u64 = 200_000;
const KEYSPACE: u64 = 50_000;

fn run() -> Result<(), String> {
    let param = KvParam {
        capacity: CAPACITY,
        threshold: THRESHOLD,
    };
    let bridge = bridge_builder(param)
        .backend(Backend::Auto)
        .launch()
        .map_err(|e| format!("launch: {e}"))?;
    println!(
        "kv-store on {} ({})",
        bridge.backend().name(),
        bridge.backend_reason()
    );
    if std::env::var("RINGBRIDGE_REQUIRE_GPU").is_ok_and(|v| v == "1")
        && bridge.backend() != Backend::Cuda
    {
        return Err(format!(
            "RINGBRIDGE_REQUIRE_GPU=1 but {}",
            bridge.backend_reason()
        ));
    }
    println!("table: {CAPACITY} entries of 16 bytes, fill event at {THRESHOLD} keys");

    let load = mixed_load(&bridge, OPS, KEYSPACE, 256, 0x5eed)?;
    println!(
        "mixed load: {} PUTs + {} GETs ({} found) in {} rounds, every GET checked: {:.0} requests/s",
        load.puts,
        load.gets,
        load.found,
        load.rounds,
        OPS as f64 / load.seconds
    );
    for (count, capacity) in &load.events {
        println!("event: the table reached {count} keys (of {capacity} entries)");
    }
    if load.events.len() != 1 {
        return Err(format!("{} fill events instead of one", load.events.len()));
    }
    let count = value_of(
        &bridge
            .round_trip(&request(OP_COUNT, 0, 0))
            .map_err(|e| e.to_string())?,
    )?;
    println!(
        "keys in the table: {count} (the host's model: {})",
        load.model.len()
    );

    let keys: Vec<(u64, u64)> = load.model.iter().map(|(k, v)| (*k, *v)).collect();
    let latency = measure::round_trips(
        &bridge,
        20_000,
        |i, buf| {
            let r = request(OP_GET, keys[i as usize % keys.len()].0, 0);
            buf[..24].copy_from_slice(&r);
            24
        },
        |i, _, reply| {
            let want = keys[i as usize % keys.len()].1;
            match <[u8; 8]>::try_from(reply) {
                Ok(b) if u64::from_le_bytes(b) == want => Ok(()),
                _ => Err(format!("GET answered {reply:?}, not {want}")),
            }
        },
    )
    .map_err(|e| format!("round trips: {e}"))?;
    println!(
        "GET round trip: p50 {:.2} us, p99 {:.2} us ({} samples)",
        latency.p50.as_secs_f64() * 1e6,
        latency.p99.as_secs_f64() * 1e6,
        latency.samples
    );
    let stats = bridge.stats();
    println!(
        "bridge: {} sent, {} received, {} answered with nothing, {} events",
        stats.sent, stats.received, stats.no_reply, stats.events
    );

    bridge.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    let table = table_contents(&bridge.download(0).map_err(|e| format!("download: {e}"))?)?;
    if table != load.model {
        return Err("the table read back after shutdown differs from the model".into());
    }
    println!(
        "table read back after shutdown: {} keys, every one with its last value",
        table.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv-store: {e}");
            ExitCode::FAILURE
        }
    }
}
