//! Every handler model of `kernels/ringbridge.cuh`, through the whole bridge:
//! on the host fallback (one thread, requests in order), in the block
//! emulation (a block of CPU threads, the requests of a batch concurrent, as
//! on a GPU), and in the PTX nvcc made.

use std::time::Duration;

use ringbridge::layout::{KIND_EVENT, KIND_REPLY};
use ringbridge::{Backend, Bridge, BridgeBuilder, Kernel, UserKernel};
use ringbridge_model_tests as models;

/// Threads of the emulated block.
const EMULATED: u32 = 64;

/// The two ways a CI machine without a GPU runs a kernel.
fn both(kernel: UserKernel) -> [(&'static str, BridgeBuilder); 2] {
    let base = || {
        Bridge::builder()
            .backend(Backend::Fallback)
            .kernel(Kernel::User(kernel.clone()))
            // Room for every request a test sends before it receives.
            .capacity(1024)
            .slot_size(1024)
    };
    [
        ("fallback", base()),
        ("emulated", base().emulate_block(EMULATED)),
    ]
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn a_typed_parameter_larger_than_256_bytes_reaches_every_thread() {
    let mut p = models::TableParam {
        add: 3,
        pad: 0,
        table: [0; 256],
        tail: [0; 64],
    };
    for (i, t) in p.table.iter_mut().enumerate() {
        *t = (255 - i) as u8;
    }
    for (i, t) in p.tail.iter_mut().enumerate() {
        *t = i as u8 ^ 0x5a;
    }
    assert!(size_of::<models::TableParam>() > 256);
    let kernel = models::models_param().with_param(p);
    for (mode, builder) in both(kernel) {
        let bridge = builder.launch().unwrap();
        // Enough requests in flight that the emulated block serves batches
        // of many, one per thread.
        let requests: Vec<Vec<u8>> = (0..200u32)
            .map(|i| vec![i as u8, (i * 7) as u8, 0, 255])
            .collect();
        bridge.send_batch(&requests).unwrap();
        for r in &requests {
            let reply = bridge.recv_timeout(Duration::from_secs(10)).unwrap();
            let mut want: Vec<u8> = r.iter().map(|&b| (255 - b).wrapping_add(3)).collect();
            want.extend_from_slice(&p.tail);
            assert_eq!(reply.payload, want, "{mode}");
        }
        bridge.shutdown().unwrap();
    }
}

#[test]
fn a_parameter_too_large_is_a_typed_error() {
    let err = models::models_param()
        .try_with_param_bytes(&[0u8; ringbridge::layout::MAX_PARAM_SIZE + 1])
        .unwrap_err();
    assert!(matches!(err, ringbridge::Error::ParamTooLarge { size, max } if size == max + 1));
    assert!(
        models::models_param()
            .try_with_param_bytes(&[1u8; 1024])
            .is_ok()
    );
}

#[test]
fn a_cooperative_handler_gets_the_whole_block() {
    let kernel = models::models_sum();
    assert!(kernel.traits().cooperative && !kernel.traits().sends);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (mode, builder) in both(kernel) {
        let bridge = builder.launch().unwrap();
        let threads = if mode == "emulated" { EMULATED } else { 1 };
        let mut sent = Vec::new();
        for i in 0..100usize {
            let words: Vec<u32> = (0..(i * 37) % 240).map(|_| rng.next() as u32).collect();
            bridge.send_pod(&words).unwrap();
            sent.push(words.iter().map(|&w| u64::from(w)).sum::<u64>());
        }
        for want in sent {
            let reply = bridge.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(reply.header.kind, KIND_REPLY, "{mode}");
            let sum = u64::from_le_bytes(reply.payload[..8].try_into().unwrap());
            let size = u32::from_le_bytes(reply.payload[8..12].try_into().unwrap());
            assert_eq!((sum, size), (want, threads), "{mode}");
        }
        // A length that is not whole words is an error reply with code 5.
        let bad = bridge.round_trip(&[1, 2, 3]).unwrap();
        assert!(bad.is_error() && bad.header.flags == 5, "{mode}");
        bridge.shutdown().unwrap();
    }
}

#[test]
fn the_emulated_block_serves_a_batch_on_many_threads_the_fallback_on_one() {
    for (mode, builder) in both(models::models_quiet()) {
        let bridge = builder.launch().unwrap();
        let requests: Vec<Vec<u8>> = (1..=60u8).map(|i| vec![i]).collect();
        let mut threads = std::collections::BTreeSet::new();
        // Several rounds: a batch is what the loop finds in the ring at once.
        for _ in 0..20 {
            bridge.send_batch(&requests).unwrap();
            for r in &requests {
                let reply = bridge.recv_timeout(Duration::from_secs(10)).unwrap();
                assert_eq!(&reply.payload, r, "{mode}");
                threads.insert(reply.header.flags);
            }
        }
        if mode == "emulated" {
            assert!(
                threads.len() > 1,
                "one thread served every request: {threads:?}"
            );
        } else {
            assert_eq!(threads.into_iter().collect::<Vec<_>>(), [0], "{mode}");
        }
        bridge.shutdown().unwrap();
    }
}

#[test]
fn requests_answered_with_nothing_keep_the_count_and_the_order() {
    for (mode, builder) in both(models::models_quiet()) {
        let bridge = builder.launch().unwrap();
        let mut want = Vec::new();
        for i in 0..300u32 {
            let quiet = i % 3 == 0;
            let payload = if quiet {
                vec![0, i as u8]
            } else {
                vec![1, i as u8]
            };
            bridge.send(&payload).unwrap();
            if !quiet {
                want.push(payload);
            }
        }
        for w in &want {
            assert_eq!(
                &bridge
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap()
                    .payload,
                w,
                "{mode}"
            );
        }
        let stats = bridge.stats();
        assert_eq!(stats.sent, 300, "{mode}");
        assert_eq!(stats.no_reply, 100, "{mode}");
        assert_eq!(stats.in_flight, 0, "{mode}");
        // A round trip to a request answered with nothing completes with a
        // no-reply answer.
        let answer = bridge.round_trip(&[0, 9]).unwrap();
        assert!(answer.is_no_reply(), "{mode}: {answer:?}");
        assert_eq!(bridge.round_trip(&[4]).unwrap().payload, [4], "{mode}");
        bridge.shutdown().unwrap();
    }
}

#[test]
fn a_handler_sends_messages_of_its_own_after_the_batch_replies() {
    let kernel = models::models_sender();
    assert!(kernel.traits().sends);
    for (mode, builder) in both(kernel) {
        let bridge = builder.launch().unwrap();
        let n = 200u32;
        for i in 0..n {
            let payload: Vec<u8> = (0..(i % 20) as u8).collect();
            bridge.send_with_flags(i % 2, &payload).unwrap();
        }
        let (mut replies, mut events) = (Vec::new(), Vec::new());
        while replies.len() < n as usize || events.len() < (n / 2) as usize {
            let m = bridge.recv_timeout(Duration::from_secs(10)).unwrap();
            if m.is_event() {
                events.push(m);
            } else {
                replies.push(m);
            }
        }
        for (i, r) in replies.iter().enumerate() {
            assert_eq!(r.header.correlation, i as u64, "{mode}");
            assert_eq!(r.payload, ((i % 20) as u32).to_le_bytes(), "{mode}");
        }
        let mut seen: Vec<u64> = events.iter().map(|e| e.event_seq().unwrap()).collect();
        assert_eq!(
            seen,
            (0..u64::from(n / 2)).collect::<Vec<_>>(),
            "{mode}: event numbers"
        );
        // Each event names its request in flags and carries its payload reversed.
        seen = events.iter().map(|e| u64::from(e.header.flags)).collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..u64::from(n)).filter(|i| i % 2 == 1).collect::<Vec<_>>(),
            "{mode}"
        );
        for e in &events {
            assert_eq!(e.header.kind, KIND_EVENT);
            let i = e.header.flags;
            let want: Vec<u8> = (0..(i % 20) as u8).rev().collect();
            assert_eq!(e.payload, want, "{mode}");
        }
        assert_eq!(bridge.stats().events, u64::from(n / 2), "{mode}");
        bridge.shutdown().unwrap();
    }
}

