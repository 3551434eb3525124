//! A user's crate built against ringbridge and ringbridge-build as a
//! registry delivers them, not as this repository lays them out (issue 24):
//! packages both crates (`cargo package`), unpacks the `.crate` files into
//! a temporary folder outside the repository, writes a crate there with its
//! own `.cu` (a typed launch parameter, a bridge-owned buffer) depending on
//! the unpacked packages, and runs its tests: on the fallback and in the
//! block emulation, once with no nvcc to be found and once with nvcc on
//! `PATH` (its kernel then carries a fatbin), and builds the packages' docs
//! as docs.rs does (no nvcc, no network). Without nvcc on this machine the
//! nvcc half is skipped, or fails under `RINGBRIDGE_REQUIRE_NVCC=1`.
//!
//! The packaged headers are the only ones the user's build can see: the
//! unpacked ringbridge's build script publishes its own `kernels/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{target_dir, write_file as write};

const BUILD_RS: &str = r#"fn main() {
    // The unpacked ringbridge's build script publishes its header folder.
    let headers = std::env::var("DEP_RINGBRIDGE_INCLUDE").expect("DEP_RINGBRIDGE_INCLUDE");
    assert!(headers.contains("unpacked"), "headers from {headers}, not the package");
    ringbridge_build::Kernels::new()
        .source("kernels/lut.cu")
        .compile("lut_kernels");
}
"#;

const LUT_CU: &str = r#"// reply byte i = table[request byte i] * mul + add (wrapping to a byte),
// where table is bridge-owned buffer 0 (256 u32) and {mul, add} the typed
// launch parameter.
#include "ringbridge.cuh"

struct lut_param {
    uint32_t mul;
    uint32_t add;
};

struct lut_handler {
    const uint32_t* table;
    lut_param p;
    RB_DEVICE explicit lut_handler(const rb_launch& l) : table(l.buffer<const uint32_t>(0)), p(l.param<lut_param>()) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len > out_capacity) return 9;
        for (uint32_t i = 0; i < in.len; ++i) out_payload[i] = (uint8_t)(table[in_payload[i]] * p.mul + p.add);
        out.len = in.len;
        return 0;
    }
};

RB_KERNEL_ENTRY(lut_bytes, lut_handler)
"#;

const LIB_RS: &str = r#"include!(concat!(env!("OUT_DIR"), "/lut_kernels.rs"));
"#;

const TEST_RS: &str = r#"use ringbridge::buffer::BufferInit;
use ringbridge::{Backend, Bridge, Kernel};

fn table() -> Vec<u32> {
    (0..256u32).map(|i| i * 7 + 3).collect()
}

fn serve(builder: ringbridge::BridgeBuilder) {
    let kernel = lut_kernel::lut_bytes().with_param([3u32, 5u32]);
    let bridge = builder
        .slot_size(256)
        .buffer(BufferInit::from_pod(&table()))
        .kernel(Kernel::User(kernel))
        .launch()
        .unwrap();
    let t = table();
    let input: Vec<u8> = (0..=255).collect();
    for len in [0usize, 1, 17, 200] {
        let reply = bridge.round_trip(&input[..len]).unwrap();
        let want: Vec<u8> = input[..len].iter().map(|&b| (t[b as usize] * 3 + 5) as u8).collect();
        assert_eq!(reply.payload, want, "len {len}");
    }
    bridge.shutdown().unwrap();
}

#[test]
fn serves_on_the_fallback() {
    serve(Bridge::builder().backend(Backend::Fallback));
}

#[test]
fn serves_in_the_block_emulation() {
    serve(Bridge::builder().backend(Backend::Fallback).emulate_block(64));
}

#[test]
fn carries_a_fatbin_exactly_when_nvcc_was_there() {
    let k = lut_kernel::lut_bytes();
    if std::env::var("EXPECT_FATBIN").as_deref() == Ok("1") {
        let fatbin = k.fatbin().unwrap_or_else(|| panic!("no fatbin: {}", k.no_fatbin_reason()));
        assert_eq!(&fatbin[..4], &ringbridge::kernels::FATBIN_MAGIC);
    } else {
        assert!(k.fatbin().is_none());
        assert!(k.no_fatbin_reason().contains("nvcc"), "{}", k.no_fatbin_reason());
    }
}
"#;

