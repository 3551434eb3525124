//! Calls from the kernel to the host (`rb_call`, `rb_block_call`, `rb_log`;
//! `ringbridge::calls`), through the whole bridge: on the host fallback (one
//! thread) and in the block emulation (a block of CPU threads, every
//! request of a batch calling at once).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ringbridge::calls::{CallRing, ServiceError};
use ringbridge::layout::{
    CALL_ANSWER_SIZE, CALL_BAD_REQUEST, CALL_NO_RING, CALL_OK, CALL_PANICKED, CALL_SHUTTING_DOWN,
    CALL_TIMED_OUT, CALL_UNKNOWN_SERVICE, KIND_EVENT,
};
use ringbridge::{Backend, Bridge, BridgeBuilder, Kernel, UserKernel};
use ringbridge_model_tests as models;

/// Threads of the emulated block.
const EMULATED: u32 = 64;

/// Request flags of `calls_per_request` (kernels/calls.cu).
const LOG: u32 = 1;
const TYPED: u32 = 2;
const SMALL: u32 = 4;

/// The two ways a machine without a GPU runs a kernel.
fn both(kernel: UserKernel) -> [(&'static str, BridgeBuilder); 2] {
    let base = || {
        Bridge::builder()
            .backend(Backend::Fallback)
            .kernel(Kernel::User(kernel.clone()))
            .capacity(256)
            .slot_size(512)
    };
    [
        ("fallback", base()),
        ("emulated", base().emulate_block(EMULATED)),
    ]
}

/// A reversing service (1), a doubling typed one (2), one that fails with
/// a code of its own (3), one that panics (4) and one answering 64 bytes (5).
fn with_services(b: BridgeBuilder) -> BridgeBuilder {
    b.service(1, |req: &[u8]| Ok(req.iter().rev().copied().collect()))
        .typed_service(2, |x: u64| -> Result<u64, ServiceError> { Ok(x * 2) })
        .service(3, |_: &[u8]| {
            Err(ServiceError::with_code(21, "refused on purpose"))
        })
        .service(4, |_: &[u8]| panic!("a service panics on purpose"))
        .service(5, |_: &[u8]| Ok(vec![7u8; 64]))
}

fn request(service: u32, arg: &[u8]) -> Vec<u8> {
    let mut r = service.to_le_bytes().to_vec();
    r.extend_from_slice(arg);
    r
}

/// `calls_per_request`'s reply: (status, answer).
fn answer(payload: &[u8]) -> (u32, Vec<u8>) {
    let status = u32::from_le_bytes(payload[0..4].try_into().unwrap());
    let len = u32::from_le_bytes(payload[4..8].try_into().unwrap()) as usize;
    (status, payload[8..8 + len].to_vec())
}

fn call(bridge: &Bridge, flags: u32, service: u32, arg: &[u8]) -> (u32, Vec<u8>) {
    let reply = bridge
        .round_trip_with_flags(flags, &request(service, arg))
        .unwrap();
    answer(&reply.payload)
}

#[test]
fn a_call_is_answered_by_its_service_and_every_failure_is_a_status() {
    for (mode, builder) in both(models::calls_per_request()) {
        let bridge = with_services(builder).launch().unwrap();
        assert_eq!(
            call(&bridge, 0, 1, b"abc"),
            (CALL_OK, b"cba".to_vec()),
            "{mode}"
        );
        let (status, two) = call(&bridge, TYPED, 2, &21u64.to_le_bytes());
        assert_eq!(
            (status, two),
            (CALL_OK, 42u64.to_le_bytes().to_vec()),
            "{mode}"
        );
        assert_eq!(
            call(&bridge, 0, 3, b"").0,
            21,
            "{mode}: the service's own code"
        );
        assert_eq!(call(&bridge, 0, 4, b"").0, CALL_PANICKED, "{mode}");
        assert_eq!(call(&bridge, 0, 99, b"").0, CALL_UNKNOWN_SERVICE, "{mode}");
        // A typed service given 3 bytes, not 8: refused without calling.
        assert_eq!(call(&bridge, 0, 2, b"abc").0, CALL_BAD_REQUEST, "{mode}");
        // 64 bytes into the caller's 8: the first 8, and a status saying so.
        assert_eq!(call(&bridge, SMALL, 5, b"").0, CALL_ANSWER_SIZE, "{mode}");
        // The bridge serves on after all of that.
        assert_eq!(
            call(&bridge, 0, 1, b"xy"),
            (CALL_OK, b"yx".to_vec()),
            "{mode}"
        );
        let stats = bridge.stats().calls;
        assert_eq!((stats.served, stats.failed), (8, 4), "{mode}: {stats:?}");
        bridge.shutdown().unwrap();
    }
}

#[test]
fn every_request_of_a_full_batch_calls_through_a_ring_smaller_than_the_batch() {
    for (mode, builder) in both(models::calls_per_request()) {
        let served = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&served);
        let bridge = builder
            .call_ring(CallRing::new(4, 128).unwrap())
            .service(1, move |req: &[u8]| {
                s.fetch_add(1, Ordering::Relaxed);
                Ok(req.iter().rev().copied().collect())
            })
            .launch()
            .unwrap();
        // 200 requests in flight at once: the emulated block takes 64 per
        // batch, all calling through 4 slots.
        let n = 200u32;
        for i in 0..n {
            bridge.send(&request(1, &i.to_le_bytes())).unwrap();
        }
        for i in 0..n {
            let reply = bridge.recv().unwrap();
            let (status, ans) = answer(&reply.payload);
            let mut want = i.to_le_bytes().to_vec();
            want.reverse();
            assert_eq!((status, ans), (CALL_OK, want), "{mode}: request {i}");
        }
        assert_eq!(served.load(Ordering::Relaxed), n as usize, "{mode}");
        bridge.shutdown().unwrap();
    }
}

