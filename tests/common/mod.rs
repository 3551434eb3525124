//! Shared by the test files: find a GPU or say why the tests skip, and
//! workloads run on both backends.

#![allow(dead_code)]

pub mod sim;

/// One GPU test at a time in a process: a CUDA bridge is refused while
/// another one's kernel serves (`Error::DeviceBusy`), and the test harness
/// runs tests on parallel threads.
static ONE_GPU_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// While held, no other GPU test of this process runs.
pub type GpuTurn = std::sync::MutexGuard<'static, ()>;

/// Whether the CUDA driver loaded here is ringbridge's simulated one
/// (`scripts/sim-driver.sh`), not a GPU's.
pub fn on_simulated_driver() -> bool {
    ringbridge::cuda::driver_library().is_some_and(|l| l.simulated)
}

/// `n` on a GPU; on the simulated driver, whose blocks are CPU threads
/// (a 1024-thread block passes a barrier in milliseconds on a 2-core
/// machine), a thousandth of it, at least `min(n, 20)`: the same paths
/// (wrap-around, back-pressure, batching), fewer turns.
pub fn scaled(n: u64) -> u64 {
    if on_simulated_driver() {
        (n / 1000).max(n.min(20))
    } else {
        n
    }
}

/// `builder` as the simulated driver needs it, unchanged on a GPU: blocks
/// of 64 threads (two warps: every block-parallel path, lanes included)
/// unless the test sets its own size after this, and the hang and shutdown
/// timeouts a block of CPU threads needs. A turn of a 1024-thread block
/// takes milliseconds on a 2-core machine (every barrier wakes 1024
/// threads), which is fine for a few round trips and too slow for a stream:
/// the tests that name a block size still run 1024 there
/// (`cuda_lanes_million_messages_every_block_size`, the examples).
pub fn patient_on_sim(builder: ringbridge::BridgeBuilder) -> ringbridge::BridgeBuilder {
    if on_simulated_driver() {
        let long = std::time::Duration::from_secs(60);
        builder
            .block_size(64)
            .hang_timeout(long)
            .shutdown_timeout(long)
    } else {
        builder
    }
}

/// Whether a usable CUDA driver and device (and compiled kernels) are here:
/// then waits for this process's GPU turn and returns it (hold it for the
/// whole test), after printing whether the test runs on a GPU or on the
/// simulated driver. Prints why not and returns `None`, or fails when
/// `RINGBRIDGE_REQUIRE_GPU=1` (which also refuses the simulated driver: it
/// asks for a card).
pub fn gpu_or_skip(test: &str) -> Option<GpuTurn> {
    let required = std::env::var("RINGBRIDGE_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let why = if !ringbridge::cuda::driver_available() {
        Some("no CUDA driver (libcuda) found".to_string())
    } else {
        match ringbridge::cuda::device_count() {
            Ok(0) => Some("the driver reports no CUDA device".to_string()),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    };
    let simulated = why.is_none() && on_simulated_driver();
    if simulated && required {
        panic!("{test}: RINGBRIDGE_REQUIRE_GPU=1 but the driver is the simulated one (no GPU)");
    }
    match why {
        None => {
            if !ringbridge::kernels::KERNELS_COMPILED {
                panic!(
                    "{test}: a GPU is here but the kernels were not compiled: {}",
                    ringbridge::kernels::NOT_COMPILED_REASON
                );
            }
            // A test that failed while holding it poisoned it: the lock
            // itself is still good.
            let turn = ONE_GPU_TEST.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "{test}: on {}",
                if simulated {
                    "the simulated driver"
                } else {
                    "a GPU"
                }
            );
            Some(turn)
        }
        Some(why) if required => panic!("{test}: RINGBRIDGE_REQUIRE_GPU=1 but {why}"),
        Some(why) => {
            eprintln!("{test}: skipped: {why} (set RINGBRIDGE_REQUIRE_GPU=1 to fail instead)");
            None
        }
    }
}

