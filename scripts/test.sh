#!/usr/bin/env bash
# The test command: on a fresh machine it installs the build prerequisites, builds RocksDB
# once into ~/.cache/glint, then checks formatting and lints and runs every test.
source "$(dirname "$0")/env.sh"
cd "$GLINT_ROOT"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
