//! Shared by the GPU test files: find a GPU or say why the tests skip.

#![allow(dead_code)]

/// Whether a usable CUDA GPU (and compiled kernels) is here. Prints why not
/// and returns false, or fails when `RINGBRIDGE_REQUIRE_GPU=1`.
pub fn gpu_or_skip(test: &str) -> bool {
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
    match why {
        None => {
            if !ringbridge::kernels::KERNELS_COMPILED {
                panic!(
                    "{test}: a GPU is here but the kernels were not compiled: {}",
                    ringbridge::kernels::NOT_COMPILED_REASON
                );
            }
            true
        }
        Some(why) if required => panic!("{test}: RINGBRIDGE_REQUIRE_GPU=1 but {why}"),
        Some(why) => {
            eprintln!("{test}: skipped: {why} (set RINGBRIDGE_REQUIRE_GPU=1 to fail instead)");
            false
        }
    }
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
