//! Round trips from many callers without HTTP: the bridge's own pipelined
//! calls beside a hand-written dispatcher (one sender, one receiver,
//! replies routed by correlation), for tasks and for threads. Every answer
//! is checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kv_store::{KvParam, OP_GET, OP_PUT, request, value_of};
use ringbridge::{AsyncBridge, Backend, Bridge, MessageEnvelope};

/// Keys filled before a run: key k holds 3k.
const KEYS: u64 = 1024;

/// One variant's result.
#[derive(Clone, Debug)]
pub struct Run {
    /// Round trips per second.
    pub rate: f64,
    /// Context switches of the whole process per round trip.
    pub switches: f64,
    /// CPU time of the whole process per round trip, in microseconds.
    pub cpu_us: f64,
}

/// The variants, in the order they run.
pub const VARIANTS: [&str; 4] = [
    "AsyncBridge::round_trip (tasks)",
    "hand dispatcher (tasks)",
    "Bridge::round_trip (threads)",
    "hand dispatcher (threads)",
];

/// A bridge serving the kv-store kernel, its first 1024 keys filled (key k
/// holds 3k).
pub fn filled_bridge(backend: Backend, policy: ringbridge::WaitPolicy) -> anyhow::Result<Bridge> {
    let bridge = kv_store::bridge_builder(KvParam {
        capacity: 1 << 16,
        threshold: 1 << 15,
    })
    .backend(backend)
    .wait_policy(policy)
    .launch()?;
    for k in 1..=KEYS {
        bridge.round_trip(&request(OP_PUT, k, 3 * k))?;
    }
    Ok(bridge)
}

fn check(key: u64, m: &MessageEnvelope) -> anyhow::Result<()> {
    let v = value_of(m).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(v == 3 * key, "GET {key} answered {v}");
    Ok(())
}

fn key_of(caller: usize, i: u64) -> u64 {
    1 + (caller as u64 * 7919 + i * 31) % KEYS
}

/// What this process has used so far, every thread's (those that ended
/// included): context switches, voluntary and not, and CPU time (user and
/// system) in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Context switches.
    pub switches: u64,
    /// CPU time, microseconds.
    pub cpu_us: u64,
}

impl Usage {
    /// This process's usage now.
    pub fn now() -> Self {
        // SAFETY: getrusage only writes the struct we hand it, which lives
        // on this stack frame; an all-zero rusage is a valid value to start
        // from.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        Self {
            switches: (usage.ru_nvcsw + usage.ru_nivcsw) as u64,
            cpu_us: us(usage.ru_utime) + us(usage.ru_stime),
        }
    }

    /// Context switches and CPU microseconds per unit of `n` since `before`.
    pub fn per(self, before: Usage, n: u64) -> (f64, f64) {
        let n = n.max(1) as f64;
        (
            (self.switches - before.switches) as f64 / n,
            (self.cpu_us - before.cpu_us) as f64 / n,
        )
    }
}