/// Like [`gpu_or_skip`], for a test whose meaning needs a card (timings,
/// the PCIe ordering of lanes, nvcc's code): skipped on the simulated
/// driver, saying `why`.
pub fn real_gpu_or_skip(test: &str, why: &str) -> Option<GpuTurn> {
    if on_simulated_driver() && !std::env::var("RINGBRIDGE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        eprintln!("{test}: skipped on the simulated driver: {why}");
        return None;
    }
    gpu_or_skip(test)
}

/// Runs `body` in a child process of this test binary, so a CUDA fault (a
/// sticky error that ruins the process's context) cannot touch other tests.
/// `name` must be the calling test's name.
pub fn isolated(name: &str, body: impl FnOnce()) {
    const CHILD: &str = "RINGBRIDGE_ISOLATED_TEST";
    if std::env::var(CHILD).is_ok_and(|v| v == name) {
        body();
        println!("isolated test {name}: ok");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .expect("cannot run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- child {name} stdout:\n{stdout}\n--- child stderr:\n{stderr}");
    assert!(out.status.success(), "isolated test {name} failed");
    assert!(
        stdout.contains(&format!("isolated test {name}: ok")) || stderr.contains("skipped"),
        "isolated test {name} did not run"
    );
}

/// Streams batches of scale requests whose lengths vary from 0 to the
/// slot's largest, some not a multiple of 4 (error replies), through
/// `builder`'s bridge (a ScaleF32 kernel with factor 2.0, 4 KiB slots), and
/// checks every reply in order: the chunkwise path serves one batch with many
/// threads per request and an error reply among good ones.
pub fn scale_batches_of_mixed_lengths(builder: ringbridge::BridgeBuilder) {
    use ringbridge::layout::KIND_ERROR;
    let bridge = builder.slot_size(4096).capacity(64).launch().unwrap();
    let max = bridge.max_payload();
    let lens: Vec<usize> = (0..3000usize)
        .map(|i| (i * 389 + i / 7) % (max + 1))
        .collect();
    let payloads: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut p: Vec<u8> = (0..len / 4)
                .flat_map(|k| ((i * 3 + k) as f32 * 0.5).to_le_bytes())
                .collect();
            p.resize(len, 0xa5);
            p
        })
        .collect();
    let n = payloads.len() as u64;
    stream_checked(
        &bridge,
        n,
        50,
        64,
        |i| payloads[i as usize].clone(),
        |i, h, p| {
            let req = &payloads[i as usize];
            if !req.len().is_multiple_of(4) {
                assert_eq!(
                    (h.kind, h.flags, p.len()),
                    (KIND_ERROR, 1, 0),
                    "message {i}"
                );
            } else {
                let want: Vec<u8> = req
                    .chunks(4)
                    .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) * 2.0).to_le_bytes())
                    .collect();
                assert!(p == want.as_slice(), "message {i} (len {})", req.len());
            }
        },
    );
    bridge.shutdown().unwrap();
}

/// Runs `f` on its own thread and fails the test if it has not finished
/// within `secs` seconds, so a GPU test that would wait forever reports a
/// hang (and where) instead of stopping the whole run. The stuck thread is
/// left behind; the test process ends anyway.
pub fn within<F: FnOnce() + Send + 'static>(secs: u64, what: &str, f: F) {
    let (done, wait) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    match wait.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(()) => worker.join().unwrap(),
        // The sender was dropped without sending: `f` panicked.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: not finished within {secs} s: a hang")
        }
    }
}

/// Streams messages `0..n` (`payload(i)`) through `bridge`: a producer
/// thread sends them in batches of `batch`, the calling thread receives them
/// `recv_max` at most per call and hands each reply, in order, to
/// `check(i, header, payload)` after checking its correlation.
pub fn stream_checked(
    bridge: &ringbridge::Bridge,
    n: u64,
    batch: u64,
    recv_max: usize,
    payload: impl Fn(u64) -> Vec<u8> + Sync,
    mut check: impl FnMut(u64, &ringbridge::MessageHeader, &[u8]),
) {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut base = 0;
            while base < n {
                let msgs: Vec<Vec<u8>> = (base..(base + batch).min(n)).map(&payload).collect();
                bridge.send_batch(&msgs).unwrap();
                base += batch;
            }
        });
        let mut got = 0u64;
        while got < n {
            bridge
                .recv_batch(recv_max, |h, p| {
                    assert_eq!(h.correlation, got, "out of order");
                    check(got, h, p);
                    got += 1;
                })
                .unwrap();
        }
    });
}