#[test]
fn rings_of_capacity_2_and_a_10_ms_service_neither_deadlock() {
    for (mode, builder) in both(models::calls_per_request()) {
        let bridge = builder
            .capacity(2)
            .call_ring(CallRing::new(1, 64).unwrap())
            .service(1, |req: &[u8]| {
                std::thread::sleep(Duration::from_millis(10));
                Ok(req.to_vec())
            })
            .launch()
            .unwrap();
        // A sender thread blocks for room in H2K while the kernel waits for
        // calls; this thread receives.
        let start = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..12u32 {
                    bridge.send(&request(1, &i.to_le_bytes())).unwrap();
                }
            });
            for i in 0..12u32 {
                let (status, ans) = answer(&bridge.recv().unwrap().payload);
                assert_eq!((status, ans), (CALL_OK, i.to_le_bytes().to_vec()), "{mode}");
            }
        });
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{mode}: took {:?}",
            start.elapsed()
        );
        bridge.shutdown().unwrap();
    }
}

#[test]
fn a_hung_service_is_answered_with_a_timeout_and_the_next_call_is_served() {
    for (mode, builder) in both(models::calls_per_request()) {
        let release = Arc::new(Mutex::new(()));
        let held = release.lock().unwrap();
        let r = Arc::clone(&release);
        let bridge = builder
            .service_timeout(Duration::from_millis(1500))
            // Shorter than the service timeout: the kernel waiting for its
            // call is not taken for a hung kernel. (Generous: the tests of
            // this file run together, each with a block of 64 threads.)
            .hang_timeout(Duration::from_millis(500))
            .service(1, move |_: &[u8]| {
                drop(r.lock().unwrap()); // hangs until the test lets go
                Ok(b"late".to_vec())
            })
            .service(2, |req: &[u8]| Ok(req.to_vec()))
            .launch()
            .unwrap();
        let start = Instant::now();
        assert_eq!(call(&bridge, 0, 1, b"").0, CALL_TIMED_OUT, "{mode}");
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(1500), "{mode}: {waited:?}");
        assert!(waited < Duration::from_secs(10), "{mode}: {waited:?}");
        // A fresh service thread serves on while the hung one still hangs.
        assert_eq!(
            call(&bridge, 0, 2, b"ok"),
            (CALL_OK, b"ok".to_vec()),
            "{mode}"
        );
        drop(held); // the hung service returns; its answer is dropped
        assert_eq!(
            call(&bridge, 0, 2, b"ok2"),
            (CALL_OK, b"ok2".to_vec()),
            "{mode}"
        );
        assert_eq!(bridge.stats().calls.failed, 1, "{mode}");
        bridge.shutdown().unwrap();
    }
}

