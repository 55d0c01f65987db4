#!/usr/bin/env bash
# Engine format v1 against v2 end to end, in the same run (issue 10's same-run ratios): a
# fresh Glint per round and format, alternating (ABBA), each gets through the Images API a
# 1 GiB upload of random bytes (curl -T), one download, 8 concurrent downloads, and a download
# of a "later release" (the same image with 12 KiB inserted every 8 MiB, so v2's chunks come
# from the first image's packs) after the page cache was dropped and again warm.
# Prints each scenario's median per format and the ratio v2 / v1.
#   ROUNDS (2, i.e. 4 runs per format)  SIZE_MIB (1024)  OUT=dir
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
rounds=${ROUNDS:-2} size_mib=${SIZE_MIB:-1024}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
cargo build -q --release --locked --bin glint
bin=$CARGO_TARGET_DIR/release/glint
data=$(mktemp "${GLINT_BENCH_DIR:-/tmp}/formats-image.XXXX")
later=$(mktemp "${GLINT_BENCH_DIR:-/tmp}/formats-later.XXXX")
head -c $((size_mib << 20)) /dev/urandom > "$data"
python3 - "$data" "$later" <<'PY'
import sys
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as dst:
    i = 0
    while piece := src.read(8 << 20):
        dst.write(piece)
        dst.write(bytes([i % 251]) * (12 << 10))
        i += 1
PY
sync; cat "$data" "$later" > /dev/null
export BENCH_IMAGE_SIZE_CAP=$(( (size_mib + 64) << 20 ))
tok="X-Auth-Token: demo:demo"

timed() { local t0 t1; t0=$(bench_now); "$@"; t1=$(bench_now); echo "$t1 - $t0" | bc -l; }
get() { curl -fsS "$1/v2/images/$2/file" -H "$tok" -o /dev/null; }
get8() { local i; for i in 1 2 3 4 5 6 7 8; do get "$1" "$2" & done; wait; }
drop_cache() { python3 - "$1" <<'PY'
import os, sys
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        try:
            fd = os.open(os.path.join(d, f), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        except OSError:
            pass
PY
}

one() { # format → "format scenario MiB/s" lines
  local f=$1 root gp sp ep id id2 s
  root=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/formats-glint.XXXX")
  read -r gp sp < <(bench_ports 2)
  bench_start_glint "$bin" "$root" "$gp" "$sp" "store_format = $f"
  ep="http://127.0.0.1:$gp"
  local t0; t0=$(bench_now); id=$(bench_upload_image "$ep" "$data" raw); s=$(echo "$(bench_now) - $t0" | bc -l)
  echo "$f upload $(echo "$size_mib / $s" | bc -l)"
  s=$(timed get "$ep" "$id"); echo "$f get $(echo "$size_mib / $s" | bc -l)"
  s=$(timed get8 "$ep" "$id"); echo "$f get8 $(echo "8 * $size_mib / $s" | bc -l)"
  id2=$(bench_upload_image "$ep" "$later" raw)
  drop_cache "$root/data"
  s=$(timed get "$ep" "$id2"); echo "$f get_later_cold $(echo "$size_mib / $s" | bc -l)"
  s=$(timed get "$ep" "$id2"); echo "$f get_later_warm $(echo "$size_mib / $s" | bc -l)"
  drop_cache "$root/data"
  s=$(timed get "$ep" "$id"); echo "$f get_cold $(echo "$size_mib / $s" | bc -l)"
  bench_stop_glint
  rm -rf "$root"
}

: > "$out/runs.txt"
for _ in $(seq "$rounds"); do
  for f in v1 v2 v2 v1; do one "$f" | tee -a "$out/runs.txt"; done
done
rm -f "$data" "$later"
python3 - "$out/runs.txt" <<'PY' | tee "$out/report.md"
import collections, statistics, sys
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f, name, x = line.split()
    v[(name, f)].append(float(x))
print("| scenario (MiB/s, median) | v1 | v2 | v2 / v1 |")
print("| --- | --- | --- | --- |")
for name in ["upload", "get", "get8", "get_cold", "get_later_cold", "get_later_warm"]:
    a, b = statistics.median(v[(name, "v1")]), statistics.median(v[(name, "v2")])
    print(f"| {name} | {a:,.0f} | {b:,.0f} | {b / a:.2f} |")
PY
