//! # kv-store: a key-value store resident in the kernel's memory
//!
//! The kernel (`kernels/kv.cu`) keeps a table of `u64 -> u64` entries in a
//! buffer the bridge owns (device memory on CUDA, host memory on the
//! fallback) and serves three requests, each 24 bytes `{op, key, value}`:
//! PUT (answered with nothing), GET (the value, or error [`ERR_NOT_FOUND`])
//! and COUNT (the number of keys). When the number of keys reaches the
//! threshold of its [`KvParam`], the kernel sends the host one message of its
//! own ([`EVENT_FILL`]).
//!
//! ## The ordering contract
//!
//! On the GPU the requests of one batch (whatever the kernel found in the
//! ring at once) run at the same time, one per thread; on the host fallback
//! they run in order. Batches run one after another. So a GET sent while a
//! PUT of the same key is still unanswered may see the old value or the new
//! one. For per-key order, wait for a reply to a request sent after the PUT
//! before sending the dependent request: a reply is published only once
//! its whole batch, and every batch before it, is done. [`mixed_load`] works
//! that way: rounds, each closed by a COUNT whose reply it waits for, and no
//! key touched twice in one round.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use ringbridge::buffer::BufferInit;
use ringbridge::layout::KIND_EVENT;
use ringbridge::{Bridge, BridgeBuilder, Kernel, MessageEnvelope};

include!(concat!(env!("OUT_DIR"), "/kv_kernels.rs"));

/// The kernel's typed parameter, mirrored by `kv_param` in `kernels/kv.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct KvParam {
    /// Entries in the table (buffer 0), a power of two.
    pub capacity: u64,
    /// The number of keys at which the kernel sends [`EVENT_FILL`].
    pub threshold: u64,
}

/// Stores `value` under `key`; answered with nothing (or [`ERR_FULL`]).
pub const OP_PUT: u64 = 1;
/// Replies with the value under `key` (8 bytes), or [`ERR_NOT_FOUND`].
pub const OP_GET: u64 = 2;
/// Replies with the number of keys in the table (8 bytes).
pub const OP_COUNT: u64 = 3;

/// Error code (the reply's flags): no such key.
pub const ERR_NOT_FOUND: u32 = 1;
/// Error code: a request that is not 24 bytes, or an unknown op.
pub const ERR_BAD_REQUEST: u32 = 2;
/// Error code: key 0 or a key with bit 63 set (reserved by the table).
pub const ERR_BAD_KEY: u32 = 3;
/// Error code: a PUT of a new key into a full table.
pub const ERR_FULL: u32 = 4;

/// The flags of the kernel's fill event; its payload is `{count, capacity}`.
pub const EVENT_FILL: u32 = 1;

/// Bytes of one table entry, `{key, value}`; key 0 is an empty entry.
pub const ENTRY_BYTES: usize = 16;

/// The largest key (bit 63 is the table's "being written" mark).
pub const MAX_KEY: u64 = (1 << 63) - 1;

/// The 24-byte request `{op, key, value}`.
pub fn request(op: u64, key: u64, value: u64) -> [u8; 24] {
    let mut r = [0u8; 24];
    r[..8].copy_from_slice(&op.to_le_bytes());
    r[8..16].copy_from_slice(&key.to_le_bytes());
    r[16..].copy_from_slice(&value.to_le_bytes());
    r
}

/// A bridge serving the store: the kernel with `param`, a zeroed table of
/// `param.capacity` entries (buffer 0) and a zeroed count (buffer 1), 64-byte
/// slots (a request and a reply fit), 1024 of them each way. Pick the
/// backend on the builder it returns.
pub fn bridge_builder(param: KvParam) -> BridgeBuilder {
    let table_bytes = usize::try_from(param.capacity).expect("capacity fits usize") * ENTRY_BYTES;
    Bridge::builder()
        .kernel(Kernel::User(kv_store().with_param(param)))
        .slot_size(64)
        .capacity(1024)
        .buffer(BufferInit::zeroed(table_bytes))
        .buffer(BufferInit::zeroed(8))
}

/// The keys and values of a downloaded table (buffer 0), empty entries left
/// out. `Err` on an entry still marked as being written (none may be once
/// the kernel stopped) or a key that appears twice.
pub fn table_contents(table: &[u8]) -> Result<HashMap<u64, u64>, String> {
    let mut out = HashMap::new();
    for (i, e) in table.chunks_exact(ENTRY_BYTES).enumerate() {
        let key = u64::from_le_bytes(e[..8].try_into().unwrap());
        let value = u64::from_le_bytes(e[8..].try_into().unwrap());
        if key == 0 {
            continue;
        }
        if key > MAX_KEY {
            return Err(format!(
                "entry {i}: key {key:#x} still marked as being written"
            ));
        }
        if out.insert(key, value).is_some() {
            return Err(format!("entry {i}: key {key} is in the table twice"));
        }
    }
    Ok(out)
}

/// A small seeded generator (xorshift64*), so runs are reproducible.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded with `seed` (0 is replaced by a fixed non-zero seed).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `1..=n` (n >= 1; the bias of the modulo is negligible here).
    pub fn key(&mut self, n: u64) -> u64 {
        1 + self.next_u64() % n
    }
}

