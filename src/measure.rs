//! Measuring any [`Bridge`], so a user's own kernel too: round-trip latency
//! ([`round_trips`]) and streaming rate ([`stream`]), every reply checked by
//! a check the caller supplies (the library cannot know what a user's kernel
//! answers). `ringbridge echo` and `ringbridge stream` use the same code.
//!
//! Both take the payload as a fill closure, `payload(i, buf) -> len`, which
//! writes message `i` (0 for the first one sent) into the slot's buffer in
//! place and returns its length, as [`Bridge::send_in_place`] does; and a
//! check, `check(i, header, reply) -> Result<(), String>`, whose first
//! refusal ends the measurement with [`Error::CheckFailed`] naming `i`.
//! Before the check runs, each reply must answer its own request
//! (`correlation`); its kind is left to the check, since some kernels answer
//! with error replies on purpose.
//!
//! Both need the bridge to themselves: no reply outstanding when they start
//! ([`Error::InvalidArgument`] otherwise) and no other thread sending or
//! receiving while they run. `n == 0` is an [`Error::InvalidArgument`]: a
//! latency of no samples has no percentiles.
//!
//! Every message must be answered: a request the kernel's handler answers
//! with nothing ends the measurement with [`Error::NoReply`] naming its
//! sequence number ([`stream`] first drains what was sent, as after a
//! refused check). Events the kernel sends meanwhile are neither replies
//! nor checked: [`round_trips`] sets them aside in the bridge (the next
//! receive calls return them), [`stream`] receives and drops them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::error::{Error, Result};
use crate::layout::{KIND_EVENT, KIND_NO_REPLY};
use crate::message::MessageHeader;

/// At most this many of [`round_trips`]' first round trips are warm-up: sent
/// and checked, not timed (see [`warmup_rounds`]).
///
/// ```
/// assert_eq!(ringbridge::measure::MAX_WARMUP, 1000);
/// ```
pub const MAX_WARMUP: u64 = 1000;

/// How many of `n` round trips [`round_trips`] does not time: the first
/// tenth, at most [`MAX_WARMUP`]. They page in the rings and wake the kernel
/// (or the fallback's thread) out of its idle wait, which would otherwise
/// make the first samples the slowest by far.
///
/// ```
/// use ringbridge::measure::warmup_rounds;
/// assert_eq!((warmup_rounds(1), warmup_rounds(50), warmup_rounds(1_000_000)), (0, 5, 1000));
/// ```
pub fn warmup_rounds(n: u64) -> u64 {
    (n / 10).min(MAX_WARMUP)
}

/// Percentiles of a set of round-trip times (nearest rank: the smallest
/// sample with at least that share of the samples at or below it).
///
/// ```
/// use ringbridge::measure::Latency;
/// use std::time::Duration;
/// let mut ns: Vec<u64> = (1..=1000).rev().collect();
/// let l = Latency::from_nanos(&mut ns).unwrap();
/// assert_eq!(l.samples, 1000);
/// assert_eq!((l.min, l.p50, l.p999, l.max), (
///     Duration::from_nanos(1),
///     Duration::from_nanos(500),
///     Duration::from_nanos(999),
///     Duration::from_nanos(1000),
/// ));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Latency {
    /// How many round trips were timed (warm-up excluded).
    pub samples: u64,
    /// The fastest.
    pub min: Duration,
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The 99.9th percentile.
    pub p999: Duration,
    /// The slowest.
    pub max: Duration,
    /// The mean (rounded down to the nanosecond).
    pub mean: Duration,
}

impl Latency {
    /// Sorts `samples` (nanoseconds) and reads the percentiles; `None` for
    /// no samples.
    ///
    /// ```
    /// use ringbridge::measure::Latency;
    /// use std::time::Duration;
    /// assert!(Latency::from_nanos(&mut []).is_none());
    /// let l = Latency::from_nanos(&mut [30, 10, 20]).unwrap();
    /// assert_eq!((l.p50, l.p90, l.mean), (Duration::from_nanos(20), Duration::from_nanos(30), Duration::from_nanos(20)));
    /// ```
    pub fn from_nanos(samples: &mut [u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let len = samples.len();
        let at = |q: f64| {
            let rank = ((q * len as f64).ceil() as usize).clamp(1, len);
            Duration::from_nanos(samples[rank - 1])
        };
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Some(Self {
            samples: len as u64,
            min: Duration::from_nanos(samples[0]),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_nanos(samples[len - 1]),
            mean: Duration::from_nanos((sum / len as u128) as u64),
        })
    }
}

/// A streaming rate.
///
/// ```
/// use ringbridge::measure::Rate;
/// let r = Rate { messages: 10, seconds: 0.5, msgs_per_s: 20.0, bytes_per_s: 640.0 };
/// assert_eq!(r.msgs_per_s * r.seconds, r.messages as f64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Rate {
    /// Messages sent, each answered and checked.
    pub messages: u64,
    /// From the first send to the last reply checked.
    pub seconds: f64,
    /// `messages / seconds`.
    pub msgs_per_s: f64,
    /// Request payload bytes per second (one way).
    pub bytes_per_s: f64,
}

