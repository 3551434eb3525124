//! Race checking of a kernel's handler without a GPU: the block emulation
//! built with ThreadSanitizer, with schedule shaking.
//!
//! On a GPU the requests of a batch run at once, so a handler that updates
//! shared state without an atomic or a barrier races. The block emulation
//! ([`BridgeBuilder::emulate_block`]) runs those batches on CPU threads, but
//! two of them rarely meet inside a handler on a small machine. In race-check
//! mode an emulated bridge runs the kernel's *race-check library* instead
//! (`lib<stem>_racecheck.so`, built by `ringbridge_build::Kernels::race_check`):
//! the same source compiled with `-fsanitize=thread`, so two emulated
//! threads touching one word with no happens-before between them (no
//! atomic, no `__syncthreads`) are reported with both source lines, in
//! whatever order they ran; and with *schedule shaking*, which yields or
//! sleeps at every handler call, barrier and atomic operation, as a
//! generator seeded from `RINGBRIDGE_SHAKE_SEED` (or a printed random seed)
//! decides, so the rare orders that break a protocol of atomics become
//! common.
//!
//! ThreadSanitizer's runtime must be in the process from its start, so a
//! test runs itself again in a child process that preloads it: one line at
//! the top of the test.
//!
//! ```no_run
//! # fn my_kernel() -> ringbridge::UserKernel { unimplemented!() }
//! use ringbridge::{Backend, Bridge, Kernel};
//! #[test]
//! fn my_handler_has_no_races() {
//!     if ringbridge::race_check::rerun_under_tsan() {
//!         return; // the child ran the test under ThreadSanitizer and passed
//!     }
//!     let bridge = Bridge::builder()
//!         .backend(Backend::Fallback)
//!         .emulate_block(64)
//!         .kernel(Kernel::User(my_kernel()))
//!         .launch()
//!         .unwrap();
//!     // ... requests whose batches exercise the shared state ...
//!     bridge.shutdown().unwrap();
//! }
//! ```
//!
//! What it cannot see: Rust handlers (only kernel sources are built for
//! it), the fallback proper (one thread), timing that only a GPU has, and
//! the ordering of memory across PCIe between host and device (the host
//! side is not instrumented: only the emulated threads' accesses are
//! checked against each other). Linux only (it preloads the runtime of the
//! C++ compiler that built the library: gcc's `libtsan.so`).
//!
//! [`BridgeBuilder::emulate_block`]: crate::BridgeBuilder::emulate_block

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Set to `1` in the child process [`run_test_under_tsan`] starts: every
/// emulated bridge of that process runs its kernel's race-check library.
pub const ENV: &str = "RINGBRIDGE_RACE_CHECK";

/// Set to a number, the seed of the schedule shaking (printed by every
/// race-checked run; the same seed replays the same shaking decisions);
/// `0` turns the shaking off (ThreadSanitizer alone).
pub const SEED_ENV: &str = "RINGBRIDGE_SHAKE_SEED";

/// How long a child run may take before it is killed (a hung handler under
/// the race check must not hang the parent test).
const CHILD_DEADLINE: Duration = Duration::from_secs(600);

/// What one race-checked run of a test gave.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The test passed and nothing was reported.
    pub passed: bool,
    /// ThreadSanitizer reported a data race (the run stops at the first).
    pub race_reported: bool,
    /// The shaking seed the run used, as it printed it.
    pub seed: Option<u64>,
    /// The child's output: the test's, the seed, and any report.
    pub output: String,
}

/// Whether this process is a race-checked run (the child side).
pub fn active() -> bool {
    std::env::var_os(ENV).is_some_and(|v| v == "1")
}

/// Whether ThreadSanitizer's runtime is loaded in this process.
pub fn tsan_loaded() -> bool {
    let this = libloading::os::unix::Library::this();
    // SAFETY: only the symbol's presence is asked; nothing is called.
    unsafe { this.get::<*const ()>(b"__tsan_init") }.is_ok()
}

/// The race-check library beside emulation library `emulation`
/// (`lib<stem>_emulation.so` -> `lib<stem>_racecheck.so`), for a bridge of
/// `entry` launched in race-check mode.
pub(crate) fn library_for(emulation: &str, entry: &str) -> Result<String> {
    let path = emulation
        .strip_suffix("_emulation.so")
        .map(|stem| format!("{stem}_racecheck.so"))
        .filter(|p| std::path::Path::new(p).is_file())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "kernel {entry} has no race-check library: build it with \
                 ringbridge_build::Kernels::new().race_check(true)"
            ))
        })?;
    if !tsan_loaded() {
        return Err(Error::InvalidArgument(format!(
            "{ENV}=1 but ThreadSanitizer's runtime is not loaded: start the test with \
             ringbridge::race_check::rerun_under_tsan(), which preloads it"
        )));
    }
    Ok(path)
}

/// Runs the calling test again in a child process under ThreadSanitizer,
/// unless this process is that child. Call it first in a `#[test]`:
///
/// - in the parent, it runs the child, panics with the child's output
///   (the race report, or the test's own failure) when it did not pass,
///   and returns `true`: the test returns;
/// - in the child, it returns `false`: the test goes on, its emulated
///   bridges race-checked.
///
/// Panics when it cannot tell which test called it (outside libtest's
/// named test threads: use [`run_test_under_tsan`]) or cannot start the
/// child (no ThreadSanitizer runtime: the message says what was tried).
pub fn rerun_under_tsan() -> bool {
    if active() && tsan_loaded() {
        return false;
    }
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => panic!(
            "rerun_under_tsan: not on a test thread, so the test cannot be named: call \
             run_test_under_tsan with its name"
        ),
    };
    let outcome = run_test_under_tsan(&test, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        outcome.passed,
        "{test} failed under the race check{}:\n{}",
        if outcome.race_reported {
            " (ThreadSanitizer reported a data race)"
        } else {
            ""
        },
        outcome.output
    );
    true
}