/// `cargo package`s both crates (without verifying: the user crate's
/// builds below are the check) and unpacks them under `into`; returns the
/// two package folders.
fn package_and_unpack(into: &Path) -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let package_target = target_dir().join("packaged-crate-package");
    let (ok, text) = common::output_of(
        Command::new(env!("CARGO"))
            .args([
                "package",
                "-p",
                "ringbridge-build",
                "-p",
                "ringbridge",
                "--offline",
                "--no-verify",
                "--allow-dirty",
            ])
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &package_target),
    );
    assert!(ok, "cargo package failed:\n{text}");
    std::fs::create_dir_all(into).unwrap();
    for name in ["ringbridge-build-0.1.0", "ringbridge-0.1.0"] {
        let file = package_target.join(format!("package/{name}.crate"));
        let (ok, text) = common::output_of(
            Command::new("tar")
                .arg("xzf")
                .arg(&file)
                .arg("-C")
                .arg(into),
        );
        assert!(ok, "unpacking {}: {text}", file.display());
    }
    (
        into.join("ringbridge-0.1.0"),
        into.join("ringbridge-build-0.1.0"),
    )
}

#[test]
fn a_crate_built_against_the_packages_runs_its_own_kernel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work =
        std::env::temp_dir().join(format!("ringbridge-packaged-crate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (lib, build) = package_and_unpack(&work.join("unpacked"));
    // The packages must not reach back into the repository.
    assert!(!lib.join("tests").exists() && !lib.join("scripts").exists());

    let user = work.join("lut-kernel");
    // The unpacked ringbridge asks for ringbridge-build from the registry:
    // the patch points that at the unpacked one too.
    let manifest = format!(
        "[package]\nname = \"lut-kernel\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nringbridge = {{ path = {lib:?} }}\n\n\
         [build-dependencies]\nringbridge-build = {{ path = {build:?} }}\n\n\
         [patch.crates-io]\nringbridge-build = {{ path = {build:?} }}\n\n[workspace]\n",
        lib = lib.display().to_string(),
        build = build.display().to_string(),
    );
    write(&user.join("Cargo.toml"), &manifest);
    write(&user.join("build.rs"), BUILD_RS);
    write(&user.join("kernels/lut.cu"), LUT_CU);
    write(&user.join("src/lib.rs"), LIB_RS);
    write(&user.join("tests/lut.rs"), TEST_RS);
    // The versions this repository is tested with, all in the local cache.
    std::fs::copy(root.join("Cargo.lock"), user.join("Cargo.lock")).unwrap();

    let run = |with_nvcc: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["test", "--offline"])
            .current_dir(&user)
            .env_remove("CUDA_HOME")
            .env_remove("CUDA_PATH")
            .env_remove("DEP_RINGBRIDGE_INCLUDE");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&path)
            .filter(|d| !d.join("nvcc").is_file())
            .collect();
        match with_nvcc {
            Some(nvcc) => {
                dirs.insert(0, nvcc.parent().unwrap().to_path_buf());
                cmd.env_remove("NVCC")
                    .env("EXPECT_FATBIN", "1")
                    .env("CARGO_TARGET_DIR", target_dir().join("packaged-crate-nvcc"));
            }
            None => {
                cmd.env("NVCC", "/nonexistent/nvcc")
                    .env("EXPECT_FATBIN", "0")
                    .env("CARGO_TARGET_DIR", target_dir().join("packaged-crate-host"));
            }
        }
        cmd.env("PATH", std::env::join_paths(dirs).unwrap());
        let (ok, text) = common::output_of(&mut cmd);
        let what = if with_nvcc.is_some() {
            "with nvcc on PATH"
        } else {
            "without nvcc"
        };
        assert!(ok, "the packaged user crate's tests failed {what}:\n{text}");
        assert!(
            text.contains("test result: ok. 3 passed"),
            "the packaged user crate's three tests did not all run {what}:\n{text}"
        );
    };

    run(None);
    // The docs as docs.rs builds them: from the packages, no nvcc, no
    // network, warnings refused (the build script must not fail there).
    // ringbridge from the user's crate (it needs the patched build helper),
    // ringbridge-build on its own (only a build-dependency there).
    for (dir, package) in [(&user, "ringbridge"), (&build, "ringbridge-build")] {
        let (ok, text) = common::output_of(
            Command::new(env!("CARGO"))
                .args(["doc", "--offline", "--no-deps", "-p", package])
                .current_dir(dir)
                .env("DOCS_RS", "1")
                .env("NVCC", "/nonexistent/nvcc")
                .env("RUSTDOCFLAGS", "-D warnings")
                .env("CARGO_TARGET_DIR", target_dir().join("packaged-crate-host")),
        );
        assert!(
            ok,
            "{package}'s docs did not build from its package as docs.rs builds them:\n{text}"
        );
    }
    if let Some(nvcc) = common::nvcc_or_skip("packaged crate with nvcc") {
        run(Some(&nvcc));
    }
    let _ = std::fs::remove_dir_all(&work);
}
