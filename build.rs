//! Build script of ringbridge.
//!
//! 1. Generates `$OUT_DIR/ringbridge_layout.h` from `src/layout.rs` (the one
//!    source of every offset, size and constant the C++/CUDA side uses) and
//!    fails when the committed copy `kernels/ringbridge_layout.h` is stale.
//!    `RINGBRIDGE_UPDATE_LAYOUT_HEADER=1 cargo build` refreshes that copy.
//! 2. Compiles the host fallback (`kernels/host/fallback.cpp`: the device
//!    half's C++ compiled for the CPU) into the static library
//!    `ringbridge_fallback`, linked into the `ringbridge` library.
//! 3. Compiles every `kernels/*.cu` with nvcc into a fatbin (embedded in the
//!    library) and a PTX file (for the tests). A missing nvcc or a failed
//!    compile is not a build error: the crate builds without kernel images and
//!    records why (`ringbridge::kernels::NOT_COMPILED_REASON`).
//! 4. Writes `$OUT_DIR/kernel_images.rs`, included by `src/kernels.rs`.
//!
//! nvcc is looked for, in this order: `$NVCC` (when set, and only there: a
//! `NVCC` naming a missing file means "no nvcc"), `$CUDA_HOME/bin/nvcc`,
//! `$CUDA_PATH/bin/nvcc`, `nvcc` on `PATH`, `/usr/local/cuda/bin/nvcc`, and
//! `.toolchain/cuda/nvidia/cu13/bin/nvcc` (installed by
//! `scripts/install-nvcc.sh`). `$NVCC_CCBIN` is passed as `-ccbin`. When none
//! is found, the folders searched are watched, so the first build after nvcc
//! appears compiles the kernels (see `watch_for_nvcc`).
//! `RINGBRIDGE_CUDA_ARCHS` (comma list, e.g. `sm_90,compute_80`) overrides
//! the targets: `sm_XY` embeds SASS for that GPU, `compute_XY` embeds PTX that
//! the driver JIT-compiles for XY and newer.
//! `RINGBRIDGE_KERNEL_DEFINES` (comma list of `NAME` or `NAME=VALUE`, e.g.
//! `RB_LANE_LAZY_TAIL=0`) defines macros for the kernels and the host
//! fallback alike: the tuning switches `kernels/ringbridge.cuh` documents,
//! for side-by-side measurements.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code, unused_imports, unused_macros)]
#[path = "src/layout.rs"]
mod layout;

/// Default targets: SASS for Hopper, PTX for Ampere and newer.
const DEFAULT_ARCHS: &[&str] = &["sm_90", "compute_80"];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env("OUT_DIR").expect("OUT_DIR"));
    let kernels_dir = manifest_dir.join("kernels");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/layout.rs");
    println!("cargo:rerun-if-changed=kernels");
    for var in [
        "NVCC",
        "NVCC_CCBIN",
        "CUDA_HOME",
        "CUDA_PATH",
        "PATH",
        "RINGBRIDGE_CUDA_ARCHS",
        "RINGBRIDGE_UPDATE_LAYOUT_HEADER",
        "RINGBRIDGE_KERNEL_DEFINES",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    // 1. The layout header.
    let header = layout_header();
    write_if_changed(&out_dir.join("ringbridge_layout.h"), header.as_bytes());
    let committed = kernels_dir.join("ringbridge_layout.h");
    if std::fs::read(&committed).ok().as_deref() != Some(header.as_bytes()) {
        if env("RINGBRIDGE_UPDATE_LAYOUT_HEADER").as_deref() == Some("1") {
            write_if_changed(&committed, header.as_bytes());
            println!("cargo:warning=ringbridge: refreshed kernels/ringbridge_layout.h");
        } else {
            // A quoted #include finds the copy beside ringbridge.cuh before
            // any -I directory, so a stale copy would be compiled: stop here.
            eprintln!(
                "error: kernels/ringbridge_layout.h is stale (src/layout.rs changed): \
                 refresh it with `RINGBRIDGE_UPDATE_LAYOUT_HEADER=1 cargo build` and commit it \
                 (the fresh one is {}/ringbridge_layout.h)",
                out_dir.display()
            );
            std::process::exit(1);
        }
    }

    let defines = kernel_defines();

    // 2. The host fallback. Its include order matches nvcc's: OUT_DIR first.
    let mut host = cc::Build::new();
    for (name, value) in &defines {
        host.define(name, value.as_deref());
    }
    host.cpp(true)
        .std("c++17")
        .opt_level(2)
        .include(&out_dir)
        .include(&kernels_dir)
        .flag("-Wall")
        .flag("-Wextra")
        .flag_if_supported("-fno-exceptions")
        .flag_if_supported("-fno-rtti")
        .cpp_link_stdlib(None) // the fallback uses nothing of libstdc++
        .file(kernels_dir.join("host/fallback.cpp"))
        // Tests only: the GPU's block-parallel serve loops on POSIX threads.
        .file(kernels_dir.join("host/block_emulation.cpp"))
        .compile("ringbridge_fallback");
    println!("cargo:rustc-link-lib=pthread");

    // 3. The kernels.
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&kernels_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "cu"))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    let compiled = compile_kernels(&manifest_dir, &out_dir, &kernels_dir, &sources, &defines);

    // 4. The Rust side of the images.
    let images_rs = match &compiled {
        Ok(c) => images_rs_compiled(c, &out_dir),
        Err(reason) => {
            println!("cargo:warning=ringbridge: kernels not compiled: {reason}");
            images_rs_not_compiled(reason)
        }
    };
    write_if_changed(&out_dir.join("kernel_images.rs"), images_rs.as_bytes());
}

