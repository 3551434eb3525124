#!/usr/bin/env bash
# Builds, on a CPU machine, everything scripts/gpu-check.sh runs on a GPU
# machine (which has a driver and nvcc but no Rust toolchain), and copies it
# into .gpu/ (git-ignored): the release binary, the test binaries and the
# benches, plus variants built with other kernel switches
# (RINGBRIDGE_KERNEL_DEFINES, see build.rs) for side-by-side measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-nvcc.sh >/dev/null
rm -rf .gpu && mkdir -p .gpu

# copy_tests SUFFIX NAME...: builds the test binaries and copies the named
# ones to .gpu/test-NAME (the library's own as "lib") + SUFFIX.
copy_tests() {
    local suffix="$1"; shift
    cargo test --release --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, shutil, sys
suffix, wanted = sys.argv[1], set(sys.argv[2:])
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name = m["target"]["name"]
        if m["target"]["kind"] == ["lib"]:
            name = "lib"
        if name in wanted:
            shutil.copy(m["executable"], ".gpu/test-" + name + suffix)
            print("copied test-" + name + suffix)
' "$suffix" "$@"
}

# Variants, NAME=DEFINES (GPU_VARIANTS, space-separated; DEFINES as in
# RINGBRIDGE_KERNEL_DEFINES). Each gets its binary and the CUDA bridge tests
# (tests/lanes.rs runs the fallback, which the lane loop's GPU timing
# switches do not reach). The default: the lane loop before the lazy tail
# and the poll delay, and without the delay (kernels/ringbridge.cuh,
# "Timing of the lane serve loop").
# The device tool carries at most 64 MiB: only what gpu-check.sh runs.
for v in ${GPU_VARIANTS-eager-tail=RB_LANE_LAZY_TAIL=0,RB_LANE_POLL_DELAY_CYCLES=0 no-delay=RB_LANE_POLL_DELAY_CYCLES=0}; do
    name="${v%%=*}" defines="${v#*=}"
    RINGBRIDGE_KERNEL_DEFINES="$defines" cargo build --release -p ringbridge-cli
    cp target/release/ringbridge ".gpu/ringbridge-$name"
    RINGBRIDGE_KERNEL_DEFINES="$defines" copy_tests "-$name" bridge_cuda
done

# The previous build, for "side by side with the previous build in the same
# GPU call": GPU_BASELINE is a git revision (default: the last landing before
# the current work; empty: none). Its binary becomes the variant "baseline",
# so every side-by-side step of gpu-check.sh runs it too.
base="${GPU_BASELINE-ea123a4}"
if [ -n "$base" ]; then
    # Outside this checkout, so cargo does not take it for a member of
    # this workspace; its own target folder stays under ours.
    src="${TMPDIR:-/tmp}/ringbridge-baseline-$base"
    rm -rf "$src" && mkdir -p "$src"
    git archive "$base" | tar -x -C "$src"
    # --workspace: the binary is the root package's before the command line
    # moved to cli/ (ringbridge-cli), that member's after.
    NVCC="$PWD/.toolchain/cuda/nvidia/cu13/bin/nvcc" CARGO_TARGET_DIR="$PWD/target/gpu-baseline" \
        cargo build --release --workspace --bin ringbridge --manifest-path "$src/Cargo.toml"
    cp target/gpu-baseline/release/ringbridge .gpu/ringbridge-baseline
    rm -rf "$src"
    git rev-parse --short "$base" > .gpu/baseline-rev
fi
# The build before calls from the kernel (issue 26), for what the feature
# costs a bridge that makes no call, measured on the GPU machine's quiet CPU
# (gpu-check.sh, "fallback without calls"): GPU_BASELINE2, empty for none.
base2="${GPU_BASELINE2-f17af78}"
if [ -n "$base2" ]; then
    src="${TMPDIR:-/tmp}/ringbridge-baseline2-$base2"
    rm -rf "$src" && mkdir -p "$src"
    git archive "$base2" | tar -x -C "$src"
    NVCC="$PWD/.toolchain/cuda/nvidia/cu13/bin/nvcc" CARGO_TARGET_DIR="$PWD/target/gpu-baseline2" \
        cargo build --release -p ringbridge-cli --manifest-path "$src/Cargo.toml"
    cp target/gpu-baseline2/release/ringbridge .gpu/ringbridge-baseline2
    rm -rf "$src"
fi
# The GPU serve loop idling with __nanosleep (RB_GPU_IDLE_NANOSLEEP_MAX,
# kernels/ringbridge.cuh), the binary alone: gpu-check.sh's idle step and
# side-by-side lane runs pick it up as the variant idle-nanosleep.
RINGBRIDGE_KERNEL_DEFINES=RB_GPU_IDLE_NANOSLEEP_MAX=2000 cargo build --release -p ringbridge-cli
cp target/release/ringbridge .gpu/ringbridge-idle-nanosleep

cargo build --release -p ringbridge-cli
cp target/release/ringbridge .gpu/
copy_tests "" lib bridge_cuda cuda_faults kernels lanes lane_soak soak reservation sync_probe
# The command line's unit tests (compare's CUDA alternatives among them), as
# test-cli.
cargo test --release -p ringbridge-cli --bin ringbridge --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        shutil.copy(m["executable"], ".gpu/test-cli")
        print("copied test-cli")
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
# The examples (examples/kv-store, examples/reduce, examples/record-scan): each one's release
# binary (.gpu/example-NAME) and its test binary (.gpu/test-example-NAME),
# which carries the kernel's PTX for its PTX check.
for ex in kv-store reduce record-scan; do
    cargo build --release -p "$ex"
    cp "target/release/$ex" ".gpu/example-$ex"
    cargo test --release -p "$ex" --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], ".gpu/test-example-" + sys.argv[1])
        print("copied test-example-" + sys.argv[1])
' "$ex"
done
# The HTTP service example (examples/kv-service): its binary only; it
# measures round trips from many callers on CUDA (gpu-check.sh).
cargo build --release -p kv-service
cp target/release/kv-service .gpu/example-kv-service
# The handler models' tests (model-tests/): their GPU test, and the rest.
cargo test --release -p ringbridge-model-tests --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        name = m["target"]["name"]
        dest = "test-models" if name == "models" else "test-model-" + name
        shutil.copy(m["executable"], ".gpu/" + dest)
        print("copied " + dest)
'
# What a call from the kernel costs on CUDA (model-tests/benches/calls.rs).
cargo bench -p ringbridge-model-tests --bench calls --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "calls":
        shutil.copy(m["executable"], ".gpu/bench-calls")
        print("copied bench-calls")
'
strip .gpu/example-*
cp scripts/gpu-check.sh .gpu/
strip .gpu/ringbridge .gpu/ringbridge-* .gpu/test-* .gpu/bench-*
du -sh .gpu
