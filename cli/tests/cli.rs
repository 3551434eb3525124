//! The `ringbridge` binary, run as a user would: JSON reports, files written
//! by `--plot` / `--csv`, and clear errors (non-zero exit, no panic) for bad
//! options. Everything here runs on the fallback backend or expects CUDA to be
//! missing; nothing needs a GPU.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the binary with `args`.
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringbridge"))
        .args(args)
        .output()
        .expect("cannot run the ringbridge binary")
}

/// Runs `args`, expects success, parses stdout as JSON.
fn json(args: &[&str]) -> Value {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `args`, expects a non-zero exit with a message on stderr containing
/// every one of `needles` (case-insensitive) and no panic.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(!stderr.trim().is_empty(), "{args:?}: no message");
    let lower = stderr.to_lowercase();
    for n in needles {
        assert!(
            lower.contains(&n.to_lowercase()),
            "{args:?}: {n:?} not in {stderr:?}"
        );
    }
    stderr
}

/// A fresh path in the target directory's temp folder.
fn temp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn has_keys(v: &Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(k).is_some(), "key {k} missing in {v}");
    }
}

#[test]
fn info_json_has_its_keys() {
    let v = json(&["info", "--json"]);
    has_keys(
        &v,
        &[
            "kernels_compiled",
            "nvcc",
            "archs",
            "backend",
            "gpu",
            "gpus",
        ],
    );
    // One entry per GPU the driver reports.
    assert_eq!(
        v["gpus"].as_array().map(Vec::len),
        v["gpu_count"].as_u64().map(|n| n as usize)
    );
}

#[test]
fn echo_fallback_json() {
    let v = json(&[
        "echo",
        "--backend",
        "fallback",
        "--messages",
        "2000",
        "--json",
    ]);
    has_keys(
        &v,
        &[
            "payload_bytes",
            "messages",
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "msgs_per_s",
        ],
    );
    assert_eq!(v["backend"], "fallback");
    assert_eq!(v["messages"], 2000);
    assert_eq!(v["lost"], 0);
    assert!(v["p50_ns"].as_u64().unwrap() > 0);
}

#[test]
fn stream_fallback_json() {
    let v = json(&[
        "stream",
        "--backend",
        "fallback",
        "--messages",
        "100000",
        "--json",
    ]);
    has_keys(&v, &["msgs_per_s", "gbytes_per_s"]);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["messages"], 100_000);
    // The same pipeline through two host SPSC queues, side by side.
    let q = &v["queue_ceiling"];
    has_keys(
        q,
        &["msgs_per_s", "gbytes_per_s", "seconds", "fallback_share"],
    );
    let (ours, queue) = (
        v["msgs_per_s"].as_f64().unwrap(),
        q["msgs_per_s"].as_f64().unwrap(),
    );
    assert!(queue > 0.0);
    assert!((q["fallback_share"].as_f64().unwrap() - ours / queue).abs() < 1e-9);
}

