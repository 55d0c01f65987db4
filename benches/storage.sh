#!/usr/bin/env bash
# Runs the engine benchmarks and, in the same run, the machine limits they are judged against:
#   - single-core MD5 and SHA-512 (`openssl speed -evp … -bytes 1048576`)
#   - `cat` of a 256 MiB file from the page cache, and `dd` of it cold (page cache dropped)
# Prints a table of each benchmark as a ratio to its limit (benches/storage-report.py).
source "$(dirname "$0")/../scripts/env.sh"
cd "$GLINT_ROOT"
out=${GLINT_BENCH_OUT:-$CARGO_TARGET_DIR/bench-results}
mkdir -p "$out"
work=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/glint-limits.XXXX")
trap 'rm -rf "$work"' EXIT

speed() { # MiB/s of one algorithm at 1 MiB blocks, one core
  openssl speed -evp "$1" -bytes 1048576 -seconds 3 2>/dev/null \
    | awk -v a="$1" '$1==a {v=$NF; sub(/k$/,"",v); printf "%.0f\n", v*1000/1048576}'
}
{
  echo "md5 $(speed md5)"
  echo "sha512 $(speed sha512)"
  head -c $((256 << 20)) /dev/urandom > "$work/f"; sync "$work/f"
  cat "$work/f" > /dev/null
  t0=$(date +%s.%N); for _ in 1 2 3 4; do cat "$work/f" > /dev/null; done; t1=$(date +%s.%N)
  echo "cat_cached $(echo "1024 / ($t1 - $t0)" | bc -l)"
  dd if="$work/f" iflag=nocache count=0 status=none
  t0=$(date +%s.%N); dd if="$work/f" of=/dev/null bs=1M status=none; t1=$(date +%s.%N)
  echo "dd_cold $(echo "256 / ($t1 - $t0)" | bc -l)"
} | tee "$out/limits.txt"

cargo bench --locked --bench storage -- "$@" 2>&1 | tee "$out/criterion.txt"
python3 benches/storage-report.py "$out/limits.txt" "$CARGO_TARGET_DIR/criterion" | tee "$out/report.md"
