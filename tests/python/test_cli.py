"""The maintenance commands as an operator runs them (server stopped): `glint status` as a
table and as JSON, `glint scrub` / `glint gc` with their summaries and exit codes (fsck's:
0 clean, 4 problems left), on a store written by the real server through S3 and Glance."""
import json
import os
import re
import subprocess

import boto3
import pytest

from conftest import AK, SK, free_port, start_glint


def glint(conf, *args):
    return subprocess.run([os.environ["GLINT_BIN"], "--config", conf, *args], capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def stopped_store():
    if os.environ.get("GLINT_TEST_CATALOG_URL") or os.environ.get("GLINT_TEST_PACK_STORE"):
        pytest.skip("corrupts a local pack file: embedded store only")
    s3_port, glance_port = free_port(), free_port()
    proc, root, conf = start_glint({
        "DEFAULT": {"bind_port": glance_port},
        "glint": {"s3_bind_port": s3_port, "s3_access_key": AK, "s3_secret_key": SK,
                  "s3_bootstrap_project": "pytest"},
    }, s3_port, "cli")
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", aws_access_key_id=AK,
                      aws_secret_access_key=SK, region_name="us-east-1")
    s3.create_bucket(Bucket="cli")
    body = os.urandom(3 << 20)
    for i in range(3):
        s3.put_object(Bucket="cli", Key=f"copy{i}", Body=body)  # two of them deduplicated
    s3.put_object(Bucket="cli", Key="zeros", Body=bytes(8 << 20))  # a hole, not stored
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    return {"root": root, "conf": conf, "body": body}


def test_status_table_and_json(stopped_store):
    conf = stopped_store["conf"]
    p = glint(conf, "status")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for heading in ("DATA DIRECTORY", "CONTENTS", "SPACE", "logical / stored:"):
        assert heading in out, out
    assert re.search(r"^S3 objects +4$", out, re.M) and re.search(r"^blobs +4$", out, re.M), out
    p = glint(conf, "status", "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert (s["s3_buckets"], s["s3_objects"]) == (1, 4)
    assert s["logical_bytes"] == 3 * (3 << 20) + (8 << 20)
    assert s["zero_bytes"] == 8 << 20
    # Three copies of 3 MiB and 8 MiB of zeros cost about one copy on disk.
    assert s["stored_bytes"] < 4 << 20 and s["ratio"] > 4, s
    assert s["data_dirs"][0]["free_bytes"] > 0
    assert "RocksDB" in s["catalog"]


def test_scrub_clean_then_damaged_and_gc(stopped_store):
    conf, root = stopped_store["conf"], stopped_store["root"]
    p = glint(conf, "scrub")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "scrub: clean" in p.stdout and "CHECKED" in p.stdout and "FOUND" in p.stdout, p.stdout
    assert "\x1b[" not in p.stdout + p.stderr, "no terminal control characters off a terminal"
    report = json.loads(glint(conf, "scrub", "--json").stdout)
    assert report["clean"] and report["exit_code"] == 0 and report["bytes_verified"] >= 3 << 20

    g = glint(conf, "gc", "--grace-secs", "0", "--json")
    assert g.returncode == 0, g.stderr
    assert json.loads(g.stdout)["stored_bytes_after"] > 0
    g = glint(conf, "gc", "--grace-secs", "0")
    assert g.returncode == 0 and "gc:" in g.stdout and "freed" in g.stdout, g.stdout

    # Damage one byte of the pack holding the objects' data: scrub names what it belongs
    # to and exits 4 (problems left), as fsck does.
    packs = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "data")) for f in fs]
    pack = max(packs, key=os.path.getsize)
    with open(pack, "r+b") as f:
        f.seek(os.path.getsize(pack) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    p = glint(conf, "scrub")
    assert p.returncode == 4, p.stdout + p.stderr
    assert "DAMAGED DATA" in p.stdout and "cli/copy" in p.stdout, p.stdout
    report = json.loads(glint(conf, "scrub", "--json").stdout)
    assert report["corrupt_records"] >= 1 and not report["clean"] and report["exit_code"] == 4
