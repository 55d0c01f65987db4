#!/usr/bin/env bash
# Builds RocksDB's static library once into a cache outside the clone and prints the directory
# that holds librocksdb.a. Cargo would otherwise recompile ~14 min of C++ whenever the
# librocksdb-sys build-script hash changes (features, check vs build, clippy).
# Key: the librocksdb-sys version in Cargo.lock + the features we enable (none but bindgen).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ver=$(awk '/^name = "librocksdb-sys"/{getline; gsub(/"/,"",$3); print $3; exit}' "$here/Cargo.lock")
[ -n "$ver" ] || { echo "librocksdb-sys not found in Cargo.lock" >&2; exit 1; }
features="bindgen-runtime"
cache=${GLINT_CACHE_DIR:-$HOME/.cache/glint}
key="librocksdb-sys-${ver}-${features}"
out="$cache/rocksdb/$key"
if [ -f "$out/librocksdb.a" ]; then echo "$out"; exit 0; fi
scratch="$cache/rocksdb/build-$key"
rm -rf "$scratch"; mkdir -p "$scratch/src"
echo 'fn main() {}' > "$scratch/src/main.rs"
cat > "$scratch/Cargo.toml" <<TOML
[package]
name = "rocksdb-prebuild"
version = "0.0.0"
edition = "2021"
[dependencies]
librocksdb-sys = { version = "=${ver}", default-features = false, features = ["${features}"] }
[profile.release]
debug = false
TOML
echo "building librocksdb.a ($key) into $out; this takes ~15 min once" >&2
( cd "$scratch" && env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC -u CARGO_TARGET_DIR NUM_JOBS=$(nproc) \
    cargo build --release --quiet >&2 )
lib=$(ls -t "$scratch"/target/release/build/librocksdb-sys-*/out/librocksdb.a | head -1)
mkdir -p "$out.tmp"; cp "$lib" "$out.tmp/librocksdb.a"
rm -rf "$out"; mv "$out.tmp" "$out"; rm -rf "$scratch"
echo "$out"