#[test]
fn the_idle_hook_sends_when_nothing_arrives() {
    for (mode, builder) in both(models::models_sender().with_param(5u64)) {
        let bridge = builder.launch().unwrap();
        let ticks: Vec<u32> = (0..5)
            .map(|_| {
                let m = bridge.recv_timeout(Duration::from_secs(10)).unwrap();
                assert!(m.is_event() && m.header.flags == 0xABC, "{mode}");
                u32::from_le_bytes(m.payload[..4].try_into().unwrap())
            })
            .collect();
        assert_eq!(ticks, [0, 1, 2, 3, 4], "{mode}");
        // No sixth: the hook has sent its five.
        assert!(
            bridge.recv_timeout(Duration::from_millis(200)).is_err(),
            "{mode}"
        );
        bridge.shutdown().unwrap();
    }
}

#[test]
fn kernels_that_send_or_cooperate_run_in_the_slot_format_only() {
    for kernel in [models::models_sender(), models::models_sum()] {
        assert!(kernel.traits().needs_slots());
        let auto = Bridge::builder()
            .backend(Backend::Fallback)
            .kernel(Kernel::User(kernel.clone()))
            .slot_size(64)
            .launch()
            .unwrap();
        assert_eq!(auto.format(), ringbridge::ring::SlotFormat::Slots);
        auto.shutdown().unwrap();
        let lanes = Bridge::builder()
            .backend(Backend::Fallback)
            .kernel(Kernel::User(kernel))
            .slot_size(64)
            .format(ringbridge::ring::SlotFormat::Lanes)
            .launch();
        assert!(matches!(lanes, Err(ringbridge::Error::InvalidArgument(_))));
    }
}

