//! An idle `AsyncBridge` (issue 28, item 4), alone in its test binary: it
//! measures the whole process's CPU time, which other tests running beside
//! it would add to.

mod common;

use std::future::Future;
use std::task::Context;
use std::time::Duration;

use ringbridge::{AsyncBridge, Backend, Bridge};

/// Issue 28, item 4: an `AsyncBridge` with a receive pending and nothing
/// arriving costs next to nothing (a generous bound here: the figure is in
/// docs/performance.md), and the first message after the quiet spell still
/// arrives.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_pending_receive_costs_next_to_no_cpu() {
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
        let (before, t0) = (common::process_cpu_seconds(), std::time::Instant::now());
        std::thread::sleep(Duration::from_secs(1));
        let share = (common::process_cpu_seconds() - before) / t0.elapsed().as_secs_f64();
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
