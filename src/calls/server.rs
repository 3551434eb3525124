//! The bridge's service thread: serves the call ring in order, runs each
//! call's service and answers it; a watchdog thread answers for a service
//! that runs past the timeout and hands the ring to a fresh service thread.
//!
//! Only the current *generation* writes answers: the service thread checks
//! its generation under the turn lock before it answers, and the watchdog
//! bumps the generation under the same lock when it answers for a hung
//! service. A replaced thread finds the bump when its service finally
//! returns, drops the answer and ends. So each call is answered exactly
//! once, and the kernel never gives up a slot.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layout::{
    CALL_OK, CALL_PANICKED, CALL_PHASE_CALL, CALL_SHUTTING_DOWN, CALL_TIMED_OUT, CALL_TOO_LONG,
    CALL_UNKNOWN_SERVICE, SERVICE_LOG,
};
use crate::sync::lock;
use crate::wait::{Doorbell, WaitPolicy};

use super::log_line;
use super::ring::{CallSlots, state_word};
use super::{CallStats, ServiceError, Services};

/// Longest a service thread waits for a call before it looks at its stop
/// flag again.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// Whose turn it is: the next position to serve, and the service running.
struct Turn {
    next: u32,
    generation: u64,
    /// The position being served by a service, and when it times out.
    running: Option<(u32, Instant)>,
    /// `stop` has begun: no service starts any more.
    stopped: bool,
}

/// The watchdog's entry in [`Shared::threads`].
const WATCHDOG: u64 = u64::MAX;

struct Shared {
    slots: CallSlots,
    services: Services,
    timeout: Duration,
    doorbell: Doorbell,
    /// "bridge N (entry)": what log lines and errors name.
    label: String,
    turn: Mutex<Turn>,
    /// Wakes the watchdog when a service starts, or to stop.
    started: Condvar,
    /// The bridge is shutting down: calls not yet started are answered
    /// with `CALL_SHUTTING_DOWN`.
    stopping: AtomicBool,
    /// The kernel is gone: threads end.
    stop: AtomicBool,
    served: AtomicU64,
    failed: AtomicU64,
    logged: AtomicU64,
    /// The threads started, by generation ([`WATCHDOG`] for the watchdog),
    /// for `stop` to join.
    threads: Mutex<Vec<(u64, JoinHandle<()>)>>,
}

/// A bridge's call server; stopping it (or dropping it) ends its threads.
pub(crate) struct CallServer {
    shared: Arc<Shared>,
}

/// How a bridge's call server is set up.
pub(crate) struct ServerConfig {
    pub(crate) slots: CallSlots,
    pub(crate) services: Services,
    pub(crate) timeout: Duration,
    pub(crate) policy: WaitPolicy,
    pub(crate) backend: Backend,
    pub(crate) label: String,
}

impl CallServer {
    /// Starts the service thread (and the watchdog, when there are
    /// services to time).
    pub(crate) fn start(config: ServerConfig) -> Result<Self> {
        let doorbell = Doorbell::on_word(
            Arc::clone(config.slots.memory()),
            config.policy,
            config.backend,
            config.slots.doorbell_word(),
        );
        let timed = !config.services.is_empty();
        let shared = Arc::new(Shared {
            slots: config.slots,
            services: config.services,
            timeout: config.timeout,
            doorbell,
            label: config.label,
            turn: Mutex::new(Turn {
                next: 0,
                generation: 0,
                running: None,
                stopped: false,
            }),
            started: Condvar::new(),
            stopping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            served: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        });
        // Dropping `server` on an error below stops what started.
        let server = Self { shared };
        spawn_server(&server.shared, 0)?;
        if timed {
            let s = Arc::clone(&server.shared);
            let watchdog = std::thread::Builder::new()
                .name("ringbridge-call-watchdog".into())
                .spawn(move || watch(&s))
                .map_err(|e| Error::Thread(format!("call watchdog: {e}")))?;
            lock(&server.shared.threads).push((WATCHDOG, watchdog));
        }
        Ok(server)
    }

    /// From now on, calls not yet started are answered with
    /// `CALL_SHUTTING_DOWN` (a service already running finishes, or times
    /// out).
    pub(crate) fn begin_shutdown(&self) {
        // Release: a service thread that sees it also sees what the bridge
        // did before (nothing it reads depends on that; a plain flag).
        self.shared.stopping.store(true, Ordering::Release);
    }

    /// Ends the threads (the kernel is gone) and joins them, but for a
    /// service thread stuck in a service: that one ends when the service
    /// returns, its answer dropped.
    pub(crate) fn stop(&self) {
        let (generation, in_service) = {
            let mut turn = lock(&self.shared.turn);
            turn.stopped = true;
            // Release: pairs with the threads' acquire loads of the flag.
            // Under the lock: the watchdog checks it under the lock before
            // it waits, so the notify below cannot fall between the two.
            self.shared.stop.store(true, Ordering::Release);
            (turn.generation, turn.running.is_some())
        };
        self.shared.doorbell.wake_host_waiters();
        self.shared.started.notify_all();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for (g, thread) in threads {
            // With `stopped` set no service starts, so the current service
            // thread ends at its next look (it was woken), unless it is in a
            // service already; the replaced ones are stuck in theirs.
            if g == WATCHDOG || (g == generation && !in_service) {
                let _ = thread.join();
            }
        }
    }

