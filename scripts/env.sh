# Sourced by the scripts in this directory: makes sure the build prerequisites are present and
# points cargo at a prebuilt RocksDB (see .ci/rocksdb-lib.sh for why).
set -euo pipefail
GLINT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export GLINT_CACHE_DIR=${GLINT_CACHE_DIR:-$HOME/.cache/glint}

need_pkg() { dpkg -s "$1" >/dev/null 2>&1; }
missing=()
for p in libclang-dev libssl-dev pkg-config; do need_pkg "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
  else
    echo "please install: ${missing[*]} (needed to build the RocksDB bindings and link OpenSSL's libcrypto)" >&2; exit 1
  fi
fi

ROCKSDB_LIB_DIR=$(bash "$GLINT_ROOT/.ci/rocksdb-lib.sh")
export ROCKSDB_LIB_DIR ROCKSDB_STATIC=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$GLINT_CACHE_DIR/target}
