//! Serves the kv-store kernel over HTTP and loads it, beside the same
//! server over a `Mutex<HashMap>`; and round trips from many callers
//! without HTTP, beside a hand-written dispatcher. Variants interleaved,
//! every answer checked: see README.md.

use anyhow::{Context, bail};
use kv_service::pipeline::{self, VARIANTS};
use kv_service::{Store, load, serve};
use ringbridge::{AsyncBridge, Backend, WaitPolicy};

const USAGE: &str = "kv-service [http|pipeline|all] [--requests N] [--callers 64,256] [--rounds R] \
                     [--only TEXT] [--backend fallback|cuda|auto] [--policy spin|backoff|spin-then-park|low-power]";

fn main() -> anyhow::Result<()> {
    let mut mode = "all".to_string();
    let mut requests = 200_000u64;
    let mut callers = vec![64usize, 256];
    let mut rounds = 1;
    // Runs only the variants whose name contains this (say `tasks`, or `Mutex`).
    let mut only = String::new();
    let mut backend = Backend::Auto;
    let mut policy = WaitPolicy::LowPower;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "http" | "pipeline" | "all" => mode = a.clone(),
            "--requests" => requests = value()?.parse()?,
            "--rounds" => rounds = value()?.parse()?,
            "--only" => only = value()?,
            "--callers" => {
                callers = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--backend" => backend = value()?.parse().map_err(anyhow::Error::msg)?,
            "--policy" => {
                let name = value()?;
                policy = *WaitPolicy::ALL
                    .iter()
                    .find(|p| p.name() == name)
                    .with_context(|| format!("unknown wait policy {name:?}; usage: {USAGE}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; usage: {USAGE}"),
        }
    }
    anyhow::ensure!(callers.iter().all(|&n| n > 0), "--callers: at least 1");
    println!("load average before: {}", load_average());
    println!("wait policy: {}", policy.name());
    if mode != "http" {
        let bridge = AsyncBridge::new(pipeline::filled_bridge(backend, policy)?);
        println!("backend: {:?}", bridge.bridge().backend());
        println!("| round trips, no HTTP | callers | req/s | ctx switches/req | CPU us/req |");
        println!("|---|---|---|---|---|");
        for _ in 0..rounds {
            for &n in &callers {
                let per_caller = (requests / n as u64).max(1);
                for (i, name) in VARIANTS.iter().enumerate() {
                    if !name.contains(&only) {
                        continue;
                    }
                    // Untimed first: a tenth of the requests warms up
                    // allocations, caches and the bridge's threads.
                    pipeline::run(&bridge, i, n, (per_caller / 10).max(1))?;
                    let r = pipeline::run(&bridge, i, n, per_caller)?;
                    println!(
                        "| {name} | {n} | {:.0} | {:.2} | {:.2} |",
                        r.rate, r.switches, r.cpu_us
                    );
                }
            }
        }
        bridge.bridge().shutdown()?;
    }
    if mode != "pipeline" {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async {
            println!(
                "| HTTP variant | callers | req/s | p50 | p99 | p99.9 | ctx switches/req | CPU us/req |"
            );
            println!("|---|---|---|---|---|---|---|---|");
            for _ in 0..rounds {
                for &n in &callers {
                    for store in [Store::Bridge, Store::Mutex] {
                        if !store.name().contains(&only) {
                            continue;
                        }
                        let server = serve(store, backend, policy).await?;
                        let r = load(server.addr, n, requests, 7).await?;
                        server.stop().await?;
                        println!(
                            "| {} | {n} | {:.0} | {:?} | {:?} | {:?} | {:.2} | {:.1} |",
                            store.name(),
                            r.rate(),
                            r.p50,
                            r.p99,
                            r.p999,
                            r.switches,
                            r.cpu_us
                        );
                    }
                }
            }
            anyhow::Ok(())
        })?;
    }
    println!("load average after: {}", load_average());
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