/// Runs test `test` of the current test binary (its full name, as
/// `--exact` takes it) in a child process with ThreadSanitizer's runtime
/// preloaded and [`ENV`] set, shaking with `seed` (a random one, printed,
/// when `None`). The child stops at the first report.
///
/// # Errors
/// [`Error::InvalidArgument`] when the runtime is not found (set
/// `RINGBRIDGE_TSAN_RUNTIME` to its path) or the child cannot be started;
/// [`Error::Timeout`] after ten minutes.
pub fn run_test_under_tsan(test: &str, seed: Option<u64>) -> Result<Outcome> {
    let runtime = tsan_runtime()?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::InvalidArgument(format!("the test binary's path: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        test,
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("LD_PRELOAD", &runtime)
    .env(ENV, "1")
    // Only the instrumented library's accesses are checked: the host
    // side (Rust, and the libc calls it makes) is not instrumented and
    // synchronises with the kernel through atomics the detector cannot
    // see, so its accesses must not be recorded at all.
    .env(
        "TSAN_OPTIONS",
        "halt_on_error=1 exitcode=66 ignore_noninstrumented_modules=1 \
             report_thread_leaks=0 report_signal_unsafe=0 detect_deadlocks=0",
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    match seed {
        Some(s) => cmd.env(SEED_ENV, s.to_string()),
        None => cmd.env_remove(SEED_ENV),
    };
    let child = cmd
        .spawn()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the race-checked run: {e}")))?;
    let output = wait_bounded(child)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let race_reported = text.contains("WARNING: ThreadSanitizer");
    let ran = text.contains("test result: ok. 1 passed");
    Ok(Outcome {
        passed: output.status.success() && ran && !race_reported,
        race_reported,
        seed: printed_seed(&text),
        output: text,
    })
}

/// Waits for `child`, killing it past [`CHILD_DEADLINE`]. Its pipes are
/// drained on threads meanwhile, so a chatty child cannot block on them.
fn wait_bounded(mut child: std::process::Child) -> Result<std::process::Output> {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let read = |pipe: Option<&mut dyn std::io::Read>| {
        let mut buf = Vec::new();
        if let Some(p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    };
    std::thread::scope(|s| {
        let stdout = s.spawn(|| read(out.as_mut().map(|p| p as &mut dyn std::io::Read)));
        let stderr = s.spawn(|| read(err.as_mut().map(|p| p as &mut dyn std::io::Read)));
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() < CHILD_DEADLINE => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Timeout {
                        op: "race-checked test run",
                        after: CHILD_DEADLINE,
                    });
                }
                Err(e) => {
                    return Err(Error::InvalidArgument(format!(
                        "waiting for the race-checked run: {e}"
                    )));
                }
            }
        };
        Ok(std::process::Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    })
}

/// The seed a run printed ("... with seed N ...").
fn printed_seed(text: &str) -> Option<u64> {
    let rest = text.split("shaking the schedule with seed ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// ThreadSanitizer's runtime: `RINGBRIDGE_TSAN_RUNTIME`, else the one of
/// the C++ compiler (`$CXX`, else `c++`), which built the race-check
/// libraries (`-print-file-name=libtsan.so`).
fn tsan_runtime() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RINGBRIDGE_TSAN_RUNTIME") {
        return Ok(PathBuf::from(p));
    }
    let cxx = std::env::var_os("CXX").unwrap_or_else(|| "c++".into());
    let out = Command::new(&cxx)
        .arg("-print-file-name=libtsan.so")
        .output()
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "cannot ask {} where ThreadSanitizer's runtime is: {e} (set \
                 RINGBRIDGE_TSAN_RUNTIME to libtsan.so's path)",
                cxx.to_string_lossy()
            ))
        })?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if path.is_absolute() && path.is_file() {
        Ok(path)
    } else {
        Err(Error::InvalidArgument(format!(
            "ThreadSanitizer's runtime (libtsan.so) not found by {} (install the compiler's \
             libtsan, or set RINGBRIDGE_TSAN_RUNTIME to its path)",
            cxx.to_string_lossy()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_seed_is_read_back() {
        let text = "x\nringbridge race check: shaking the schedule with seed 1234 \
                    (RINGBRIDGE_SHAKE_SEED=1234 replays it)\n";
        assert_eq!(printed_seed(text), Some(1234));
        assert_eq!(printed_seed("no seed here"), None);
    }

    #[test]
    fn an_emulation_library_without_its_race_check_twin_is_a_clear_error() {
        let err = library_for("/nonexistent/libk_emulation.so", "k").unwrap_err();
        assert!(err.to_string().contains("race_check(true)"), "{err}");
    }

    #[test]
    fn race_check_mode_without_the_runtime_says_how_to_get_it() {
        if tsan_loaded() {
            return; // this test process is itself a race-checked run
        }
        let dir = std::env::temp_dir().join(format!("rb-race-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let emulation = dir.join("libk_emulation.so");
        std::fs::write(&emulation, b"").unwrap();
        std::fs::write(dir.join("libk_racecheck.so"), b"").unwrap();
        let err = library_for(emulation.to_str().unwrap(), "k").unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.to_string().contains("rerun_under_tsan"), "{err}");
    }
}
