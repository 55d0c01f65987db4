#!/usr/bin/env bash
# Starts Glint on the embedded default (RocksDB + ./var). Extra arguments go to `glint`.
source "$(dirname "$0")/env.sh"
cd "$GLINT_ROOT"
cargo build --release --locked --bin glint
exec "$CARGO_TARGET_DIR/release/glint" --root "${GLINT_ROOT}/var" "${@:-status}"
