#!/usr/bin/env bash
# Runs a command against the simulated CUDA driver (sim-driver/): builds it,
# links it as libcuda.so in target/sim-driver/ (its own file name is not
# libcuda.so, so nothing else ever loads it), and runs the command with that
# folder first on the loader's path and RINGBRIDGE_SIM_DRIVER=1.
#
#   scripts/sim-driver.sh cargo test --release --test bridge_cuda
#   RINGBRIDGE_SIM_DEVICES=2 scripts/sim-driver.sh cargo run --release -p ringbridge-cli -- info
#
# The machine's shape and the faults are set by RINGBRIDGE_SIM_* variables
# (docs/sim-driver.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --quiet --release -p ringbridge-sim-driver --manifest-path "$root/Cargo.toml"
mkdir -p "$target/sim-driver"
ln -sf "$target/release/libringbridge_sim_driver.so" "$target/sim-driver/libcuda.so"
export LD_LIBRARY_PATH="$target/sim-driver${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RINGBRIDGE_SIM_DRIVER=1
exec "$@"
