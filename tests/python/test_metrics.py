"""Prometheus metrics on the admin listener: a scripted workload through S3 (boto3) and
the Images API, scraped before and after with the `prometheus_client` package's
OpenMetrics parser; each counter must have moved by exactly what the workload did."""
import json
import re
import os
import time
import urllib.request

import boto3
import botocore.config
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import AK, SK, free_port, start_glint


@pytest.fixture(scope="module")
def server():
    s3_port, glance_port, admin_port = free_port(), free_port(), free_port()
    proc, root, _ = start_glint({
        "DEFAULT": {"bind_port": glance_port},
        "glint": {"s3_bind_port": s3_port, "s3_access_key": AK, "s3_secret_key": SK,
                  "s3_bootstrap_project": "pytest", "admin_bind_port": admin_port},
    }, s3_port, "metrics")
    yield {"s3": f"http://127.0.0.1:{s3_port}", "glance": f"http://127.0.0.1:{glance_port}",
           "admin": f"http://127.0.0.1:{admin_port}"}
    proc.terminate()
    proc.wait(timeout=10)


def scrape(server):
    """{(sample name, frozenset(labels)): value} of one scrape, parsed as OpenMetrics."""
    with urllib.request.urlopen(server["admin"] + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def glance(server, method, path, body=None, content_type="application/json"):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(server["glance"] + path, data=data, method=method, headers={
        "X-Auth-Token": "user:pytest:member", "Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def test_counters_move_by_what_the_workload_did(server):
    s3 = boto3.client("s3", endpoint_url=server["s3"], aws_access_key_id=AK,
                      aws_secret_access_key=SK, region_name="us-east-1")
    s3.create_bucket(Bucket="metrics")
    before = scrape(server)
    body = os.urandom(100_000)
    for i in range(5):
        s3.put_object(Bucket="metrics", Key=f"k{i}", Body=body)
    for i in range(7):
        assert s3.get_object(Bucket="metrics", Key=f"k{i % 5}")["Body"].read() == body
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="metrics", Key="missing")
    _, created = glance(server, "POST", "/v2/images",
                        {"name": "m", "disk_format": "raw", "container_format": "bare"})
    image = json.loads(created)["id"]
    image_bytes = os.urandom(300_000)
    glance(server, "PUT", f"/v2/images/{image}/file", image_bytes, "application/octet-stream")
    assert glance(server, "GET", f"/v2/images/{image}/file")[1] == image_bytes
    zeros = bytes(4 << 20)
    s3.put_object(Bucket="metrics", Key="zeros", Body=zeros)
    after = scrape(server)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    req = "glint_http_requests_total"
    assert moved(req, api="s3", operation="PutObject", status="2xx") == 6  # 5 + the zeros
    assert moved(req, api="s3", operation="GetObject", status="2xx") == 7
    assert moved(req, api="s3", operation="GetObject", status="4xx") == 1
    assert moved(req, api="glance", operation="images.create", status="2xx") == 1
    assert moved(req, api="glance", operation="images.upload", status="2xx") == 1
    assert moved(req, api="glance", operation="images.download", status="2xx") == 1
    # Every GetObject is in its duration histogram; the bytes are the bodies, at least.
    assert moved("glint_http_request_duration_seconds_count", api="s3", operation="GetObject") == 8
    assert moved("glint_http_response_body_bytes_total", api="s3", operation="GetObject") >= 7 * len(body)
    assert moved("glint_http_response_body_bytes_total", api="glance",
                 operation="images.download") == len(image_bytes)
    assert moved("glint_http_request_body_bytes_total", api="s3") >= 5 * len(body)
    assert moved("glint_http_request_body_bytes_total", api="glance") >= len(image_bytes)
    # The scrape itself is in flight while it is answered; nothing else is.
    assert value(after, "glint_http_requests_in_flight", api="s3") == 0
    assert value(after, "process_open_fds") > 0
    assert value(after, "process_resident_memory_bytes") > 1 << 20
    assert value(after, "process_cpu_seconds_total") > 0
    # The engine: the first copy of `body` and the image are new chunks; the four later
    # copies of `body` are found stored; the zeros are holes; reads went through packs.
    engine = {k[0]: moved(k[0]) for k in after if k[0].startswith("glint_engine")}
    print(engine)
    assert moved("glint_engine_chunk_written_bytes_total") == len(body) + len(image_bytes)
    assert moved("glint_engine_dedup_bytes_total") == 4 * len(body)
    assert moved("glint_engine_zero_bytes_total") == len(zeros)
    assert moved("glint_engine_chunk_read_bytes_total") == 7 * len(body) + len(image_bytes)
    assert moved("glint_engine_corrupt_reads_total") == 0
    assert moved("glint_engine_catalog_transactions_total") >= 8
    assert moved("glint_engine_catalog_transaction_duration_seconds_count") == \
        moved("glint_engine_catalog_transactions_total")
    # Store totals: what clients stored vs what the disk holds for it (a catalog walk,
    # redone at a scrape once 100× the last walk's time has passed).
    want = 5 * len(body) + len(image_bytes) + len(zeros)
    for _ in range(100):
        if value(after, "glint_store_logical_bytes") >= want:
            break
        time.sleep(0.1)
        after = scrape(server)
    logical = value(after, "glint_store_logical_bytes")
    assert logical >= want
    assert value(after, "glint_images", status="active") == 1
    assert value(after, "glint_store_stored_bytes") < logical / 4


def test_the_admin_listener_answers_only_its_endpoints(server):
    with urllib.request.urlopen(server["admin"] + "/healthcheck", timeout=5) as r:
        assert r.read() == b"OK"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server["admin"] + "/v2/images", timeout=5)
    assert e.value.code == 404


def test_access_log_lines_carry_the_request_id_and_no_secret():
    s3_port, glance_port = free_port(), free_port()
    proc, root, _ = start_glint({
        "DEFAULT": {"bind_port": glance_port},
        "glint": {"s3_bind_port": s3_port, "s3_access_key": AK, "s3_secret_key": SK,
                  "s3_bootstrap_project": "pytest", "log_format": "json"},
    }, s3_port, "accesslog", rust_log="info")
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}",
                          aws_access_key_id=AK, aws_secret_access_key=SK, region_name="us-east-1",
                          config=botocore.config.Config(signature_version="s3v4"))
        s3.create_bucket(Bucket="logged")
        put = s3.put_object(Bucket="logged", Key="k", Body=b"x" * 1000)
        s3_id = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "logged", "Key": "k"})
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.read() == b"x" * 1000
        signature = url.split("X-Amz-Signature=")[1].split("&")[0]
        try:
            s3.get_object(Bucket="logged", Key="missing")
        except s3.exceptions.NoSuchKey as e:
            missing_id = e.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
        token = "someone:pytest:member"
        req = urllib.request.Request(f"http://127.0.0.1:{glance_port}/v2/images",
                                     headers={"X-Auth-Token": token})
        with urllib.request.urlopen(req, timeout=10) as r:
            glance_id = r.headers["x-openstack-request-id"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = open(os.path.join(root, "glint.log")).read()
    lines = [json.loads(l) for l in text.splitlines() if l.startswith("{")]
    access = [l["fields"] for l in lines if l.get("target") == "access"]
    by_id = {a["id"]: a for a in access}
    put_line = by_id[s3_id]
    assert (put_line["method"], put_line["path"], put_line["status"], put_line["project"],
            put_line["operation"]) == ("PUT", "/logged/k", 200, "pytest", "PutObject")
    get_line = [a for a in access if a["operation"] == "GetObject"][0]
    assert get_line["bytes"] == 1000 and get_line["path"] == "/logged/k"
    assert by_id[glance_id]["operation"] == "images.list"
    # A line logged inside a request (the refusal) carries the request's id in its span.
    refused = [l for l in lines if l.get("fields", {}).get("code") == "NoSuchKey"]
    assert refused and refused[0]["fields"]["message"] == "request refused", refused
    assert [l["span"]["id"] for l in refused] == [missing_id], refused
    assert by_id[missing_id]["status"] == 404
    assert by_id[glance_id]["project"] == "pytest"
    # No secret reaches the log: not the presigned signature, the token, or the secret key.
    for secret in (signature, token, SK):
        assert secret not in text


def test_text_log_lines_hold_one_line_each_and_carry_the_request_id():
    """The default text log: access lines in tracing's layout, and a client-chosen string in
    a logged refusal escaped, never written raw (a control character could end the line
    early or drive the operator's terminal)."""
    s3_port, glance_port = free_port(), free_port()
    proc, root, _ = start_glint({
        "DEFAULT": {"bind_port": glance_port},
        "glint": {"s3_bind_port": s3_port, "s3_access_key": AK, "s3_secret_key": SK,
                  "s3_bootstrap_project": "pytest"},
    }, s3_port, "textlog", rust_log="info")
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}",
                          aws_access_key_id=AK, aws_secret_access_key=SK, region_name="us-east-1")
        s3.create_bucket(Bucket="textlog")
        put = s3.put_object(Bucket="textlog", Key="k", Body=b"y" * 512)
        put_id = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
        # A tab is the one control character HTTP lets into a header value; the refusal
        # quotes the grantee type, so the log line holds what the client sent.
        with pytest.raises(s3.exceptions.ClientError) as refused:
            s3.put_bucket_acl(Bucket="textlog", GrantRead="evil\tgrantee=x")
        refused_id = refused.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    raw = open(os.path.join(root, "glint.log"), "rb").read()
    assert b"\t" not in raw and b"\x1b" not in raw
    lines = raw.decode().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    access = re.compile(
        stamp + r"  INFO access: request api=s3 method=PUT path=/textlog/k status=200 "
        r"bytes=0 secs=\d+\.\d{6} id=(\S+) project=pytest peer=127\.0\.0\.1:\d+ "
        r"operation=PutObject$")
    assert [m.group(1) for m in map(access.match, lines) if m] == [put_id], lines
    refusal = [l for l in lines if "request refused" in l and refused_id in l]
    assert len(refusal) == 1, lines
    assert re.match(stamp + r"  INFO s3\{id=" + refused_id + r"\}: glint::s3: ", refusal[0]), refusal
    assert "evil\\tgrantee" in refusal[0], refusal
    acl_line = [l for l in lines if f"id={refused_id} " in l and " access: " in l]
    assert len(acl_line) == 1 and " status=400 " in acl_line[0], lines