#[test]
fn every_model_compiles_to_ptx() {
    let Some(ptx) = models::ptx_or_skip("every_model_compiles_to_ptx", "models") else {
        return;
    };
    let args = size_of::<ringbridge::layout::LaunchArgs>();
    for entry in [
        "models_param",
        "models_quiet",
        "models_sender",
        "models_sum",
        "models_chunk_answers",
    ] {
        let body = models::entry_body(&ptx, entry);
        assert!(
            body.contains(&format!(".param .align 16 .b8 {entry}_param_3[{args}]")),
            "{entry}: no launch arguments"
        );
        assert!(body.contains("bar.sync"), "{entry}: no block barrier");
    }
    // Sends take their slot with a shared-memory atomic add; the cooperative
    // handler's scratch is shared memory.
    assert!(models::entry_body(&ptx, "models_sender").contains("atom.shared.add"));
    assert!(models::entry_body(&ptx, "models_sum").contains("st.shared.u64"));
}

#[test]
fn a_kernel_that_sends_cannot_be_striped() {
    let builder = Bridge::builder()
        .backend(Backend::Fallback)
        .kernel(Kernel::User(models::models_sender()));
    let err = ringbridge::StripedBridge::launch(builder, 2).unwrap_err();
    assert!(
        matches!(err, ringbridge::Error::InvalidArgument(_)),
        "{err}"
    );
    // A kernel that only answers with nothing stripes: one K2H message per
    // request keeps the round robin exact.
    let striped = ringbridge::StripedBridge::launch(
        Bridge::builder()
            .backend(Backend::Fallback)
            .kernel(Kernel::User(models::models_quiet())),
        2,
    )
    .unwrap();
    for i in 0..40u8 {
        striped.send(&[if i % 4 == 0 { 0 } else { 1 }, i]).unwrap();
    }
    for i in (0..40u8).filter(|i| i % 4 != 0) {
        assert_eq!(striped.recv().unwrap().payload, [1, i]);
    }
    striped.shutdown().unwrap();
}

/// Every model on the GPU, at several block sizes: the same answers as on
/// the fallback (prepared for scripts/gpu-check.sh; never run on a GPU yet).
#[test]
fn every_model_on_the_gpu() {
    if !models::gpu_or_skip("every_model_on_the_gpu", &models::models_sum()) {
        return;
    }
    for block in [32u32, 128, 1024] {
        let cuda = |k: UserKernel| {
            let b = Bridge::builder()
                .backend(Backend::Cuda)
                .kernel(Kernel::User(k))
                .capacity(1024)
                .slot_size(1024)
                .block_size(block);
            // The simulated driver's blocks are CPU threads: slow turns.
            let long = Duration::from_secs(60);
            match ringbridge::cuda::driver_library() {
                Some(l) if l.simulated => b.hang_timeout(long).shutdown_timeout(long),
                _ => b,
            }
        };
        // Cooperative: the sum and the block size.
        let bridge = cuda(models::models_sum()).launch().unwrap();
        let words: Vec<u32> = (0..240).map(|i| i * 1000 + 7).collect();
        let reply = bridge.round_trip(bytemuck::cast_slice(&words)).unwrap();
        let sum = u64::from_le_bytes(reply.payload[..8].try_into().unwrap());
        let size = u32::from_le_bytes(reply.payload[8..12].try_into().unwrap());
        assert_eq!(
            (sum, size),
            (words.iter().map(|&w| u64::from(w)).sum(), block)
        );
        bridge.shutdown().unwrap();
        // No reply and order.
        let bridge = cuda(models::models_quiet()).launch().unwrap();
        for i in 0..300u32 {
            bridge.send(&[u8::from(i % 3 != 0), i as u8]).unwrap();
        }
        for i in (0..300u32).filter(|i| i % 3 != 0) {
            assert_eq!(
                bridge
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap()
                    .payload,
                [1, i as u8]
            );
        }
        assert_eq!(bridge.stats().no_reply, 100);
        bridge.shutdown().unwrap();
        // Own messages, from handlers and from the idle hook.
        let bridge = cuda(models::models_sender().with_param(3u64))
            .launch()
            .unwrap();
        for i in 0..100u32 {
            bridge.send_with_flags(1, &[i as u8; 3]).unwrap();
        }
        let (mut replies, mut events) = (0, 0);
        while replies < 100 || events < 103 {
            let m = bridge.recv_timeout(Duration::from_secs(10)).unwrap();
            if m.is_event() {
                events += 1
            } else {
                replies += 1
            }
        }
        bridge.shutdown().unwrap();
    }
}

