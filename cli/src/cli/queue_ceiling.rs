//! The streaming ceiling of the host fallback: the same three-thread echo
//! pipeline as `stream --backend fallback` (producer -> server -> consumer, every
//! byte + 1, every reply checked), but through two of ringbridge's
//! [`SpscQueue`]s instead of the two rings and the C
//! serve loop. Both run in the same process on the same cores, so the
//! fallback's rate can be stated as a share of what the host SPSC queue
//! allows.

use std::time::Instant;

use anyhow::bail;
use ringbridge::{Producer, SpscQueue};

use super::spin::Spin;
use super::stream_through::Patterns;

/// Largest payload the ceiling carries (messages are whole 64-bit words).
pub(crate) const MAX_PAYLOAD: usize = 4096;

/// What one ceiling run measured.
pub(crate) struct Ceiling {
    pub seconds: f64,
    pub lost: u64,
}

/// Runs `total` messages of `patterns.size()` bytes through the queue
/// pipeline with rings of `capacity` and send batches of `batch`. Each
/// message is the smallest of 64, 256, 1024 or 4096 bytes that holds the
/// payload, as a ring slot would be. `None` above [`MAX_PAYLOAD`].
pub(crate) fn measure(
    patterns: &Patterns,
    total: u64,
    capacity: usize,
    batch: usize,
) -> Option<anyhow::Result<Ceiling>> {
    Some(match patterns.size() {
        0..=64 => pipeline::<8>(patterns, total, capacity, batch),
        65..=256 => pipeline::<32>(patterns, total, capacity, batch),
        257..=1024 => pipeline::<128>(patterns, total, capacity, batch),
        1025..=MAX_PAYLOAD => pipeline::<512>(patterns, total, capacity, batch),
        _ => return None,
    })
}

/// Pushes all of `items`, waiting while the queue is full. `false` if the
/// consumer is gone.
fn push_all<T: Copy>(tx: &mut Producer<T>, mut items: &[T]) -> bool {
    let mut wait = Spin::default();
    while !items.is_empty() {
        let n = tx.push_slice(items);
        items = &items[n..];
        if n == 0 {
            if tx.is_abandoned() {
                return false;
            }
            wait.snooze();
        } else {
            wait = Spin::default();
        }
    }
    true
}

fn pipeline<const W: usize>(
    patterns: &Patterns,
    total: u64,
    capacity: usize,
    batch: usize,
) -> anyhow::Result<Ceiling>
where
    [u64; W]: bytemuck::Pod,
{
    let size = patterns.size();
    let (mut h2k_tx, mut h2k_rx) = SpscQueue::<[u64; W]>::try_new(capacity)?.split();
    let (mut k2h_tx, mut k2h_rx) = SpscQueue::<[u64; W]>::try_new(capacity)?.split();
    let started = Instant::now();
    let lost = std::thread::scope(|s| -> anyhow::Result<u64> {
        s.spawn(move || {
            let mut bufs = vec![[0u64; W]; batch];
            let mut i = 0u64;
            while i < total {
                let n = (total - i).min(batch as u64) as usize;
                for (k, buf) in bufs[..n].iter_mut().enumerate() {
                    patterns.fill(&mut bytemuck::bytes_of_mut(buf)[..size], i + k as u64);
                }
                if !push_all(&mut h2k_tx, &bufs[..n]) {
                    return;
                }
                i += n as u64;
            }
        });
        s.spawn(move || {
            let mut bufs = vec![[0u64; W]; batch];
            let mut served = 0u64;
            let mut wait = Spin::default();
            while served < total {
                // Looked at before the pop: a producer gone before a pop
                // that finds nothing has nothing more to send. (After it,
                // the producer may have pushed its last batch and gone in
                // between, and those would be lost.)
                let gone = h2k_rx.is_abandoned();
                let n = h2k_rx.pop_into(&mut bufs);
                if n == 0 {
                    if gone {
                        return;
                    }
                    wait.snooze();
                    continue;
                }
                wait = Spin::default();
                for buf in &mut bufs[..n] {
                    for b in &mut bytemuck::bytes_of_mut(buf)[..size] {
                        *b = b.wrapping_add(1);
                    }
                }
                if !push_all(&mut k2h_tx, &bufs[..n]) {
                    return;
                }
                served += n as u64;
            }
        });
        let (mut got, mut lost) = (0u64, 0u64);
        let mut wait = Spin::default();
        while got < total {
            // Before the pop, as in the server above.
            let gone = k2h_rx.is_abandoned();
            let n = k2h_rx.pop_each(4096, |reply| {
                if !patterns.is_reply(&bytemuck::bytes_of(&reply)[..size], got) {
                    lost += 1;
                }
                got += 1;
            });
            if n == 0 {
                if gone {
                    bail!("the queue pipeline stopped after {got} of {total} messages");
                }
                wait.snooze();
            } else {
                wait = Spin::default();
            }
        }
        Ok(lost)
    })?;
    Ok(Ceiling {
        seconds: started.elapsed().as_secs_f64(),
        lost,
    })
}
