//! The README's quick start in its order: a build without nvcc, then nvcc
//! installed, then the next build compiles the kernels by itself (no
//! `touch build.rs`, no `cargo clean`).
//!
//! Runs `cargo check --lib` (build scripts run, Rust code is only checked)
//! twice on a copy of this crate's tracked files, in a target folder of its
//! own: once with no nvcc anywhere it looks, once after the pinned nvcc
//! appears in the copy's `.toolchain/` the way `scripts/install-nvcc.sh` puts
//! it there. Skipped (with a message) when the pinned nvcc is not installed
//! in this checkout, a failure under `RINGBRIDGE_REQUIRE_NVCC=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const NVCC_IN_TOOLCHAIN: &str = "cuda/nvidia/cu13/bin/nvcc";

fn cargo_check(krate: &Path, target: &Path, path_var: &str) -> String {
    let (ok, text) = common::output_of(
        Command::new(env!("CARGO"))
            .args(["check", "--lib", "--offline"])
            .current_dir(krate)
            .env("CARGO_TARGET_DIR", target)
            .env("PATH", path_var)
            .env_remove("NVCC")
            .env_remove("CUDA_HOME")
            .env_remove("CUDA_PATH")
            .env_remove("RUSTFLAGS"),
    );
    assert!(ok, "cargo check failed:\n{text}");
    text
}

/// The `kernel_images.rs` the build script wrote into the copy's OUT_DIR.
fn images_rs(target: &Path) -> String {
    let build = target.join("debug/build");
    let found: Vec<PathBuf> = std::fs::read_dir(&build)
        .expect("target/debug/build")
        .filter_map(|e| e.ok().map(|e| e.path().join("out/kernel_images.rs")))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(found.len(), 1, "one ringbridge OUT_DIR expected: {found:?}");
    std::fs::read_to_string(&found[0]).unwrap()
}

#[test]
fn installing_nvcc_makes_the_next_build_compile_the_kernels() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let toolchain = root.join(".toolchain");
    if !toolchain.join(NVCC_IN_TOOLCHAIN).is_file() {
        assert!(
            std::env::var("RINGBRIDGE_REQUIRE_NVCC").as_deref() != Ok("1"),
            "RINGBRIDGE_REQUIRE_NVCC=1 but scripts/install-nvcc.sh has not installed nvcc"
        );
        eprintln!("skipped: nvcc not installed by scripts/install-nvcc.sh");
        return;
    }
    // A PATH with no nvcc on it: the directories of cargo, rustc and the C++
    // compiler only, checked to hold no nvcc.
    let path_var = std::env::var("PATH").unwrap_or_default();
    if std::env::split_paths(&path_var).any(|d| d.join("nvcc").is_file())
        || Path::new("/usr/local/cuda/bin/nvcc").is_file()
    {
        eprintln!("skipped: an nvcc outside .toolchain/ is installed on this machine");
        return;
    }

    let work = std::env::temp_dir().join(format!("ringbridge-build-rerun-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let krate = work.join("crate");
    let target = work.join("target");
    let files = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("git ls-files");
    assert!(files.status.success());
    for name in files.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let rel = Path::new(std::str::from_utf8(name).unwrap());
        let dst = krate.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(root.join(rel), &dst).unwrap();
    }

    let first = cargo_check(&krate, &target, &path_var);
    assert!(
        first.contains("kernels not compiled: nvcc not found"),
        "the first build should find no nvcc:\n{first}"
    );
    assert!(images_rs(&target).contains("NOT_COMPILED_REASON: &str = \"nvcc not found"));

    // What install-nvcc.sh leaves behind, without downloading it again.
    std::fs::create_dir_all(krate.join(".toolchain")).unwrap();
    std::os::unix::fs::symlink(toolchain.join("cuda"), krate.join(".toolchain/cuda")).unwrap();

    let second = cargo_check(&krate, &target, &path_var);
    let images = images_rs(&target);
    assert!(
        images.contains("NOT_COMPILED_REASON: &str = \"\";"),
        "the build after installing nvcc did not compile the kernels:\n{second}\n{images}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
