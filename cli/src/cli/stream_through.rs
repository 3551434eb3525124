//! The streaming core of `ringbridge stream`: the payload patterns, one
//! checked pipelined stream through a bridge, and the threads of a striped
//! or multi-device stream. Below `stream`, `stream_devices` and
//! `queue_ceiling`, which all use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ringbridge::StripedBridge;
use ringbridge::layout::KIND_REPLY;

use super::CheckMode;

/// Payloads of the stream: message `i` carries its index in its first 8
/// bytes, then `pattern[i as u8]`; the kernel's reply has every byte + 1,
/// which is the same pattern shifted by one. All 256 shifts are built once,
/// so filling a message and checking a reply are a copy and a compare, not a
/// loop over bytes: the host side must keep up with the GPU.
pub(crate) struct Patterns {
    shifted: Vec<Vec<u8>>,
}

impl Patterns {
    pub(crate) fn new(size: usize) -> Self {
        let shifted = (0..=255u8)
            .map(|c| {
                (0..size)
                    .map(|k| (k as u8).wrapping_mul(31).wrapping_add(c))
                    .collect()
            })
            .collect();
        Self { shifted }
    }

    /// Payload bytes per message.
    pub(crate) fn size(&self) -> usize {
        self.shifted[0].len()
    }

    /// Writes message `i` into `buf`.
    pub(crate) fn fill(&self, buf: &mut [u8], i: u64) {
        buf.copy_from_slice(&self.shifted[i as u8 as usize]);
        let n = buf.len().min(8);
        buf[..n].copy_from_slice(&i.to_le_bytes()[..n]);
    }

    /// Whether `reply` is message `i` with every byte + 1.
    pub(crate) fn is_reply(&self, reply: &[u8], i: u64) -> bool {
        let want = &self.shifted[i.wrapping_add(1) as u8 as usize];
        let n = reply.len().min(8);
        reply.len() == want.len()
            && reply[n..] == want[n..]
            && reply[..n]
                .iter()
                .zip(&i.to_le_bytes()[..n])
                .all(|(r, s)| *r == s.wrapping_add(1))
    }

    /// Whether the last (up to) 8 bytes of `reply` are those of message
    /// `i`'s reply (its length is checked by the caller).
    pub(crate) fn is_reply_tail(&self, reply: &[u8], i: u64) -> bool {
        let want = &self.shifted[i.wrapping_add(1) as u8 as usize];
        let index = i.to_le_bytes();
        let from = reply.len().saturating_sub(8);
        reply.len() == want.len()
            && (from..reply.len()).all(|k| {
                let w = if k < 8 {
                    index[k].wrapping_add(1)
                } else {
                    want[k]
                };
                reply[k] == w
            })
    }
}

/// Streams `total` messages through `bridge` from a producer thread, which
/// writes each batch in place into the ring's slots
/// ([`Bridge::send_in_place`](ringbridge::Bridge::send_in_place)), checking
/// the replies on the calling thread as `check` says; returns (sent, wrong
/// or lost, when the last reply was taken). `done` counts the replies taken
/// so far (for the progress bar).
pub(crate) fn stream_through(
    bridge: &ringbridge::Bridge,
    total: u64,
    batch: usize,
    check: CheckMode,
    patterns: &Patterns,
    done: &AtomicU64,
) -> anyhow::Result<(u64, u64, Instant)> {
    let size = patterns.size();
    // A batch is reserved whole: at most the ring.
    let batch = batch.min(bridge.spec().capacity());
    std::thread::scope(|s| -> anyhow::Result<(u64, u64, Instant)> {
        let producer = s.spawn(|| -> ringbridge::Result<u64> {
            let mut i = 0u64;
            while i < total {
                let n = (total - i).min(batch as u64) as usize;
                bridge.send_in_place(n, |k, buf| {
                    patterns.fill(&mut buf[..size], i + k as u64);
                    size
                })?;
                i += n as u64;
            }
            Ok(i)
        });
        let mut got = 0u64;
        let mut lost = 0u64;
        while got < total {
            let before = got;
            match check {
                CheckMode::Full => bridge.recv_batch(4096, |h, p| {
                    if h.correlation != got || !patterns.is_reply(p, got) {
                        lost += 1;
                    }
                    got += 1;
                })?,
                CheckMode::Header => bridge.recv_batch(4096, |h, p| {
                    if h.correlation != got
                        || h.kind != KIND_REPLY
                        || h.len as usize != size
                        || !patterns.is_reply_tail(p, got)
                    {
                        lost += 1;
                    }
                    got += 1;
                })?,
                CheckMode::Len => bridge.recv_batch(4096, |h, _| {
                    if h.correlation != got || h.kind != KIND_REPLY || h.len as usize != size {
                        lost += 1;
                    }
                    got += 1;
                })?,
                CheckMode::Reply => bridge.recv_batch(4096, |h, _| {
                    if h.correlation != got || h.kind != KIND_REPLY {
                        lost += 1;
                    }
                    got += 1;
                })?,
                CheckMode::None => bridge.recv_batch(4096, |_, _| got += 1)?,
            };
            // Relaxed: a progress count, it orders nothing.
            done.fetch_add(got - before, Ordering::Relaxed);
        }
        let finished = Instant::now();
        let sent = producer
            .join()
            .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
        Ok((sent, lost, finished))
    })
}

/// What a stripe's thread streamed: (sent, wrong or lost, when its last
/// reply was taken).
pub(crate) type StripeResult = anyhow::Result<(u64, u64, Instant)>;

/// Spawns in `s` one [`stream_through`] thread per stripe of `group`: one
/// producer and one consumer per stripe; stripe i carries `total / n`
/// messages, the first `total % n` stripes one more.
pub(crate) fn spawn_stripes<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    group: &'env StripedBridge,
    total: u64,
    batch: usize,
    check: CheckMode,
    patterns: &'env Patterns,
    done: &'env AtomicU64,
) -> Vec<std::thread::ScopedJoinHandle<'scope, StripeResult>> {
    let n = group.stripes() as u64;
    (0..group.stripes())
        .map(|i| {
            let count = total / n + u64::from((i as u64) < total % n);
            let bridge = group.stripe(i);
            s.spawn(move || stream_through(bridge, count, batch, check, patterns, done))
        })
        .collect()
}

/// Joins the stripes' threads and adds up what they streamed; the time is
/// when the last reply was checked (`started` if none was), not when this
/// thread noticed.
pub(crate) fn join_stripes(
    workers: Vec<std::thread::ScopedJoinHandle<'_, StripeResult>>,
    started: Instant,
) -> StripeResult {
    // Every thread joined before any error is returned: a scope panics on
    // a panicked thread left unjoined.
    let results: Vec<StripeResult> = workers
        .into_iter()
        .map(|w| {
            w.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a stream thread panicked")))
        })
        .collect();
    let (mut sent, mut lost, mut last) = (0, 0, started);
    for r in results {
        let (s, l, finished) = r?;
        sent += s;
        lost += l;
        last = last.max(finished);
    }
    Ok((sent, lost, last))
}
