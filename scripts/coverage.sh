#!/usr/bin/env bash
# Line coverage of the ringbridge library over the tests scripts/test.sh
# runs for it: everything without a driver, then the CUDA backend's tests
# against the simulated driver (docs/sim-driver.md). Needs cargo-llvm-cov
# (`cargo install cargo-llvm-cov`, `rustup component add llvm-tools`).
# Prints the per-file table; `--json FILE` also writes llvm-cov's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
export RINGBRIDGE_SKIP_MIRI=1
cargo llvm-cov clean --workspace
cargo llvm-cov --no-report --release -p ringbridge --all-targets
cargo build --quiet --release -p ringbridge-sim-driver
mkdir -p target/sim-driver
ln -sf "$PWD/target/release/libringbridge_sim_driver.so" target/sim-driver/libcuda.so
LD_LIBRARY_PATH="$PWD/target/sim-driver" RINGBRIDGE_SIM_DRIVER=1 \
    cargo llvm-cov --no-report --release -p ringbridge --lib \
    --test bridge_cuda --test cuda_faults --test reservation --test sim_faults --test buffers
cargo llvm-cov report --release -p ringbridge --summary-only "$@"
