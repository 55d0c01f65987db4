#!/usr/bin/env bash
# Starts a real Keystone (PyPI keystone 30.0.0, SQLite, fernet tokens) on 127.0.0.1:PORT
# for the Keystone-mode tests, bootstrapped with admin/PASSWORD in project admin and the
# public endpoint http://127.0.0.1:PORT/v3. Prints that URL when Keystone answers.
#   tests/keystone/start.sh PORT DIR [PASSWORD]      (stop: kill "$(cat DIR/keystone.pid)")
# The venv is built once in ~/.cache/glint/keystone-venv (pip, ~1 min), pinned by
# constraints.txt (the set verified against upstream Glance 33 by ../shared/peers).
set -euo pipefail
port=$1 dir=$2 pass=${3:-secret}
here=$(cd "$(dirname "$0")" && pwd)
venv=${GLINT_CACHE_DIR:-$HOME/.cache/glint}/keystone-venv
if [ ! -x "$venv/bin/keystone-manage" ] || [ ! -x "$venv/bin/uwsgi" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q -c "$here/constraints.txt" keystone==30.0.0 pyuwsgi >&2
fi
mkdir -p "$dir/fernet" "$dir/credential"
cat > "$dir/keystone.conf" <<CONF
[DEFAULT]
log_file = $dir/keystone.log
[database]
connection = sqlite:///$dir/keystone.sqlite?timeout=30
[identity]
# Cheap password hashing: a test rig on shared cores, not a deployment.
password_hash_rounds = 4
[token]
provider = fernet
expiration = 86400
[fernet_tokens]
key_repository = $dir/fernet
[fernet_receipts]
key_repository = $dir/fernet
[credential]
key_repository = $dir/credential
CONF
km=("$venv/bin/keystone-manage" --config-file "$dir/keystone.conf")
if [ ! -s "$dir/keystone.sqlite" ]; then
  {
    "${km[@]}" db_sync
    "${km[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    "${km[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    "${km[@]}" bootstrap --bootstrap-password "$pass" \
      --bootstrap-admin-url "http://127.0.0.1:$port/v3" --bootstrap-public-url "http://127.0.0.1:$port/v3" \
      --bootstrap-internal-url "http://127.0.0.1:$port/v3" --bootstrap-region-id RegionOne
  } >> "$dir/manage.log" 2>&1 || { tail -n 20 "$dir/manage.log" >&2; exit 1; }
fi
cat > "$dir/uwsgi.ini" <<CONF
[uwsgi]
http-socket = 127.0.0.1:$port
module = keystone.wsgi.api:application
master = true
# One worker, one thread: SQLite takes one writer at a time.
processes = 1
threads = 1
lazy-apps = true
die-on-term = true
buffer-size = 65535
# uWSGI's http-socket does not keep connections alive: say so, or clients reuse dead ones.
add-header = Connection: close
env = OS_KEYSTONE_CONFIG_FILES=$dir/keystone.conf
CONF
OS_KEYSTONE_CONFIG_FILES="$dir/keystone.conf" setsid "$venv/bin/uwsgi" --ini "$dir/uwsgi.ini" \
  > "$dir/uwsgi.log" 2>&1 < /dev/null &
echo $! > "$dir/keystone.pid"
for _ in $(seq 1 180); do
  if curl -fsS "http://127.0.0.1:$port/v3" > /dev/null 2>&1; then
    echo "http://127.0.0.1:$port/v3"
    exit 0
  fi
  kill -0 "$(cat "$dir/keystone.pid")" 2>/dev/null || break
  sleep 0.5
done
tail -n 20 "$dir/uwsgi.log" >&2
exit 1
