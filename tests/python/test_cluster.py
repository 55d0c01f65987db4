"""Three Glint nodes sharing one catalog in PostgreSQL and one pack store in SeaweedFS
(cluster mode), driven with boto3 and the Images API: what one node writes the others list
and read byte for byte, a delete through one is seen by the others at once, and a multipart
upload whose parts go to different nodes completes.

Runs when scripts/test.sh provides GLINT_TEST_CATALOG_URL and GLINT_TEST_PACK_STORE."""
import hashlib
import http.client
import json
import os
import subprocess
import threading
import time
import urllib.request
import uuid

import boto3
import pytest

from conftest import AK, SK, free_port, start_glint

pytestmark = pytest.mark.skipif(
    not (os.environ.get("GLINT_TEST_CATALOG_URL") and os.environ.get("GLINT_TEST_PACK_STORE")),
    reason="cluster mode needs GLINT_TEST_CATALOG_URL and GLINT_TEST_PACK_STORE (scripts/test.sh)")


@pytest.fixture(scope="module")
def nodes():
    tag = "c_" + uuid.uuid4().hex[:16]
    admin = os.environ["GLINT_TEST_CATALOG_URL"]
    subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {tag}"], check=True)
    shared = {
        "database": {"connection": admin.rsplit("/", 1)[0] + "/" + tag},
        "chunk_store": {
            "endpoint": os.environ["GLINT_TEST_PACK_STORE"],
            "bucket": os.environ.get("GLINT_TEST_PACK_BUCKET", "glint-test"),
            "access_key": os.environ.get("GLINT_TEST_PACK_ACCESS_KEY", "glint"),
            "secret_key": os.environ.get("GLINT_TEST_PACK_SECRET_KEY", "glint-secret"),
            "prefix": tag,
        },
    }
    started = []
    for i in range(3):
        s3_port, glance_port = free_port(), free_port()
        proc, root, _ = start_glint(dict(shared, **{
            "DEFAULT": {"bind_port": glance_port},
            "glint": {"s3_bind_port": s3_port, "s3_access_key": AK, "s3_secret_key": SK,
                      "s3_bootstrap_project": "pytest",
                      # Every node compacts soon after deletes: the cross-node pins are what
                      # keep that safe while the others write and read.
                      "compact_delay_secs": 1},
        }), s3_port, f"node{i}")
        started.append((proc, {
            "s3": boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}",
                               aws_access_key_id=AK, aws_secret_access_key=SK,
                               region_name="us-east-1"),
            "glance": f"http://127.0.0.1:{glance_port}",
            "glance_port": glance_port,
            "root": root,
            "proc": proc,
        }))
    nodes = [n for _, n in started]
    yield nodes
    for n in nodes:
        n["proc"].terminate()
        n["proc"].wait(timeout=10)


def glance(node, method, path, body=None, content_type="application/json"):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(node["glance"] + path, data=data, method=method, headers={
        "X-Auth-Token": "user:pytest:member", "Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def restart(node):
    """Starts a stopped (or killed) node again on its configuration; returns once it serves."""
    conf = os.path.join(node["root"], "glance-api.conf")
    log = open(os.path.join(node["root"], "glint-restart.log"), "a")
    node["proc"] = subprocess.Popen([os.environ["GLINT_BIN"], "--config", conf, "serve"],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, RUST_LOG="warn"))
    for _ in range(200):
        try:
            urllib.request.urlopen(node["glance"] + "/versions", timeout=5).read()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("the node did not come back")


def open_upload(node, image_id, length):
    """Starts `PUT /v2/images/{id}/file` of `length` bytes on `node`; the caller sends them."""
    conn = http.client.HTTPConnection("127.0.0.1", node["glance_port"], timeout=60)
    conn.putrequest("PUT", f"/v2/images/{image_id}/file")
    conn.putheader("X-Auth-Token", "user:pytest:member")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(length))
    conn.endheaders()
    return conn


def wait_saving(node, image_id):
    for _ in range(50):
        if json.loads(glance(node, "GET", f"/v2/images/{image_id}")[1])["status"] == "saving":
            return
        time.sleep(0.1)
    pytest.fail("the upload never started saving")