/// [`stream_checked`] through an echo `bridge`: each reply must be its
/// request's echo.
pub fn stream_echo(
    bridge: &ringbridge::Bridge,
    n: u64,
    batch: u64,
    recv_max: usize,
    payload: impl Fn(u64) -> Vec<u8> + Sync,
) {
    stream_checked(bridge, n, batch, recv_max, &payload, |i, _, p| {
        assert_eq!(p, echoed(&payload(i)).as_slice(), "wrong or torn reply {i}");
    });
}

/// What the echo kernel replies to `p`: every byte + 1, wrapping.
pub fn echoed(p: &[u8]) -> Vec<u8> {
    p.iter().map(|b| b.wrapping_add(1)).collect()
}

/// A Rust handler that returns every request unchanged, once `wait()`
/// returned (a test's hold on the serve loop: a gate, a slow handler).
pub fn echo_after(wait: impl Fn() + Send + Sync + 'static) -> ringbridge::fallback::RustHandler {
    ringbridge::fallback::RustHandler::new(move |_, input, out| {
        wait();
        out[..input.len()].copy_from_slice(input);
        Ok(input.len())
    })
}

/// Sends 8-byte requests (their index) with `try_send` to a bridge that
/// nobody receives from, until both rings are full and stay full (the kernel
/// may still be moving messages across when the first `Full` comes); returns
/// how many went in, each checked to get the next sequence number.
pub fn fill_both_rings(bridge: &ringbridge::Bridge) -> u64 {
    use std::time::{Duration, Instant};
    let mut sent = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match bridge.try_send(&sent.to_le_bytes()) {
            Ok(seq) => {
                assert_eq!(seq, sent);
                sent += 1;
            }
            Err(ringbridge::Error::Full) => {
                std::thread::sleep(Duration::from_millis(20));
                if bridge.try_send(&sent.to_le_bytes()).is_err() {
                    return sent;
                }
                sent += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(Instant::now() < deadline, "the rings never filled");
    }
}

/// A payload of 0 to 39 bytes that differs with `i`.
pub fn striped_payload(i: u64) -> Vec<u8> {
    let len = (i % 40) as usize;
    (0..len).map(|k| (k as u64 * 5 + i) as u8).collect()
}

/// Streams `n` messages round-robin through a striped echo group of
/// `stripes` built from `builder` (slots of at least 64 bytes): a sender
/// thread in batches of odd sizes, so rounds start on every stripe, and the
/// calling thread checks every reply, in request order.
pub fn striped_round_robin(builder: ringbridge::BridgeBuilder, stripes: usize, n: u64) {
    let striped = ringbridge::StripedBridge::launch(builder, stripes).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while i < n {
                let k = (i % 37 + 1).min(n - i);
                let batch: Vec<Vec<u8>> = (i..i + k).map(striped_payload).collect();
                assert_eq!(striped.send_batch(&batch).unwrap(), i);
                i += k;
            }
        });
        for i in 0..n {
            let r = striped.recv().unwrap();
            assert_eq!(
                r.payload,
                echoed(&striped_payload(i)),
                "{stripes} stripes, message {i}"
            );
        }
    });
    striped.shutdown().unwrap();
}

/// Every stripe of a group driven by its own thread, `n` round trips each.
pub fn striped_own_threads(builder: ringbridge::BridgeBuilder, stripes: usize, n: u64) {
    let striped = ringbridge::StripedBridge::launch(builder, stripes).unwrap();
    std::thread::scope(|s| {
        for i in 0..striped.stripes() {
            let stripe = striped.stripe(i);
            s.spawn(move || {
                for k in 0..n {
                    let p = striped_payload(k + i as u64);
                    assert_eq!(stripe.round_trip(&p).unwrap().payload, echoed(&p));
                }
            });
        }
    });
    striped.shutdown().unwrap();
}

