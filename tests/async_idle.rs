//! An idle `AsyncBridge` (issue 28, item 4), alone in its test binary: it
//! measures the whole process's CPU time, which other tests running beside
//! it would add to.

mod common;

use std::future::Future;
use std::sync::Mutex;
use std::task::Context;
use std::time::Duration;

use ringbridge::{AsyncBridge, Backend, Bridge, Kernel};

/// The tests measure the whole process's CPU: one at a time.
static ALONE: Mutex<()> = Mutex::new(());

/// This process's share of a core over one second.
fn cpu_share_over_a_second() -> f64 {
    let (before, t0) = (common::process_cpu_seconds(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    (common::process_cpu_seconds() - before) / t0.elapsed().as_secs_f64()
}

/// Issue 28, item 4: an `AsyncBridge` with a receive pending and nothing
/// arriving costs next to nothing (a generous bound here: the figure is in
/// docs/performance.md), and the first message after the quiet spell still
/// arrives.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_pending_receive_costs_next_to_no_cpu() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    common::within(60, "idle AsyncBridge", || {
        let bridge = AsyncBridge::new(
            Bridge::builder()
                .backend(Backend::Fallback)
                .launch()
                .unwrap(),
        );
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut recv = Box::pin(bridge.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        std::thread::sleep(Duration::from_millis(200)); // past the spinning phase
        let share = cpu_share_over_a_second();
        println!("idle with a pending recv: {:.2}% of a core", share * 100.0);
        assert!(
            share < 0.10,
            "idle with a pending recv: {:.1}% of a core",
            share * 100.0
        );
        drop(recv);
        let seq = futures::executor::block_on(bridge.send(b"a")).unwrap();
        let reply = futures::executor::block_on(bridge.recv()).unwrap();
        assert_eq!(reply.header.correlation, seq);
    });
}

/// The same for a round trip whose answer does not come (its handler
/// blocks until released), pending on an executor that polls it whenever
/// it asks: after its few looks of its own it waits for the dispatcher,
/// which parks; the answer, once released, still arrives.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_pending_round_trip_costs_next_to_no_cpu() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    common::within(60, "idle round trip", || {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let bridge = AsyncBridge::new(
            Bridge::builder()
                .backend(Backend::Fallback)
                // The handler blocks on purpose: not a hang.
                .hang_timeout(Duration::from_secs(30))
                .kernel(Kernel::RustHandler(common::echo_after(move || {
                    let _ = released.lock().unwrap().recv();
                })))
                .launch()
                .unwrap(),
        );
        let caller = bridge.clone();
        let trip = std::thread::spawn(move || futures::executor::block_on(caller.round_trip(b"q")));
        std::thread::sleep(Duration::from_millis(200)); // past the spinning phases
        let share = cpu_share_over_a_second();
        println!(
            "idle with a pending round trip: {:.2}% of a core",
            share * 100.0
        );
        assert!(
            share < 0.10,
            "idle with a pending round trip: {:.1}% of a core",
            share * 100.0
        );
        release.send(()).unwrap();
        assert_eq!(trip.join().unwrap().unwrap().payload, b"q");
    });
}
