"""Differential test: replay upstream Glance 33's golden requests (tests/golden/golden.py)
against Glint and compare status codes and response shapes with what upstream answered
(tests/golden/golden-noauth.jsonl, and golden-multistore.jsonl with two stores). compare.py
passes when >= 95% of the cases are identical and every other one is listed, with its reason,
in tests/golden/allow-*.txt."""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")


def replay(server, tmp_path, transcript, allow, *extra):
    if not shutil.which("qemu-img"):
        pytest.skip("qemu-img is needed for the format-inspection cases")
    ours = str(tmp_path / "ours")
    run = subprocess.run(
        [sys.executable, os.path.join(GOLDEN, "golden.py"), server["endpoint"], ours,
         "--size-cap", str(server["size_cap"]), "--web-port", str(server["web_port"]), *extra],
        capture_output=True, text=True, timeout=600)
    print(run.stdout[-5000:], run.stderr[-3000:])
    assert os.path.exists(ours + ".jsonl"), "golden.py did not run"
    cmp = subprocess.run(
        [sys.executable, os.path.join(GOLDEN, "compare.py"), os.path.join(GOLDEN, transcript), ours,
         os.path.join(GOLDEN, allow)], capture_output=True, text=True)
    print(cmp.stdout)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr


def test_golden_noauth(glance, tmp_path):
    replay(glance, tmp_path, "golden-noauth", "allow-noauth.txt")


def test_golden_multistore(glance_multistore, tmp_path):
    """Two stores (fast, cheap): upload to a named store, copy-image, ?prefer=, delete from
    one store, /v2/info/stores[/detail]."""
    replay(glance_multistore, tmp_path, "golden-multistore", "allow-multistore.txt", "--multistore")
