#!/usr/bin/env bash
# Runs on the GPU machine over the binaries scripts/gpu-prepare.sh put in
# .gpu/: the GPU tests (which must not skip), then the measurements.
# Results and logs go to $OUT (or ./gpu-results).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu ] && cd .gpu
out="${OUT:-$PWD/gpu-results}"; mkdir -p "$out"
export RINGBRIDGE_REQUIRE_GPU=1 LD_LIBRARY_PATH="/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
fail=0
{
  date -u; nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv
  /usr/local/cuda/bin/nvcc --version | tail -1
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
./ringbridge info --json | tee "$out/info.json"
for t in test-bridge_cuda test-cuda_faults test-kernels test-bridge_host; do
  [ -x "$t" ] || continue
  echo "== $t"
  timeout 300 "./$t" --test-threads=1 > "$out/$t.log" 2>&1 || { echo "FAILED: $t"; fail=1; }
  grep -E '^test result|FAILED|panicked' "$out/$t.log" | head -20
done
echo "== echo (cuda, 64 B)"
./ringbridge echo --backend cuda --payload 64 --messages 200000 --json | tee "$out/echo-cuda-64.json" || fail=1
for p in 8 256 1024 4096; do
  ./ringbridge echo --backend cuda --payload $p --messages 50000 --json > "$out/echo-cuda-$p.json" || fail=1
done
./ringbridge echo --backend host --payload 64 --messages 200000 --json > "$out/echo-host-64.json" || fail=1
echo "== stream (cuda)"
./ringbridge stream --backend cuda --payload 64 --messages 20000000 --capacity 8192 --json > "$out/stream-cuda-64.json" || fail=1
./ringbridge stream --backend cuda --payload 4064 --messages 1000000 --capacity 1024 --json > "$out/stream-cuda-4k.json" || fail=1
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    if f.endswith('.json') and f != 'info.json':
        try:
            j = json.load(open(os.path.join(d, f)))
        except Exception as e:
            print(f, 'unreadable', e); continue
        print(f"{f:24} backend={j.get('backend')} payload={j.get('payload_bytes')} "
              f"p50={j.get('p50_ns')} p99={j.get('p99_ns')} msgs/s={j.get('msgs_per_s', 0):.3g} "
              f"GB/s={j.get('gbytes_per_s', '-')} lost={j.get('lost')}")
PY
exit $fail
