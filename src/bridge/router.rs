//! Who waits for which answer: the routing table behind pipelined round
//! trips and event subscriptions.
//!
//! Any number of callers may have round trips in flight. Each registers its
//! request's sequence number here *before* the request is published, so
//! whoever reads K2H next (a round trip waiting for its own answer, a
//! receive call, or the async dispatcher) moves every answer it meets into
//! the entry of the caller it belongs to and wakes that caller. Answers
//! nobody registered for (replies to plain `send`s) and events nobody
//! subscribed to are left to the receive calls, in K2H order.
//!
//! Only one caller reads K2H at a time (the bridge's K2H lock); the others
//! sleep until their answer is routed to them or the reader lets go, when
//! the first sleeper is handed the lock ([`Router::hand_over`]). A caller
//! that gives up (a timeout, a dropped future) marks its entry abandoned:
//! its answer, when it comes, is dropped and costs nobody anything.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;
use std::thread::Thread;

use crate::layout::KIND_EVENT;
use crate::message::{MessageEnvelope, MessageHeader};

use super::receive::envelope;
use crate::sync::lock;

/// How a waiting caller is woken.
#[derive(Clone)]
pub(crate) enum Wake {
    /// A blocking caller, parked.
    Thread(Thread),
    /// An async caller's task.
    Task(Waker),
}

impl Wake {
    pub(crate) fn current_thread() -> Self {
        Wake::Thread(std::thread::current())
    }

    pub(crate) fn wake(self) {
        match self {
            Wake::Thread(t) => t.unpark(),
            Wake::Task(w) => w.wake(),
        }
    }

    fn same_as(&self, other: &Wake) -> bool {
        match (self, other) {
            (Wake::Thread(a), Wake::Thread(b)) => a.id() == b.id(),
            (Wake::Task(a), Wake::Task(b)) => a.will_wake(b),
            _ => false,
        }
    }

    fn is_task(&self) -> bool {
        matches!(self, Wake::Task(_))
    }
}

/// Hashes the sequence numbers the routing table is keyed by. They are
/// distinct and mostly consecutive, chosen by this process, not by an
/// adversary: one multiplication spreads them (odd, so the low bits the
/// table indexes by stay distinct; the high bits it tags with vary too),
/// where the default SipHash costs the lock holder tens of nanoseconds.
#[derive(Clone, Copy, Default)]
struct SeqHash;

impl std::hash::BuildHasher for SeqHash {
    type Hasher = SeqHasher;
    fn build_hasher(&self) -> SeqHasher {
        SeqHasher(0)
    }
}

struct SeqHasher(u64);

impl std::hash::Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        // 2^64 / golden ratio (Knuth's multiplicative hashing).
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed (`write_u64`); anything else still works.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Entry {
    answer: Option<MessageEnvelope>,
    wake: Wake,
    /// Counted in `tasks_waiting`: an async caller that waits for the
    /// dispatcher to read for it (see [`Router::take`]).
    counted: bool,
}

#[derive(Default)]
struct Routes {
    entries: HashMap<u64, Entry, SeqHash>,
    /// Requests whose callers gave up: their answers are dropped.
    abandoned: HashSet<u64, SeqHash>,
    /// Async callers among `entries` still without an answer that wait for
    /// the dispatcher (`Entry::counted`): while there are any, it reads K2H
    /// for them.
    tasks_waiting: usize,
    /// Events for the subscribers, oldest first, and who waits for them.
    events: VecDeque<MessageEnvelope>,
    subscribers: usize,
    event_waiters: Vec<Wake>,
    /// Blocking callers parked until K2H is free or their answer comes.
    sleepers: VecDeque<Thread>,
}

/// The routing table of one bridge.
#[derive(Default)]
pub(crate) struct Router {
    routes: Mutex<Routes>,
    /// Entries, abandoned entries and subscribers: while 0 there is nothing
    /// to route and the read path skips the lock. A caller counts itself
    /// before its request is published (H2K's release store); the kernel
    /// reads the request (acquire) before it publishes the answer (release),
    /// which the reader reads (acquire) before it loads this count: so the
    /// reader of an answer always sees its caller counted. Relaxed is then
    /// enough for the count itself.
    routed: AtomicUsize,
    /// `sleepers.len()`, readable without the lock (a hint: the lock decides).
    sleeping: AtomicUsize,
    /// Async callers waiting for an answer or an event: `tasks_waiting` plus
    /// the tasks among `event_waiters`, stored under the lock after every
    /// change. SeqCst: the async dispatcher clears its busy flag and then
    /// reads this; a task raises this and then reads the flag. One of the
    /// two sees the other, so a waiting task is never left unread.
    task_demand: AtomicUsize,
}

/// Where [`Router::route`] put a K2H message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Routed {
    /// To a waiting caller, a subscriber, or dropped (its caller gave up).
    Away,
    /// Nobody claims it: for the receive calls.
    Plain,
}

