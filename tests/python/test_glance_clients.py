"""The real OpenStack clients against Glint's Images API: the glanceclient and openstack CLI
round trips recorded against upstream Glance (tests/golden/roundtrip.py), sharing with
another project through the openstack CLI, and openstacksdk."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")


def need(tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed (tests/python/requirements-openstack.txt)")


@pytest.mark.parametrize("client", ["glance", "openstack"])
def test_cli_round_trip(glance, tmp_path, client):
    need(client)
    need("qemu-img")
    out = str(tmp_path / client)
    run = subprocess.run([sys.executable, os.path.join(GOLDEN, "roundtrip.py"), glance["endpoint"], out,
                          "--client", client], capture_output=True, text=True, timeout=600)
    print(run.stdout, run.stderr[-3000:])
    assert run.returncode == 0, open(out + ".md").read()[-6000:] if os.path.exists(out + ".md") else run.stderr


def osc(glance, token, *args, check=True):
    cmd = ["openstack", "--os-auth-type", "admin_token", "--os-endpoint", glance["endpoint"] + "/v2",
           "--os-token", token, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    if check:
        assert p.returncode == 0, (cmd, p.stderr[-2000:])
    return p


def glance_cli(glance, token, *args, check=True):
    cmd = ["glance", "--os-image-url", glance["endpoint"], "--os-auth-token", token, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    if check:
        assert p.returncode == 0, (cmd, p.stderr[-2000:])
    return p


def test_cli_share_accept_properties(glance, tmp_path):
    """Sharing: the member commands go through glanceclient, because `openstack image add
    project` and `image set --accept` look the projects up in Keystone, which noauth has
    not got (the Keystone-mode test covers them)."""
    need("openstack")
    need("glance")
    owner, other = "demo:demo", "alt_demo:alt_demo"
    src = tmp_path / "img.raw"
    data = os.urandom(2 * 1024 * 1024 + 5)
    src.write_bytes(data)
    img = json.loads(osc(glance, owner, "image", "create", "--file", str(src), "--disk-format", "raw",
                         "--container-format", "bare", "--shared", "--property", "os_distro=cirros",
                         "-f", "json", "shared-by-cli").stdout)
    iid = img["id"]
    assert img["checksum"] == hashlib.md5(data).hexdigest()
    osc(glance, owner, "image", "set", "--property", "hw_disk_bus=virtio", "--tag", "gold", iid)
    osc(glance, owner, "image", "unset", "--property", "os_distro", iid)
    shown = json.loads(osc(glance, owner, "image", "show", "-f", "json", iid).stdout)
    props = shown.get("properties") or {}
    assert props.get("hw_disk_bus") == "virtio" and "os_distro" not in props, shown
    assert "gold" in shown["tags"]
    # Share with the other project, which accepts; then it lists and downloads the image.
    glance_cli(glance, owner, "member-create", iid, "alt_demo")
    assert osc(glance, other, "image", "show", iid, check=False).returncode == 0, "a pending member may look"
    listed = json.loads(osc(glance, other, "image", "list", "-f", "json").stdout)
    assert iid not in [i["ID"] for i in listed], "pending: not in the member's list"
    glance_cli(glance, other, "member-update", iid, "alt_demo", "accepted")
    listed = json.loads(osc(glance, other, "image", "list", "--shared", "-f", "json").stdout)
    assert iid in [i["ID"] for i in listed]
    members = json.loads(osc(glance, owner, "image", "member", "list", "-f", "json", iid).stdout)
    assert [(m["Member ID"], m["Status"]) for m in members] == [("alt_demo", "accepted")], members
    out = tmp_path / "saved.raw"
    osc(glance, other, "image", "save", "--file", str(out), iid)
    assert hashlib.sha512(out.read_bytes()).hexdigest() == hashlib.sha512(data).hexdigest()
    glance_cli(glance, owner, "member-delete", iid, "alt_demo")
    assert osc(glance, other, "image", "show", iid, check=False).returncode != 0
    osc(glance, owner, "image", "delete", iid)


def test_openstacksdk(glance, tmp_path):
    openstack = pytest.importorskip("openstack")
    from keystoneauth1 import session, token_endpoint

    sess = session.Session(auth=token_endpoint.Token(glance["endpoint"], "demo:demo"))
    conn = openstack.connection.Connection(session=sess, image_endpoint_override=glance["endpoint"])
    data = os.urandom(1024 * 1024 + 11)
    src = tmp_path / "sdk.raw"
    src.write_bytes(data)
    img = conn.image.create_image(name="sdk", filename=str(src), disk_format="raw", container_format="bare",
                                  visibility="private", wait=True, validate_checksum=True)
    got = conn.image.get_image(img.id)
    assert got.status == "active" and got.checksum == hashlib.md5(data).hexdigest()
    assert got.hash_value == hashlib.sha512(data).hexdigest()
    assert conn.image.download_image(got).content == data
    conn.image.update_image(got, name="sdk-renamed", min_ram=64)
    assert conn.image.get_image(img.id).name == "sdk-renamed"
    names = [i.name for i in conn.image.images(visibility="private")]
    assert "sdk-renamed" in names
    conn.image.delete_image(got)
    assert conn.image.find_image(img.id) is None


def test_one_store_behind_both_apis(glance):
    """An S3 object becomes an image without a byte copy (import method glint-s3-object),
    and images are readable over S3 through the read-only `images` bucket."""
    import time
    import urllib.request

    import boto3
    import botocore
    import botocore.config

    ak, sk = glance["s3_key"]
    s3 = boto3.client("s3", endpoint_url=glance["s3_endpoint"], aws_access_key_id=ak, aws_secret_access_key=sk,
                      region_name="us-east-1")
    data = os.urandom(3 * 1024 * 1024 + 7)
    s3.create_bucket(Bucket="uploads")
    s3.put_object(Bucket="uploads", Key="disks/a.raw", Body=data)

    def api(method, path, body=None, token="demo:demo"):
        req = urllib.request.Request(glance["endpoint"] + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"X-Auth-Token": token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, None

    st, info = api("GET", "/v2/info/import")
    assert "glint-s3-object" in info["import-methods"]["value"]
    st, img = api("POST", "/v2/images", {"name": "from-s3", "disk_format": "raw", "container_format": "bare"})
    iid = img["id"]
    st, _ = api("POST", f"/v2/images/{iid}/import",
                {"method": {"name": "glint-s3-object", "uri": "s3://uploads/disks/a.raw"}})
    assert st == 202
    for _ in range(100):
        st, img = api("GET", f"/v2/images/{iid}")
        if img["status"] == "active":
            break
        time.sleep(0.1)
    assert img["status"] == "active" and img["checksum"] == hashlib.md5(data).hexdigest()
    assert img["os_hash_value"] == hashlib.sha512(data).hexdigest() and img["size"] == len(data)
    # Another project cannot import this project's object.
    st, other = api("POST", "/v2/images", {"disk_format": "raw", "container_format": "bare"}, "alt_demo:alt_demo")
    st, _ = api("POST", f"/v2/images/{other['id']}/import",
                {"method": {"name": "glint-s3-object", "uri": "s3://uploads/disks/a.raw"}}, "alt_demo:alt_demo")
    assert st == 400
    # The image over S3.
    got = s3.get_object(Bucket="images", Key=iid)
    assert got["Body"].read() == data and got["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    assert s3.get_object(Bucket="images", Key=iid, Range="bytes=5-14")["Body"].read() == data[5:15]
    # A presigned URL hands an image to a client that cannot sign (curl here; a hypervisor's
    # HTTP reader), ranges included.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "images", "Key": iid}, ExpiresIn=60)
    whole = subprocess.run(["curl", "-sf", url], capture_output=True, check=True).stdout
    assert whole == data
    part = subprocess.run(["curl", "-sf", "-r", "1048576-1048591", url], capture_output=True, check=True).stdout
    assert part == data[1048576:1048592]
    # HTTP readers probe the size with HEAD first: a presigned GET URL (SigV2 above, SigV4
    # here) answers it too.
    v4 = boto3.client("s3", endpoint_url=glance["s3_endpoint"], aws_access_key_id=ak, aws_secret_access_key=sk,
                      region_name="us-east-1", config=botocore.config.Config(signature_version="s3v4"))
    url4 = v4.generate_presigned_url("get_object", Params={"Bucket": "images", "Key": iid}, ExpiresIn=60)
    for u in (url, url4):
        head = subprocess.run(["curl", "-sfI", u], capture_output=True, check=True, text=True).stdout.lower()
        assert f"content-length: {len(data)}" in head and "accept-ranges: bytes" in head
    put = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data", "x", url4],
                         capture_output=True, text=True).stdout
    assert put == "403", "a presigned GET URL does not allow a PUT"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="images").get("Contents", [])]
    assert iid in keys
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="images", Key=iid, Body=b"x")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # A private image of another project is not in this project's view.
    st, hidden = api("POST", "/v2/images", {"disk_format": "raw", "container_format": "bare",
                                            "visibility": "private"}, "alt_demo:alt_demo")
    req = urllib.request.Request(glance["endpoint"] + f"/v2/images/{hidden['id']}/file", method="PUT", data=b"secret",
                                 headers={"X-Auth-Token": "alt_demo:alt_demo",
                                          "Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req).read()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="images", Key=hidden["id"])
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
    # Deleting the S3 object leaves the image intact (they share chunks by reference).
    s3.delete_object(Bucket="uploads", Key="disks/a.raw")
    assert s3.get_object(Bucket="images", Key=iid)["Body"].read() == data
