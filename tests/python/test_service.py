"""Running under systemd: the unit files in etc/systemd pass `systemd-analyze verify`, and
the server speaks the notify protocol its unit's Type=notify relies on (READY=1 once every
listener accepts, STOPPING=1 when a stop begins), checked on a real $NOTIFY_SOCKET."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import free_port, write_conf

HERE = os.path.dirname(os.path.abspath(__file__))
UNITS = os.path.join(HERE, "..", "..", "etc", "systemd")


def test_unit_files_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    paths = []
    for name in sorted(os.listdir(UNITS)):
        text = open(os.path.join(UNITS, name)).read()
        # verify checks that ExecStart's binary exists: point it at the one under test.
        (tmp_path / name).write_text(text.replace("/usr/local/bin/glint", os.environ["GLINT_BIN"]))
        paths.append(str(tmp_path / name))
    assert {"glint.service", "glint-scrubber.service", "glint-scrubber.timer"} <= set(os.listdir(UNITS))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


def test_ready_and_stopping_on_the_notify_socket():
    root = tempfile.mkdtemp(prefix="glint-pytest-notify-")
    glance_port, s3_port = free_port(), free_port()
    conf = write_conf(root, {"DEFAULT": {"bind_port": glance_port}, "glint": {"s3_bind_port": s3_port}})
    sock_path = os.path.join(root, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(60)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, RUST_LOG="warn")
    log = open(os.path.join(root, "glint.log"), "w")
    proc = subprocess.Popen([os.environ["GLINT_BIN"], "--config", conf, "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        msg = sock.recv(4096).decode()
        lines = msg.splitlines()
        assert "READY=1" in lines, msg
        assert any(l.startswith("STATUS=serving the Images API") for l in lines), msg
        # Ready means ready: both APIs answer at once, no retry.
        with urllib.request.urlopen(f"http://127.0.0.1:{glance_port}/versions", timeout=5) as r:
            assert r.status == 200
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{s3_port}/", timeout=5)
        except urllib.error.HTTPError as e:
            assert e.code == 403  # anonymous ListBuckets: it answers
        proc.send_signal(signal.SIGTERM)
        msg = sock.recv(4096).decode()
        assert "STOPPING=1" in msg.splitlines(), msg
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