def test_objects_written_on_one_node_are_listed_and_read_on_the_others(nodes):
    a, b, c = nodes
    a["s3"].create_bucket(Bucket="shared")
    blobs = {f"k{i}": os.urandom(300_000 + i * 4097) for i in range(5)}
    for key, data in blobs.items():
        a["s3"].put_object(Bucket="shared", Key=key, Body=data)
    for n in (b, c):
        listed = [o["Key"] for o in n["s3"].list_objects_v2(Bucket="shared")["Contents"]]
        assert listed == sorted(blobs)
        for key, data in blobs.items():
            assert n["s3"].get_object(Bucket="shared", Key=key)["Body"].read() == data
        part = n["s3"].get_object(Bucket="shared", Key="k3", Range="bytes=1000-70999")
        assert part["Body"].read() == blobs["k3"][1000:71000]
    # A delete through B is seen by C at once.
    b["s3"].delete_object(Bucket="shared", Key="k0")
    with pytest.raises(c["s3"].exceptions.ClientError) as e:
        c["s3"].head_object(Bucket="shared", Key="k0")
    assert e.value.response["Error"]["Code"] == "404"
    assert [o["Key"] for o in a["s3"].list_objects_v2(Bucket="shared")["Contents"]] == \
        ["k1", "k2", "k3", "k4"]


