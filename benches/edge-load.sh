#!/usr/bin/env bash
# Small-object throughput with and without hostile connections (issue 7): Glint (release) with
# 20 s header / keep-alive / socket timeouts; s3load's small-object phase (4 KiB PUTs and GETs,
# 16-way) runs ROUNDS times quietly, then ROUNDS times while benches/connhold.py holds IDLE
# idle and SLOW slow-header connections on each listener (S3 and the Images API), CYCLES
# times, then quietly once more. Prints the median ops/s of both, their ratio, and when the
# server closed the hostile connections.
#   ROUNDS (5)  CYCLES (2)  IDLE (5000)  SLOW (500)  TIMEOUT (20)
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$GLINT_ROOT"
rounds=${ROUNDS:-5} cycles=${CYCLES:-2} idle=${IDLE:-5000} slow=${SLOW:-500} timeout=${TIMEOUT:-20}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
load=$(bench_load_bin s3load)
AK=BENCHACCESSKEY SK=bench-secret-key-0000
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
root=$(mktemp -d "${GLINT_BENCH_DIR:-/tmp}/glint-edge.XXXX")
sp=$(port) gp=$(port)
cat > "$root/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $gp
client_socket_timeout = $timeout
[glance_store]
filesystem_store_datadirs = $root/data
[glint]
catalog_dir = $root/catalog
s3_bind_host = 127.0.0.1
s3_bind_port = $sp
s3_access_key = $AK
s3_secret_key = $SK
client_header_timeout = $timeout
keepalive_timeout = $timeout
max_connections = 8000
CONF
ulimit -n "$(ulimit -Hn)"
RUST_LOG=warn "$CARGO_TARGET_DIR/release/glint" --config "$root/glance-api.conf" serve > "$out/glint.log" 2>&1 &
gpid=$!
trap 'kill $gpid 2>/dev/null; rm -rf "$root"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$sp/" && break; sleep 0.1; done

small() { for _ in $(seq "$rounds"); do "$load" "http://127.0.0.1:$sp" "$AK" "$SK" bench put_4k_x16 get_4k_x16; done; }
# Quiet and flooded phases alternate (CYCLES times, then a last quiet phase) so that drift in
# this shared machine's speed falls on both sides alike.
: > "$out/quiet.txt"; : > "$out/flood.txt"; : > "$out/hold.txt"; : > "$out/fds.txt"
for cycle in $(seq "$cycles"); do
  small >> "$out/quiet.txt"
  echo "cycle $cycle, server RSS before the flood: $(awk '/VmRSS/{print $2}' /proc/$gpid/status) KiB" | tee -a "$out/fds.txt"
  python3 "$GLINT_ROOT/benches/connhold.py" "127.0.0.1:$sp,127.0.0.1:$gp" "$idle" "$slow" $((timeout * 2 + 10)) > "$out/hold.$cycle.txt" &
  hpid=$!
  until grep -q ready "$out/hold.$cycle.txt" 2>/dev/null; do sleep 0.2; done
  echo "cycle $cycle, during the flood: $(ls /proc/$gpid/fd | wc -l) server descriptors, RSS $(awk '/VmRSS/{print $2}' /proc/$gpid/status) KiB" | tee -a "$out/fds.txt"
  small >> "$out/flood.txt"
  wait $hpid
  cat "$out/hold.$cycle.txt" >> "$out/hold.txt"
done
small >> "$out/quiet.txt"
echo "server peak RSS: $(awk '/VmHWM/{print $2}' /proc/$gpid/status) KiB" | tee -a "$out/fds.txt"
python3 - "$out/quiet.txt" "$out/flood.txt" "$out/hold.txt" "$timeout" <<'PY'
import json, statistics, sys
def ops(path, name):
    return [float(dict(kv.split("=") for kv in l.split()[1:])["ops/s"])
            for l in open(path) if l.startswith(name + " ")]
print("| phase | quiet (median ops/s) | under the flood | ratio |")
print("| --- | --- | --- | --- |")
for name in ("put_4k_x16", "get_4k_x16"):
    qs, fs = ops(sys.argv[1], name), ops(sys.argv[2], name)
    q, f = statistics.median(qs), statistics.median(fs)
    print(f"| {name} | {q:,.0f} ({len(qs)} runs, {min(qs):,.0f}-{max(qs):,.0f}) | {f:,.0f} ({len(fs)} runs, {min(fs):,.0f}-{max(fs):,.0f}) | {f / q:.2f}x |")
print()
print(f"hostile connections (configured timeouts: {sys.argv[4]} s):")
for l in open(sys.argv[3]):
    if l.startswith("{"):
        d = json.loads(l)
        if "client_cpu_s" in d:
            print(f"  (the connection holder itself used {d['client_cpu_s']} s of CPU while holding them)")
            continue
        print(f"  {d['listener']} {d['kind']}: opened {d['opened']}, closed by the server {d['closed_by_server']}, after {d['close_after_s']}")
PY
