//! Build-time checks of the device half: the committed layout header, and the
//! PTX and fatbins nvcc produced (skipped when the crate was built without
//! nvcc, unless `RINGBRIDGE_REQUIRE_NVCC=1`).

#![cfg(not(loom))]

mod common;

use ringbridge::kernels::{self, KernelImage};
use ringbridge_test_kernels as test_kernels;

/// The test-only `faults` image (ringbridge-test-kernels, compiled by the
/// same nvcc search as the library's kernels): call after
/// [`compiled_or_skip`].
fn faults() -> &'static test_kernels::Image {
    test_kernels::faults().unwrap_or_else(|| {
        panic!(
            "the library's kernels were compiled, the fault kernels not: {}",
            test_kernels::NOT_COMPILED_REASON
        )
    })
}

/// `(name, ptx, entries)` of every image that serves the rings: the
/// built-ins and the test-only `faults`.
fn ring_images() -> Vec<(&'static str, &'static str, &'static [&'static str])> {
    let mut all: Vec<_> = ["echo", "scale"]
        .into_iter()
        .map(|name| {
            let img = kernels::image(name).unwrap();
            (img.name, img.ptx, img.entries)
        })
        .collect();
    let f = faults();
    all.push((f.name, f.ptx, f.entries));
    all
}

/// `Some(())` when the kernels were compiled; prints why the caller skips
/// otherwise, and fails when `RINGBRIDGE_REQUIRE_NVCC=1`.
fn compiled_or_skip(test: &str) -> Option<()> {
    if kernels::KERNELS_COMPILED {
        return Some(());
    }
    if std::env::var("RINGBRIDGE_REQUIRE_NVCC").as_deref() == Ok("1") {
        panic!(
            "{test}: RINGBRIDGE_REQUIRE_NVCC=1 but the kernels were not compiled ({})",
            kernels::NOT_COMPILED_REASON
        );
    }
    println!(
        "{test}: skipped: kernels not compiled ({})",
        kernels::NOT_COMPILED_REASON
    );
    None
}

/// The body of `.entry NAME` in `ptx`: from the entry line to the `}` that
/// closes it (nvcc writes it alone on a line at column 0).
fn entry_body<'a>(ptx: &'a str, name: &str) -> &'a str {
    let marker = format!(".entry {name}(");
    let start = ptx
        .find(&marker)
        .unwrap_or_else(|| panic!("no `.entry {name}` in the PTX"));
    let rest = &ptx[start..];
    let end = rest
        .find("\n}\n")
        .or_else(|| rest.rfind("\n}"))
        .unwrap_or_else(|| panic!("no end of `.entry {name}` in the PTX"));
    &rest[..end + 2]
}

/// Whether a PTX body has a `call` instruction (`call` or `call.uni` as a
/// line's first word: a shared variable named `rb_calls` is no call).
fn calls_a_function(body: &str) -> bool {
    body.lines().any(|line| {
        let word = line.split_whitespace().next().unwrap_or("");
        word == "call" || word.starts_with("call.")
    })
}

#[test]
fn committed_layout_header_is_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/ringbridge_layout.h");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == kernels::LAYOUT_HEADER,
        "kernels/ringbridge_layout.h differs from the header build.rs generates from \
         src/layout.rs; refresh it with `RINGBRIDGE_UPDATE_LAYOUT_HEADER=1 cargo build` \
         and commit it.\n--- generated ---\n{}",
        kernels::LAYOUT_HEADER
    );
}

#[test]
fn layout_header_defines_every_constant() {
    let h = kernels::LAYOUT_HEADER;
    assert!(h.contains("do not edit"));
    assert!(h.contains("#ifndef RINGBRIDGE_LAYOUT_H"));
    for (name, value) in ringbridge::layout::c_constants() {
        let line = format!("#define {name} {value}ull\n");
        assert!(h.contains(&line), "missing `{}`", line.trim_end());
    }
}

