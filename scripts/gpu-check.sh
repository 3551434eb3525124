#!/usr/bin/env bash
# Runs on the GPU machine over the binaries scripts/gpu-prepare.sh put in
# .gpu/: the GPU tests (which must not skip), then the measurements.
#
# The device tool returns at most 8 files, so every log and JSON file goes to
# a work folder that is packed into $OUT/results.tgz at the end; the summary
# ($OUT/summary.txt) and the two plots come back beside it.
# Every step runs under `timeout`, so one hang cannot eat the lease.
# Set GPU_CHECK_QUICK=1 for a short smoke run, GPU_CHECK_AB_ONLY=1 for the
# side-by-side variant runs, the tests and one comparison,
# GPU_CHECK_LANE_SOAK=1 for the lane soak alone (below).
#
# The whole script must end inside one device call (at most 600 s) with its
# results packed, so it keeps a budget (GPU_CHECK_BUDGET seconds, default
# 450): a step that would start past it is skipped and said so, and a step's
# own limit is cut to what is left. The measurements never made on a GPU
# before run first, then the rest of the table, then the tests.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu ] && cd .gpu
out="${OUT:-$PWD/gpu-results}"; mkdir -p "$out"
work="$(mktemp -d)"; mkdir -p "$work/r"; r="$work/r"
export RINGBRIDGE_REQUIRE_GPU=1 LD_LIBRARY_PATH="/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
quick="${GPU_CHECK_QUICK:-0}"
# GPU_CHECK_AB_ONLY=1: only the side-by-side lane runs, the tests and the
# 64-byte comparison.
ab_only="${GPU_CHECK_AB_ONLY:-0}"
fail=0
budget="${GPU_CHECK_BUDGET:-450}"
start=$(date +%s)
summary="$out/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
# step NAME SECONDS CMD...: runs CMD with a time limit, output to $r/NAME.log.
step() {
  local name="$1" secs="$2"; shift 2
  local left=$(( budget - ($(date +%s) - start) ))
  if [ "$left" -lt 10 ]; then say "SKIP  $name (budget of ${budget}s spent)"; fail=1; return 1; fi
  [ "$secs" -gt "$left" ] && secs=$left
  local t0=$(date +%s.%N)
  timeout -k 5 "$secs" "$@" > "$r/$name.log" 2>&1
  local rc=$?
  local dt=$(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')")
  if [ $rc -ne 0 ]; then fail=1; say "FAIL  $name (rc $rc, ${dt}s)"; tail -n 15 "$r/$name.log" | sed 's/^/      /' | tee -a "$summary"
  else say "ok    $name (${dt}s)"; fi
  return $rc
}

{
  date -u; uname -r
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,pcie.link.gen.current,pcie.link.width.current --format=csv
  /usr/local/cuda/bin/nvcc --version | tail -1
  nproc; lscpu | grep -m1 'Model name'
} > "$r/machine.txt" 2>&1
cat "$r/machine.txt" | tee -a "$summary"

step info 30 ./ringbridge info --json && cat "$r/info.log" | tee -a "$summary"
# Smoke first: if one echo round trip cannot be made, the rest is moot.
step smoke-echo 30 ./ringbridge echo --backend cuda --payload 64 --messages 1000 --warmup 10 --json

# The host's ring halves (issue 25): this build beside the previous landing
# (ringbridge-baseline, from gpu-prepare.sh's GPU_BASELINE), alternating,
# twice each: 64 B on one stripe and on eight, 4 KiB on eight. Targets on a
# card: 64 B >= 100 M msg/s on one stripe, >= 140 M msg/s on eight; 4 KiB
# >= 25 GB/s each way. Early, so the budget cannot skip it.
if [ "$ab_only" != 1 ]; then
  for k in 1 2; do
    for v in default baseline; do
      bin=./ringbridge; [ $v = baseline ] && bin=./ringbridge-baseline
      [ -x "$bin" ] || continue
      step "host-ceiling-64-s1-$v-$k" 40 $bin stream --backend cuda --payload 64 --stripes 1 --messages 20000000 --capacity 8192 --batch 512 --json
      step "host-ceiling-64-s8-$v-$k" 40 $bin stream --backend cuda --payload 64 --stripes 8 --messages 80000000 --capacity 8192 --batch 512 --json
      step "host-ceiling-4k-s8-$v-$k" 40 $bin stream --backend cuda --payload 4064 --stripes 8 --messages 4000000 --capacity 1024 --json
    done
  done
  python3 - "$r" <<'PY' | tee -a "$summary"
import json, os, sys
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    if f.startswith("host-ceiling-") and f.endswith(".log"):
        try:
            j = json.load(open(os.path.join(d, f)))
            print(f"host ceiling {f[:-4]}: {j['msgs_per_s'] / 1e6:.1f} M msg/s, {j['gbytes_per_s']:.2f} GB/s, lost {j['lost']}")
        except Exception as e:
            print(f"host ceiling {f[:-4]}: no figure ({e})")
PY
fi

# The host halves alone and the host queue against rtrb (issue 25), on this
# machine's quiet CPU (the 2-vCPU build machine is too noisy to judge them):
# `host-side` of this build and the previous landing in turns, three runs
# each, then the queue's interleaved rounds.
if [ "$ab_only" != 1 ]; then
  for k in 1 2 3; do
    for v in default baseline; do
      bin=./ringbridge; [ $v = baseline ] && bin=./ringbridge-baseline
      [ -x "$bin" ] || continue
      step "host-side-$v-$k" 30 $bin host-side --sizes 64,1024,4096 --json
    done
  done
  python3 - "$r" <<'PY' | tee -a "$summary"
import json, os, statistics, sys
d = sys.argv[1]
rows = {}
for f in sorted(os.listdir(d)):
    if f.startswith("host-side-") and f.endswith(".log"):
        build = f.split("-")[2]
        try:
            for row in json.load(open(os.path.join(d, f)))["rows"]:
                if row.get("ns_per_msg") is not None:
                    key = (row["format"], row["payload_bytes"], row["side"], build)
                    rows.setdefault(key, []).append((row["ns_per_msg"], row["share_of_memcpy"]))
        except Exception as e:
            print(f"host side {f}: no figures ({e})")
for key in sorted(rows):
    ns = statistics.median(r[0] for r in rows[key]); share = statistics.median(r[1] for r in rows[key])
    print(f"host side {key[0]} {key[1]} B {key[2]} {key[3]}: {ns:.2f} ns/msg, {share * 100:.0f}% of memcpy (median of {len(rows[key])})")
PY
  [ -x bench-queue ] && QUEUE_ROUNDS=21 step queue-interleaved 60 ./bench-queue --bench interleaved \
    && grep -E 'median ratio' "$r/queue-interleaved.log" | sed 's/^/queue /' | tee -a "$summary"
fi

# Many bridges in one process (never run on a GPU yet, so first): which
# driver calls wait for a running persistent kernel (the measurement behind
# ringbridge::cuda::Reservation), the reservation tests (two kernels on one
# GPU, the second launched while the first streams, each stopped alone),
# and one bridge per GPU streaming at once.
if [ "$ab_only" != 1 ]; then
  [ -x test-sync_probe ] && step sync-probe 60 ./test-sync_probe --ignored --nocapture --test-threads=1 \
    && grep -E 'returns|WAITS|cannot' "$r/sync-probe.log" | sed 's/^/probe /' | tee -a "$summary"
  [ -x test-reservation ] && step test-reservation 90 ./test-reservation --test-threads=1 --nocapture
  grep -E '^test result|FAILED|panicked|skipped' "$r/test-reservation.log" 2>/dev/null | head -8 | tee -a "$summary"
  step stream-devices-all 60 ./ringbridge stream --backend cuda --devices all --stripes 2 --payload 64 --messages 2000000 --capacity 8192 --batch 512 --json \
    && grep -E '"(device|msgs_per_s|lost)"' "$r/stream-devices-all.log" | tr -s ' ' | paste -sd' ' | sed 's/^/devices /' | tee -a "$summary"
fi

# GPU_CHECK_LANE_SOAK=1: only the lane soak (tests/lane_soak.rs), which
# takes a whole device call: GPU_CHECK_LANE_SOAK_ROUNDS (default 10^8) round
# trips of the longest lane messages (224 bytes), 16 in flight, each checked
# against its own hash, while a host thread thrashes the caches. The step
# gets what is left of the budget; at the lane stream rate measured so far
# (1.6-1.7 M msg/s) 10^8 need about a minute, at one-in-flight latency
# (2.7 us) about 270 s: raise GPU_CHECK_BUDGET (up to about 560) or lower
# the count if the first run says so.
if [ "${GPU_CHECK_LANE_SOAK:-0}" = 1 ]; then
  left=$(( budget - ($(date +%s) - start) - 15 ))
  RINGBRIDGE_LANE_SOAK_ROUNDS="${GPU_CHECK_LANE_SOAK_ROUNDS:-100000000}" \
    step lane-soak "$left" ./test-lane_soak --ignored --nocapture --exact lane_soak_cuda
  grep -E 'lane soak|test result|panicked|skipped' "$r/lane-soak.log" | head -6 | tee -a "$summary"
  tar -C "$work" -czf "$out/results.tgz" r
  exit $fail
fi

# The examples on the GPU (RINGBRIDGE_REQUIRE_GPU=1: they fail on the
# fallback), their figures (GET round-trip p50, reduce requests/s) into the
# summary, then their tests (the GPU runs, the fallback's, the PTX checks).
# Never run on a GPU yet, so early; not in the side-by-side mode.
for ex in kv-store reduce record-scan; do
  [ "$ab_only" = 1 ] && break
  [ -x "example-$ex" ] || continue
  step "example-$ex" 90 "./example-$ex"
  grep -E ' on |mixed load|event|round trip|requests/s|read back' "$r/example-$ex.log" | sed "s/^/$ex: /" | tee -a "$summary"
  [ -x "test-example-$ex" ] || continue
  # --skip emulated: the block emulation's library stays on the build machine.
  if [ "$ex" = record-scan ]; then
    # Its other tests run the fallback and the emulation together.
    step "test-example-$ex" 120 "./test-example-$ex" --test-threads=1 --nocapture gpu ptx
  else
    step "test-example-$ex" 120 "./test-example-$ex" --test-threads=1 --nocapture --skip emulated
  fi
  grep -E '^test result|FAILED|panicked|skipped' "$r/test-example-$ex.log" | head -6 | tee -a "$summary"
done

# Round trips from 64 and 256 concurrent callers on CUDA (issue 28): the
# pipelined calls beside a hand-written dispatcher, then the HTTP service.
if [ "$ab_only" != 1 ] && [ -x example-kv-service ]; then
  step kv-service-pipeline 90 ./example-kv-service pipeline --backend cuda --requests 200000 --callers 64,256
  grep -E '^\| ' "$r/kv-service-pipeline.log" | sed 's/^/kv-service: /' | tee -a "$summary"
  step kv-service-http 90 ./example-kv-service http --backend cuda --requests 100000 --callers 64
  grep -E '^\| ' "$r/kv-service-http.log" | sed 's/^/kv-service: /' | tee -a "$summary"
  # One async caller alone: its answer found by its own looks (a GPU round
  # trip is a few us) or by the dispatcher, which sleeps in steps on CUDA.
  step kv-service-one-caller 60 ./example-kv-service pipeline --backend cuda --requests 20000 --callers 1 --only tasks
  grep -E '^\| ' "$r/kv-service-one-caller.log" | sed 's/^/kv-service: /' | tee -a "$summary"
fi

# What calls from the kernel (issue 26) cost a bridge that makes none, on
# this machine's quiet CPU: the fallback's echo round trip and 64 B stream,
# this build and the one before calls (ringbridge-baseline2), in turns.
if [ "$ab_only" != 1 ] && [ -x ringbridge-baseline2 ]; then
  for k in 1 2 3 4 5; do
    for v in default baseline2; do
      bin=./ringbridge; [ $v = baseline2 ] && bin=./ringbridge-baseline2
      step "fallback-echo-$v-$k" 20 $bin echo --backend fallback --payload 64 --messages 100000 --json
      step "fallback-stream-$v-$k" 20 $bin stream --backend fallback --payload 64 --messages 5000000 --json
    done
  done
  python3 - "$r" <<'PY' | tee -a "$summary"
import json, os, statistics, sys
d = sys.argv[1]
for kind, key in (("echo", "p50_ns"), ("stream", "msgs_per_s")):
    for v in ("default", "baseline2"):
        xs = []
        for f in sorted(os.listdir(d)):
            if f.startswith(f"fallback-{kind}-{v}-"):
                try:
                    xs.append(json.load(open(os.path.join(d, f)))[key])
                except Exception:
                    pass
        if xs:
            print(f"fallback without calls: {kind} {v}: {key} median {statistics.median(xs):.4g} of {xs}")
PY
fi

# Calls from the kernel to the host (issue 26), never run on a GPU yet: the
# call tests at block 32 and 256, then what a call costs (p50/p99 beside a
# host round trip; calls per second).
if [ "$ab_only" != 1 ] && [ -x test-model-calls ]; then
  step test-calls 120 ./test-model-calls --test-threads=1 --nocapture calls_on_the_gpu
  grep -E '^test result|FAILED|panicked|skipped' "$r/test-calls.log" | head -6 | tee -a "$summary"
  [ -x bench-calls ] && CALLS_N=20000 step bench-calls 90 ./bench-calls --backend cuda &&
    grep -E 'round trip|calls/s' "$r/bench-calls.log" | sed 's/^/calls: /' | tee -a "$summary"
fi

# Every handler model on the GPU (model-tests/), never run on one yet.
if [ "$ab_only" != 1 ] && [ -x test-models ]; then
  # The GPU test only: the others emulate a block, whose library stays here.
  step test-models 120 ./test-models --test-threads=1 --nocapture every_model_on_the_gpu
  grep -E '^test result|FAILED|panicked|skipped' "$r/test-models.log" | head -6 | tee -a "$summary"
fi

# Never measured on a GPU yet, so first: several SMs, one launch of N blocks,
# one ring pair and two host threads each.
n64=50000000; n4k=2000000; [ "$quick" = 1 ] && { n64=2000000; n4k=100000; }
if [ "$ab_only" != 1 ]; then
  step stream-cuda-4k-s8 120 ./ringbridge stream --backend cuda --payload 4064 --stripes 8 --messages $((n4k * 4)) --capacity 1024 --json
  step stream-cuda-4k-s4 120 ./ringbridge stream --backend cuda --payload 4064 --stripes 4 --messages $((n4k * 2)) --capacity 1024 --json
  step stream-cuda-64-s4 120 ./ringbridge stream --backend cuda --payload 64 --stripes 4 --messages $((n64 * 2)) --capacity 8192 --batch 512 --json
  step stream-cuda-64-s8 120 ./ringbridge stream --backend cuda --payload 64 --stripes 8 --messages $((n64 * 2)) --capacity 8192 --batch 512 --json
  # The host's share: the same streams checking only each reply's header
  # and last 8 bytes, or only counting them. Short runs (a tenth of the
  # full-check ones per stripe), 30 s limit each.
  for c in header none; do
    for s in 1 2 4 8; do
      step "stream-cuda-4k-s$s-$c" 30 ./ringbridge stream --backend cuda --payload 4064 --stripes $s --check $c --messages $((n4k / 10 * s)) --capacity 1024 --json
      step "stream-cuda-64-s$s-$c" 30 ./ringbridge stream --backend cuda --payload 64 --stripes $s --check $c --messages $((n64 / 10 * s)) --capacity 8192 --batch 512 --json
    done
  done
fi

msgs=200000; [ "$quick" = 1 ] && msgs=20000
# Side by side, alternating: the lane loop as built by default against the
# variants scripts/gpu-prepare.sh built with other kernel switches
# (ringbridge-NAME), at 128 threads (the default block) and one warp.
variants=default
for b in ringbridge-*; do [ -x "$b" ] && variants="$variants ${b#ringbridge-}"; done
reps=3; [ "$quick" = 1 ] && reps=1
for k in $(seq 1 $reps); do
  for v in $variants; do
    bin=./ringbridge; [ $v != default ] && bin=./ringbridge-$v
    for t in 128 32; do
      step "ab-$v-b$t-$k" 30 $bin echo --backend cuda --payload 64 --format lanes --block $t --messages $msgs --json
    done
  done
done
# Idle: host CPU with a recv blocked and the first round trip after 1 ms,
# 10 ms and 1 s of silence, per wait policy (docs/perf-idle.md), with the
# GPU loop spinning (default) and __nanosleep-ing (idle-nanosleep).
for v in default idle-nanosleep; do
  bin=./ringbridge; [ $v != default ] && bin=./ringbridge-$v
  [ -x "$bin" ] || continue
  step "idle-cuda-$v" 60 $bin idle --backend cuda --seconds 2 --samples 3
  grep -E '^\|' "$r/idle-cuda-$v.log" | sed "s/^/idle $v /" | tee -a "$summary"
done
if [ "$ab_only" != 1 ]; then
  for p in 8 64 256 1024 4096; do
    step "echo-cuda-$p" 60 ./ringbridge echo --backend cuda --payload $p --messages $msgs --json
  done
  step echo-cuda-64-slots 60 ./ringbridge echo --backend cuda --payload 64 --format slots --messages $msgs --json
  step echo-host-64 60 ./ringbridge echo --backend fallback --payload 64 --messages $msgs --json
  step compare-cuda-256 240 ./ringbridge compare --backend cuda --payload 256 --messages 20000 --json
  step compare-cuda-4096 240 ./ringbridge compare --backend cuda --payload 4096 --messages 10000 --json
  step compare-host-64 60 ./ringbridge compare --backend fallback --payload 64 --messages $msgs --json --plot "$out/compare-host-64.svg"
  # The fallback's ratio moves with where the two threads land: a few more runs.
  for k in 2 3 4 5; do
    step "compare-host-64-$k" 30 ./ringbridge compare --backend fallback --payload 64 --messages $msgs --json
  done

  step stream-cuda-64 120 ./ringbridge stream --backend cuda --payload 64 --messages $n64 --capacity 8192 --batch 512 --json
  step stream-cuda-1k 120 ./ringbridge stream --backend cuda --payload 992 --messages $n4k --capacity 4096 --json
  step stream-cuda-4k 120 ./ringbridge stream --backend cuda --payload 4064 --messages $n4k --capacity 1024 --json
  step stream-host-64 120 ./ringbridge stream --backend fallback --payload 64 --messages 20000000 --capacity 8192 --json
  # The previous build (gpu-prepare.sh's GPU_BASELINE), in the same call.
  if [ -x ringbridge-baseline ]; then
    step stream-cuda-64-baseline 120 ./ringbridge-baseline stream --backend cuda --payload 64 --messages $n64 --capacity 8192 --batch 512 --json
    step stream-cuda-4k-baseline 120 ./ringbridge-baseline stream --backend cuda --payload 4064 --messages $n4k --capacity 1024 --json
    step echo-cuda-64-baseline 60 ./ringbridge-baseline echo --backend cuda --payload 64 --messages $msgs --json
    step compare-host-64-baseline 60 ./ringbridge-baseline compare --backend fallback --payload 64 --messages $msgs --json
  fi
fi

# The library's own GPU unit tests (launch, mapped memory), the safe ones.
[ -x test-lib ] && step test-lib 60 ./test-lib --test-threads=1 cuda:: && grep -E '^test result' "$r/test-lib.log" | tee -a "$summary"
# compare's CUDA alternatives (ringbridge-cli's unit tests), each measured.
[ -x test-cli ] && step test-cli 120 ./test-cli --test-threads=1 --nocapture cuda_compare:: && grep -E '^test result|FAILED|panicked|cannot measure' "$r/test-cli.log" | tee -a "$summary"
for t in test-kernels test-bridge_cuda test-cuda_faults test-lanes test-lane_soak; do
  [ -x "$t" ] || continue
  # --nocapture: a panic in a test's helper thread shows at once, even if
  # the test then waits and the time limit stops it.
  step "$t" 120 "./$t" --test-threads=1 --nocapture
  grep -E '^test result|FAILED|panicked|skipped' "$r/$t.log" | head -12 | tee -a "$summary"
done

step compare-cuda-64 240 ./ringbridge compare --backend cuda --payload 64 --messages 20000 --json --plot "$out/compare-cuda-64.svg"
# Lanes streaming: the poll delay after a drained ring must not slow it.
step stream-cuda-64-lanes 60 ./ringbridge stream --backend cuda --payload 64 --format lanes --messages 5000000 --capacity 8192 --batch 512 --json

# The CUDA bridge tests (lanes on CUDA included) with every variant's kernels.
for t in test-bridge_cuda-*; do
  [ -x "$t" ] || continue
  step "$t" 60 "./$t" --test-threads=1
  grep -E '^test result|FAILED|panicked' "$r/$t.log" | head -6 | tee -a "$summary"
done

if [ "$quick" != 1 ] && [ "$ab_only" != 1 ]; then
  if [ "${GPU_CHECK_SOAK:-0}" = 1 ]; then
    RINGBRIDGE_SOAK_MESSAGES=100000000 step soak-cuda 200 ./test-soak --ignored --nocapture soak_cuda
    grep -E 'soak|test result' "$r/soak-cuda.log" | tee -a "$summary"
  fi
  step bench-roundtrip 200 ./bench-roundtrip --bench --warm-up-time 1 --measurement-time 1
  grep -E '^roundtrip/|time:' "$r/bench-roundtrip.log" | tee -a "$summary"
fi

python3 - "$r" <<'PY' | tee -a "$summary"
import json, os, sys
d = sys.argv[1]

def runs(keep):
    """(name, JSON) of every log whose name `keep` accepts and that parses."""
    for f in sorted(os.listdir(d)):
        if not f.endswith('.log') or not keep(f):
            continue
        try:
            yield f[:-4], json.loads(open(os.path.join(d, f)).read())
        except Exception:
            continue

print(f"{'run':22} {'backend':8} {'format':6} {'str':>3} {'payload':>7} {'p50 ns':>9} {'p99 ns':>9} {'msgs/s':>10} {'GB/s':>7} lost")
for name, j in runs(lambda f: not f.startswith(('test-', 'soak', 'bench', 'info', 'compare', 'machine', 'host-side'))):
    gb = j.get('gbytes_per_s', '-')
    gb = f"{gb:.2f}" if isinstance(gb, (int, float)) else gb
    print(f"{name:22} {str(j.get('backend')):8} {str(j.get('format')):6} {str(j.get('stripes', '-')):>3} {j.get('payload_bytes', 0):7} {j.get('p50_ns', '-'):>9} "
          f"{j.get('p99_ns', '-'):>9} {j.get('msgs_per_s', 0):10.3g} {gb:>7} {j.get('lost', '-')}")
# The side-by-side lane runs: every p50 per variant and block size.
ab = {}
for name, j in runs(lambda f: f.startswith('ab-')):
    ab.setdefault(name[3:].rsplit('-', 1)[0], []).append((j.get('p50_ns'), j.get('p90_ns'), j.get('min_ns')))
for key, rows in sorted(ab.items()):
    print(f"ab {key:20} p50 {sorted(r[0] for r in rows)}  p90 {[r[1] for r in rows]}  min {[r[2] for r in rows]}")
for name, j in runs(lambda f: f.startswith('compare')):
    print(f"== {name}")
    for row in j.get('results', j.get('rows', [])):
        print("   ", {k: row[k] for k in row if k in ('name', 'p50_ns', 'p99_ns', 'ratio_p50', 'ratio_to_ringbridge', 'error')})
PY
tar -C "$work" -czf "$out/results.tgz" r
exit $fail
