#!/usr/bin/env bash
# Two Glint builds side by side on this machine (never at once: 2 cores), to show whether a
# change moved the numbers: for each build, ROUNDS times in alternation, s3load's scenarios
# (S3: 1 GiB PUT/GET, 8 concurrent GETs, 4 KiB objects 16-way, ranged GETs, listing) and an
# Images API round (1 GiB upload with curl -T, one download, 8 concurrent downloads).
# Prints each scenario's median per build and the ratio B / A (above 1: B is faster).
#   bash benches/ab.sh /path/to/glint-A /path/to/glint-B     ROUNDS (4)  SIZE_MIB (1024)
source "$(dirname "$0")/../scripts/env.sh"
cd "$GLINT_ROOT"
a=$1 b=$2
rounds=${ROUNDS:-4} size_mib=${SIZE_MIB:-1024}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
cargo bench -q --locked --bench s3load --no-run 2>/dev/null
load=$(ls -t "$CARGO_TARGET_DIR"/release/deps/s3load-* | grep -v '\.d$' | head -1)
AK=BENCHACCESSKEY SK=bench-secret-key-0000
# Two distinct free ports (asked for together, so they cannot be the same one).
ports() { python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))'; }
now() { date +%s.%N; }
data=$(mktemp "${GLINT_BENCH_DIR:-/tmp}/ab-image.XXXX")
head -c $((size_mib << 20)) /dev/urandom > "$data"; sync; cat "$data" > /dev/null

# One round against a fresh store of build $1; appends "scenario value unit" lines to $2.
round() {
  local bin=$1 file=$2 root sp gp pid tok="X-Auth-Token: demo:demo" id t0 t1 ep pids
  root=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/ab-glint.XXXX"); read -r sp gp < <(ports)
  cat > "$root/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $gp
image_size_cap = $(( (size_mib + 1) << 20 ))
[glance_store]
filesystem_store_datadirs = $root/data
[glint]
catalog_dir = $root/catalog
s3_bind_host = 127.0.0.1
s3_bind_port = $sp
s3_access_key = $AK
s3_secret_key = $SK
CONF
  RUST_LOG=warn "$bin" --config "$root/glance-api.conf" serve > "$root/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$gp/versions" -o /dev/null 2>/dev/null && break; sleep 0.1; done
  "$load" "http://127.0.0.1:$sp" "$AK" "$SK" bench | python3 -c '
import sys
for line in sys.stdin:
    name, *kv = line.split()
    d = dict(x.split("=") for x in kv)
    unit = "s" if name.startswith("list") else "ops/s" if ("4k" in name or "range" in name) else "MiB/s"
    print(name, d["secs" if unit == "s" else unit], unit)
' >> "$file"
  ep="http://127.0.0.1:$gp"
  id=$(curl -fsS -X POST "$ep/v2/images" -H "$tok" -H 'Content-Type: application/json' \
       -d '{"name":"ab","disk_format":"raw","container_format":"bare"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  t0=$(now); curl -fsS -X PUT "$ep/v2/images/$id/file" -H "$tok" -H 'Content-Type: application/octet-stream' -T "$data" -o /dev/null; t1=$(now)
  echo "glance_upload $(echo "$size_mib / ($t1 - $t0)" | bc -l) MiB/s" >> "$file"
  t0=$(now); curl -fsS "$ep/v2/images/$id/file" -H "$tok" -o /dev/null; t1=$(now)
  echo "glance_download $(echo "$size_mib / ($t1 - $t0)" | bc -l) MiB/s" >> "$file"
  t0=$(now)
  pids=()
  for _ in 1 2 3 4 5 6 7 8; do curl -fsS "$ep/v2/images/$id/file" -H "$tok" -o /dev/null & pids+=($!); done
  wait "${pids[@]}"  # not a bare wait: the server is a child too
  t1=$(now); echo "glance_download_x8 $(echo "8 * $size_mib / ($t1 - $t0)" | bc -l) MiB/s" >> "$file"
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$root"
}

: > "$out/a.txt"; : > "$out/b.txt"
# ABBA order: whichever build runs second in a round meets the first one's writeback (its
# 1 GiB objects freed, dirty pages still flushing) and measured up to 20 % slower on the
# small-request scenarios, so the order alternates and each build goes first half the time.
for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  if [ $((r % 2)) = 1 ]; then
    round "$a" "$out/a.txt"; round "$b" "$out/b.txt"
  else
    round "$b" "$out/b.txt"; round "$a" "$out/a.txt"
  fi
done
rm -f "$data"
python3 - "$out/a.txt" "$out/b.txt" <<'PY'
import statistics, sys
def load(p):
    d = {}
    for line in open(p):
        name, value, unit = line.split()
        d.setdefault(name, ([], unit))[0].append(float(value))
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
print("| scenario | A (median) | B (median) | B / A |")
print("| --- | --- | --- | --- |")
for name, (va, unit) in a.items():
    vb = b[name][0]
    ma, mb = statistics.median(va), statistics.median(vb)
    ratio = ma / mb if unit == "s" else mb / ma  # faster is above 1 either way
    print(f"| {name} ({unit}) | {ma:,.1f} | {mb:,.1f} | {ratio:.2f} |")
PY