def test_a_multipart_upload_across_nodes_completes(nodes):
    a, b, c = nodes
    a["s3"].create_bucket(Bucket="parts")
    up = a["s3"].create_multipart_upload(Bucket="parts", Key="big")["UploadId"]
    pieces = [os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(1 << 20)]
    etags = []
    for i, (n, data) in enumerate(zip((b, c, a), pieces), start=1):
        r = n["s3"].upload_part(Bucket="parts", Key="big", UploadId=up, PartNumber=i, Body=data)
        etags.append({"PartNumber": i, "ETag": r["ETag"]})
    listed = c["s3"].list_parts(Bucket="parts", Key="big", UploadId=up)["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, 2, 3]
    b["s3"].complete_multipart_upload(Bucket="parts", Key="big", UploadId=up,
                                      MultipartUpload={"Parts": etags})
    whole = b"".join(pieces)
    for n in nodes:
        assert n["s3"].get_object(Bucket="parts", Key="big")["Body"].read() == whole


def test_an_image_created_uploaded_and_read_on_different_nodes(nodes):
    a, b, c = nodes
    status, body = glance(a, "POST", "/v2/images",
                          {"name": "cluster", "disk_format": "raw", "container_format": "bare"})
    assert status == 201
    image = json.loads(body)
    data = os.urandom(3 << 20)
    status, _ = glance(b, "PUT", f"/v2/images/{image['id']}/file", data,
                       "application/octet-stream")
    assert status == 204
    status, got = glance(c, "GET", f"/v2/images/{image['id']}/file")
    assert status == 200 and got == data
    status, body = glance(a, "GET", f"/v2/images/{image['id']}")
    shown = json.loads(body)
    assert shown["status"] == "active"
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    status, _ = glance(c, "DELETE", f"/v2/images/{image['id']}")
    assert status == 204
    with pytest.raises(urllib.error.HTTPError) as e:
        glance(b, "GET", f"/v2/images/{image['id']}")
    assert e.value.code == 404


def test_a_node_restarting_leaves_another_nodes_upload_alone(nodes):
    """Start-up recovery must not roll back work in progress on other nodes: an upload
    streaming into node A while node B restarts completes, and reads back on C."""
    a, b, c = nodes
    status, body = glance(a, "POST", "/v2/images",
                          {"name": "slow", "disk_format": "raw", "container_format": "bare"})
    image = json.loads(body)
    data = os.urandom(4 << 20)
    result = {}

    def upload():
        conn = open_upload(a, image["id"], len(data))
        for i in range(0, len(data), 256 << 10):
            conn.send(data[i:i + (256 << 10)])
            time.sleep(0.2)
        result["status"] = conn.getresponse().status

    t = threading.Thread(target=upload)
    t.start()
    wait_saving(c, image["id"])
    # Node B restarts on the same configuration while A's upload is under way.
    b["proc"].terminate()
    b["proc"].wait(timeout=10)
    restart(b)
    assert json.loads(glance(b, "GET", f"/v2/images/{image['id']}")[1])["status"] == "saving"
    t.join(timeout=60)
    assert result.get("status") == 204
    status, got = glance(c, "GET", f"/v2/images/{image['id']}/file")
    assert status == 200 and got == data


def test_an_upload_whose_node_dies_is_rolled_back_by_the_others(nodes):
    """A node killed mid-upload leaves its image `saving`; the other nodes notice that its
    node is gone (its catalog session, and with it its liveness lock, died with it) and put
    the image back to `queued`, after which an upload through another node succeeds."""
    a, b, c = nodes
    status, body = glance(a, "POST", "/v2/images",
                          {"name": "orphan", "disk_format": "raw", "container_format": "bare"})
    image = json.loads(body)
    conn = open_upload(a, image["id"], 8 << 20)
    conn.send(os.urandom(1 << 20))
    wait_saving(b, image["id"])
    a["proc"].kill()
    a["proc"].wait(timeout=10)
    conn.close()
    # The reapers look every 10 s.
    for _ in range(300):
        shown = json.loads(glance(c, "GET", f"/v2/images/{image['id']}")[1])
        if shown["status"] == "queued":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the dead node's upload was never rolled back: {shown['status']}")
    assert shown["size"] is None and shown["checksum"] is None
    data = os.urandom(2 << 20)
    status, _ = glance(b, "PUT", f"/v2/images/{image['id']}/file", data,
                       "application/octet-stream")
    assert status == 204
    status, got = glance(c, "GET", f"/v2/images/{image['id']}/file")
    assert status == 200 and got == data
    restart(a)


def test_sigkill_of_nodes_mid_upload_loses_no_acknowledged_write(nodes):
    """20 rounds: writers stream objects into one node, which is SIGKILLed mid-way, then
    restarted. Every acknowledged object reads byte for byte through the other nodes; an
    unacknowledged one is either absent or whole, never half there. At the end, with every
    node stopped, `glint gc` clears what the killed writers left (their pins belong to dead
    nodes) and `glint scrub` finds the store clean with no pack left holding nothing live."""
    import random
    from botocore.config import Config
    nodes[0]["s3"].create_bucket(Bucket="faults")
    rng = random.Random(11)
    rounds = int(os.environ.get("GLINT_KILL_ROUNDS", "20"))
    total_acked = 0
    for rnd in range(rounds):
        victim = nodes[rnd % 3]
        reader = nodes[(rnd + 1) % 3]["s3"]
        sent, acked, lock, stop = {}, {}, threading.Lock(), threading.Event()
        endpoint = victim["s3"].meta.endpoint_url

        def writer(w):
            s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=AK,
                              aws_secret_access_key=SK, region_name="us-east-1",
                              config=Config(retries={"max_attempts": 1},
                                            connect_timeout=2, read_timeout=20))
            j = 0
            while not stop.is_set():
                key = f"r{rnd}/w{w}/{j}"
                data = os.urandom(rng.randrange(1, 3 << 20))
                with lock:
                    sent[key] = data
                try:
                    s3.put_object(Bucket="faults", Key=key, Body=data)
                except Exception:
                    return
                with lock:
                    acked[key] = data
                j += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 1.2))
        victim["proc"].kill()
        victim["proc"].wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        for key, data in acked.items():
            got = reader.get_object(Bucket="faults", Key=key)["Body"].read()
            assert got == data, f"round {rnd}: acknowledged {key} changed"
        for key in set(sent) - set(acked):
            try:
                got = reader.get_object(Bucket="faults", Key=key)["Body"].read()
            except reader.exceptions.NoSuchKey:
                continue
            assert got == sent[key], f"round {rnd}: unacknowledged {key} is half there"
        total_acked += len(acked)
        restart(victim)
    assert total_acked > rounds, f"too few writes were acknowledged: {total_acked}"

    for n in nodes:
        n["proc"].terminate()
        n["proc"].wait(timeout=10)
    conf = os.path.join(nodes[0]["root"], "glance-api.conf")
    gc = subprocess.run([os.environ["GLINT_BIN"], "--config", conf, "gc", "--grace-secs", "0"],
                        capture_output=True, text=True, timeout=300)
    assert gc.returncode == 0, gc.stderr
    scrub = subprocess.run([os.environ["GLINT_BIN"], "--config", conf, "scrub", "--json"],
                           capture_output=True, text=True, timeout=600)
    assert scrub.returncode == 0, scrub.stdout + scrub.stderr
    report = json.loads(scrub.stdout)
    assert report["clean"] and report["dead_packs"] == 0, report
    for n in nodes:
        restart(n)