/// Every constant shared with C++ is defined once, in `src/layout.rs`: no
/// kernel source other than the generated header defines one of those
/// names again (a hand copy that could drift).
#[test]
fn no_kernel_source_copies_a_shared_constant() {
    let shared: Vec<&str> = ringbridge::layout::c_constants()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut sources = Vec::new();
    // The library's kernels, and those of the test kernels and the CLI.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<_> = ["kernels", "test-kernels/kernels", "cli/kernels"]
        .into_iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n != "ringbridge_layout.h")
                && path
                    .extension()
                    .is_some_and(|e| ["cu", "cuh", "h", "cpp"].contains(&e.to_str().unwrap()))
            {
                sources.push(path);
            }
        }
    }
    assert!(sources.len() >= 5, "kernel sources not found: {sources:?}");
    for path in sources {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("#define ") else {
                continue;
            };
            let name = rest
                .split(|c: char| c.is_whitespace() || c == '(')
                .next()
                .unwrap();
            assert!(
                !shared.contains(&name),
                "{} defines {name}, which src/layout.rs already exports to C++",
                path.display()
            );
        }
    }
}

#[test]
fn images_match_the_compile_state() {
    if !kernels::KERNELS_COMPILED {
        assert!(!kernels::NOT_COMPILED_REASON.is_empty());
        assert!(kernels::images().is_empty());
        assert!(kernels::ARCHS.is_empty());
        assert!(kernels::NVCC_VERSION.is_none());
        assert!(matches!(
            kernels::image("echo"),
            Err(ringbridge::Error::KernelsNotCompiled(_))
        ));
    }
    if compiled_or_skip("images_match_the_compile_state").is_none() {
        return;
    }
    assert!(kernels::NOT_COMPILED_REASON.is_empty());
    let expect: &[(&str, &[&str])] = &[
        ("echo", &[kernels::ECHO_ENTRY]),
        ("scale", &[kernels::SCALE_F32_ENTRY]),
    ];
    for (name, entries) in expect {
        let img = kernels::image(name).unwrap();
        assert_eq!(img.name, *name);
        let mut got = img.entries.to_vec();
        let mut want = entries.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "entries of image `{name}`");
        for e in *entries {
            assert_eq!(
                kernels::image(e).unwrap().name,
                *name,
                "lookup by entry `{e}`"
            );
        }
    }
    assert!(matches!(
        kernels::image("no-such-kernel"),
        Err(ringbridge::Error::InvalidArgument(_))
    ));
    // Only the built-ins ship: the test and comparison kernels are not in
    // the library (ringbridge-test-kernels and ringbridge-cli build them).
    let mut shipped: Vec<&str> = kernels::images().iter().map(|i| i.name).collect();
    shipped.sort_unstable();
    assert_eq!(shipped, ["echo", "scale"]);
    for other in ["faults", "compare", test_kernels::TRAP_ENTRY] {
        assert!(
            matches!(
                kernels::image(other),
                Err(ringbridge::Error::InvalidArgument(_))
            ),
            "`{other}` ships in the library"
        );
    }
    let faults = faults();
    assert_eq!(faults.name, "faults");
    let mut got = faults.entries.to_vec();
    let mut want = vec![
        test_kernels::TRAP_ENTRY,
        test_kernels::ILLEGAL_ADDRESS_ENTRY,
        test_kernels::HANG_ENTRY,
    ];
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "entries of image `faults`");
}

#[test]
fn build_facts() {
    if compiled_or_skip("build_facts").is_none() {
        return;
    }
    assert!(!kernels::ARCHS.is_empty());
    for a in kernels::ARCHS {
        assert!(
            a.starts_with("sm_") || a.starts_with("compute_"),
            "arch `{a}`"
        );
    }
    let version = kernels::NVCC_VERSION.expect("NVCC_VERSION when compiled");
    // The pinned toolchain (scripts/install-nvcc.sh) is CUDA 13.0; a build
    // with another nvcc sets RINGBRIDGE_EXPECT_NVCC_VERSION.
    let want = std::env::var("RINGBRIDGE_EXPECT_NVCC_VERSION").unwrap_or_else(|_| "13.0".into());
    assert!(version.contains(&want), "nvcc {version}, expected {want}");
}

#[test]
fn fatbins_are_fatbins() {
    if compiled_or_skip("fatbins_are_fatbins").is_none() {
        return;
    }
    let fatbins = kernels::images()
        .iter()
        .map(|img| (img.name, img.fatbin))
        .chain([(faults().name, faults().fatbin)]);
    for (name, fatbin) in fatbins {
        assert!(fatbin.len() > 16, "{name}: empty fatbin");
        assert_eq!(
            fatbin[..4],
            kernels::FATBIN_MAGIC,
            "{name}: fatbin magic (0xBA55ED50 little-endian)"
        );
    }
}