/// Issue 23, item 2: a chunkwise handler's every answer (reply, error reply,
/// `RB_NO_REPLY`, fatal code) gets the same outcome on the fallback (one
/// request at a time) and in the block emulation (the block-parallel path a
/// GPU runs); the PTX check above covers the GPU build.
#[test]
fn a_chunkwise_handler_answers_alike_on_every_path() {
    let kernel = models::models_chunk_answers();
    assert!(kernel.traits().chunkwise);
    for (mode, builder) in both(kernel) {
        let bridge = builder.launch().unwrap();
        let reply = bridge.round_trip_with_flags(0, &[1, 2, 3]).unwrap();
        assert!(reply.is_reply(), "{mode}: {reply:?}");
        assert_eq!(reply.payload, [2, 3, 4], "{mode}");
        let none = bridge.round_trip_with_flags(1, &[1, 2, 3]).unwrap();
        assert!(none.is_no_reply(), "{mode}: {none:?}");
        let error = bridge.round_trip_with_flags(2, &[1]).unwrap();
        assert!(
            error.is_error() && error.header.flags == 9,
            "{mode}: {error:?}"
        );
        // Plain sends of every kind, then the receive calls: the marks are
        // consumed silently, the rest arrive in order.
        for flags in [0, 1, 2, 1, 0] {
            bridge.send_with_flags(flags, &[7]).unwrap();
        }
        let kinds: Vec<bool> = (0..3)
            .map(|_| {
                bridge
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap()
                    .is_error()
            })
            .collect();
        assert_eq!(kinds, [false, true, false], "{mode}");
        let fatal = bridge.round_trip_with_flags(3, &[1]).unwrap_err();
        assert!(
            matches!(fatal, ringbridge::Error::KernelFailed { .. }),
            "{mode}: {fatal}"
        );
    }
}

/// Issue 23, item 7: a handler's `rb_max_sends` that K2H cannot hold beside
/// a reply is refused before launch, naming the limit (it used to fail at
/// launch as "bad magic or layout version").
#[test]
fn a_capacity_too_small_for_the_handlers_sends_is_refused_before_launch() {
    let kernel = models::models_sender();
    assert_eq!(kernel.traits().max_sends, 1);
    let err = Bridge::builder()
        .backend(Backend::Fallback)
        .kernel(Kernel::User(kernel.clone()))
        .capacity(1)
        .launch()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ringbridge::Error::InvalidArgument(_))
            && text.contains("rb_max_sends")
            && text.contains("at least 2, not 1"),
        "{text}"
    );
    let ok = Bridge::builder()
        .backend(Backend::Fallback)
        .kernel(Kernel::User(kernel))
        .capacity(2)
        .launch()
        .unwrap();
    assert_eq!(ok.round_trip(&[1]).unwrap().payload, 1u32.to_le_bytes());
}

/// Issue 23, item 7: a typed parameter of the wrong size (or none) is
/// refused at launch with both sizes, on every path, instead of being read
/// zero padded or cut off.
#[test]
fn a_parameter_of_the_wrong_size_is_refused_at_launch() {
    let want = size_of::<models::TableParam>() as u64;
    for given in [0usize, 8, want as usize + 1] {
        let kernel = models::models_param()
            .try_with_param_bytes(&vec![1u8; given])
            .unwrap();
        for (mode, builder) in both(kernel) {
            let err = builder.launch().unwrap_err();
            assert!(
                matches!(err, ringbridge::Error::ParamSize { expected, given: g }
                    if expected == want && g == given as u64),
                "{mode}, {given} bytes: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&format!("{want}-byte")) && text.contains(&format!("{given} bytes")),
                "{text}"
            );
        }
    }
}