/// What [`mixed_load`] did, every answer checked.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// PUTs sent.
    pub puts: u64,
    /// GETs sent, each answered as the model said.
    pub gets: u64,
    /// Of those, answered with a value.
    pub found: u64,
    /// Rounds (each closed by a COUNT whose reply was waited for).
    pub rounds: u64,
    /// The fill events received, `(count, capacity)` each.
    pub events: Vec<(u64, u64)>,
    /// Seconds from the first send to the last reply.
    pub seconds: f64,
    /// What the table must hold: every key with its last value.
    pub model: HashMap<u64, u64>,
}

/// The answer a request gets, the events before it set aside.
fn recv_answer(bridge: &Bridge, events: &mut Vec<(u64, u64)>) -> Result<MessageEnvelope, String> {
    loop {
        let m = bridge.recv().map_err(|e| format!("recv: {e}"))?;
        if m.header.kind != KIND_EVENT {
            return Ok(m);
        }
        if m.header.flags != EVENT_FILL || m.payload.len() != 16 {
            return Err(format!("unexpected event {:?}", m.header));
        }
        let word = |i: usize| u64::from_le_bytes(m.payload[i * 8..i * 8 + 8].try_into().unwrap());
        events.push((word(0), word(1)));
    }
}

/// The 8-byte value of a reply.
pub fn value_of(m: &MessageEnvelope) -> Result<u64, String> {
    match <[u8; 8]>::try_from(m.payload.as_slice()) {
        Ok(b) if m.is_reply() => Ok(u64::from_le_bytes(b)),
        _ => Err(format!(
            "expected an 8-byte value, got {:?} {:?}",
            m.header, m.payload
        )),
    }
}

/// Sends `ops` requests, about half PUTs and half GETs of keys drawn from
/// `1..=keyspace` by a generator seeded with `seed`, in rounds of at most
/// `round` requests, and checks every answer against a `HashMap` model.
///
/// Ordering (see the crate's documentation): a round touches each key at
/// most once, its GETs expect the table as of the end of the round before,
/// and it is closed by a COUNT whose reply the host waits for, which proves
/// every PUT before it applied. That COUNT ran alongside the round's last
/// requests, so its value is checked to lie between the counts before and
/// after the round. Needs `round` + 1 requests (and their K2H slots, two
/// per request for a kernel that may send) to fit the rings, `keyspace` at
/// least 4 * `round`, and no reply outstanding.
pub fn mixed_load(
    bridge: &Bridge,
    ops: u64,
    keyspace: u64,
    round: usize,
    seed: u64,
) -> Result<LoadReport, String> {
    assert!(
        round > 0 && keyspace >= 4 * round as u64,
        "keyspace too small for the round"
    );
    let mut rng = XorShift::new(seed);
    let mut report = LoadReport::default();
    let mut touched = HashSet::with_capacity(round);
    let mut pending: Vec<(u64, u64)> = Vec::with_capacity(round);
    let mut expected: VecDeque<(u64, u64, Option<u64>)> = VecDeque::with_capacity(round);
    let start = Instant::now();
    let mut sent = 0;
    while sent < ops {
        touched.clear();
        let n = (ops - sent).min(round as u64);
        for _ in 0..n {
            let key = loop {
                let k = rng.key(keyspace);
                if touched.insert(k) {
                    break k;
                }
            };
            if rng.next_u64() & 1 == 0 {
                let value = rng.next_u64();
                bridge
                    .send(&request(OP_PUT, key, value))
                    .map_err(|e| format!("send: {e}"))?;
                pending.push((key, value));
                report.puts += 1;
            } else {
                let seq = bridge
                    .send(&request(OP_GET, key, 0))
                    .map_err(|e| format!("send: {e}"))?;
                expected.push_back((seq, key, report.model.get(&key).copied()));
                report.gets += 1;
            }
        }
        sent += n;
        let before = report.model.len() as u64;
        let barrier = bridge
            .send(&request(OP_COUNT, 0, 0))
            .map_err(|e| format!("send: {e}"))?;
        // Replies come in request order; PUTs have none.
        while let Some((seq, key, want)) = expected.pop_front() {
            let m = recv_answer(bridge, &mut report.events)?;
            if m.header.correlation != seq {
                return Err(format!(
                    "GET {key}: reply answers {} instead of {seq}",
                    m.header.correlation
                ));
            }
            match want {
                Some(v) => {
                    let got = value_of(&m).map_err(|e| format!("GET {key}: {e}"))?;
                    if got != v {
                        return Err(format!("GET {key}: {got} instead of {v}"));
                    }
                    report.found += 1;
                }
                None if m.is_error() && m.header.flags == ERR_NOT_FOUND => {}
                None => {
                    return Err(format!(
                        "GET {key}: {:?} {:?} instead of not found",
                        m.header, m.payload
                    ));
                }
            }
        }
        for (key, value) in pending.drain(..) {
            report.model.insert(key, value);
        }
        let m = recv_answer(bridge, &mut report.events)?;
        let after = report.model.len() as u64;
        if m.header.correlation != barrier {
            return Err(format!(
                "COUNT: reply answers {} instead of {barrier}",
                m.header.correlation
            ));
        }
        let count = value_of(&m).map_err(|e| format!("COUNT: {e}"))?;
        if !(before..=after).contains(&count) {
            return Err(format!("COUNT: {count} keys, not in {before}..={after}"));
        }
        report.rounds += 1;
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
