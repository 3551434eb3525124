//! # kv-service: an HTTP front end over a persistent kernel
//!
//! The kv-store kernel (`examples/kv-store`) behind an axum server, every
//! handler calling [`AsyncBridge::round_trip`]: concurrent requests pipeline
//! through the bridge, each answer routed back to its handler. Beside it,
//! the same server over a `tokio::sync::Mutex<HashMap>`, the baseline a
//! service would otherwise use, and a load generator ([`load`]) that checks
//! every answer and reports requests per second and latency percentiles.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /kv/{key}` with a decimal body | `204` (the kernel's PUT answers with nothing) |
//! | `GET /kv/{key}` | `200` with the decimal value, or `404` |

pub mod pipeline;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use kv_store::{ERR_NOT_FOUND, KvParam, OP_GET, OP_PUT, request};
use ringbridge::{AsyncBridge, Backend, WaitPolicy};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// What a server keeps its table in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// The kv-store kernel behind a bridge.
    Bridge,
    /// A `tokio::sync::Mutex<HashMap<u64, u64>>`.
    Mutex,
}

impl Store {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Store::Bridge => "HTTP + AsyncBridge::round_trip",
            Store::Mutex => "HTTP + Mutex<HashMap>",
        }
    }
}

/// A server's table.
#[derive(Clone)]
enum Table {
    Bridge(AsyncBridge),
    Mutex(Arc<Mutex<HashMap<u64, u64>>>),
}

/// A running server: its address, and the bridge (for shutdown) if any.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    bridge: Option<AsyncBridge>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops serving and shuts the bridge down.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.task.abort();
        if let Some(bridge) = self.bridge {
            bridge.shutdown().await?;
        }
        Ok(())
    }
}

/// Starts a server on 127.0.0.1 (a free port) over `store`; the bridge on
/// `backend` with a table of 2^20 entries, waiting with `policy`.
///
/// The example uses [`WaitPolicy::LowPower`] by default: on the host
/// fallback the kernel's half is a thread of this process, and on a machine
/// with few cores a serve thread that spins between requests
/// (`SpinThenPark` spins and yields for about a millisecond) takes CPU the
/// HTTP server needs. On CUDA the policy only sets how the host's calls
/// wait.
pub async fn serve(store: Store, backend: Backend, policy: WaitPolicy) -> anyhow::Result<Server> {
    let (table, bridge) = match store {
        Store::Bridge => {
            let param = KvParam {
                capacity: 1 << 20,
                threshold: 1 << 19,
            };
            let bridge = AsyncBridge::new(
                kv_store::bridge_builder(param)
                    .backend(backend)
                    .wait_policy(policy)
                    .launch()?,
            );
            (Table::Bridge(bridge.clone()), Some(bridge))
        }
        Store::Mutex => (Table::Mutex(Arc::default()), None),
    };
    let app = Router::new()
        .route("/kv/{key}", get(get_value).put(put_value))
        .with_state(table);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server { addr, bridge, task })
}

type Answer = (StatusCode, String);

