#!/usr/bin/env bash
# Dedup benchmark (issue 10): realistic image pairs built from Debian packages
# (benches/dedup-images.sh) are uploaded through the Images API to a fresh Glint per pair,
# once with engine format v1 (fixed 1 MiB chunks) and once with v2 (content-defined chunks in
# compressed packs), in the same run. After each upload the server is stopped and the
# engine's own accounting (`glint status --json`: logical bytes, chunk file / pack bytes,
# catalog table files) and `du` of the data directory are recorded.
#
#   pairs: release (A.raw then B.raw), upgrade (A.raw, U.raw), qcow2 (A.qcow2, B.qcow2),
#          compressed qcow2 (A.c.qcow2, B.c.qcow2), snapshot (A.qcow2, S.qcow2), and the
#          compressed qcow2 pair imported with the image_conversion plugin (converted to raw)
#   IMAGES=dir (default $GLINT_CACHE_DIR/dedup-images)  OUT=dir (results: dedup.tsv)
#   FORMATS="v1 v2" (the default: both, in the same run)  PAIRS="release …" (default: all)
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
images=${IMAGES:-$GLINT_CACHE_DIR/dedup-images}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
bash benches/dedup-images.sh "$images"
cargo build -q --release --locked --bin glint
bin=$CARGO_TARGET_DIR/release/glint
tsv=$out/dedup.tsv
printf 'format\tpair\tstep\tlogical\tstored\tcatalog\tdu_data_kib\n' > "$tsv"

# measure FORMAT PAIR STEP ROOT: stop the server, record the accounting, start it again.
measure() {
  local format=$1 pair=$2 step=$3 root=$4 status
  bench_stop_glint
  # Space deleted data (a converted import's staged source) held is compacted first (every
  # pack with garbage: compact_below = 1.0 below), so stored bytes are live bytes.
  "$bin" --config "$root/glance-api.conf" gc > /dev/null
  status=$("$bin" --config "$root/glance-api.conf" status --json)
  python3 - "$format" "$pair" "$step" "$(du -sk "$root/data" | cut -f1)" "$status" >> "$tsv" <<'PY'
import json, sys
f, pair, step, du, s = sys.argv[1:6]
s = json.loads(s)
print(f"{f}\t{pair}\t{step}\t{s['logical_bytes']}\t{s['stored_bytes']}\t{s['catalog_bytes']}\t{du}")
PY
}

for format in ${FORMATS:-v1 v2}; do
  for pair in "release A.raw B.raw raw" "upgrade A.raw U.raw raw" "qcow2 A.qcow2 B.qcow2 qcow2" \
              "compressed_qcow2 A.c.qcow2 B.c.qcow2 qcow2" "snapshot A.qcow2 S.qcow2 qcow2" \
              "converted_compressed_qcow2 A.c.qcow2 B.c.qcow2 qcow2 convert"; do
    set -- $pair
    name=$1 first=$2 second=$3 disk=$4 how=${5:-upload}
    [ -z "${PAIRS:-}" ] || [[ " $PAIRS " == *" $name "* ]] || continue
    # compact_below = 1.0: the measurement's gc leaves no garbage in any pack.
    opts=("store_format = $format" "compact_below = 1.0")
    put=bench_upload_image
    if [ "$how" = convert ]; then
      opts+=("[image_import_opts]" "image_import_plugins = image_conversion")
      put=bench_import_image
    fi
    root=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/dedup-glint.XXXX")
    read -r gp sp < <(bench_ports 2)
    bench_start_glint "$bin" "$root" "$gp" "$sp" "${opts[@]}"
    $put "http://127.0.0.1:$gp" "$images/$first" "$disk" > /dev/null
    measure "$format" "$name" first "$root"
    bench_start_glint "$bin" "$root" "$gp" "$sp" "${opts[@]}"
    $put "http://127.0.0.1:$gp" "$images/$second" "$disk" > /dev/null
    measure "$format" "$name" both "$root"
    rm -rf "$root"
  done
done

python3 - "$tsv" "$images/sizes.txt" <<'PY' | tee "$out/report.md"
import collections, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
r = collections.defaultdict(dict)
for f, pair, step, logical, stored, catalog, du in rows:
    r[(f, pair)][step] = (int(logical), int(stored), int(catalog), int(du) * 1024)
mib = lambda b: f"{b / 2**20:,.1f}"
print("| pair | format | first: stored MiB | both: stored MiB | both / first | catalog MiB | catalog MiB per GiB stored | du data MiB (both) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (f, pair), s in sorted(r.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    (l1, s1, c1, d1), (l2, s2, c2, d2) = s["first"], s["both"]
    per_gib = c2 / 2**20 / (s2 / 2**30) if s2 else 0
    print(f"| {pair} | {f} | {mib(s1)} | {mib(s2)} | {s2 / s1:.3f} | {mib(c2)} | {per_gib:.2f} | {mib(d2)} |")
PY
echo "results: $out" >&2