/// Refuses a bridge with replies outstanding: they would arrive first and be
/// taken for the measurement's.
fn idle(bridge: &Bridge, what: &str) -> Result<()> {
    let stats = bridge.stats();
    if stats.in_flight != 0 {
        return Err(Error::InvalidArgument(format!(
            "{what} needs a bridge with no reply outstanding ({} are)",
            stats.in_flight
        )));
    }
    Ok(())
}

/// The check of message `index`, sent as `seq`: correlation first, then the
/// caller's.
fn check_reply(
    check: &mut impl FnMut(u64, &MessageHeader, &[u8]) -> Result<(), String>,
    index: u64,
    seq: u64,
    h: &MessageHeader,
    p: &[u8],
) -> Result<()> {
    let what = if h.correlation != seq {
        format!("reply answers request {} instead of {seq}", h.correlation)
    } else {
        match check(index, h, p) {
            Ok(()) => return Ok(()),
            Err(what) => what,
        }
    };
    Err(Error::CheckFailed { index, what })
}

/// Times `n` round trips, one message in flight; the first
/// [`warmup_rounds(n)`](warmup_rounds) are sent and checked but not timed.
/// Message `i` is written by `payload(i, buf)` (returning its length), its
/// reply checked by `check(i, header, reply)`.
///
/// ```
/// use ringbridge::{Backend, Bridge, Error, measure};
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
/// let latency = measure::round_trips(
///     &bridge,
///     200,
///     |i, buf| { buf[0] = i as u8; 1 },
///     |i, _, reply| {
///         // The built-in echo kernel adds one to every byte.
///         if reply == [(i as u8).wrapping_add(1)] { Ok(()) } else { Err(format!("got {reply:?}")) }
///     },
/// )?;
/// assert_eq!(latency.samples, 200 - measure::warmup_rounds(200));
/// assert!(latency.min <= latency.p50 && latency.p50 <= latency.max);
///
/// let err = measure::round_trips(&bridge, 10, |_, _| 0, |i, _, _| {
///     if i == 7 { Err("not this one".into()) } else { Ok(()) }
/// });
/// assert!(matches!(err, Err(Error::CheckFailed { index: 7, .. })));
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn round_trips(
    bridge: &Bridge,
    n: u64,
    payload: impl FnMut(u64, &mut [u8]) -> usize,
    check: impl FnMut(u64, &MessageHeader, &[u8]) -> Result<(), String>,
) -> Result<Latency> {
    round_trips_with_flags(bridge, n, |_| 0, payload, check)
}

