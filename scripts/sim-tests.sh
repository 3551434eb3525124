#!/usr/bin/env bash
# The tests that run against the simulated driver (docs/sim-driver.md), each
# run as `<runner...> <package and test arguments>`: scripts/test.sh runs
# them with `scripts/sim-driver.sh cargo test --release --quiet`,
# scripts/coverage.sh with `cargo llvm-cov --no-report --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
"$@" -p ringbridge --lib --test bridge_cuda --test cuda_faults --test reservation \
    --test sim_faults --test buffers --test lane_soak
"$@" -p ringbridge-model-tests --test models -- every_model_on_the_gpu
"$@" -p ringbridge-model-tests --test calls -- calls_on_the_gpu
"$@" -p kv-store --test kv -- the_gpu_answers_the_same_load_when_there_is_one
"$@" -p reduce --test reduce -- the_gpu_reduces_the_same_when_there_is_one
"$@" -p record-scan --test scan -- the_gpu_scans_the_same_when_there_is_one
"$@" -p ringbridge-cli --test cli -- sim_