impl Router {
    /// Registers a caller for the answer to request `seq`, before the
    /// request is published.
    pub(crate) fn register(&self, seq: u64, wake: Wake) {
        let mut r = lock(&self.routes);
        let entry = Entry {
            answer: None,
            wake,
            counted: false,
        };
        r.entries.insert(seq, entry);
        self.routed.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets a registration whose request was never published.
    pub(crate) fn unregister(&self, seq: u64) {
        let mut r = lock(&self.routes);
        if let Some(e) = r.entries.remove(&seq) {
            r.tasks_waiting -= usize::from(e.counted);
            self.routed.fetch_sub(1, Ordering::Relaxed);
            self.publish_demand(&r);
        }
    }

    /// The caller of `seq` gives up: an answer already routed is dropped,
    /// one still to come will be.
    pub(crate) fn abandon(&self, seq: u64) {
        let mut r = lock(&self.routes);
        if let Some(e) = r.entries.remove(&seq) {
            if e.answer.is_none() {
                r.tasks_waiting -= usize::from(e.counted);
                r.abandoned.insert(seq);
                self.publish_demand(&r);
            } else {
                self.routed.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// The answer to `seq`, if it came (the entry is gone then); else
    /// `wake` replaces the caller's waker, and the caller counts as a task
    /// waiting for the async dispatcher to read K2H for it (until then it
    /// reads for itself: a registration alone does not start the
    /// dispatcher).
    pub(crate) fn take(&self, seq: u64, wake: Option<&Waker>) -> Option<MessageEnvelope> {
        let mut r = lock(&self.routes);
        let entry = r.entries.get_mut(&seq)?;
        if entry.answer.is_none() {
            if let Some(w) = wake {
                match &mut entry.wake {
                    Wake::Task(old) => old.clone_from(w),
                    other => *other = Wake::Task(w.clone()),
                }
                if !entry.counted {
                    entry.counted = true;
                    r.tasks_waiting += 1;
                    self.publish_demand(&r);
                }
            }
            return None;
        }
        let answer = r.entries.remove(&seq).and_then(|e| e.answer);
        self.routed.fetch_sub(1, Ordering::Relaxed);
        answer
    }

    /// Whether the answer to `seq` has been routed to its entry.
    pub(crate) fn has_answer(&self, seq: u64) -> bool {
        lock(&self.routes)
            .entries
            .get(&seq)
            .is_some_and(|e| e.answer.is_some())
    }

    /// Routes one K2H message: an answer to its registered caller, or
    /// dropped if that caller gave up; an event to the subscribers, if any.
    /// `Plain`: nobody claims it. Whom to wake goes to `wakes`: the reader
    /// wakes them once it has freed the slot and counted the message, so a
    /// woken caller finds the bridge's counts up to date.
    pub(crate) fn route(&self, h: &MessageHeader, p: &[u8], wakes: &mut Vec<Wake>) -> Routed {
        if self.routed.load(Ordering::Relaxed) == 0 {
            return Routed::Plain;
        }
        // Copied before the lock is taken, not while others wait for it (a
        // message nobody claims is copied for nothing, but only while round
        // trips or subscribers exist).
        let message = envelope(h, p);
        let mut r = lock(&self.routes);
        let wake = if h.kind == KIND_EVENT {
            if r.subscribers == 0 {
                return Routed::Plain;
            }
            r.events.push_back(message);
            let woken = std::mem::take(&mut r.event_waiters);
            self.publish_demand(&r);
            woken
        } else if let Some(entry) = r.entries.get_mut(&h.correlation) {
            if entry.answer.is_some() {
                // A second answer to one request: the reader's checks
                // report it; never overwrite the first.
                return Routed::Plain;
            }
            entry.answer = Some(message);
            let wake = entry.wake.clone();
            let counted = std::mem::take(&mut entry.counted);
            r.tasks_waiting -= usize::from(counted);
            self.publish_demand(&r);
            vec![wake]
        } else if r.abandoned.remove(&h.correlation) {
            self.routed.fetch_sub(1, Ordering::Relaxed);
            Vec::new()
        } else {
            return Routed::Plain;
        };
        wakes.extend(wake);
        Routed::Away
    }

    /// Whether async callers wait for answers (the dispatcher reads K2H
    /// for them while they do).
    pub(crate) fn tasks_waiting(&self) -> bool {
        self.task_demand.load(Ordering::SeqCst) != 0
    }

    fn publish_demand(&self, r: &Routes) {
        let events = r.event_waiters.iter().filter(|w| w.is_task()).count();
        self.task_demand
            .store(r.tasks_waiting + events, Ordering::SeqCst);
    }

    /// Parks the calling thread as a sleeper until its answer is routed,
    /// K2H is handed to it, or `timeout` passes (whichever is first; it may
    /// also wake early). `still_needed` is checked once registered: `false`
    /// returns at once (the answer came, or K2H is free).
    pub(crate) fn sleep(&self, timeout: std::time::Duration, still_needed: impl FnOnce() -> bool) {
        let me = std::thread::current();
        {
            let mut r = lock(&self.routes);
            r.sleepers.push_back(me.clone());
            self.sleeping.fetch_add(1, Ordering::Relaxed);
        }
        // Registered first, checked second: a reader that lets go after our
        // check finds us among the sleepers and hands K2H over.
        if still_needed() {
            std::thread::park_timeout(timeout);
        }
        let mut r = lock(&self.routes);
        if let Some(i) = r.sleepers.iter().position(|t| t.id() == me.id()) {
            r.sleepers.remove(i);
            self.sleeping.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// After a reader let go of K2H: wakes the first sleeper, which takes
    /// over reading for everyone still waiting.
    pub(crate) fn hand_over(&self) {
        if self.sleeping.load(Ordering::Relaxed) == 0 {
            return;
        }
        let next = lock(&self.routes).sleepers.front().cloned();
        if let Some(t) = next {
            t.unpark();
        }
    }

    /// The bridge died or shut down: wakes every waiting caller, which then
    /// reads K2H once more (what the kernel published before it stopped is
    /// still handed out) and meets the error.
    pub(crate) fn wake_all(&self) {
        let wakes: Vec<Wake> = {
            let mut r = lock(&self.routes);
            let mut wakes: Vec<Wake> = r.entries.values().map(|e| e.wake.clone()).collect();
            wakes.append(&mut r.event_waiters);
            wakes.extend(r.sleepers.iter().cloned().map(Wake::Thread));
            wakes
        };
        wakes.into_iter().for_each(Wake::wake);
    }

    /// Whether an event waits for the subscribers.
    pub(crate) fn has_event(&self) -> bool {
        !lock(&self.routes).events.is_empty()
    }

    /// A new event subscriber.
    pub(crate) fn subscribe(&self) {
        lock(&self.routes).subscribers += 1;
        self.routed.fetch_add(1, Ordering::Relaxed);
    }

    /// A subscriber is gone; with the last one, the events not yet taken
    /// are dropped and later ones go to the receive calls again.
    pub(crate) fn unsubscribe(&self) {
        let mut r = lock(&self.routes);
        r.subscribers -= 1;
        if r.subscribers == 0 {
            r.events.clear();
        }
        self.routed.fetch_sub(1, Ordering::Relaxed);
    }

    /// The oldest event not yet taken by a subscriber; else registers
    /// `wake` for the next one.
    pub(crate) fn take_event(&self, wake: Option<Wake>) -> Option<MessageEnvelope> {
        let mut r = lock(&self.routes);
        let event = r.events.pop_front();
        if event.is_none()
            && let Some(w) = wake
            && !r.event_waiters.iter().any(|old| old.same_as(&w))
        {
            r.event_waiters.push(w);
            self.publish_demand(&r);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::KIND_REPLY;

    fn answer(seq: u64) -> MessageHeader {
        MessageHeader {
            correlation: seq,
            kind: KIND_REPLY,
            ..MessageHeader::default()
        }
    }

    /// An async caller counts as waiting for the dispatcher only once it
    /// asks with its waker, exactly once however often it asks, and no
    /// longer once its answer is routed or it gives up.
    #[test]
    fn a_task_waits_for_the_dispatcher_only_once_it_asks() {
        let router = Router::default();
        let task = || Wake::Task(Waker::noop().clone());
        router.register(1, task());
        assert!(!router.tasks_waiting(), "registered, not yet waiting");
        assert!(router.take(1, None).is_none());
        assert!(!router.tasks_waiting(), "a look without a waker");
        assert!(router.take(1, Some(Waker::noop())).is_none());
        assert!(router.take(1, Some(Waker::noop())).is_none());
        assert!(router.tasks_waiting());
        let mut wakes = Vec::new();
        assert_eq!(router.route(&answer(1), b"a", &mut wakes), Routed::Away);
        assert_eq!(wakes.len(), 1);
        assert!(!router.tasks_waiting(), "answered");
        assert_eq!(router.take(1, None).unwrap().payload, b"a");

        router.register(2, task());
        assert!(router.take(2, Some(Waker::noop())).is_none());
        assert!(router.tasks_waiting());
        router.abandon(2);
        assert!(!router.tasks_waiting(), "gave up");
        let mut wakes = Vec::new();
        assert_eq!(router.route(&answer(2), b"b", &mut wakes), Routed::Away);
        assert!(wakes.is_empty(), "nobody to wake for an abandoned answer");

        router.register(3, task());
        assert!(router.take(3, Some(Waker::noop())).is_none());
        router.unregister(3);
        assert!(!router.tasks_waiting(), "unregistered");
        assert_eq!(router.routed.load(Ordering::Relaxed), 0);
    }

    /// The sequence-number hasher keeps a table of consecutive and of
    /// scattered keys exact.
    #[test]
    fn the_sequence_hasher_keeps_every_key() {
        let mut table: HashMap<u64, u64, SeqHash> = HashMap::default();
        let keys: Vec<u64> = (0..20_000u64)
            .map(|i| {
                if i % 2 == 0 {
                    i
                } else {
                    i.wrapping_mul(0x1000_0000_0001)
                }
            })
            .collect();
        for &k in &keys {
            table.insert(k, !k);
        }
        assert_eq!(table.len(), keys.len());
        assert!(keys.iter().all(|k| table[k] == !k));
    }
}
