//! A user's kernel, one source, both backends, from a crate outside this
//! repository: writes a small crate into a temporary folder (path
//! dependencies on ringbridge and ringbridge-build, a build script calling
//! `ringbridge_build::Kernels`, `kernels/double.cu` with its own handler, and
//! tests launching it through a `Bridge`, one of them race-checked with the
//! one line `ringbridge::race_check` asks for), then runs
//! `cargo test --offline` there and asserts it passes.
//!
//! Its target folder persists under this crate's target folder
//! (`user-crate-target/`), so later runs rebuild only what changed. It runs
//! with whatever nvcc this machine has: with one, the crate's test also
//! checks that the kernel carries a fatbin; without, that it says why not —
//! and in both cases that the fallback backend serves it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{target_dir, write_file as write};

const BUILD_RS: &str = r#"fn main() {
    // ringbridge's build script publishes its header folder (links = "ringbridge").
    assert!(std::env::var_os("DEP_RINGBRIDGE_INCLUDE").is_some());
    ringbridge_build::Kernels::new()
        .source("kernels/double.cu")
        .race_check(true)
        .compile("double_kernels");
}
"#;

const DOUBLE_CU: &str = r#"// reply = every byte * 2 + param (wrapping); a request longer than the
// reply slot gets error code 9.
#include "ringbridge.cuh"

struct double_handler {
    uint32_t add;
    RB_DEVICE explicit double_handler(uint64_t param) : add((uint32_t)param) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len > out_capacity) return 9;
        for (uint32_t i = 0; i < in.len; ++i) out_payload[i] = (uint8_t)(in_payload[i] * 2u + add);
        out.len = in.len;
        return 0;
    }
};

RB_KERNEL_ENTRY(double_bytes, double_handler)
"#;

const LIB_RS: &str = r#"include!(concat!(env!("OUT_DIR"), "/double_kernels.rs"));
"#;

const TEST_RS: &str = r#"use ringbridge::{Backend, Bridge, Kernel};

fn check(backend: Backend) -> String {
    check_with(Bridge::builder().backend(backend))
}

fn check_with(builder: ringbridge::BridgeBuilder) -> String {
    let kernel = double_kernel::double_bytes().with_param(1u64);
    let bridge = builder
        .slot_size(256)
        .kernel(Kernel::User(kernel))
        .launch()
        .unwrap();
    let backend = bridge.backend();
    let input: Vec<u8> = (0..=255).collect();
    for len in [0usize, 1, 15, 16, 17, 200] {
        let reply = bridge.round_trip(&input[..len]).unwrap();
        let want: Vec<u8> = input[..len].iter().map(|b| b.wrapping_mul(2).wrapping_add(1)).collect();
        assert_eq!(reply.payload, want, "len {len} on {backend:?}");
    }
    let why = bridge.backend_reason().to_string();
    bridge.shutdown().unwrap();
    why
}

#[test]
fn the_kernel_serves_on_the_fallback_backend() {
    assert_eq!(check(Backend::Fallback), "fallback backend requested");
}

#[test]
fn the_kernel_serves_in_the_block_emulation() {
    // The handler on a block of 64 CPU threads, as a GPU block runs it.
    assert_eq!(check_with(Bridge::builder().backend(Backend::Fallback).emulate_block(64)), "fallback backend requested");
}

#[test]
fn the_kernel_has_no_races_between_the_requests_of_a_batch() {
    // Runs again in a child under ThreadSanitizer, the emulation race-checked.
    if ringbridge::race_check::rerun_under_tsan() { return; }
    check_with(Bridge::builder().backend(Backend::Fallback).emulate_block(64));
}

#[test]
fn auto_picks_by_the_machine_and_serves() {
    let why = check(Backend::Auto);
    assert!(!why.is_empty());
}

#[test]
fn the_kernel_carries_a_fatbin_exactly_when_nvcc_was_found() {
    let k = double_kernel::double_bytes();
    assert_eq!(k.entry(), "double_bytes");
    // ringbridge's own kernels were built by the same nvcc search, in the same build.
    match ringbridge::kernels::KERNELS_COMPILED {
        true => assert_eq!(&k.fatbin().expect("a fatbin")[..4], &ringbridge::kernels::FATBIN_MAGIC),
        false => {
            assert!(k.fatbin().is_none());
            assert!(k.no_fatbin_reason().contains("nvcc"), "{}", k.no_fatbin_reason());
            let r = Bridge::builder().backend(Backend::Cuda).kernel(Kernel::User(k)).resolve_backend();
            assert!(r.is_err(), "no image, no CUDA backend");
        }
    }
}
"#;

#[test]
fn a_crate_outside_the_repository_builds_and_runs_its_own_kernel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("ringbridge-user-crate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let manifest = format!(
        "[package]\nname = \"double-kernel\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nringbridge = {{ path = {:?} }}\n\n\
         [build-dependencies]\nringbridge-build = {{ path = {:?} }}\n\n[workspace]\n",
        root.display().to_string(),
        root.join("ringbridge-build").display().to_string()
    );
    write(&work.join("Cargo.toml"), &manifest);
    write(&work.join("build.rs"), BUILD_RS);
    write(&work.join("kernels/double.cu"), DOUBLE_CU);
    write(&work.join("src/lib.rs"), LIB_RS);
    write(&work.join("tests/double.rs"), TEST_RS);
    // The versions this repository is tested with, all in the local cache.
    std::fs::copy(root.join("Cargo.lock"), work.join("Cargo.lock")).unwrap();

    let (ok, text) = common::output_of(
        Command::new(env!("CARGO"))
            .args(["test", "--offline"])
            .current_dir(&work)
            .env("CARGO_TARGET_DIR", target_dir().join("user-crate-target")),
    );
    assert!(ok, "the user crate's tests failed:\n{text}");
    assert!(
        text.contains("test result: ok. 5 passed"),
        "the user crate's five tests did not all run:\n{text}"
    );
    // Issue 28, item 6: built again with nothing changed, the dependent
    // crate compiles nothing, ringbridge least of all (its build script
    // once named a folder it writes itself in `rerun-if-changed`).
    let (ok, again) = common::output_of(
        Command::new(env!("CARGO"))
            .args(["test", "--offline", "--no-run"])
            .current_dir(&work)
            .env("CARGO_TARGET_DIR", target_dir().join("user-crate-target")),
    );
    assert!(ok, "the second build failed:\n{again}");
    assert!(
        !again.contains("Compiling"),
        "a build with nothing changed recompiled:\n{again}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
