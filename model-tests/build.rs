//! Builds the handler-model kernels and the race-check kernels, as a user's
//! crate builds its own, with their race-check libraries (ThreadSanitizer
//! builds for `ringbridge::race_check`). Besides `kernels/races.cu`, the
//! race check runs on copies of the examples' kernels made here: each
//! unchanged but for its entry's name, and each with one known bug put in
//! (a mutant), so the tests show the check finds it.

use std::path::{Path, PathBuf};

/// A copy of `source` with each `(from, to)` replaced, written to
/// `$OUT_DIR/<name>.cu`. Panics when a `from` is missing: a mutant that no
/// longer differs from its original would pass for a caught bug.
fn copy_with(out_dir: &Path, source: &str, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    println!("cargo:rerun-if-changed={source}");
    let mut text =
        std::fs::read_to_string(source).unwrap_or_else(|e| panic!("reading {source}: {e}"));
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{source} no longer contains {from:?}: update model-tests/build.rs"
        );
        text = text.replace(from, to);
    }
    let path = out_dir.join(format!("{name}.cu"));
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&path, text).unwrap();
    }
    path
}

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let kv = "../examples/kv-store/kernels/kv.cu";
    let reduce = "../examples/reduce/kernels/reduce.cu";
    // Handler types are renamed in the mutants: all sources link into one
    // host library, where two different `kv_handler`s would be one.
    let kv_checked = copy_with(
        &out_dir,
        kv,
        "races_kv_cas",
        &[(
            "RB_KERNEL_ENTRY(kv_store, kv_handler)",
            "RB_KERNEL_ENTRY(races_kv_cas, kv_handler)",
        )],
    );
    let kv_mutant = copy_with(
        &out_dir,
        kv,
        "races_kv_plain_store",
        &[
            (
                "k = kv_cas(&table[i].key, 0, key | KV_BUSY);",
                "table[i].key = key | KV_BUSY; /* mutant: a plain store for the CAS */\n                k = 0;",
            ),
            ("kv_handler", "kv_plain_store_handler"),
            (
                "RB_KERNEL_ENTRY(kv_store,",
                "RB_KERNEL_ENTRY(races_kv_plain_store,",
            ),
        ],
    );
    let reduce_checked = copy_with(
        &out_dir,
        reduce,
        "races_reduce_synced",
        &[(
            "RB_KERNEL_ENTRY(reduce_vectors,",
            "RB_KERNEL_ENTRY(races_reduce_synced,",
        )],
    );
    let reduce_mutant = copy_with(
        &out_dir,
        reduce,
        "races_reduce_unsynced",
        &[
            (
                "partial[t] += partial[t + half];\n            b.sync();",
                "partial[t] += partial[t + half]; /* mutant: no barrier between the levels */",
            ),
            ("reduce_handler", "reduce_unsynced_handler"),
            (
                "RB_KERNEL_ENTRY(reduce_vectors,",
                "RB_KERNEL_ENTRY(races_reduce_unsynced,",
            ),
        ],
    );
    ringbridge_build::Kernels::new()
        .source("kernels/models.cu")
        .source("kernels/races.cu")
        .source("kernels/calls.cu")
        .source(kv_checked)
        .source(kv_mutant)
        .source(reduce_checked)
        .source(reduce_mutant)
        .race_check(true)
        .ptx(true)
        .compile("model_kernels");
}
