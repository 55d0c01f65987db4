#!/usr/bin/env bash
# What metrics and the access log cost: benches/s3load.rs against one embedded Glint with
# both off (no admin listener, access_log = false) and with both on (admin listener,
# access_log = true, RUST_LOG=info writing every access line to a file), one after the
# other in ABBA order, ROUNDS times (default 2). SETTINGS picks the runs of a round (default
# "off on on off"; also "metrics": metrics only, "log": access log only). Prints each
# scenario's mean per setting and its ratio to off (1.00: free): throughput, and the server's
# CPU time per request (user + system, read from /proc), the steadier measure on a box whose
# two cores the load generator shares.
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
load=$(bench_load_bin s3load)
bin=$CARGO_TARGET_DIR/release/glint
work=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/metrics-cost.XXXX")
trap 'bench_stop_glint; rm -rf "$work"' EXIT
scenarios=${SCENARIOS:-put_1g get_1g put_4k_x16 get_4k_x16}
# 40,000 small objects per run (~15 s of PUTs): s3load's default 4,000 last about a second,
# too short to tell a few per cent from noise.
export S3LOAD_SMALL=${S3LOAD_SMALL:-40000}
AK=BENCHACCESSKEY SK=bench-secret-key-0000
run() { # SETTING ROUND
  local gp sp ap
  read -r gp sp ap < <(bench_ports 3)
  bench_recording "$1" "$ap"
  bench_start_glint "$bin" "$work/$1-$2" "$gp" "$sp" "${BENCH_RECORDING_LINES[@]}"
  # shellcheck disable=SC2086
  S3LOAD_SERVER_PID=$BENCH_GLINT_PID "$load" "http://127.0.0.1:$sp" "$AK" "$SK" bench $scenarios \
    | sed "s/^/$1 /" | tee -a "$work/results" >&2
  [ "$1" = off ] || [ "$1" = log ] || curl -fsS "http://127.0.0.1:$ap/metrics" | grep -c '^glint_http_requests_total' \
    | sed 's/^/  metric series: /' >&2
  bench_stop_glint
  rm -rf "$work/$1-$2"
}
for r in $(seq "${ROUNDS:-2}"); do
  # shellcheck disable=SC2086
  for s in ${SETTINGS:-off on on off}; do run "$s" "$r"; done
done
python3 - "$work/results" <<'PY'
import sys, collections
vals = collections.defaultdict(list)
cpu = collections.defaultdict(list)
for line in open(sys.argv[1]):
    setting, name, *kv = line.split()
    d = dict(x.split("=") for x in kv)
    key = "ops/s" if "4k" in name else "MiB/s"
    vals[(name, setting)].append((float(d[key]), key))
    if "server_cpu_us/op" in d:
        cpu[(name, setting)].append(float(d["server_cpu_us/op"]))
settings = [x for x in ("off", "metrics", "log", "on") if any(s == x for _, s in vals)]
mean = lambda xs: sum(xs) / len(xs)
print("| scenario | " + " | ".join(settings) + " | " + " | ".join(f"{x} / off" for x in settings[1:]) + " |")
print("| --- " * (2 * len(settings)) + "|")
for name in dict.fromkeys(n for n, _ in vals):
    unit = vals[(name, "off")][0][1]
    m = {x: mean([v for v, _ in vals[(name, x)]]) for x in settings}
    print(f"| {name} | " + " | ".join(f"{m[x]:,.0f} {unit}" for x in settings) + " | "
          + " | ".join(f"{m[x] / m['off']:.3f}" for x in settings[1:]) + " |")
    if all(cpu[(name, x)] for x in settings):
        c = {x: mean(cpu[(name, x)]) for x in settings}
        # Per request, so more CPU is a cost: the ratio is off / setting, as for throughput.
        print(f"| {name} server CPU | " + " | ".join(f"{c[x]:,.1f} µs/op" for x in settings) + " | "
              + " | ".join(f"{c['off'] / c[x]:.3f}" for x in settings[1:]) + " |")
PY
