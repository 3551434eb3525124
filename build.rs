//! Build script of ringbridge.
//!
//! 1. Generates `$OUT_DIR/ringbridge_layout.h` from `src/layout.rs` (the one
//!    source of every offset, size and constant the C++/CUDA side uses) and
//!    fails when the committed copy `kernels/ringbridge_layout.h` is stale.
//!    `RINGBRIDGE_UPDATE_LAYOUT_HEADER=1 cargo build` refreshes that copy.
//! 2. Compiles the host fallback's serve loop for Rust handlers
//!    (`kernels/host/fallback.cpp`) into the static library
//!    `ringbridge_fallback`, and its block emulation into
//!    `libringbridge_callback_emulation.so`, loaded only on demand.
//! 3. Builds the kernels through `ringbridge-build`, as any user's crate
//!    does: `echo.cu` and `scale.cu` for both backends (a fatbin, and a host
//!    entry per `RB_KERNEL_ENTRY` in the static library `ringbridge_kernels`,
//!    with their constructors in `$OUT_DIR/ringbridge_kernels.rs`), any
//!    other `kernels/*.cu` for CUDA only (none today: the test kernels are
//!    in `test-kernels/`, the comparison kernels in `cli/`, so neither is
//!    built for users); a PTX file each, for the tests. No nvcc, or nvcc failing, is not a build
//!    error: the crate builds without kernel images and records why
//!    (`ringbridge::kernels::NOT_COMPILED_REASON`). Where nvcc is looked for,
//!    and `RINGBRIDGE_CUDA_ARCHS` / `RINGBRIDGE_KERNEL_DEFINES`: see the
//!    crate docs of `ringbridge-build`.
//! 4. Writes `$OUT_DIR/kernel_images.rs`, included by `src/kernels.rs`.
//! 5. Publishes the header folder (`kernels/`, shipped in this package) as
//!    `links` metadata: the build script of a crate depending on ringbridge
//!    reads it as `DEP_RINGBRIDGE_INCLUDE` (how `ringbridge-build` finds the
//!    headers), so a user's kernels compile against the headers of the very
//!    ringbridge they link. Steps 2 and 3 name the same folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[allow(dead_code, unused_imports, unused_macros)]
#[path = "src/layout.rs"]
mod layout;

/// The kernels built for both backends (the built-in ones); every other
/// `kernels/*.cu` is built for CUDA only.
const BOTH_BACKENDS: &[&str] = &["echo.cu", "scale.cu"];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env("OUT_DIR").expect("OUT_DIR"));
    let kernels_dir = manifest_dir.join("kernels");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/layout.rs");
    println!("cargo:rerun-if-changed=kernels");
    // ringbridge-build names the variables of the nvcc search itself.
    for var in [
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

    let defines = ringbridge_build::kernel_defines();

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
        .compile("ringbridge_fallback");
    // The block emulation of Rust handlers: a library the bridge loads only
    // when asked to emulate a block (the kernels' own come from
    // ringbridge-build, below). Not building it is no build error.
    let callback_emulation = ringbridge_build::emulation_library(
        "ringbridge_callback_emulation",
        &[kernels_dir.join("host/emulate_callback.cpp")],
        std::slice::from_ref(&out_dir),
        &defines,
        Some(&kernels_dir),
    )
    .map_err(|why| println!("cargo:warning=ringbridge: no block emulation of Rust handlers: {why}"))
    .ok();
    println!("cargo:rustc-link-lib=pthread");

    // 3. The kernels: the built-ins for both backends, the rest CUDA only.
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&kernels_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "cu"))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    let mut kernels = ringbridge_build::Kernels::new()
        .headers(&kernels_dir)
        .include(&out_dir)
        .ptx(true);
    for src in &sources {
        kernels = if BOTH_BACKENDS.iter().any(|b| src.ends_with(b)) {
            kernels.source(src)
        } else {
            kernels.cuda_only_source(src)
        };
    }
    let compiled = kernels.compile("ringbridge_kernels");

    // 4. The Rust side of the images.
    let mut images_rs = match &compiled.cuda {
        Ok((version, archs)) => images_rs_compiled(version, archs, &compiled.images),
        Err(reason) => images_rs_not_compiled(reason),
    };
    let emulation = callback_emulation
        .map(|p| format!("Some({:?})", p.display().to_string()))
        .unwrap_or_else(|| "None".into());
    writeln!(
        images_rs,
        "pub const CALLBACK_EMULATION: Option<&str> = {emulation};"
    )
    .unwrap();
    write_if_changed(&out_dir.join("kernel_images.rs"), images_rs.as_bytes());

    // 5. The header folder, for dependents' build scripts.
    println!("cargo:include={}", kernels_dir.display());
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

fn str_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("&[{}]", quoted.join(", "))
}

fn images_rs_compiled(
    version: &str,
    archs: &[String],
    images: &[ringbridge_build::CompiledImage],
) -> String {
    let mut s = String::from("// generated by build.rs; do not edit\n");
    writeln!(s, "pub const KERNELS_COMPILED: bool = true;").unwrap();
    writeln!(s, "pub const NOT_COMPILED_REASON: &str = \"\";").unwrap();
    writeln!(
        s,
        "pub const NVCC_VERSION: Option<&str> = Some({version:?});"
    )
    .unwrap();
    writeln!(s, "pub const ARCHS: &[&str] = {};", str_list(archs)).unwrap();
    writeln!(s, "static IMAGES: &[KernelImage] = &[").unwrap();
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    for img in images {
        writeln!(
            s,
            "    KernelImage {{ name: {:?}, fatbin: include_bytes!({:?}), ptx: include_str!({:?}), entries: {} }},",
            img.stem,
            path(&img.fatbin),
            path(&img.ptx),
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
