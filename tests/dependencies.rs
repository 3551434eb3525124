//! Only what users need ships: the library's normal dependencies (what a
//! crate depending on `ringbridge` builds) hold nothing of the command line
//! (ringbridge-cli) nor of the tests (ringbridge-test-kernels, the fault
//! kernels). Read from `cargo tree`, so a dependency that comes back, direct
//! or through another crate, fails this test.

#![cfg(not(loom))]

use std::process::Command;

/// Crates only the command line, the benches or the tests may use.
const NOT_FOR_USERS: &[&str] = &[
    "clap",
    "serde",
    "serde_json",
    "hdrhistogram",
    "anyhow",
    "indicatif",
    "criterion",
    "ringbridge-cli",
    "ringbridge-test-kernels",
];

/// The crates of `NOT_FOR_USERS` in `tree`, the output of `cargo tree
/// --prefix none` (one `name vX.Y.Z ...` per line).
fn not_for_users_in(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| NOT_FOR_USERS.contains(name))
        .map(str::to_string)
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

#[test]
fn the_check_sees_a_dependency_come_back() {
    let tree = "ringbridge v0.1.0 (/x)\ncudarc v0.19.10\nclap v4.5.0\nclap_builder v4.5.0\n\
                serde v1.0.0 (*)\n";
    assert_eq!(not_for_users_in(tree), ["clap", "serde"]);
    assert!(not_for_users_in("ringbridge v0.1.0 (/x)\nthiserror v2.0.0\n").is_empty());
}

#[test]
fn the_library_has_no_cli_or_test_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Everything is in the local cache: the test binary was just built.
        .args(["tree", "--offline", "-p", "ringbridge", "-e", "normal"])
        .args(["--prefix", "none"])
        .output()
        .expect("running cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tree.lines().any(|l| l.starts_with("ringbridge v")),
        "no ringbridge in the tree:\n{tree}"
    );
    assert!(tree.lines().any(|l| l.starts_with("cudarc v")), "{tree}");
    let found = not_for_users_in(&tree);
    assert!(
        found.is_empty(),
        "the library depends on {found:?}, which only the command line or the tests need \
         (move them to cli/Cargo.toml or [dev-dependencies]):\n{tree}"
    );
}
