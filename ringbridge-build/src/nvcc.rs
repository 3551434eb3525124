//! Finding nvcc, and asking cargo to look again once one may have appeared.
//!
//! The search order, the one place it is written down: `$NVCC` (when set,
//! and only there: a `NVCC` naming a missing file means "no nvcc"; a bare
//! name is looked up on `PATH`), `$CUDA_HOME/bin/nvcc`,
//! `$CUDA_PATH/bin/nvcc`, `nvcc` on `PATH`, `/usr/local/cuda/bin/nvcc`, and
//! `<ringbridge checkout>/.toolchain/cuda/nvidia/cu13/bin/nvcc` (installed
//! by ringbridge's `scripts/install-nvcc.sh`). `$NVCC_CCBIN` is passed to
//! nvcc as `-ccbin`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variables the search reads: a build script reruns when
/// one of them changes.
pub(crate) const ENV_VARS: &[&str] = &["NVCC", "NVCC_CCBIN", "CUDA_HOME", "CUDA_PATH", "PATH"];

/// Where `scripts/install-nvcc.sh` puts nvcc, under a ringbridge checkout.
const TOOLCHAIN_NVCC: &str = ".toolchain/cuda/nvidia/cu13/bin/nvcc";

/// Finds nvcc in the order above. `toolchain_root` is the ringbridge
/// checkout whose `.toolchain/` is searched last; `crate_dir` is the crate
/// being built (never watched, see [`watch_for_nvcc`]). When nothing is
/// found, the folders searched are watched and the error says what was tried.
pub(crate) fn find_nvcc(toolchain_root: &Path, crate_dir: &Path) -> Result<PathBuf, String> {
    if let Some(explicit) = std::env::var_os("NVCC") {
        let p = PathBuf::from(&explicit);
        // An explicit NVCC is final: pointing it at nothing disables the kernels.
        return if p.is_file() {
            Ok(p)
        } else if p.components().count() == 1 {
            search_path(&explicit.to_string_lossy())
                .ok_or_else(|| format!("NVCC={} not found on PATH", p.display()))
        } else {
            Err(format!("NVCC={} does not exist", p.display()))
        };
    }
    let mut tried = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var) {
            let p = PathBuf::from(root).join("bin/nvcc");
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p.display().to_string());
        }
    }
    if let Some(p) = search_path("nvcc") {
        return Ok(p);
    }
    tried.push("nvcc on PATH".into());
    // The checkout's own nvcc exists only in a ringbridge repository (a
    // package has no .toolchain/): searched and named there only.
    let checkout = toolchain_root.join("scripts/install-nvcc.sh").is_file();
    let mut fixed = vec![PathBuf::from("/usr/local/cuda/bin/nvcc")];
    if checkout {
        fixed.push(toolchain_root.join(TOOLCHAIN_NVCC));
    }
    for p in fixed {
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    watch_for_nvcc(toolchain_root, crate_dir);
    let how = if checkout {
        "scripts/install-nvcc.sh installs it"
    } else {
        "put nvcc on PATH, or set NVCC or CUDA_HOME"
    };
    Err(format!(
        "nvcc not found (tried {}; {how}, and the next build compiles the kernels)",
        tried.join(", ")
    ))
}

/// With no nvcc found: asks cargo to run the build script again once one
/// may have appeared, so installing nvcc never needs a `touch build.rs`.
/// Cargo reruns a script when a watched folder, or anything in it, is newer
/// than its last run. Watched: `<toolchain_root>/.toolchain/` (committed in
/// ringbridge, so it exists on a fresh clone), the `PATH` folders, and
/// `$CUDA_HOME/bin`, `$CUDA_PATH/bin` and `/usr/local/cuda/bin` where they
/// exist. A folder that holds a checkout being built (or lies inside one) is
/// never watched: its build outputs change on every build.
fn watch_for_nvcc(toolchain_root: &Path, crate_dir: &Path) {
    let toolchain = toolchain_root.join(".toolchain");
    if toolchain.is_dir() {
        println!("cargo:rerun-if-changed={}", toolchain.display());
    }
    let mut folders: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    folders.extend(
        ["CUDA_HOME", "CUDA_PATH"]
            .iter()
            .filter_map(|v| std::env::var_os(v).map(|r| PathBuf::from(r).join("bin"))),
    );
    folders.push(PathBuf::from("/usr/local/cuda/bin"));
    let near = |dir: &Path, checkout: &Path| checkout.starts_with(dir) || dir.starts_with(checkout);
    for dir in folders {
        let near_checkout = near(&dir, toolchain_root) || near(&dir, crate_dir);
        if dir.is_absolute() && dir.is_dir() && !near_checkout {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
    }
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `nvcc --version`'s release, e.g. `13.0.88` from "release 13.0, V13.0.88".
pub(crate) fn nvcc_version(nvcc: &Path) -> Result<String, String> {
    let out = Command::new(nvcc)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", nvcc.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version failed: {}",
            nvcc.display(),
            out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("release"))
        .ok_or_else(|| format!("{} --version printed no release line", nvcc.display()))?;
    Ok(match line.rsplit_once(", V") {
        Some((_, v)) => v.trim().to_string(),
        None => line.trim().to_string(),
    })
}
