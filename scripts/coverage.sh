#!/usr/bin/env bash
# Line coverage of the ringbridge library (src/) over the tests
# scripts/test.sh runs: every workspace test without a driver, then the
# tests of scripts/sim-tests.sh against the simulated driver
# (docs/sim-driver.md). Doc tests are not counted (cargo-llvm-cov needs
# nightly for them). Needs cargo-llvm-cov (`cargo install cargo-llvm-cov`,
# `rustup component add llvm-tools`). Prints the per-file table; extra
# arguments go to the report (e.g. `--json --output-path cov.json`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo llvm-cov clean --workspace
cargo llvm-cov --no-report --release --workspace --all-targets
cargo build --quiet --release -p ringbridge-sim-driver
mkdir -p target/sim-driver
ln -sf "$PWD/target/release/libringbridge_sim_driver.so" target/sim-driver/libcuda.so
LD_LIBRARY_PATH="$PWD/target/sim-driver" RINGBRIDGE_SIM_DRIVER=1 \
    bash scripts/sim-tests.sh cargo llvm-cov --no-report --release
cargo llvm-cov report --release --summary-only \
    --ignore-filename-regex '/(cli|examples|model-tests|sim-driver|ringbridge-build|test-kernels|tests|benches)/' "$@"
