"""Cluster mode with one SeaweedFS volume server stopped: a SeaweedFS of separate processes
(master, two volume servers, filer, S3 gateway: scripts/seaweedfs.sh start-split) holds the
packs of Glint nodes sharing a PostgreSQL catalog. Objects written through node A are read
through node B (which has no local copy, so every byte comes from the object store) while
volume server 2 is down (SIGKILL): each read is byte-exact or fails cleanly (503
ServiceUnavailable before any byte, or a cut-off body; never wrong bytes), each write succeeds or fails with a
5xx. With the volume server back, every acknowledged object reads byte for byte through a
third node.

Runs when scripts/test.sh provides GLINT_TEST_CATALOG_URL and `weed` is on PATH."""
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import AK, SK, free_port, start_glint

HERE = os.path.dirname(os.path.abspath(__file__))
SEAWEEDFS = os.path.join(HERE, "..", "..", "scripts", "seaweedfs.sh")

pytestmark = pytest.mark.skipif(
    not (os.environ.get("GLINT_TEST_CATALOG_URL") and shutil.which("weed")),
    reason="needs GLINT_TEST_CATALOG_URL and weed on PATH (scripts/test.sh)")


@pytest.fixture(scope="module")
def split_seaweedfs():
    work = tempfile.mkdtemp(prefix="glint-swsplit-")
    env = dict(os.environ, WEED=shutil.which("weed"), PYTHON=shutil.which("python") or "python3")
    endpoint = subprocess.run(
        ["bash", SEAWEEDFS, "start-split", work, "0", "SPLITKEY", "split-secret", "packs"],
        env=env, check=True, capture_output=True, text=True).stdout.strip()
    yield work, endpoint, env
    subprocess.run(["bash", SEAWEEDFS, "stop", work], env=env)
    shutil.rmtree(work, ignore_errors=True)


def start_node(shared, name):
    s3_port, glance_port = free_port(), free_port()
    proc, _, _ = start_glint(dict(shared, **{
        "DEFAULT": {"bind_port": glance_port},
        "glint": {"s3_bind_port": s3_port, "s3_access_key": AK, "s3_secret_key": SK,
                  "s3_bootstrap_project": "pytest"},
    }), s3_port, name)
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{s3_port}", aws_access_key_id=AK,
        aws_secret_access_key=SK, region_name="us-east-1",
        # One attempt each: the test judges every answer itself.
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                      read_timeout=120))
    return proc, client


def read_outcome(s3, key, want):
    """'ok' (byte-exact), 'refused' (an S3 error, no bytes), or 'cut' (the body ended early);
    fails the test on wrong bytes."""
    try:
        body = s3.get_object(Bucket="vfault", Key=key)["Body"].read()
    except botocore.exceptions.ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        # The object store failing is transient: 503, which S3 clients retry.
        assert (status, e.response["Error"]["Code"]) == (503, "ServiceUnavailable"), \
            f"{key}: {status} {e.response['Error']}"
        return "refused"
    except (botocore.exceptions.ResponseStreamingError,
            botocore.exceptions.IncompleteReadError,
            botocore.exceptions.ConnectionClosedError):
        return "cut"
    assert hashlib.md5(body).hexdigest() == hashlib.md5(want).hexdigest(), f"{key}: wrong bytes"
    return "ok"


def test_a_stopped_volume_server_fails_reads_cleanly_and_loses_nothing(split_seaweedfs):
    work, endpoint, env = split_seaweedfs
    tag = "v_" + uuid.uuid4().hex[:16]
    admin = os.environ["GLINT_TEST_CATALOG_URL"]
    subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {tag}"], check=True)
    shared = {
        "database": {"connection": admin.rsplit("/", 1)[0] + "/" + tag},
        "chunk_store": {"endpoint": endpoint, "bucket": "packs", "access_key": "SPLITKEY",
                        "secret_key": "split-secret", "prefix": tag},
    }
    procs = []
    try:
        pa, a = start_node(shared, "vf-a")
        pb, b = start_node(shared, "vf-b")
        procs += [pa, pb]
        a.create_bucket(Bucket="vfault")
        blobs = {f"k{i:02}": os.urandom(200_000 + i * 37_000) for i in range(24)}
        for key, data in blobs.items():
            a.put_object(Bucket="vfault", Key=key, Body=data)

        subprocess.run(["bash", SEAWEEDFS, "volume", "stop", work, "2"], env=env, check=True)
        outcomes = {}
        t0 = time.monotonic()
        for key, data in blobs.items():
            outcomes[key] = read_outcome(b, key, data)
        read_secs = time.monotonic() - t0
        # Writes go on (on the live volume server) or fail with a 5xx; never half there.
        written = {}
        for i in range(8):
            key, data = f"w{i}", os.urandom(150_000 + i * 1000)
            try:
                b.put_object(Bucket="vfault", Key=key, Body=data)
                written[key] = data
            except botocore.exceptions.ClientError as e:
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503), key
        counts = {k: list(outcomes.values()).count(k) for k in ("ok", "refused", "cut")}
        print(f"volume server 2 down: reads {counts} in {read_secs:.1f} s; "
              f"writes {len(written)}/8 acknowledged")
        assert counts["refused"] + counts["cut"] > 0, \
            "no read touched the stopped volume server: the test proves nothing"
        assert counts["ok"] > 0, "reads of packs on the live volume server must go on"

        subprocess.run(["bash", SEAWEEDFS, "volume", "start", work, "2"], env=env, check=True)
        pc, c = start_node(shared, "vf-c")
        procs.append(pc)
        everything = dict(blobs, **written)
        deadline = time.monotonic() + 90
        for key, data in everything.items():
            while True:
                outcome = read_outcome(c, key, data)
                if outcome == "ok":
                    break
                # The volume server rejoins the master within its heartbeat interval.
                assert time.monotonic() < deadline, f"{key} unreadable after the restart"
                time.sleep(1)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=20)