/// `RINGBRIDGE_KERNEL_DEFINES` as (name, value) pairs. A malformed entry
/// stops the build: a switch silently ignored would mislabel a measurement.
fn kernel_defines() -> Vec<(String, Option<String>)> {
    let Some(list) = env("RINGBRIDGE_KERNEL_DEFINES") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (item, None),
        };
        let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let plain_value = value.as_deref().is_none_or(|v| {
            !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !ident || !plain_value {
            eprintln!(
                "error: bad RINGBRIDGE_KERNEL_DEFINES entry `{item}` \
                 (expected a comma list of NAME or NAME=VALUE, e.g. RB_LANE_LAZY_TAIL=0)"
            );
            std::process::exit(1);
        }
        out.push((name.to_string(), value));
    }
    out
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// `ringbridge_layout.h`: one `#define` per `layout::c_constants()` pair.
fn layout_header() -> String {
    let mut h = String::new();
    h.push_str("/* generated by build.rs from src/layout.rs; do not edit */\n");
    h.push_str("/* refresh this copy with: RINGBRIDGE_UPDATE_LAYOUT_HEADER=1 cargo build */\n");
    h.push_str("#ifndef RINGBRIDGE_LAYOUT_H\n#define RINGBRIDGE_LAYOUT_H\n\n");
    for (name, value) in layout::c_constants() {
        writeln!(h, "#define {name} {value}ull").unwrap();
    }
    h.push_str("\n#endif /* RINGBRIDGE_LAYOUT_H */\n");
    h
}

/// One compiled `.cu` file.
struct Compiled {
    stem: String,
    entries: Vec<String>,
}

struct CompiledSet {
    version: String,
    archs: Vec<String>,
    images: Vec<Compiled>,
}

/// Finds nvcc, in the documented order.
fn find_nvcc(manifest_dir: &Path) -> Result<PathBuf, String> {
    if let Some(explicit) = std::env::var_os("NVCC") {
        let p = PathBuf::from(&explicit);
        // An explicit NVCC is final: pointing it at nothing disables the kernels.
        return if p.is_file() {
            Ok(p)
        } else if p.components().count() == 1 {
            // A bare name: look it up on PATH.
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
    for p in [
        PathBuf::from("/usr/local/cuda/bin/nvcc"),
        manifest_dir.join(".toolchain/cuda/nvidia/cu13/bin/nvcc"),
    ] {
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    watch_for_nvcc(manifest_dir);
    Err(format!(
        "nvcc not found (tried {}; scripts/install-nvcc.sh installs it, and the next build \
         compiles the kernels)",
        tried.join(", ")
    ))
}

/// With no nvcc found: asks cargo to run this script again once one may have
/// appeared, so installing nvcc never needs a `touch build.rs`. Cargo reruns
/// a script when a watched folder, or anything in it, is newer than its last
/// run. Watched: `.toolchain/` (committed, so it exists on a fresh clone;
/// `scripts/install-nvcc.sh` installs into it), the `PATH` folders, and
/// `$CUDA_HOME/bin`, `$CUDA_PATH/bin` and `/usr/local/cuda/bin` where they
/// exist. A folder that holds this checkout (or lies inside it) is never
/// watched: its build outputs change on every build.
fn watch_for_nvcc(manifest_dir: &Path) {
    let toolchain = manifest_dir.join(".toolchain");
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
    for dir in folders {
        let near_checkout = manifest_dir.starts_with(&dir) || dir.starts_with(manifest_dir);
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

/// `RINGBRIDGE_CUDA_ARCHS` or the default, validated.
fn archs() -> Result<Vec<String>, String> {
    let list: Vec<String> = match env("RINGBRIDGE_CUDA_ARCHS") {
        Some(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        _ => DEFAULT_ARCHS.iter().map(|s| s.to_string()).collect(),
    };
    for a in &list {
        let num = a
            .strip_prefix("sm_")
            .or_else(|| a.strip_prefix("compute_"))
            .ok_or_else(|| bad_arch(a))?;
        // An optional `a` (arch-specific) or `f` (family) suffix, as in sm_90a.
        let digits = num.strip_suffix(['a', 'f']).unwrap_or(num);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_arch(a));
        }
    }
    Ok(list)
}

fn bad_arch(a: &str) -> String {
    format!(
        "bad RINGBRIDGE_CUDA_ARCHS entry `{a}` (expected a comma list of sm_XY or compute_XY, e.g. sm_90,compute_80)"
    )
}

/// `sm_90` -> `arch=compute_90,code=sm_90`; `compute_80` -> `arch=compute_80,code=compute_80`.
fn gencode(a: &str) -> String {
    match a.strip_prefix("sm_") {
        Some(n) => format!("arch=compute_{n},code=sm_{n}"),
        None => format!("arch={a},code={a}"),
    }
}

/// The PTX written for the tests targets the highest listed architecture.
fn ptx_arch(archs: &[String]) -> String {
    let num = |a: &String| -> u32 {
        let n = a.trim_start_matches("sm_").trim_start_matches("compute_");
        n.trim_end_matches(|c: char| c.is_ascii_lowercase())
            .parse()
            .unwrap_or(0)
    };
    let max = archs.iter().map(num).max().unwrap_or(90);
    format!("compute_{max}")
}

/// `nvcc --version`'s release, e.g. `13.0.88` from "release 13.0, V13.0.88".
fn nvcc_version(nvcc: &Path) -> Result<String, String> {
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

/// `RB_KERNEL_ENTRY(name, Handler)` lines of a `.cu` source: its entry points.
fn entries_of(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("RB_KERNEL_ENTRY("))
        .filter_map(|rest| rest.split(',').next())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

fn compile_kernels(
    manifest_dir: &Path,
    out_dir: &Path,
    kernels_dir: &Path,
    sources: &[PathBuf],
    defines: &[(String, Option<String>)],
) -> Result<CompiledSet, String> {
    let nvcc = find_nvcc(manifest_dir)?;
    println!("cargo:rerun-if-changed={}", nvcc.display());
    let version = nvcc_version(&nvcc)?;
    let archs = archs()?;
    if sources.is_empty() {
        return Err(format!("no .cu files in {}", kernels_dir.display()));
    }
    let ccbin = env("NVCC_CCBIN");
    let ptx_arch = ptx_arch(&archs);

    // Every (source, output kind) pair is one nvcc run; run them side by side.
    let base = |src: &Path| -> Command {
        let mut c = Command::new(&nvcc);
        if let Some(cc) = &ccbin {
            c.arg("-ccbin").arg(cc);
        }
        for (name, value) in defines {
            match value {
                Some(v) => c.arg(format!("-D{name}={v}")),
                None => c.arg(format!("-D{name}")),
            };
        }
        // OUT_DIR first: our builds always see the freshly generated layout header.
        c.arg("-std=c++17")
            .arg("-O3")
            .arg(format!("-I{}", out_dir.display()))
            .arg(format!("-I{}", kernels_dir.display()))
            .arg(src);
        c
    };
    let mut jobs: Vec<(String, Command)> = Vec::new();
    for src in sources {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        let mut fatbin = base(src);
        fatbin.arg("-fatbin");
        for a in &archs {
            fatbin.arg("-gencode").arg(gencode(a));
        }
        fatbin.arg("-o").arg(out_dir.join(format!("{stem}.fatbin")));
        jobs.push((format!("{} (fatbin)", src.display()), fatbin));
        let mut ptx = base(src);
        ptx.arg("-ptx")
            .arg(format!("-arch={ptx_arch}"))
            .arg("-o")
            .arg(out_dir.join(format!("{stem}.ptx")));
        jobs.push((format!("{} (ptx)", src.display()), ptx));
    }
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter_mut()
            .map(|(what, cmd)| {
                s.spawn(move || {
                    let out = cmd
                        .output()
                        .map_err(|e| format!("cannot run nvcc for {what}: {e}"))?;
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    if !out.status.success() {
                        let first: Vec<&str> = stderr.lines().take(12).collect();
                        return Err(format!(
                            "nvcc failed on {what} ({}): {}",
                            out.status,
                            first.join(" | ")
                        ));
                    }
                    for l in stderr.lines().filter(|l| !l.trim().is_empty()) {
                        println!("cargo:warning=ringbridge: nvcc: {l}");
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;

    let mut images = Vec::new();
    for src in sources {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        let text =
            std::fs::read_to_string(src).map_err(|e| format!("reading {}: {e}", src.display()))?;
        let entries = entries_of(&text);
        let fatbin = std::fs::metadata(out_dir.join(format!("{stem}.fatbin")))
            .map_err(|e| format!("nvcc wrote no {stem}.fatbin: {e}"))?;
        if fatbin.len() == 0 {
            return Err(format!("nvcc wrote an empty {stem}.fatbin"));
        }
        images.push(Compiled { stem, entries });
    }
    Ok(CompiledSet {
        version,
        archs,
        images,
    })
}

fn str_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("&[{}]", quoted.join(", "))
}

fn images_rs_compiled(c: &CompiledSet, out_dir: &Path) -> String {
    let mut s = String::from("// generated by build.rs; do not edit\n");
    writeln!(s, "pub const KERNELS_COMPILED: bool = true;").unwrap();
    writeln!(s, "pub const NOT_COMPILED_REASON: &str = \"\";").unwrap();
    writeln!(
        s,
        "pub const NVCC_VERSION: Option<&str> = Some({:?});",
        c.version
    )
    .unwrap();
    writeln!(s, "pub const ARCHS: &[&str] = {};", str_list(&c.archs)).unwrap();
    writeln!(s, "static IMAGES: &[KernelImage] = &[").unwrap();
    for img in &c.images {
        let fatbin = out_dir.join(format!("{}.fatbin", img.stem));
        let ptx = out_dir.join(format!("{}.ptx", img.stem));
        writeln!(
            s,
            "    KernelImage {{ name: {:?}, fatbin: include_bytes!({:?}), ptx: include_str!({:?}), entries: {} }},",
            img.stem,
            fatbin.display().to_string(),
            ptx.display().to_string(),
            str_list(&img.entries)
        )
        .unwrap();
    }
    s.push_str("];\n");
    s
}

fn images_rs_not_compiled(reason: &str) -> String {
    let mut s = String::from("// generated by build.rs; do not edit\n");
    writeln!(s, "pub const KERNELS_COMPILED: bool = false;").unwrap();
    writeln!(s, "pub const NOT_COMPILED_REASON: &str = {reason:?};").unwrap();
    writeln!(s, "pub const NVCC_VERSION: Option<&str> = None;").unwrap();
    writeln!(s, "pub const ARCHS: &[&str] = &[];").unwrap();
    writeln!(s, "static IMAGES: &[KernelImage] = &[];").unwrap();
    s
}
