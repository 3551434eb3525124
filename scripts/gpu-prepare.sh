#!/usr/bin/env bash
# Builds, on a CPU machine, everything scripts/gpu-check.sh runs on a GPU
# machine (which has a driver and nvcc but no Rust toolchain), and copies it
# into .gpu/ (git-ignored): the release binary and the test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-nvcc.sh >/dev/null
rm -rf .gpu && mkdir -p .gpu
cargo build --release --bin ringbridge
cp target/release/ringbridge .gpu/
cargo test --release --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, shutil, sys
# Only what gpu-check.sh runs: the device tool carries at most 64 MiB.
wanted = {"lib", "bridge_cuda", "cuda_faults", "kernels", "lanes", "soak"}
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name = m["target"]["name"]
        if m["target"]["kind"] == ["lib"]:
            name = "lib"
        if name in wanted:
            shutil.copy(m["executable"], ".gpu/test-" + name)
            print("copied test-" + name)
'
cargo bench --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("roundtrip", "stream"):
        shutil.copy(m["executable"], ".gpu/bench-" + m["target"]["name"])
        print("copied bench-" + m["target"]["name"])
'
cp scripts/gpu-check.sh .gpu/
strip .gpu/ringbridge .gpu/test-* .gpu/bench-*
du -sh .gpu