#[test]
fn a_service_slower_than_the_hang_timeout_is_waited_for() {
    for (mode, builder) in both(models::calls_per_request()) {
        let bridge = builder
            .hang_timeout(Duration::from_millis(300))
            .service(1, |req: &[u8]| {
                std::thread::sleep(Duration::from_millis(1000));
                Ok(req.to_vec())
            })
            .launch()
            .unwrap();
        assert_eq!(
            call(&bridge, 0, 1, b"slow"),
            (CALL_OK, b"slow".to_vec()),
            "{mode}"
        );
        bridge.shutdown().unwrap();
    }
}

#[test]
fn calls_made_during_shutdown_are_answered_with_an_error_and_the_kernel_stops() {
    for (mode, builder) in both(models::calls_per_request()) {
        let started = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&started);
        let bridge = builder
            .service(1, move |req: &[u8]| {
                s.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                Ok(req.to_vec())
            })
            .launch()
            .unwrap();
        for i in 0..8u32 {
            bridge.send(&request(1, &i.to_le_bytes())).unwrap();
        }
        // Wait until the first service runs, then stop.
        let deadline = Instant::now() + Duration::from_secs(10);
        while started.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "{mode}: no call started");
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now();
        bridge.shutdown().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{mode}: {:?}",
            start.elapsed()
        );
        // The one running finished; the calls after it were not run. On the
        // emulated block the batch's calls may have started one by one
        // before the shutdown: at most one batch of them.
        let ran = started.load(Ordering::SeqCst);
        assert!((1..8).contains(&ran), "{mode}: {ran} services ran");
        let stats = bridge.stats().calls;
        assert!(stats.failed >= 1, "{mode}: {stats:?}");
        // Replies published before the kernel stopped are still handed out:
        // each is the call's answer or the shutdown status.
        while let Ok(reply) = bridge.try_recv() {
            let (status, _) = answer(&reply.payload);
            assert!(
                status == CALL_OK || status == CALL_SHUTTING_DOWN,
                "{mode}: {status}"
            );
        }
    }
}

#[test]
fn without_a_call_ring_a_call_returns_at_once_with_a_status() {
    for (mode, builder) in both(models::calls_per_request()) {
        let bridge = builder.without_call_ring().launch().unwrap();
        assert_eq!(call(&bridge, 0, 1, b"x").0, CALL_NO_RING, "{mode}");
        // A log line without a ring is dropped, not a hang.
        assert_eq!(call(&bridge, LOG, 1, b"x").0, CALL_NO_RING, "{mode}");
        bridge.shutdown().unwrap();
    }
}

#[test]
fn services_without_a_call_ring_or_twice_the_same_id_are_refused() {
    let b = || Bridge::builder().backend(Backend::Fallback);
    let none = b()
        .without_call_ring()
        .service(1, |_: &[u8]| Ok(vec![]))
        .launch();
    assert!(matches!(none, Err(ringbridge::Error::InvalidArgument(_))));
    let log_id = b().service(u32::MAX, |_: &[u8]| Ok(vec![])).launch();
    assert!(matches!(log_id, Err(ringbridge::Error::InvalidArgument(_))));
    let no_time = b().service_timeout(Duration::ZERO).launch();
    assert!(matches!(
        no_time,
        Err(ringbridge::Error::InvalidArgument(_))
    ));
}

