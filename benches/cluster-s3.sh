#!/usr/bin/env bash
# The S3 API in cluster mode, in one run and one after the other (never at once: 2 cores):
# benches/s3load.rs (PUT/GET 1 GiB, 8 concurrent GETs, 4 KiB PUT/GET ops/s, 64 KiB ranged
# GETs, LIST 10k) against
# - embedded: one Glint on RocksDB + local disk;
# - cluster: a Glint node on PostgreSQL (catalog) + SeaweedFS (packs);
# - seaweedfs: the S3 gateway of that same SeaweedFS, as a peer.
# Prints each target's figures and the ratios cluster / embedded and cluster / seaweedfs.
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
load=$(bench_load_bin s3load)
bin=$CARGO_TARGET_DIR/release/glint
work=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/cluster-s3.XXXX")
cleanup() {
  bench_stop_glint
  bench_engines_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT
bench_engines_start "$work"
AK=BENCHACCESSKEY SK=bench-secret-key-0000

read -r gp sp < <(bench_ports 2)
bench_start_glint "$bin" "$work/emb" "$gp" "$sp"
"$load" "http://127.0.0.1:$sp" "$AK" "$SK" bench > "$work/embedded.txt"
bench_stop_glint

mapfile -t lines < <(bench_cluster_lines bench_s3 s3bench)
read -r gp sp < <(bench_ports 2)
bench_start_glint "$bin" "$work/node" "$gp" "$sp" "${lines[@]}"
"$load" "http://127.0.0.1:$sp" "$AK" "$SK" bench > "$work/cluster.txt"
bench_stop_glint

"$load" "$BENCH_S3" BENCHPACKS bench-packs-secret bench > "$work/seaweedfs.txt"

python3 - "$work"/embedded.txt "$work"/cluster.txt "$work"/seaweedfs.txt <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        parts = line.split()
        d[parts[0]] = dict(x.split("=") for x in parts[1:])
    return d
e, c, s = (load(p) for p in sys.argv[1:4])
print("| scenario | embedded | cluster | SeaweedFS | cluster / embedded | cluster / SeaweedFS |")
print("| --- | --- | --- | --- | --- | --- |")
for name, key in [("put_1g", "MiB/s"), ("get_1g", "MiB/s"), ("get_1g_x8", "MiB/s"),
                  ("put_4k_x16", "ops/s"), ("get_4k_x16", "ops/s"), ("range_64k", "ops/s"),
                  ("list_10k", "secs")]:
    if not all(name in t for t in (e, c, s)):
        continue
    ev, cv, sv = (float(t[name][key]) for t in (e, c, s))
    # Times: smaller is better, so their ratio is inverted to read "x as fast" like the rest.
    ratio = (lambda a, b: b / a) if key == "secs" else (lambda a, b: a / b)
    fmt = (lambda v: f"{v * 1000:,.0f} ms") if key == "secs" else (lambda v: f"{v:,.0f} {key}")
    print(f"| {name} | {fmt(ev)} | {fmt(cv)} | {fmt(sv)} | {ratio(cv, ev):.2f} | {ratio(cv, sv):.2f} |")
PY