#[test]
fn every_entry_is_in_the_ptx() {
    if compiled_or_skip("every_entry_is_in_the_ptx").is_none() {
        return;
    }
    // The images that serve the rings.
    for (name, ptx, entries) in ring_images() {
        assert!(!entries.is_empty(), "{name}: no entries");
        for e in entries {
            assert!(
                ptx.contains(&format!(".entry {e}(")),
                "{name}: `.entry {e}` not in the PTX"
            );
            // Only the ring counters are atomics; the whole loop is inlined
            // into the entry.
            let body = entry_body(ptx, e);
            assert!(body.contains("bar.sync"), "{e}: no block barrier");
        }
    }
}

/// `RB_KERNEL_ENTRY` bounds each entry by `RB_MAX_BLOCK_THREADS`, 1024 unless
/// defined otherwise: the built-ins must launch with any block up to 1024, and
/// the launch code reads the same bound back (MAX_THREADS_PER_BLOCK).
#[test]
fn builtin_entries_are_bounded_by_1024_threads() {
    if compiled_or_skip("builtin_entries_are_bounded_by_1024_threads").is_none() {
        return;
    }
    for (_, ptx, entries) in ring_images() {
        for e in entries {
            let body = entry_body(ptx, e);
            assert!(
                body.contains(".maxntid 1024, 1, 1"),
                "{e}: no `.maxntid 1024, 1, 1` in its PTX"
            );
        }
    }
}

/// Every entry takes the three ring pointers and then the launch arguments
/// by value, 16-byte aligned and exactly `LaunchArgs`' size: the host passes
/// a `LaunchArgs` as the fourth kernel parameter (src/cuda/launch.rs), so a
/// size that drifted would hand the handler a torn parameter.
#[test]
fn entries_take_the_launch_arguments_by_value() {
    if compiled_or_skip("entries_take_the_launch_arguments_by_value").is_none() {
        return;
    }
    let size = size_of::<ringbridge::layout::LaunchArgs>();
    for (_, ptx, entries) in ring_images() {
        for e in entries {
            let body = entry_body(ptx, e);
            let signature = &body[..body.find(')').unwrap()];
            for i in 0..3 {
                assert!(
                    signature.contains(&format!(".param .u64 {e}_param_{i}")),
                    "{e}: parameter {i} is not a u64 pointer:\n{signature}"
                );
            }
            assert!(
                signature.contains(&format!(".param .align 16 .b8 {e}_param_3[{size}]")),
                "{e}: the fourth parameter is not {size} bytes aligned 16:\n{signature}"
            );
        }
    }
}

/// The memory-order contract of docs/platform-facts.md#memory-order, checked on the PTX of the
/// built-in kernels: acquire/release at system scope on the counters, plain
/// 16-byte payload accesses, and no full system fence anywhere; and the
/// time-based check cadence reads the device's clock.
#[test]
fn ptx_memory_order() {
    if compiled_or_skip("ptx_memory_order").is_none() {
        return;
    }
    let check = |img: &KernelImage, entry: &str| {
        let body = entry_body(img.ptx, entry);
        assert!(
            body.contains("ld.acquire.sys"),
            "{entry}: no ld.acquire.sys"
        );
        assert!(
            body.contains("st.release.sys"),
            "{entry}: no st.release.sys"
        );
        for bad in ["membar.sys", "fence.sc.sys", "fence.acq_rel.sys"] {
            assert!(!body.contains(bad), "{entry}: contains `{bad}`");
            assert!(!img.ptx.contains(bad), "{}: PTX contains `{bad}`", img.name);
        }
        // Slots move in plain (weak) 16-byte accesses, never volatile.
        assert!(
            body.contains("ld.global.v4."),
            "{entry}: no plain 16-byte loads"
        );
        assert!(
            body.contains("st.global.v4."),
            "{entry}: no plain 16-byte stores"
        );
        assert!(!body.contains("ld.volatile"), "{entry}: volatile loads");
        // The beat and the terminate check follow time after each batch
        // (rb_after_batch): the device's nanosecond timer is read.
        assert!(
            body.contains("%globaltimer"),
            "{entry}: no %globaltimer read"
        );
        // No calls: the serve loop is inlined into the entry.
        assert!(!calls_a_function(body), "{entry}: calls a function");
    };
    check(kernels::image("echo").unwrap(), kernels::ECHO_ENTRY);
    check(kernels::image("scale").unwrap(), kernels::SCALE_F32_ENTRY);
    // The fault kernels share the loop; only the fences are checked there
    // (the hang kernel spins on a volatile load on purpose).
    let faults = faults();
    for e in faults.entries {
        let body = entry_body(faults.ptx, e);
        assert!(
            body.contains("ld.acquire.sys") && body.contains("st.release.sys"),
            "{e}"
        );
        for bad in ["membar.sys", "fence.sc.sys", "fence.acq_rel.sys"] {
            assert!(!body.contains(bad), "{e}: contains `{bad}`");
        }
    }
    assert!(entry_body(faults.ptx, test_kernels::TRAP_ENTRY).contains("trap;"));
}