/// Shutting one stripe down stops that stripe only: it refuses work with
/// `ShutDown`, the others keep serving, and the group then shuts down.
pub fn striped_one_stripe_stops_alone(builder: ringbridge::BridgeBuilder) {
    let striped = ringbridge::StripedBridge::launch(builder, 3).unwrap();
    striped.stripe(1).shutdown().unwrap();
    assert!(matches!(
        striped.stripe(1).send(b"x"),
        Err(ringbridge::Error::ShutDown)
    ));
    for i in [0, 2] {
        assert_eq!(striped.stripe(i).round_trip(b"ab").unwrap().payload, b"bc");
    }
    striped.shutdown().unwrap();
}

/// Shuts `builder`'s bridge (a slow handler; the hang timeout is raised
/// here so the watchdog stays out of it) down while a sender thread keeps
/// its ring full and a receiver drains it: `shutdown` must return `Ok`
/// within 2 s. The bound is a generous "it does not hang": the kernel looks
/// at terminate after every batch once a short interval has passed.
pub fn shutdown_during_a_busy_stream(builder: ringbridge::BridgeBuilder) {
    use std::time::{Duration, Instant};
    let bridge = builder
        .hang_timeout(Duration::from_secs(10))
        .capacity(256)
        .launch()
        .unwrap();
    let received = std::sync::atomic::AtomicU64::new(0);
    let (started, result, took) = std::thread::scope(|s| {
        s.spawn(|| {
            let batch: Vec<[u8; 8]> = (0..64u64).map(|i| i.to_le_bytes()).collect();
            while bridge.send_batch(&batch).is_ok() {}
        });
        s.spawn(|| {
            while bridge.recv().is_ok() {
                received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // Let the stream get going: some replies have come back.
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.load(std::sync::atomic::Ordering::Relaxed) < 100 && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = received.load(std::sync::atomic::Ordering::Relaxed) >= 100;
        // Shut down in any case: it ends the sender and the receiver.
        let start = Instant::now();
        let result = bridge.shutdown();
        (started, result, start.elapsed())
    });
    assert!(started, "the stream never started");
    assert!(result.is_ok(), "shutdown failed after {took:?}: {result:?}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
}

/// Runs `cmd` (a cargo command for a crate this test wrote) and returns
/// whether it succeeded and its stdout and stderr together.
pub fn output_of(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().expect("running cargo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Writes `text` to `path`, making its folders: a crate a test writes out.
pub fn write_file(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The target folder this test binary was built in (it lives in
/// `<target>/<profile>/deps/`): where tests that build crates of their own
/// keep those builds, so later runs rebuild only what changed.
pub fn target_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// CPU time this whole process has used, in seconds (`/proc/self/stat`'s
/// user and system time, in 10 ms ticks; Linux).
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime, in clock ticks (fields 14 and 15 of stat).
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// The nvcc that `build.rs` would find, in its order (`NVCC`, `CUDA_HOME`,
/// `CUDA_PATH`, PATH, `/usr/local/cuda`, `.toolchain`), for a test that
/// compiles a variant of a kernel itself.
pub fn find_nvcc() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(p) = std::env::var_os("NVCC") {
        return Some(PathBuf::from(p));
    }
    let roots = ["CUDA_HOME", "CUDA_PATH"]
        .into_iter()
        .filter_map(std::env::var_os)
        .map(|r| PathBuf::from(r).join("bin/nvcc"));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nvcc"));
    let fixed = [
        PathBuf::from("/usr/local/cuda/bin/nvcc"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".toolchain/cuda/nvidia/cu13/bin/nvcc"),
    ];
    roots.chain(on_path).chain(fixed).find(|p| p.is_file())
}

/// nvcc for a test that compiles a kernel variant itself; `None` (the test
/// says it skipped) without one, a failure under `RINGBRIDGE_REQUIRE_NVCC=1`.
pub fn nvcc_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let nvcc = find_nvcc();
    if nvcc.is_none() {
        assert!(
            std::env::var("RINGBRIDGE_REQUIRE_NVCC").as_deref() != Ok("1"),
            "{test}: RINGBRIDGE_REQUIRE_NVCC=1 but no nvcc found"
        );
        println!("{test}: skipped: no nvcc");
    }
    nvcc
}
