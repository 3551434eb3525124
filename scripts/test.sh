#!/usr/bin/env bash
# The project's whole test run, as CI runs it (.ci/run calls this script).
# Installs the pinned nvcc (so the kernels compile and their PTX is checked),
# then: formatting, lints and docs without warnings; unit, integration and
# doc tests in release mode; the CUDA backend's tests against the simulated
# driver (docs/sim-driver.md); loom model tests; Miri over the queue and the
# ring halves.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-nvcc.sh
# The kernel-compilation tests fail instead of skipping when nvcc is missing.
export RINGBRIDGE_REQUIRE_NVCC=1

echo "== fmt, clippy, doc"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

echo "== cargo test (release)"
cargo test --release --workspace --all-targets
cargo test --release --workspace --doc
# The optional serde feature: the report types serialize.
cargo test --release --features serde --test serde

echo "== the published crates: packages, oldest toolchain"
# Both crates package and build from their packages (tests/packaged_crate.rs
# builds a user's crate against them; this verifies each package's own
# build, in dependency order, in a target folder of its own so that no
# earlier build of the same version is taken for it).
# (cargo's "ignoring test ... not included" lines are left out of the log
# shown: the packages leave the tests out on purpose, see Cargo.toml.)
rm -rf target/publish-dry-run
mkdir -p target/publish-dry-run
if ! cargo publish --dry-run --allow-dirty --target-dir target/publish-dry-run \
    -p ringbridge-build -p ringbridge >target/publish-dry-run/log 2>&1; then
    grep -v "^warning: ignoring" target/publish-dry-run/log
    echo "cargo publish --dry-run failed" >&2
    exit 1
fi
grep -E "Packaged|Uploading" target/publish-dry-run/log
# rust-version (Cargo.toml) is the toolchain this builds them with.
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1 || true
CARGO_TARGET_DIR=target/msrv cargo +"$msrv" build --locked -p ringbridge -p ringbridge-build

echo "== the CUDA backend on the simulated driver (docs/sim-driver.md)"
# The same tests a GPU run makes (scripts/gpu-check.sh), against a driver
# that runs each kernel's host twin, enforces implicit synchronization and
# injects faults. A test that needs a card says so and skips.
bash scripts/sim-tests.sh bash scripts/sim-driver.sh cargo test --release --quiet

echo "== loom model tests"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release --test queue_loom --test ring_loom

if [ "${RINGBRIDGE_SKIP_MIRI:-0}" != 1 ]; then
    echo "== Miri (queue and ring halves)"
    rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1 || true
    if cargo +nightly miri --version >/dev/null 2>&1; then
        MIRIFLAGS="-Zmiri-strict-provenance" CARGO_TARGET_DIR=target/miri \
            cargo +nightly miri test --test queue --test ring_miri
        # The ring copies' word paths (what Miri can run of src/ring/copy.rs).
        MIRIFLAGS="-Zmiri-strict-provenance" CARGO_TARGET_DIR=target/miri \
            cargo +nightly miri test --lib ring::copy
    else
        echo "Miri is not installed for the nightly toolchain: skipped" >&2
    fi
fi
echo "all tests passed"