/// Runs variant `which` of [`VARIANTS`]: `callers` callers, `per_caller`
/// round trips each, on `bridge`.
pub fn run(
    bridge: &AsyncBridge,
    which: usize,
    callers: usize,
    per_caller: u64,
) -> anyhow::Result<Run> {
    let total = callers as u64 * per_caller;
    let before = Usage::now();
    let start = Instant::now();
    match which {
        0 => tasks_round_trip(bridge, callers, per_caller)?,
        1 => tasks_dispatcher(bridge, callers, per_caller)?,
        2 => threads_round_trip(bridge.bridge(), callers, per_caller)?,
        _ => threads_dispatcher(bridge.bridge(), callers, per_caller)?,
    }
    let elapsed = start.elapsed();
    let (switches, cpu_us) = Usage::now().per(before, total);
    Ok(Run {
        rate: total as f64 / elapsed.as_secs_f64(),
        switches,
        cpu_us,
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn tasks_round_trip(bridge: &AsyncBridge, callers: usize, per_caller: u64) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..callers {
            let bridge = bridge.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_caller {
                    let key = key_of(c, i);
                    check(key, &bridge.round_trip(&request(OP_GET, key, 0)).await?)?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    })
}

type AsyncRoutes = Arc<Mutex<HashMap<u64, tokio::sync::oneshot::Sender<MessageEnvelope>>>>;

/// What a user writes without pipelined round trips: callers hand their
/// requests to one sending task, which registers a reply slot under the
/// request's sequence number; one receiving task routes each reply.
fn tasks_dispatcher(bridge: &AsyncBridge, callers: usize, per_caller: u64) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let (to_sender, mut requests) = tokio::sync::mpsc::channel::<(
            [u8; 24],
            tokio::sync::oneshot::Sender<MessageEnvelope>,
        )>(1024);
        let routes: AsyncRoutes = Arc::default();
        let total = callers as u64 * per_caller;
        let sender = {
            let (bridge, routes) = (bridge.clone(), Arc::clone(&routes));
            tokio::spawn(async move {
                let mut next = bridge.bridge().stats().sent;
                while let Some((req, reply)) = requests.recv().await {
                    routes.lock().unwrap().insert(next, reply);
                    let seq = bridge.send(&req).await?;
                    anyhow::ensure!(
                        seq == next,
                        "the only sender saw sequence {seq}, not {next}"
                    );
                    next += 1;
                }
                anyhow::Ok(())
            })
        };
        let receiver = {
            let (bridge, routes) = (bridge.clone(), Arc::clone(&routes));
            tokio::spawn(async move {
                for _ in 0..total {
                    let m = bridge.recv().await?;
                    let slot = routes.lock().unwrap().remove(&m.header.correlation);
                    let slot = slot.ok_or_else(|| anyhow::anyhow!("a reply nobody waits for"))?;
                    let _ = slot.send(m);
                }
                anyhow::Ok(())
            })
        };
        let mut tasks = Vec::new();
        for c in 0..callers {
            let to_sender = to_sender.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_caller {
                    let key = key_of(c, i);
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    to_sender.send((request(OP_GET, key, 0), tx)).await?;
                    check(key, &rx.await?)?;
                }
                anyhow::Ok(())
            }));
        }
        drop(to_sender);
        for t in tasks {
            t.await??;
        }
        receiver.await??;
        sender.await??;
        Ok(())
    })
}

fn threads_round_trip(bridge: &Bridge, callers: usize, per_caller: u64) -> anyhow::Result<()> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|c| {
                s.spawn(move || {
                    for i in 0..per_caller {
                        let key = key_of(c, i);
                        check(key, &bridge.round_trip(&request(OP_GET, key, 0))?)?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap())
    })
}

type Routes = Arc<Mutex<HashMap<u64, std::sync::mpsc::SyncSender<MessageEnvelope>>>>;

/// The threads' hand-written dispatcher: one sending thread, one receiving
/// thread, a reply channel per request.
fn threads_dispatcher(bridge: &Bridge, callers: usize, per_caller: u64) -> anyhow::Result<()> {
    let total = callers as u64 * per_caller;
    let routes: Routes = Arc::default();
    let (to_sender, requests) = std::sync::mpsc::sync_channel::<(
        [u8; 24],
        std::sync::mpsc::SyncSender<MessageEnvelope>,
    )>(1024);
    std::thread::scope(|s| {
        let sender = {
            let routes = Arc::clone(&routes);
            s.spawn(move || {
                for (next, (req, reply)) in (bridge.stats().sent..).zip(requests) {
                    routes.lock().unwrap().insert(next, reply);
                    let seq = bridge.send(&req)?;
                    anyhow::ensure!(
                        seq == next,
                        "the only sender saw sequence {seq}, not {next}"
                    );
                }
                anyhow::Ok(())
            })
        };
        let receiver = {
            let routes = Arc::clone(&routes);
            s.spawn(move || {
                for _ in 0..total {
                    let m = bridge.recv()?;
                    let slot = routes.lock().unwrap().remove(&m.header.correlation);
                    let slot = slot.ok_or_else(|| anyhow::anyhow!("a reply nobody waits for"))?;
                    let _ = slot.send(m);
                }
                anyhow::Ok(())
            })
        };
        let callers: Vec<_> = (0..callers)
            .map(|c| {
                let to_sender = to_sender.clone();
                s.spawn(move || {
                    for i in 0..per_caller {
                        let key = key_of(c, i);
                        let (tx, rx) = std::sync::mpsc::sync_channel(1);
                        to_sender.send((request(OP_GET, key, 0), tx))?;
                        check(key, &rx.recv()?)?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        drop(to_sender);
        for c in callers {
            c.join().unwrap()?;
        }
        receiver.join().unwrap()?;
        sender.join().unwrap()
    })
}
