#!/usr/bin/env bash
# What metrics and the access log cost, in instructions: the same S3 load as metrics-cost.sh
# (benches/s3load.rs, N 4 KiB PUTs then N GETs at 16-way concurrency, default N = 2,000)
# against one embedded Glint run under `valgrind --tool=callgrind`, counting only while the
# load runs (instrumentation switched on and off with callgrind_control). Instruction counts
# do not move with what else the machine's cores are doing (the same setting repeats within
# 0.1 %), where throughput on this 2-vCPU box swings ±15 % between runs of one setting.
# SETTINGS as in metrics-cost.sh (default "off metrics log on"; a setting may repeat, e.g.
# "off metrics log on on log metrics off"). Prints instructions per request of each run and
# the ratio off / setting of their means (1.00: free).
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
command -v valgrind >/dev/null || { echo "needs valgrind (Debian package valgrind)" >&2; exit 1; }
load=$(bench_load_bin s3load)
bin=$CARGO_TARGET_DIR/release/glint
work=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/metrics-cost-cg.XXXX")
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
n=${N:-2000}
AK=BENCHACCESSKEY SK=bench-secret-key-0000
count() { # SETTING → prints "SETTING instructions-per-request"
  local root=$work/$1 gp sp ap
  read -r gp sp ap < <(bench_ports 3)
  bench_recording "$1" "$ap"
  BENCH_WRAP="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$root/cg.out" \
    bench_start_glint "$bin" "$root" "$gp" "$sp" "${BENCH_RECORDING_LINES[@]}"
  pid=$BENCH_GLINT_PID
  # Warm up outside the count: the bucket, first connections, lazily built state.
  S3LOAD_SMALL=50 "$load" "http://127.0.0.1:$sp" "$AK" "$SK" bench put_4k_x16 >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  S3LOAD_SMALL=$n "$load" "http://127.0.0.1:$sp" "$AK" "$SK" bench put_4k_x16 get_4k_x16 >/dev/null
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  bench_stop_glint
  pid=
  echo "$1 $(awk -v r=$((2 * n)) '/^totals:/{print int($2 / r)}' "$root/cg.out.1")"
  rm -rf "$root"
}
for s in ${SETTINGS:-off metrics log on}; do count "$s"; done | tee "$work/results" >&2
python3 - "$work/results" <<'PY'
import sys
runs = {}
for line in open(sys.argv[1]):
    s, v = line.split()
    runs.setdefault(s, []).append(int(v))
mean = {s: sum(v) / len(v) for s, v in runs.items()}
print("| setting | instructions per request (4 KiB PUT + GET), each run | off / setting (means) |")
print("| --- | --- | --- |")
for s, v in runs.items():
    print(f"| {s} | {' / '.join(f'{x:,}' for x in v)} | {mean['off'] / mean[s]:.3f} |")
PY