/// [`round_trips`] whose requests carry a `flags` word (an opcode, say):
/// message `i` carries `flags(i)`.
///
/// ```
/// use ringbridge::{Backend, Bridge, measure};
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
/// let latency = measure::round_trips_with_flags(
///     &bridge,
///     100,
///     |i| (i % 3) as u32,
///     |_, buf| { buf[0] = 1; 1 },
///     // The built-in echo kernel echoes the flags.
///     |i, h, _| if h.flags == (i % 3) as u32 { Ok(()) } else { Err(format!("flags {}", h.flags)) },
/// )?;
/// assert_eq!(latency.samples, 100 - measure::warmup_rounds(100));
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn round_trips_with_flags(
    bridge: &Bridge,
    n: u64,
    mut flags: impl FnMut(u64) -> u32,
    mut payload: impl FnMut(u64, &mut [u8]) -> usize,
    mut check: impl FnMut(u64, &MessageHeader, &[u8]) -> Result<(), String>,
) -> Result<Latency> {
    if n == 0 {
        return Err(Error::InvalidArgument(
            "round_trips needs at least one round trip".into(),
        ));
    }
    idle(bridge, "round_trips")?;
    let warmup = warmup_rounds(n);
    let mut samples = Vec::with_capacity((n - warmup) as usize);
    for i in 0..n {
        let t0 = Instant::now();
        let mut chunk = bridge.reserve(1)?;
        let seq = chunk.write_with_flags(flags(i), |buf| payload(i, buf))?;
        chunk.publish()?;
        // The next answer; events before it are set aside in the bridge.
        let checked = bridge.recv_answer(|h, p| {
            if h.kind == KIND_NO_REPLY && h.correlation == seq {
                Err(Error::NoReply { seq })
            } else {
                check_reply(&mut check, i, seq, h, p)
            }
        })?;
        let dt = t0.elapsed();
        checked?;
        if i >= warmup {
            samples.push(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    Ok(Latency::from_nanos(&mut samples).expect("n - warmup >= 1 samples"))
}

/// Streams `n` messages through `bridge`: a producer thread sends them in
/// batches of `batch` written in place ([`Bridge::send_in_place`]), the
/// calling thread receives them ([`Bridge::recv_batch`]) and checks every
/// reply in order. Message `i` is written by `payload(i, buf)` (returning
/// its length), its reply checked by `check(i, header, reply)`. On the first
/// refusal the producer stops after its current batch and the replies
/// already sent are drained, unchecked, so the bridge stays usable.
///
/// ```
/// use ringbridge::{Backend, Bridge, Error, measure};
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
/// let rate = measure::stream(
///     &bridge,
///     10_000,
///     64,
///     |i, buf| { buf[..8].copy_from_slice(&i.to_le_bytes()); 8 },
///     |i, _, reply| {
///         let want = i.to_le_bytes().map(|b| b.wrapping_add(1));
///         if reply == want { Ok(()) } else { Err(format!("got {reply:?}")) }
///     },
/// )?;
/// assert_eq!(rate.messages, 10_000);
/// assert!((rate.bytes_per_s - rate.msgs_per_s * 8.0).abs() <= 1e-9 * rate.bytes_per_s);
///
/// let err = measure::stream(&bridge, 1000, 64, |_, _| 1, |i, _, _| {
///     if i == 500 { Err("refused".into()) } else { Ok(()) }
/// });
/// assert!(matches!(err, Err(Error::CheckFailed { index: 500, .. })));
/// assert_eq!(bridge.round_trip(&[1])?.payload, [2]); // still usable
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn stream(
    bridge: &Bridge,
    n: u64,
    batch: usize,
    payload: impl FnMut(u64, &mut [u8]) -> usize + Send,
    mut check: impl FnMut(u64, &MessageHeader, &[u8]) -> Result<(), String>,
) -> Result<Rate> {
    if n == 0 || batch == 0 {
        return Err(Error::InvalidArgument(
            "stream needs at least one message and a batch of at least one".into(),
        ));
    }
    idle(bridge, "stream")?;
    // A batch is reserved whole: at most the ring.
    let batch = batch.min(bridge.spec().capacity());
    // Sequence numbers count every message the bridge sent.
    let first_seq = bridge.stats().sent;
    // What the producer has published, and whether it is done (finished or
    // failed): the consumer never waits for a reply that will not come.
    let published = AtomicU64::new(0);
    let producer_done = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| -> Result<Rate> {
        let producer = s.spawn(|| -> Result<u64> {
            let mut payload = payload;
            let mut bytes = 0u64;
            let mut i = 0u64;
            let result = (|| {
                // Relaxed: a request to stop early, it orders nothing.
                while i < n && !stop.load(Ordering::Relaxed) {
                    let count = (n - i).min(batch as u64) as usize;
                    bridge.send_in_place(count, |k, buf| {
                        let len = payload(i + k as u64, buf);
                        bytes += len as u64;
                        len
                    })?;
                    i += count as u64;
                    // Release: pairs with the consumer's Acquire loads.
                    published.store(i, Ordering::Release);
                }
                Ok(bytes)
            })();
            producer_done.store(true, Ordering::Release);
            result
        });
        let mut got = 0u64;
        let mut failed: Option<Error> = None;
        let received = loop {
            // Acquire: pairs with the producer's Release stores.
            let done = producer_done.load(Ordering::Acquire);
            let available = published.load(Ordering::Acquire);
            if got < available {
                // No-reply marks included, so that every request is seen
                // answered; events are no answers: dropped.
                let r = bridge.recv_batch_inner(4096, true, |h, p| {
                    if h.kind == KIND_EVENT {
                        return;
                    }
                    if failed.is_none() {
                        let seq = first_seq + got;
                        let checked = if h.kind == KIND_NO_REPLY && h.correlation == seq {
                            Err(Error::NoReply { seq })
                        } else {
                            check_reply(&mut check, got, seq, h, p)
                        };
                        if let Err(e) = checked {
                            failed = Some(e);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    got += 1;
                });
                if let Err(e) = r {
                    stop.store(true, Ordering::Relaxed);
                    break Err(e);
                }
            } else if done {
                break Ok(());
            } else {
                std::thread::yield_now();
            }
        };
        let finished = Instant::now();
        // A panic of the payload closure is the caller's: passed on as is.
        let sent = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        received?;
        if let Some(e) = failed {
            return Err(e);
        }
        let bytes = sent?;
        let seconds = (finished - started).as_secs_f64();
        Ok(Rate {
            messages: got,
            seconds,
            msgs_per_s: got as f64 / seconds,
            bytes_per_s: bytes as f64 / seconds,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::fake;

    /// A device that answers request `i` as `answer(i, seq)` says, until
    /// `n` requests are answered or none comes for a while.
    fn serve(dev: &mut fake::Device, n: u64, mut answer: impl FnMut(u64, u64, &mut fake::Device)) {
        for i in 0..n {
            let Some(seq) = dev.request_within(Duration::from_millis(500)) else {
                return;
            };
            answer(i, seq, dev);
        }
    }

    #[test]
    fn round_trips_skip_events_and_refuse_no_reply() {
        let (bridge, mut dev) = fake::bridge();
        std::thread::scope(|s| {
            s.spawn(|| {
                serve(&mut dev, 5, |i, seq, dev| {
                    dev.event(i, b"tick");
                    dev.reply(seq, &[i as u8]);
                });
            });
            let latency = round_trips(
                &bridge,
                5,
                |i, buf| {
                    buf[0] = i as u8;
                    1
                },
                |i, h, p| {
                    if h.kind == crate::layout::KIND_REPLY && p == [i as u8] {
                        Ok(())
                    } else {
                        Err(format!("got {h:?}"))
                    }
                },
            )
            .unwrap();
            assert_eq!(latency.samples, 5);
        });
        let stats = bridge.stats();
        assert_eq!((stats.received, stats.events, stats.in_flight), (5, 5, 0));
        // The events wait, set aside, for the next receives.
        for i in 0..5 {
            assert_eq!(bridge.recv().unwrap().event_seq(), Some(i));
        }

        std::thread::scope(|s| {
            s.spawn(|| {
                serve(&mut dev, 3, |i, seq, dev| {
                    if i == 2 {
                        dev.no_reply(seq);
                    } else {
                        dev.reply(seq, b"r");
                    }
                });
            });
            let err = round_trips(&bridge, 10, |_, _| 1, |_, _, _| Ok(())).unwrap_err();
            assert!(matches!(err, Error::NoReply { seq: 7 }), "{err:?}");
        });
        assert_eq!(bridge.stats().in_flight, 0);
    }

    #[test]
    fn stream_drops_events_and_refuses_no_reply() {
        let (bridge, mut dev) = fake::bridge();
        std::thread::scope(|s| {
            s.spawn(|| {
                serve(&mut dev, 40, |i, seq, dev| {
                    if i % 3 == 0 {
                        dev.event(i, b"e");
                    }
                    dev.reply(seq, &[i as u8]);
                });
            });
            let rate = stream(
                &bridge,
                40,
                4,
                |i, buf| {
                    buf[0] = i as u8;
                    1
                },
                |i, _, p| {
                    if p == [i as u8] {
                        Ok(())
                    } else {
                        Err(format!("got {p:?}"))
                    }
                },
            )
            .unwrap();
            assert_eq!(rate.messages, 40);
        });
        assert_eq!(bridge.stats().events, 14);

        std::thread::scope(|s| {
            s.spawn(|| {
                serve(&mut dev, 8, |i, seq, dev| {
                    if i == 5 {
                        dev.no_reply(seq);
                    } else {
                        dev.reply(seq, b"r");
                    }
                });
            });
            let err = stream(&bridge, 8, 2, |_, _| 1, |_, _, _| Ok(())).unwrap_err();
            assert!(matches!(err, Error::NoReply { seq: 45 }), "{err:?}");
        });
        // Drained: nothing outstanding, the bridge still usable.
        assert_eq!(bridge.stats().in_flight, 0);
    }
}
