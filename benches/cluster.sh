#!/usr/bin/env bash
# Cluster mode against the embedded default, in the same run: a SIZE_MIB image of random
# bytes through the Images API.
# - embedded: one Glint on RocksDB + local disk.
# - cluster: two Glint nodes on one PostgreSQL (catalog) and one SeaweedFS (packs).
#   Node 1 takes the upload and so keeps a local copy of its packs. Node 2 has none: its
#   GETs are ranged GETs against SeaweedFS.
# Prints MiB/s per scenario and the ratios to the embedded default.
#   SIZE_MIB (1024)  ROUNDS (1)
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
size_mib=${SIZE_MIB:-1024} rounds=${ROUNDS:-1}
cargo build -q --release --locked --bin glint
bin=$CARGO_TARGET_DIR/release/glint
work=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/cluster-bench.XXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bench_engines_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT
data=$work/image
head -c $((size_mib << 20)) /dev/urandom > "$data"
export BENCH_IMAGE_SIZE_CAP=$(( (size_mib + 64) << 20 ))
tok="X-Auth-Token: demo:demo"
rate() { echo "$size_mib * ${2:-1} / $1" | bc -l; }
timed() { local t0; t0=$(bench_now); "$@" || return 1; echo "$(bench_now) - $t0" | bc -l; }
# A failed request ends the run (no rate is printed for a failure).
must() { local v; v=$("$@") && [ -n "$v" ] || { echo "failed: $*" >&2; exit 1; }; echo "$v"; }
get() { curl -fsS "$1/v2/images/$2/file" -H "$tok" -o /dev/null; }
get8() { local i p ps=() rc=0; for i in 1 2 3 4 5 6 7 8; do get "$1" "$2" & ps+=($!); done
  for p in "${ps[@]}"; do wait "$p" || rc=1; done; return $rc; }

bench_engines_start "$work"

for round in $(seq "$rounds"); do
  # Embedded.
  read -r gp sp < <(bench_ports 2)
  bench_start_glint "$bin" "$work/emb$round" "$gp" "$sp"
  pids+=("$BENCH_GLINT_PID")
  ep="http://127.0.0.1:$gp"
  t0=$(bench_now); id=$(must bench_upload_image "$ep" "$data" raw) || exit 1
  s=$(echo "$(bench_now) - $t0" | bc -l)
  echo "embedded upload $(rate "$s")"
  t=$(must timed get "$ep" "$id") || exit 1; echo "embedded get $(rate "$t")"
  t=$(must timed get8 "$ep" "$id") || exit 1; echo "embedded get8 $(rate "$t" 8)"
  bench_stop_glint

  # Two cluster nodes on a fresh database and pack prefix.
  mapfile -t cluster_lines < <(bench_cluster_lines "bench_$round" "round$round")
  read -r gp1 sp1 gp2 sp2 < <(bench_ports 4)
  bench_start_glint "$bin" "$work/n1-$round" "$gp1" "$sp1" "${cluster_lines[@]}"
  pids+=("$BENCH_GLINT_PID"); n1=$BENCH_GLINT_PID
  bench_start_glint "$bin" "$work/n2-$round" "$gp2" "$sp2" "${cluster_lines[@]}"
  pids+=("$BENCH_GLINT_PID"); n2=$BENCH_GLINT_PID
  ep1="http://127.0.0.1:$gp1" ep2="http://127.0.0.1:$gp2"
  t0=$(bench_now); id=$(must bench_upload_image "$ep1" "$data" raw) || exit 1
  s=$(echo "$(bench_now) - $t0" | bc -l)
  echo "cluster upload $(rate "$s")"
  t=$(must timed get "$ep1" "$id") || exit 1; echo "cluster get_writer_node $(rate "$t")"
  t=$(must timed get "$ep2" "$id") || exit 1; echo "cluster get_other_node $(rate "$t")"
  t=$(must timed get8 "$ep2" "$id") || exit 1; echo "cluster get8_other_node $(rate "$t" 8)"
  kill "$n1" "$n2"; wait "$n1" "$n2" 2>/dev/null || true
done | tee "$work/results"

python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode, scenario, v = line.split()
    rows.setdefault((mode, scenario), []).append(float(v))
med = {k: statistics.median(v) for k, v in rows.items()}
base = {"upload": "upload", "get_writer_node": "get", "get_other_node": "get",
        "get8_other_node": "get8"}
print("| scenario (MiB/s, median) | embedded | cluster | cluster / embedded |")
print("| --- | --- | --- | --- |")
for s, b in base.items():
    e, c = med[("embedded", b)], med[("cluster", s)]
    print(f"| {s} | {e:,.0f} | {c:,.0f} | {c / e:.2f} |")
PY
