#!/usr/bin/env bash
# Images API listings at scale, on both catalog backends one after the other (never at
# once: 2 cores): benches/imagelist.rs fills a fresh Glint with IMAGES records (default
# 100,000, over 100 projects) and times pages of 25 (member, admin, by marker, by name).
#   embedded: RocksDB catalog;  postgresql: a cluster node on PostgreSQL (+ SeaweedFS packs).
# Prints each backend's lines (median and 99th percentile over ROUNDS requests, default 200).
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
images=${IMAGES:-100000}
rounds=${ROUNDS:-200}
load=$(bench_load_bin imagelist)
bin=${GLINT_BENCH_BIN:-$CARGO_TARGET_DIR/release/glint} # GLINT_BENCH_BIN: another build, for a before/after
work=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/image-list.XXXX")
cleanup() {
  bench_stop_glint
  [ -z "${BENCH_PG_ADMIN:-}" ] || bench_engines_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT

read -r gp sp < <(bench_ports 2)
bench_start_glint "$bin" "$work/emb" "$gp" "$sp"
echo "## embedded (RocksDB)"
"$load" "http://127.0.0.1:$gp" "$images" "$rounds"
bench_stop_glint

bench_engines_start "$work"
mapfile -t lines < <(bench_cluster_lines bench_list listbench)
read -r gp sp < <(bench_ports 2)
bench_start_glint "$bin" "$work/node" "$gp" "$sp" "${lines[@]}"
echo "## postgresql (cluster node)"
"$load" "http://127.0.0.1:$gp" "$images" "$rounds"