/// Every lane access of the lane loop goes with the tag's check
/// (`rb_lane_tag`, docs/platform-facts.md#16-byte-accesses): a 16-byte lane
/// load is followed by the check's first multiply (the poll verifies it),
/// and a 16-byte lane store is preceded by one (the writer computes it).
/// Without the check a lane read in two pieces would be taken whole.
fn assert_lane_checks(body: &str, entry: &str) {
    let mul = format!(", {};", ringbridge::layout::LANE_MIX_MUL1 as i64);
    let lines: Vec<String> = body
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let muls: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("mul.lo.s64") && lines[i].ends_with(&mul))
        .collect();
    let (mut loads, mut stores) = (0, 0);
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("ld.relaxed.sys.global.v2.u64") {
            loads += 1;
            assert!(
                muls.iter().any(|&m| m > i),
                "{entry}: lane load at PTX line {i} is never checked"
            );
        }
        if l.starts_with("st.relaxed.sys.global.v2.u64") {
            stores += 1;
            assert!(
                muls.iter().any(|&m| m < i),
                "{entry}: lane store at PTX line {i} carries no check"
            );
        }
    }
    assert!(loads > 0 && stores > 0, "{entry}: no lane accesses");
    assert!(muls.len() >= 2, "{entry}: the lane check is not computed");
}

/// The lane format's contract (docs/platform-facts.md#flagged-lanes), on
/// the PTX of the built-in kernels: the warp polls request lanes with ONE
/// system-scope relaxed 16-byte load per thread (never a weak load, which
/// could hit a stale L1 line), votes that every lane is current, and writes
/// reply lanes with 16-byte relaxed stores, with no full system fence.
#[test]
fn ptx_lane_path() {
    if compiled_or_skip("ptx_lane_path").is_none() {
        return;
    }
    let check = |img: &KernelImage, entry: &str| {
        let body = entry_body(img.ptx, entry);
        assert!(
            body.contains("ld.relaxed.sys.global.v2.u64") || body.contains("ld.global.cv.v2.u64"),
            "{entry}: no 16-byte system-scope lane load"
        );
        assert!(
            body.contains("st.relaxed.sys.global.v2.u64"),
            "{entry}: no 16-byte relaxed lane store"
        );
        assert!(
            body.contains("vote.sync.all") || body.contains("vote.all"),
            "{entry}: no warp vote that all lanes are current"
        );
        assert!(body.contains("shfl.sync"), "{entry}: no lane-0 broadcast");
        for bad in ["membar.sys", "fence.sc.sys", "fence.acq_rel.sys"] {
            assert!(!body.contains(bad), "{entry}: contains `{bad}`");
        }
        assert!(!calls_a_function(body), "{entry}: calls a function");
        assert_lane_checks(body, entry);
    };
    check(kernels::image("echo").unwrap(), kernels::ECHO_ENTRY);
    check(kernels::image("scale").unwrap(), kernels::SCALE_F32_ENTRY);
    let faults = faults();
    for e in faults.entries {
        let body = entry_body(faults.ptx, e);
        assert!(body.contains("ld.relaxed.sys.global.v2.u64"), "{e}");
        assert!(body.contains("st.relaxed.sys.global.v2.u64"), "{e}");
    }
}

