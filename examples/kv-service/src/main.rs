//! Serves the kv-store kernel over HTTP and loads it, beside the same
//! server over a `Mutex<HashMap>`, interleaved: see README.md.
//!
//! `kv-service [--requests N] [--callers 64,256] [--rounds R] [--backend fallback|cuda|auto]`

use anyhow::{Context, bail};
use kv_service::{Store, load, serve};
use ringbridge::Backend;

fn main() -> anyhow::Result<()> {
    let mut requests = 200_000u64;
    let mut callers = vec![64usize, 256];
    let mut rounds = 1;
    let mut backend = Backend::Auto;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--requests" => requests = value()?.parse()?,
            "--rounds" => rounds = value()?.parse()?,
            "--callers" => {
                callers = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--backend" => backend = value()?.parse().map_err(anyhow::Error::msg)?,
            "-h" | "--help" => {
                println!(
                    "kv-service [--requests N] [--callers 64,256] [--rounds R] [--backend fallback|cuda|auto]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        println!("| variant | callers | req/s | p50 | p99 | p99.9 |");
        println!("|---|---|---|---|---|---|");
        for _ in 0..rounds {
            for &n in &callers {
                for store in [Store::Bridge, Store::Mutex] {
                    let server = serve(store, backend).await?;
                    let r = load(server.addr, n, requests, 7).await?;
                    server.stop().await?;
                    println!(
                        "| {} | {n} | {:.0} | {:?} | {:?} | {:?} |",
                        store.name(),
                        r.rate(),
                        r.p50,
                        r.p99,
                        r.p999
                    );
                }
            }
        }
        Ok(())
    })
}