    /// Whether the host owes the kernel something: a service is running,
    /// or a call waits to be served. The bridge's watchdog does not take a
    /// kernel that waits for an answer for a hung one.
    pub(crate) fn busy(&self) -> bool {
        let turn = lock(&self.shared.turn);
        turn.running.is_some()
            || self.shared.slots.state(turn.next) == state_word(turn.next, CALL_PHASE_CALL)
    }

    /// What the ring has carried.
    pub(crate) fn stats(&self) -> CallStats {
        // Relaxed: statistics.
        CallStats {
            served: self.shared.served.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            logged: self.shared.logged.load(Ordering::Relaxed),
        }
    }
}

impl Drop for CallServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_server(shared: &Arc<Shared>, generation: u64) -> Result<()> {
    let s = Arc::clone(shared);
    let thread = std::thread::Builder::new()
        .name("ringbridge-calls".into())
        .spawn(move || serve(&s, generation))
        .map_err(|e| Error::Thread(format!("call service thread: {e}")))?;
    lock(&shared.threads).push((generation, thread));
    Ok(())
}

/// The service thread of `generation`: serves positions in order until the
/// bridge stops it or the watchdog replaces it.
fn serve(shared: &Shared, generation: u64) {
    let mut next = lock(&shared.turn).next;
    let mut waiter = shared.doorbell.waiter();
    loop {
        // Acquire: pairs with `stop`'s release (nothing to order but the flag).
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if shared.slots.state(next) != state_word(next, CALL_PHASE_CALL) {
            waiter.snooze(Some(Instant::now() + LOOK_EVERY));
            continue;
        }
        waiter = shared.doorbell.waiter();
        let call = shared.slots.read(next);
        if call.service == SERVICE_LOG {
            log::log!(
                target: "ringbridge::kernel",
                log_line::level(call.status),
                "{} block {} thread {}: {}",
                shared.label,
                call.block,
                call.thread,
                log_line::format(&call.payload)
            );
            shared.slots.free(next);
            shared.logged.fetch_add(1, Ordering::Relaxed);
            next = next.wrapping_add(1);
            lock(&shared.turn).next = next;
            continue;
        }
        let (status, answer) = if shared.stopping.load(Ordering::Acquire) {
            (CALL_SHUTTING_DOWN, Vec::new())
        } else if let Some(service) = shared.services.get(call.service) {
            {
                let mut turn = lock(&shared.turn);
                if turn.generation != generation || turn.stopped {
                    return;
                }
                turn.running = Some((next, Instant::now() + shared.timeout));
            }
            shared.started.notify_all();
            let result = catch_unwind(AssertUnwindSafe(|| service(&call.payload)));
            match result {
                Ok(Ok(answer)) if answer.len() <= shared.slots.max_payload() => (CALL_OK, answer),
                Ok(Ok(answer)) => {
                    report(
                        shared,
                        call.service,
                        &ServiceError::internal(
                            CALL_TOO_LONG,
                            format!(
                                "answered {} bytes, more than a call slot's {}",
                                answer.len(),
                                shared.slots.max_payload()
                            ),
                        ),
                    );
                    (CALL_TOO_LONG, Vec::new())
                }
                Ok(Err(e)) => {
                    report(shared, call.service, &e);
                    (e.code(), Vec::new())
                }
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    report(
                        shared,
                        call.service,
                        &ServiceError::internal(CALL_PANICKED, format!("panicked: {what}")),
                    );
                    (CALL_PANICKED, Vec::new())
                }
            }
        } else {
            report(
                shared,
                call.service,
                &ServiceError::internal(CALL_UNKNOWN_SERVICE, "no service has this id".into()),
            );
            (CALL_UNKNOWN_SERVICE, Vec::new())
        };
        let mut turn = lock(&shared.turn);
        if turn.generation != generation {
            // The watchdog answered for us and a fresh thread serves on.
            return;
        }
        turn.running = None;
        shared.slots.answer(next, status, &answer);
        shared.served.fetch_add(1, Ordering::Relaxed);
        if status != CALL_OK {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        next = next.wrapping_add(1);
        turn.next = next;
    }
}

/// A failed call, logged (target `ringbridge`).
fn report(shared: &Shared, service: u32, e: &ServiceError) {
    log::warn!(
        target: "ringbridge",
        "{}: service {service}: {} (status {})",
        shared.label,
        e.message(),
        e.code()
    );
}

/// The watchdog: answers `CALL_TIMED_OUT` for a service that runs past the
/// timeout and starts the next generation's service thread.
fn watch(shared: &Arc<Shared>) {
    let mut turn = lock(&shared.turn);
    loop {
        // Acquire: as in `serve`; read under the lock `stop` takes.
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let Some((pos, deadline)) = turn.running else {
            turn = shared.started.wait(turn).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let now = Instant::now();
        if now < deadline {
            turn = shared
                .started
                .wait_timeout(turn, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        let service = shared.slots.read(pos).service;
        report(
            shared,
            service,
            &ServiceError::internal(
                CALL_TIMED_OUT,
                format!(
                    "still running after {:?}: answered for it, serving on with a fresh thread",
                    shared.timeout
                ),
            ),
        );
        shared.slots.answer(pos, CALL_TIMED_OUT, &[]);
        shared.served.fetch_add(1, Ordering::Relaxed);
        shared.failed.fetch_add(1, Ordering::Relaxed);
        turn.running = None;
        turn.next = pos.wrapping_add(1);
        turn.generation += 1;
        if let Err(e) = spawn_server(shared, turn.generation) {
            log::error!(target: "ringbridge", "{}: {e}; calls are no longer served", shared.label);
            return;
        }
    }
}