/// The GPU's idle switch (`RB_GPU_IDLE_NANOSLEEP_MAX`, kernels/ringbridge.cuh):
/// the default build spins (no `nanosleep` in the serve loop), and a build
/// with a cap emits `nanosleep`. Compiles echo.cu to PTX once (a few seconds).
#[test]
fn gpu_idle_nanosleep_is_a_compile_time_switch() {
    if compiled_or_skip("gpu_idle_nanosleep_is_a_compile_time_switch").is_none() {
        return;
    }
    let default = entry_body(kernels::image("echo").unwrap().ptx, kernels::ECHO_ENTRY);
    assert!(
        !default.contains("nanosleep"),
        "the default GPU serve loop spins"
    );
    let Some(nvcc) = common::nvcc_or_skip("gpu_idle_nanosleep_is_a_compile_time_switch") else {
        return;
    };
    let kernels_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let out = std::env::temp_dir().join(format!("ringbridge-nanosleep-{}.ptx", std::process::id()));
    let status = std::process::Command::new(&nvcc)
        .args(["-std=c++17", "-O3", "-ptx", "-arch=compute_80"])
        .arg("-DRB_GPU_IDLE_NANOSLEEP_MAX=2000")
        .arg(format!("-I{}", kernels_dir.display()))
        .arg("-o")
        .arg(&out)
        .arg(kernels_dir.join("echo.cu"))
        .status()
        .expect("running nvcc");
    assert!(status.success(), "nvcc failed on the nanosleep variant");
    let ptx = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(
        entry_body(&ptx, kernels::ECHO_ENTRY).contains("nanosleep.u32"),
        "RB_GPU_IDLE_NANOSLEEP_MAX=2000 emits no nanosleep"
    );
}

/// Issue 23, item 7: the largest scratch a cooperative handler may declare
/// (`RB_MAX_SCRATCH_BYTES`) compiles all the way through ptxas, whose
/// shared-memory limit it shares with the serve loop's own state, and one
/// byte more fails on the header's `static_assert` (not on ptxas's own
/// message).
#[test]
fn the_scratch_limit_is_exact() {
    if compiled_or_skip("the_scratch_limit_is_exact").is_none() {
        return;
    }
    let Some(nvcc) = common::nvcc_or_skip("the_scratch_limit_is_exact") else {
        return;
    };
    let kernels_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let dir = std::env::temp_dir().join(format!("ringbridge-scratch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("coop.cu");
    std::fs::write(
        &source,
        r#"#include "ringbridge.cuh"
struct coop_handler {
    static constexpr bool rb_cooperative = true;
    static constexpr uint32_t rb_scratch_bytes = SCRATCH;
    RB_DEVICE explicit coop_handler(uint64_t) {}
    RB_DEVICE int operator()(rb_block& b, const rb_msg_header& in, const uint8_t* in_payload,
                             rb_msg_header& out, uint8_t* out_payload, uint32_t) {
        uint8_t* s = b.scratch<uint8_t>();
        s[b.thread()] = in.len > 0 ? in_payload[0] : 0;
        b.sync();
        if (b.thread() == 0) { out_payload[0] = s[SCRATCH - 1]; out.len = 1; }
        return 0;
    }
};
RB_KERNEL_ENTRY(coop, coop_handler)
"#,
    )
    .unwrap();
    let compile = |scratch: &str| {
        std::process::Command::new(&nvcc)
            .args(["-std=c++17", "-O3", "-cubin", "-arch=sm_80"])
            .arg(format!("-DSCRATCH={scratch}"))
            .arg(format!("-I{}", kernels_dir.display()))
            .arg("-o")
            .arg(dir.join("coop.cubin"))
            .arg(&source)
            .output()
            .expect("running nvcc")
    };
    let at_limit = compile("RB_MAX_SCRATCH_BYTES");
    assert!(
        at_limit.status.success(),
        "the largest scratch fails: {}",
        String::from_utf8_lossy(&at_limit.stderr)
    );
    let over = compile("(RB_MAX_SCRATCH_BYTES + 1)");
    let stderr = String::from_utf8_lossy(&over.stderr);
    assert!(!over.status.success(), "one byte more compiles");
    assert!(
        stderr.contains("RB_MAX_SCRATCH_BYTES") && !stderr.contains("too much shared data"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