#[test]
fn a_cooperative_handler_calls_for_the_whole_block() {
    for (mode, builder) in both(models::calls_cooperative()) {
        let bridge = with_services(builder).launch().unwrap();
        let threads = if mode == "emulated" { EMULATED } else { 1 };
        for i in 0..20u8 {
            let reply = bridge.round_trip(&request(1, &[i, i + 1, i + 2])).unwrap();
            let p = &reply.payload;
            let status = u32::from_le_bytes(p[0..4].try_into().unwrap());
            let len = u32::from_le_bytes(p[4..8].try_into().unwrap()) as usize;
            let agreed = u32::from_le_bytes(p[8..12].try_into().unwrap());
            assert_eq!(
                (status, &p[12..12 + len]),
                (CALL_OK, &[i + 2, i + 1, i][..]),
                "{mode}"
            );
            assert_eq!(agreed, threads, "{mode}: every thread got the same status");
        }
        let reply = bridge.round_trip(&request(99, b"")).unwrap();
        assert_eq!(
            u32::from_le_bytes(reply.payload[0..4].try_into().unwrap()),
            CALL_UNKNOWN_SERVICE
        );
        bridge.shutdown().unwrap();
    }
}

#[test]
fn the_idle_hook_calls_the_host_and_sends_the_answers() {
    for (mode, builder) in both(models::calls_idle()) {
        // Answers tick + 1 for ticks 0..5, then 0 (stop).
        let bridge = builder
            .typed_service(100, |tick: u64| -> Result<u64, ServiceError> {
                Ok(if tick < 5 { tick + 1 } else { 0 })
            })
            .launch()
            .unwrap();
        let events = bridge.events();
        let mut got = Vec::new();
        for _ in 0..5 {
            let e = events.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(e.header.kind, KIND_EVENT, "{mode}");
            got.push(u64::from_le_bytes(e.payload[..8].try_into().unwrap()));
        }
        assert_eq!(got, [1, 2, 3, 4, 5], "{mode}");
        // Requests are served as before.
        assert_eq!(
            bridge.round_trip(b"still here").unwrap().payload,
            b"still here"
        );
        bridge.shutdown().unwrap();
    }
}

/// A logger that keeps the kernel's lines (target `ringbridge::kernel`).
struct Lines(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Lines {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "ringbridge::kernel" {
            self.0
                .lock()
                .unwrap()
                .push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

fn lines() -> &'static Lines {
    static LINES: OnceLock<&'static Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        let l: &'static Lines = Box::leak(Box::new(Lines(Mutex::new(Vec::new()))));
        log::set_logger(l).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        l
    })
}

#[test]
fn log_lines_reach_the_logger_formatted_with_the_bridge_and_thread() {
    let lines = lines();
    static RUN: AtomicU64 = AtomicU64::new(0);
    for (mode, builder) in both(models::calls_per_request()) {
        RUN.fetch_add(1, Ordering::Relaxed);
        // No service: a user kernel gets a call ring for its log anyway.
        let bridge = builder.launch().unwrap();
        let mut seqs = Vec::new();
        for _ in 0..10 {
            let reply = bridge
                .round_trip_with_flags(LOG, &request(77, b"abc"))
                .unwrap();
            assert_eq!(answer(&reply.payload).0, CALL_UNKNOWN_SERVICE, "{mode}");
            seqs.push(reply.header.correlation);
        }
        bridge.shutdown().unwrap();
        let got = lines.0.lock().unwrap().clone();
        for seq in seqs {
            let text = format!("call {seq} of 7 bytes");
            let line = got
                .iter()
                .find(|(_, l)| l.ends_with(&text) && l.contains("(calls_per_request)"))
                .unwrap_or_else(|| panic!("{mode}: no line ending {text:?} in {got:?}"));
            assert_eq!(line.0, log::Level::Info, "{mode}");
            assert!(line.1.contains(" block 0 thread "), "{mode}: {}", line.1);
        }
    }
}

