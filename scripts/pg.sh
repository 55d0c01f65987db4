#!/usr/bin/env bash
# A throwaway PostgreSQL (Debian's `postgresql` package) for tests and the local cluster:
#   scripts/pg.sh start DIR [PORT]   initialise DIR if new, start, print the admin URL
#   scripts/pg.sh stop DIR
# The server runs as a non-root user (PostgreSQL refuses root): the current user, or the
# package's `postgres` user when run as root. Trust authentication on 127.0.0.1 only.
set -euo pipefail
cmd=${1:?start|stop} dir=${2:?data directory} port=${3:-0}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing postgresql (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  else
    echo "please install PostgreSQL (Debian: apt-get install postgresql)" >&2; exit 1
  fi
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir" -U glint -A trust -E UTF8 --no-locale >/dev/null
    fi
    if [ "$port" = 0 ]; then
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    fi
    # Sockets in the data directory (not /var/run/postgresql, which may not exist).
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=300" start >/dev/null
    echo "postgresql://glint@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -f "$dir/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    ;;
  *) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac
