#!/usr/bin/env bash
# Side-by-side Images API load test: Glint and upstream Glance 33 (../shared/peers/glance-ref,
# uWSGI + file store, noauth) on this machine, one after the other (never at once: 2 cores).
# Each server gets: create + upload of one image of SIZE_MIB random bytes (curl -T, so the
# client never hashes), a full download, and 8 concurrent downloads of that image; then the
# ratio Glint / upstream and each server's peak RSS (VmHWM, summed over its processes).
#   SIZE_MIB=1024  ROUNDS=3  PEERS=/path/to/shared/peers (default ../shared/peers)
#   HASHING_ALGORITHM=sha256: both servers compute that multihash instead of sha512
source "$(dirname "$0")/../scripts/env.sh"
cd "$GLINT_ROOT"
peers=${PEERS:-$GLINT_ROOT/../shared/peers}
size_mib=${SIZE_MIB:-1024}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
cargo build -q --release --locked --bin glint
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
data=$(mktemp "${GLINT_BENCH_DIR:-/tmp}/glance-bench.XXXX")
head -c $((size_mib << 20)) /dev/urandom > "$data"
sync # the new file's writeback must not compete with the servers' own writes
cat "$data" > /dev/null # into the page cache: both servers read the same warm file

now() { date +%s.%N; }
rss_of() { local t=0 r; for p in "$@"; do r=$(awk '/VmHWM/{print $2}' /proc/$p/status 2>/dev/null || echo 0); t=$((t + r)); done; echo $t; }

# Runs the scenarios against $1 (endpoint) ROUNDS times; prints "name seconds" lines (the
# report takes each scenario's median: single runs on this shared box move by +-15 %).
drive() {
  local r
  for r in $(seq "${ROUNDS:-3}"); do drive_once "$1"; done
}
drive_once() {
  local ep=$1 tok="X-Auth-Token: demo:demo" id t0 t1
  id=$(curl -fsS -X POST "$ep/v2/images" -H "$tok" -H 'Content-Type: application/json' \
       -d '{"name":"bench","disk_format":"raw","container_format":"bare"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  t0=$(now)
  curl -fsS -X PUT "$ep/v2/images/$id/file" -H "$tok" -H 'Content-Type: application/octet-stream' -T "$data" -o /dev/null
  t1=$(now); echo "upload $(echo "$t1 - $t0" | bc)"
  t0=$(now)
  curl -fsS "$ep/v2/images/$id/file" -H "$tok" -o /dev/null
  t1=$(now); echo "download $(echo "$t1 - $t0" | bc)"
  t0=$(now)
  for _ in 1 2 3 4 5 6 7 8; do curl -fsS "$ep/v2/images/$id/file" -H "$tok" -o /dev/null & done
  wait
  t1=$(now); echo "download8 $(echo "$t1 - $t0" | bc)"
  curl -fsS -X DELETE "$ep/v2/images/$id" -H "$tok" -o /dev/null
}

# Glint (release build, noauth)
root=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/glint-gbench.XXXX")
gp=$(port)
cat > "$root/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $gp
hashing_algorithm = ${HASHING_ALGORITHM:-sha512}
[glance_store]
filesystem_store_datadirs = $root/data
[glint]
catalog_dir = $root/catalog
s3_bind_host = 127.0.0.1
s3_bind_port = 0
CONF
RUST_LOG=warn "$CARGO_TARGET_DIR/release/glint" --config "$root/glance-api.conf" serve > "$out/glint.log" 2>&1 &
gpid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$gp/versions" -o /dev/null 2>&1 && break; sleep 0.1; done
drive "http://127.0.0.1:$gp" | tee "$out/glint.txt"
echo "rss_kib $(rss_of $gpid)" | tee -a "$out/glint.txt"
kill $gpid; wait $gpid 2>/dev/null || true
rm -rf "$root"

# Upstream Glance 33 (its start.sh installs it into a venv the first time: ~2 min)
up=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/glance-ref.XXXX")
uport=$(port)
printf '[DEFAULT]\nhashing_algorithm = %s\n' "${HASHING_ALGORITHM:-sha512}" > "$out/upstream-extra.conf"
ep=$(GLANCE_REF_EXTRA_CONF="$out/upstream-extra.conf" GLANCE_REF_IMAGE_SIZE_CAP=$(( (size_mib + 1) << 20 )) bash "$peers/glance-ref/start.sh" "$uport" "$up" 2>"$out/glance-ref-start.log")
upids=$(cat "$up"/*.pid 2>/dev/null)
drive "$ep" | tee "$out/upstream.txt"
all=$upids; for p in $upids; do all="$all $(pgrep -P "$p" | tr '\n' ' ')"; done
echo "rss_kib $(rss_of $all)" | tee -a "$out/upstream.txt"
bash "$peers/glance-ref/stop.sh" "$up" >/dev/null 2>&1 || true
rm -rf "$up" "$data"

python3 - "$out/glint.txt" "$out/upstream.txt" "$size_mib" <<'PY'
import sys
import statistics
def load(p):
    runs = {}
    for l in open(p):
        if l.strip():
            runs.setdefault(l.split()[0], []).append(float(l.split()[1]))
    return {k: statistics.median(v) for k, v in runs.items()}
g, u, mib = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
print("\n| scenario | Glint | upstream Glance 33 | Glint / upstream |\n|---|---|---|---|")
for key, label, n in (("upload", "upload %d MiB (PUT /file)" % mib, 1),
                      ("download", "download %d MiB (GET /file)" % mib, 1),
                      ("download8", "8 concurrent downloads of it", 8)):
    rg, ru = n * mib / g[key], n * mib / u[key]
    print("| %s | %.0f MiB/s | %.0f MiB/s | **%.2f×** |" % (label, rg, ru, rg / ru))
print("| peak RSS over the run | %.0f MiB | %.0f MiB | |" % (g["rss_kib"] / 1024, u["rss_kib"] / 1024))
PY