/// Calls on the GPU (or the simulated driver, whose blocks are CPU
/// threads): the same answers, the same statuses, at two block sizes.
/// Prepared for scripts/gpu-check.sh; never run on a GPU yet.
#[test]
fn calls_on_the_gpu() {
    if !models::gpu_or_skip("calls_on_the_gpu", &models::calls_per_request()) {
        return;
    }
    let simulated = ringbridge::cuda::driver_library().is_some_and(|l| l.simulated);
    for block in [32u32, 256] {
        let cuda = |k: UserKernel| {
            let b = Bridge::builder()
                .backend(Backend::Cuda)
                .kernel(Kernel::User(k))
                .capacity(256)
                .slot_size(512)
                .block_size(block);
            if simulated {
                let long = Duration::from_secs(60);
                b.hang_timeout(long).shutdown_timeout(long)
            } else {
                b
            }
        };
        let bridge = with_services(cuda(models::calls_per_request()))
            .call_ring(CallRing::new(8, 256).unwrap())
            .launch()
            .unwrap();
        assert_eq!(
            call(&bridge, 0, 1, b"abc"),
            (CALL_OK, b"cba".to_vec()),
            "block {block}"
        );
        let (status, two) = call(&bridge, TYPED, 2, &21u64.to_le_bytes());
        assert_eq!((status, two), (CALL_OK, 42u64.to_le_bytes().to_vec()));
        assert_eq!(call(&bridge, 0, 3, b"").0, 21);
        assert_eq!(call(&bridge, 0, 4, b"").0, CALL_PANICKED);
        assert_eq!(call(&bridge, 0, 99, b"").0, CALL_UNKNOWN_SERVICE);
        assert_eq!(call(&bridge, SMALL, 5, b"").0, CALL_ANSWER_SIZE);
        // Whole batches calling at once through 8 slots (a round at a time:
        // the rings hold 256 requests and 256 replies).
        for round in 0..3 {
            for i in 0..block {
                let n = round * block + i;
                bridge.send(&request(1, &n.to_le_bytes())).unwrap();
            }
            for i in 0..block {
                let n = round * block + i;
                let reply = bridge.recv_timeout(Duration::from_secs(60)).unwrap();
                let mut want = n.to_le_bytes().to_vec();
                want.reverse();
                assert_eq!(
                    answer(&reply.payload),
                    (CALL_OK, want),
                    "block {block}: {n}"
                );
            }
        }
        bridge.shutdown().unwrap();
        // A cooperative block's call, and the idle hook's.
        let bridge = with_services(cuda(models::calls_cooperative()))
            .launch()
            .unwrap();
        let reply = bridge.round_trip(&request(1, &[1, 2, 3])).unwrap();
        let agreed = u32::from_le_bytes(reply.payload[8..12].try_into().unwrap());
        assert_eq!((&reply.payload[12..15], agreed), (&[3u8, 2, 1][..], block));
        bridge.shutdown().unwrap();
        let bridge = cuda(models::calls_idle())
            .typed_service(100, |tick: u64| -> Result<u64, ServiceError> {
                Ok(if tick < 5 { tick + 1 } else { 0 })
            })
            .launch()
            .unwrap();
        let events = bridge.events();
        for want in 1..=5u64 {
            let e = events.recv_timeout(Duration::from_secs(60)).unwrap();
            assert_eq!(u64::from_le_bytes(e.payload[..8].try_into().unwrap()), want);
        }
        bridge.shutdown().unwrap();
    }
}

/// The device half of a call in the PTX nvcc made: each caller's slot state
/// polled with an acquire and published with a release at system scope,
/// positions claimed with a shared-memory atomic, no system-wide fence.
#[test]
fn calls_compile_to_ptx_with_acquire_release_and_no_system_fence() {
    let test = "calls_compile_to_ptx_with_acquire_release_and_no_system_fence";
    let Some(ptx) = models::ptx_or_skip(test, "calls") else {
        return;
    };
    for entry in ["calls_per_request", "calls_cooperative", "calls_idle"] {
        let body = models::entry_body(&ptx, entry);
        assert!(body.contains("ld.acquire.sys"), "{entry}: no acquire poll");
        assert!(
            body.contains("st.release.sys"),
            "{entry}: no release publish"
        );
        assert!(body.contains("atom.shared.add"), "{entry}: no shared claim");
        assert!(
            !body.contains("membar.sys") && !body.contains("fence.sc.sys"),
            "{entry}: a system-wide fence"
        );
    }
}
