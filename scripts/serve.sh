#!/usr/bin/env bash
# Starts Glint on the embedded default: RocksDB + a local data directory under ./var, S3 on
# 127.0.0.1:8080 with the bootstrap key from etc/glance-api.conf. Extra arguments go to
# `glint` (e.g. `credentials create --project demo`); default: `serve`.
source "$(dirname "$0")/env.sh"
cd "$GLINT_ROOT"
cargo build --release --locked --bin glint
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(serve)
exec "$CARGO_TARGET_DIR/release/glint" --config "$GLINT_ROOT/etc/glance-api.conf" "${args[@]}"