fn internal(e: impl std::fmt::Display) -> Answer {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn get_value(State(table): State<Table>, Path(key): Path<u64>) -> Answer {
    match table {
        Table::Bridge(bridge) => match bridge.round_trip(&request(OP_GET, key, 0)).await {
            Ok(m) if m.is_error() && m.header.flags == ERR_NOT_FOUND => {
                (StatusCode::NOT_FOUND, String::new())
            }
            Ok(m) => match kv_store::value_of(&m) {
                Ok(v) => (StatusCode::OK, v.to_string()),
                Err(e) => internal(e),
            },
            Err(e) => internal(e),
        },
        Table::Mutex(map) => match map.lock().await.get(&key) {
            Some(v) => (StatusCode::OK, v.to_string()),
            None => (StatusCode::NOT_FOUND, String::new()),
        },
    }
}

async fn put_value(State(table): State<Table>, Path(key): Path<u64>, body: String) -> Answer {
    let Ok(value) = body.trim().parse::<u64>() else {
        return (StatusCode::BAD_REQUEST, "the body is not a u64".into());
    };
    match table {
        Table::Bridge(bridge) => match bridge.round_trip(&request(OP_PUT, key, value)).await {
            Ok(m) if m.is_no_reply() => (StatusCode::NO_CONTENT, String::new()),
            Ok(m) => internal(format!(
                "PUT answered with kind {} flags {}",
                m.header.kind, m.header.flags
            )),
            Err(e) => internal(e),
        },
        Table::Mutex(map) => {
            map.lock().await.insert(key, value);
            (StatusCode::NO_CONTENT, String::new())
        }
    }
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Requests answered (every one checked).
    pub requests: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency percentiles of one request: p50, p99, p99.9.
    pub p50: Duration,
    /// See `p50`.
    pub p99: Duration,
    /// See `p50`.
    pub p999: Duration,
    /// Context switches of the whole process (server and load generator)
    /// per request.
    pub switches: f64,
    /// CPU time of the whole process per request, in microseconds.
    pub cpu_us: f64,
}

impl LoadReport {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends `requests` requests from `callers` concurrent keep-alive
/// connections to the server at `addr`, half PUTs and half GETs, every GET
/// checked against what that caller last PUT (each caller owns its keys, so
/// its answers are exact; a GET of a key it never PUT must be 404). Any
/// wrong answer or failed request ends the run with an error.
pub async fn load(
    addr: SocketAddr,
    callers: usize,
    requests: u64,
    seed: u64,
) -> anyhow::Result<LoadReport> {
    let per_caller = requests / callers as u64;
    let before = pipeline::Usage::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        tasks.push(tokio::spawn(caller(addr, c as u64, per_caller, seed)));
    }
    let mut latencies = Vec::with_capacity(requests as usize);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let (switches, cpu_us) = pipeline::Usage::now().per(before, latencies.len() as u64);
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    Ok(LoadReport {
        requests: latencies.len() as u64,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        p999: pct(0.999),
        switches,
        cpu_us,
    })
}

/// Keys each caller owns: caller c uses keys `c * KEYS_PER_CALLER + 1 ..`.
const KEYS_PER_CALLER: u64 = 64;

async fn caller(
    addr: SocketAddr,
    id: u64,
    requests: u64,
    seed: u64,
) -> anyhow::Result<Vec<Duration>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let mut rng = kv_store::XorShift::new(seed ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut mine: HashMap<u64, u64> = HashMap::new();
    let mut latencies = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let key = id * KEYS_PER_CALLER + 1 + rng.next_u64() % KEYS_PER_CALLER;
        let put = rng.next_u64().is_multiple_of(2);
        let uri = format!("/kv/{key}");
        let builder = hyper::Request::builder()
            .uri(uri)
            .header("host", "127.0.0.1");
        let value = rng.next_u64() >> 1;
        let req = if put {
            builder
                .method("PUT")
                .body(Full::new(Bytes::from(value.to_string())))?
        } else {
            builder.method("GET").body(Full::new(Bytes::new()))?
        };
        let t0 = Instant::now();
        send.ready().await?;
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        latencies.push(t0.elapsed());
        if put {
            anyhow::ensure!(status == 204, "PUT /kv/{key}: {status} {body:?}");
            mine.insert(key, value);
            continue;
        }
        match mine.get(&key) {
            Some(v) => {
                anyhow::ensure!(status == 200, "GET /kv/{key}: {status}, expected {v}");
                let got: u64 = std::str::from_utf8(&body)?.parse()?;
                anyhow::ensure!(got == *v, "GET /kv/{key}: {got}, expected {v}");
            }
            None => anyhow::ensure!(status == 404, "GET /kv/{key} never PUT: {status} {body:?}"),
        }
    }
    Ok(latencies)
}