#[test]
fn stream_check_modes_run_and_report_themselves() {
    for (mode, stripes) in [
        ("header", "1"),
        ("none", "1"),
        ("header", "2"),
        ("none", "3"),
    ] {
        for payload in ["3", "64", "4096"] {
            let v = json(&[
                "stream",
                "--backend",
                "fallback",
                "--check",
                mode,
                "--stripes",
                stripes,
                "--payload",
                payload,
                "--messages",
                "20001",
                "--batch",
                "33",
                "--json",
            ]);
            assert_eq!(v["check"], mode, "{mode} {payload}");
            assert_eq!(v["lost"], 0);
            assert_eq!(v["messages"], 20_001);
            has_keys(&v, &["msgs_per_s", "gbytes_per_s"]);
            assert!(
                v["queue_ceiling"].is_null(),
                "the ceiling checks every reply: only with --check full"
            );
        }
    }
    let v = json(&[
        "stream",
        "--backend",
        "fallback",
        "--messages",
        "1000",
        "--json",
    ]);
    assert_eq!(v["check"], "full", "the default");
    let out = run(&[
        "stream",
        "--backend",
        "fallback",
        "--check",
        "none",
        "--messages",
        "1000",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("check none"));
}

/// One bridge per listed device, all streaming at once (on the fallback
/// the ordinals only label the bridges): per-device and total rates.
#[test]
fn stream_to_several_devices_reports_each_and_the_total() {
    let v = json(&[
        "stream",
        "--backend",
        "fallback",
        "--devices",
        "0,1",
        "--stripes",
        "2",
        "--messages",
        "30001",
        "--json",
    ]);
    let devices = v["devices"].as_array().expect("a list of devices");
    assert_eq!(devices.len(), 2);
    for (i, d) in devices.iter().enumerate() {
        has_keys(d, &["msgs_per_s", "gbytes_per_s", "seconds", "backend"]);
        assert_eq!(d["device"], i);
        assert_eq!(d["messages"], 30_001);
        assert_eq!(d["lost"], 0);
    }
    let total = &v["total"];
    assert_eq!(total["messages"], 60_002);
    assert_eq!(total["lost"], 0);
    assert!(total["msgs_per_s"].as_f64().unwrap() > 0.0);
    fails(
        &["stream", "--backend", "fallback", "--devices", "0,0"],
        &["listed twice"],
    );
}

/// `host`, the fallback's name before, still selects it (in any case, like
/// every backend name; and the help says so); reports name it `fallback`.
#[test]
fn backend_host_is_an_alias_of_fallback() {
    let v = json(&["echo", "--backend", "Host", "--messages", "200", "--json"]);
    assert_eq!(v["backend"], "fallback");
    let help = String::from_utf8_lossy(&run(&["echo", "--help"]).stdout).into_owned();
    assert!(help.contains("`host`"), "{help}");
}

#[test]
fn stream_bad_check_is_a_clear_error() {
    fails(
        &["stream", "--backend", "fallback", "--check", "most"],
        &["--check", "most", "full", "header", "none"],
    );
}

#[test]
fn stream_queue_ceiling_covers_every_slot_size_up_to_4_kib() {
    // One payload per message size of the ceiling (64, 256, 1024, 4096 B);
    // a wrong reply there fails the command.
    for payload in ["1", "65", "1000", "4096"] {
        let v = json(&[
            "stream",
            "--backend",
            "fallback",
            "--payload",
            payload,
            "--messages",
            "3000",
            "--batch",
            "7",
            "--json",
        ]);
        assert_eq!(v["lost"], 0);
        assert!(v["queue_ceiling"].is_object(), "payload {payload}");
    }
    let v = json(&[
        "stream",
        "--backend",
        "fallback",
        "--payload",
        "5000",
        "--messages",
        "100",
        "--json",
    ]);
    assert!(v["queue_ceiling"].is_null(), "no ceiling above 4 KiB");
}

#[test]
fn stream_over_striped_rings() {
    let v = json(&[
        "stream",
        "--backend",
        "fallback",
        "--stripes",
        "3",
        "--payload",
        "200",
        "--messages",
        "30001",
        "--json",
    ]);
    assert_eq!(v["stripes"], 3);
    assert_eq!(v["format"], "slots");
    assert!(
        v["queue_ceiling"].is_null(),
        "the ceiling is a one-stripe figure"
    );
    assert_eq!(v["lost"], 0);
    assert_eq!(v["messages"], 30_001);
    fails(
        &["stream", "--backend", "fallback", "--stripes", "0"],
        &["stripes", "1 to 64"],
    );
}

#[test]
fn compare_fallback_json() {
    let v = json(&[
        "compare",
        "--backend",
        "fallback",
        "--messages",
        "2005",
        "--json",
    ]);
    assert_eq!(v["backend"], "fallback");
    assert_eq!(v["payload_bytes"], 64);
    assert_eq!(v["messages"], 2005);
    // Floor and fallback alternate in 10 rounds; 2005 does not split
    // evenly, and every message is still timed exactly once.
    assert_eq!(v["rounds"], 10);
    let results = v["results"].as_array().expect("results");
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pingpong_floor", "ringbridge"]);
    for r in results {
        has_keys(
            r,
            &["p50_ns", "p99_ns", "ratio_to_ringbridge", "description"],
        );
        assert!(r["p50_ns"].as_u64().unwrap() > 0);
        assert!(r["p99_ns"].as_u64().unwrap() >= r["p50_ns"].as_u64().unwrap());
        assert_eq!(r["samples"], 2005);
    }
    assert!((results[1]["ratio_to_ringbridge"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!(v["fallback_over_floor"].as_f64().unwrap() > 0.0);
    // The clock's own cost, and the ratio net of it in both rows.
    assert!(v["clock_overhead_ns"].as_u64().is_some());
    let clock = v["clock_overhead_ns"].as_u64().unwrap() as f64;
    let (floor, ours) = (
        results[0]["p50_ns"].as_u64().unwrap() as f64,
        results[1]["p50_ns"].as_u64().unwrap() as f64,
    );
    if floor > clock {
        let net = v["fallback_over_floor_net"].as_f64().unwrap();
        assert!((net - (ours - clock).max(0.0) / (floor - clock)).abs() < 1e-9);
    }
}

#[test]
fn compare_fallback_text_table() {
    let out = run(&["compare", "--backend", "fallback", "--messages", "500"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pingpong_floor") && text.contains("ringbridge"));
    assert!(text.contains("p50"));
    assert!(text.contains("alternated in 10 rounds"), "{text}");
}

#[test]
fn compare_fallback_fewer_messages_than_rounds() {
    let v = json(&[
        "compare",
        "--backend",
        "fallback",
        "--messages",
        "3",
        "--json",
    ]);
    assert_eq!(v["rounds"], 3);
    for r in v["results"].as_array().expect("results") {
        assert_eq!(r["samples"], 3);
    }
}

#[test]
fn host_side_json() {
    let v = json(&[
        "host-side",
        "--seconds",
        "0.02",
        "--rounds",
        "1",
        "--sizes",
        "64,4096",
        "--json",
    ]);
    has_keys(&v, &["batch", "capacity", "timer_ns", "rows", "skipped"]);
    let rows = v["rows"].as_array().expect("rows");
    // slots at 64 B and 4 KiB, lanes at 64 B: a producer and a consumer each
    assert_eq!(rows.len(), 6, "{v}");
    for r in rows {
        has_keys(
            r,
            &[
                "format",
                "payload_bytes",
                "side",
                "ns_per_msg",
                "gbytes_per_s",
                "memcpy_ns_per_msg",
                "memcpy_gbytes_per_s",
                "share_of_memcpy",
            ],
        );
        assert!(r["ns_per_msg"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["memcpy_ns_per_msg"].as_f64().unwrap() > 0.0, "{r}");
    }
    // a lane slot carries at most 248 bytes
    let skipped = v["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["format"], "lanes");
    assert_eq!(skipped[0]["payload_bytes"], 4096);
}

#[test]
fn host_side_text_table() {
    let out = run(&["host-side", "--seconds", "0.02", "--rounds", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("memcpy ns/msg") && text.contains("GB/s"),
        "{text}"
    );
    for needle in ["slots", "lanes", "producer", "consumer", "4096 B", "n/a"] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
}

#[test]
fn host_side_batch_larger_than_the_ring() {
    fails(
        &["host-side", "--capacity", "16", "--batch", "32"],
        &["batch", "16"],
    );
}

fn assert_svg(path: &PathBuf) {
    let svg = std::fs::read_to_string(path).expect("the plot was written");
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..svg.len().min(80)]
    );
    assert!(svg.contains("</svg>"));
}

fn assert_csv(path: &PathBuf, rows: usize, names: &[&str]) {
    let csv = std::fs::read_to_string(path).expect("the CSV was written");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("name,sample_ns"));
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), rows);
    for line in body {
        let (name, ns) = line.split_once(',').expect("two columns");
        assert!(names.contains(&name), "{name}");
        ns.parse::<u64>().expect("a number of nanoseconds");
    }
}

#[test]
fn echo_writes_plot_and_csv() {
    let (svg, csv) = (temp("echo.svg"), temp("echo.csv"));
    let v = json(&[
        "echo",
        "--backend",
        "fallback",
        "--messages",
        "1500",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(v["lost"], 0);
    assert_svg(&svg);
    assert_csv(&csv, 1500, &["ringbridge"]);
}

#[test]
fn compare_writes_plot_and_csv() {
    let (svg, csv) = (temp("compare.svg"), temp("compare.csv"));
    json(&[
        "compare",
        "--backend",
        "fallback",
        "--messages",
        "1000",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_svg(&svg);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("pingpong_floor") && text.contains("ringbridge"));
    assert_eq!(text.matches("<polyline").count(), 2);
    assert_csv(&csv, 2000, &["pingpong_floor", "ringbridge"]);
}

#[test]
fn unwritable_output_is_a_clear_error() {
    fails(
        &[
            "echo",
            "--backend",
            "fallback",
            "--messages",
            "10",
            "--csv",
            "/nonexistent-dir/x.csv",
        ],
        &["csv"],
    );
}

#[test]
fn bad_output_paths_fail_before_anything_runs() {
    let dir = temp("a-folder");
    std::fs::create_dir_all(&dir).expect("folder");
    let dir = dir.to_str().expect("utf-8 path");
    for (cmd, opt, path, needle) in [
        (
            "compare",
            "--plot",
            "/nonexistent-dir/x.svg",
            "no folder /nonexistent-dir",
        ),
        (
            "echo",
            "--plot",
            "/nonexistent-dir/x.svg",
            "no folder /nonexistent-dir",
        ),
        ("compare", "--csv", dir, "it is a folder"),
    ] {
        let args = [
            cmd,
            "--backend",
            "fallback",
            "--messages",
            "1000",
            opt,
            path,
        ];
        fails(&args, &[needle]);
        // Nothing ran: not even the banner that precedes the measurement.
        assert!(run(&args).stdout.is_empty(), "{args:?} ran before failing");
    }
}

#[test]
fn json_output_has_no_progress_bar() {
    let out = run(&[
        "compare",
        "--backend",
        "fallback",
        "--messages",
        "200",
        "--json",
    ]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_backend() {
    fails(&["echo", "--backend", "tpu"], &["backend", "tpu"]);
    fails(&["compare", "--backend", "tpu"], &["backend", "tpu"]);
}

#[test]
fn payload_larger_than_any_slot() {
    fails(
        &["echo", "--backend", "fallback", "--payload", "2000000"],
        &["payload", "does not fit"],
    );
    fails(
        &["compare", "--backend", "fallback", "--payload", "2000000"],
        &["payload", "does not fit"],
    );
}

#[test]
fn payload_larger_than_the_given_slot() {
    fails(
        &[
            "echo",
            "--backend",
            "fallback",
            "--payload",
            "999999",
            "--slot-size",
            "4096",
        ],
        &["payload", "does not fit", "4064"],
    );
}

#[test]
fn zero_capacity() {
    fails(
        &["echo", "--backend", "fallback", "--capacity", "0"],
        &["capacity"],
    );
    fails(
        &["compare", "--backend", "fallback", "--capacity", "0"],
        &["capacity"],
    );
}

#[test]
fn slot_size_not_a_power_of_two() {
    fails(
        &["echo", "--backend", "fallback", "--slot-size", "96"],
        &["slot size", "power of two"],
    );
}

#[test]
fn unknown_subcommand() {
    fails(&["frobnicate"], &["frobnicate"]);
}

#[test]
fn zero_messages() {
    fails(
        &["compare", "--backend", "fallback", "--messages", "0"],
        &["messages"],
    );
}

/// Without a GPU, asking for CUDA must be a clear error. Skipped where a GPU
/// is present (there, the commands would run).
#[test]
fn cuda_backend_without_a_gpu() {
    if ringbridge::cuda::device_count().is_ok_and(|n| n > 0) {
        eprintln!("a GPU is present; skipping the no-GPU checks");
        return;
    }
    fails(
        &["compare", "--backend", "cuda", "--messages", "10"],
        &["cuda"],
    );
    fails(
        &["echo", "--backend", "cuda", "--messages", "10"],
        &["cuda"],
    );
}

/// `--image` on the fallback backend: a clear error that says how a user's
/// kernel is measured there (its own crate's build, the library helper).
#[test]
fn image_on_the_fallback_backend_says_how_to_measure_it() {
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"); // any readable file
    for cmd in ["echo", "stream"] {
        let out = run(&[
            cmd,
            "--backend",
            "fallback",
            "--image",
            image,
            "--entry",
            "k",
            "--messages",
            "10",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stderr}");
        for needle in [
            "fallback backend",
            "ringbridge-build",
            "measure::round_trips",
            "Kernel::User",
        ] {
            assert!(stderr.contains(needle), "{cmd}: no `{needle}` in {stderr}");
        }
    }
}

#[test]
fn image_that_is_missing_is_a_clear_error() {
    for cmd in ["echo", "stream"] {
        fails(
            &[
                cmd,
                "--backend",
                "cuda",
                "--image",
                "/nonexistent/k.fatbin",
                "--entry",
                "k",
            ],
            &["cannot read the kernel image", "/nonexistent/k.fatbin"],
        );
    }
    fails(&["echo", "--image", "/nonexistent/k.fatbin"], &["--entry"]);
    fails(&["stream", "--entry", "k"], &["--image"]);
}

#[test]
fn image_checks_default_to_answering_the_request() {
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    fails(
        &[
            "stream",
            "--backend",
            "cuda",
            "--image",
            image,
            "--entry",
            "k",
            "--check",
            "full",
        ],
        &["--check", "reply"],
    );
    // The built-in kernel takes the new modes too.
    for mode in ["len", "reply"] {
        for (command, messages) in [("echo", "200"), ("stream", "2000")] {
            let v = json(&[
                command,
                "--backend",
                "fallback",
                "--check",
                mode,
                "--messages",
                messages,
                "--json",
            ]);
            assert_eq!(
                (v["check"].as_str(), v["lost"].as_u64()),
                (Some(mode), Some(0)),
                "{command}"
            );
        }
    }
}

/// On CUDA the image is launched as `Kernel::Custom`: needs a GPU and an
/// image, so it is skipped here (no GPU); without a GPU it fails clearly.
#[test]
fn image_on_cuda_without_a_gpu() {
    if ringbridge::cuda::device_count().is_ok_and(|n| n > 0) {
        eprintln!("a GPU is present; skipping (no user image to load in this test)");
        return;
    }
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    fails(
        &[
            "echo",
            "--backend",
            "cuda",
            "--image",
            image,
            "--entry",
            "k",
            "--messages",
            "10",
        ],
        &["cuda"],
    );
}

/// Whether this test process runs on ringbridge's simulated driver
/// (scripts/sim-driver.sh); the child commands below inherit it.
fn simulated() -> bool {
    ringbridge::cuda::driver_library().is_some_and(|l| l.simulated)
}

/// Runs `args` with the simulated driver showing `devices` GPUs.
fn run_with_devices(args: &[&str], devices: u32) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringbridge"))
        .args(args)
        .env("RINGBRIDGE_SIM_DEVICES", devices.to_string())
        .output()
        .expect("cannot run the ringbridge binary")
}

/// `info` counts 0, 1, 2 and 4 simulated GPUs and says the driver is the
/// simulated one; with none, CUDA is unavailable for a clear reason.
#[test]
fn sim_info_sees_every_device_count() {
    if !simulated() {
        eprintln!("sim_info_sees_every_device_count: skipped: needs the simulated driver");
        return;
    }
    for n in [0u32, 1, 2, 4] {
        let out = run_with_devices(&["info", "--json"], n);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["gpu_count"], n, "{v}");
        assert_eq!(v["driver_simulated"], true);
        if n == 0 {
            assert!(
                v["gpu_error"]
                    .as_str()
                    .unwrap()
                    .contains("CUDA_ERROR_NO_DEVICE"),
                "{v}"
            );
        }
    }
    let out = run_with_devices(&["echo", "--backend", "cuda", "--messages", "10"], 0);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUDA_ERROR_NO_DEVICE"));
}

/// `stream --devices all` on two and four simulated GPUs: one bridge per
/// device, each launched from a reservation made before any launch, all
/// streaming at once, every reply checked, nothing lost.
#[test]
fn sim_stream_to_every_device() {
    if !simulated() {
        eprintln!("sim_stream_to_every_device: skipped: needs the simulated driver");
        return;
    }
    for n in [2u32, 4] {
        let out = run_with_devices(
            &[
                "stream",
                "--backend",
                "cuda",
                "--devices",
                "all",
                "--block",
                "64",
                "--messages",
                "3000",
                "--json",
            ],
            n,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{n} devices: {stderr}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        let devices = v["devices"].as_array().expect("a list of devices");
        assert_eq!(devices.len(), n as usize);
        for (i, d) in devices.iter().enumerate() {
            assert_eq!(d["device"], i);
            assert_eq!(d["backend"], "cuda");
            assert_eq!(d["lost"], 0);
        }
        assert_eq!(v["total"]["messages"], 3000 * u64::from(n));
    }
}
