"""Real S3 clients against the real server: boto3, aws-cli, curl on presigned URLs, and s5cmd and
rclone where they install."""
import hashlib
import os
import shutil
import subprocess
import uuid

import boto3
import botocore
import pytest
from botocore.config import Config


def client(glint, **cfg):
    return boto3.client("s3", endpoint_url=glint["endpoint"], aws_access_key_id=glint["ak"],
                        aws_secret_access_key=glint["sk"], region_name="us-east-1", config=Config(**cfg))


def bucket_name():
    return "t-" + uuid.uuid4().hex[:20]


def aws(glint, env, *args, check=True):
    return subprocess.run(["aws", "--endpoint-url", glint["endpoint"], *args], env=env, check=check,
                          capture_output=True, text=True)


@pytest.mark.parametrize("sig", ["s3v4", "s3"])
def test_boto3_object_round_trip(glint, sig):
    s3 = client(glint, signature_version=sig)
    b = bucket_name()
    s3.create_bucket(Bucket=b)
    body = os.urandom(300_000)
    put = s3.put_object(Bucket=b, Key="dir/a b+c", Body=body, Metadata={"k": "v"}, ContentType="text/plain")
    assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    got = s3.get_object(Bucket=b, Key="dir/a b+c")
    assert got["Body"].read() == body and got["Metadata"] == {"k": "v"} and got["ContentType"] == "text/plain"
    assert s3.get_object(Bucket=b, Key="dir/a b+c", Range="bytes=10-19")["Body"].read() == body[10:20]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]]
    assert keys == ["dir/a b+c"]
    s3.delete_object(Bucket=b, Key="dir/a b+c")
    s3.delete_bucket(Bucket=b)


def test_boto3_checksums_and_errors(glint):
    s3 = client(glint)
    b = bucket_name()
    s3.create_bucket(Bucket=b)
    checked = []
    for algo in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
        try:
            r = s3.put_object(Bucket=b, Key=algo, Body=b"x" * 70_000, ChecksumAlgorithm=algo)
        except botocore.exceptions.ClientError:
            raise
        except Exception as e:  # botocore without awscrt cannot compute CRC32C / CRC64NVME
            print(f"client cannot compute {algo}: {e}")
            continue
        h = s3.head_object(Bucket=b, Key=algo, ChecksumMode="ENABLED")
        assert h["Checksum" + algo] == r["Checksum" + algo]
        checked.append(algo)
    assert {"CRC32", "SHA1", "SHA256"} <= set(checked)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=b, Key="missing")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket=b)
    assert e.value.response["Error"]["Code"] == "BucketNotEmpty"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_bucket_versioning(Bucket=b) if False else s3.get_bucket_lifecycle_configuration(Bucket=b)
    assert e.value.response["Error"]["Code"] == "NotImplemented"


def test_boto3_multipart_and_copy(glint):
    s3 = client(glint)
    b = bucket_name()
    s3.create_bucket(Bucket=b)
    parts = [os.urandom(5 << 20), os.urandom(5 << 20), b"end"]
    up = s3.create_multipart_upload(Bucket=b, Key="big")
    etags = [s3.upload_part(Bucket=b, Key="big", UploadId=up["UploadId"], PartNumber=i + 1, Body=p)["ETag"]
             for i, p in enumerate(parts)]
    listed = s3.list_parts(Bucket=b, Key="big", UploadId=up["UploadId"])["Parts"]
    assert [p["Size"] for p in listed] == [len(p) for p in parts]
    done = s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    assert done["ETag"].endswith('-3"')
    assert s3.get_object(Bucket=b, Key="big")["Body"].read() == b"".join(parts)
    s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "big"})
    assert s3.head_object(Bucket=b, Key="copy")["ContentLength"] == sum(map(len, parts))
    up2 = s3.create_multipart_upload(Bucket=b, Key="pc")
    r = s3.upload_part_copy(Bucket=b, Key="pc", UploadId=up2["UploadId"], PartNumber=1,
                            CopySource={"Bucket": b, "Key": "big"}, CopySourceRange="bytes=5-104")
    s3.complete_multipart_upload(Bucket=b, Key="pc", UploadId=up2["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=b, Key="pc")["Body"].read() == parts[0][5:105]
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in ["big", "copy", "pc"]], "Quiet": True})
    assert "Contents" not in s3.list_objects_v2(Bucket=b)


def test_aws_cli_high_level_commands(glint, env, tmp_path):
    b = bucket_name()
    aws(glint, env, "s3", "mb", f"s3://{b}")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(os.urandom(70 << 20))  # > 64 MiB: a multipart upload
    aws(glint, env, "s3", "cp", str(big), f"s3://{b}/big.bin")
    aws(glint, env, "s3", "cp", f"s3://{b}/big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        (src / "sub" / f"f{i}.txt").write_text(f"file {i}\n")
    aws(glint, env, "s3", "sync", str(src), f"s3://{b}/tree")
    ls = aws(glint, env, "s3", "ls", f"s3://{b}/tree/sub/").stdout
    assert all(f"f{i}.txt" in ls for i in range(5))
    head = aws(glint, env, "s3api", "head-object", "--bucket", b, "--key", "big.bin").stdout
    assert '"ContentLength": %d' % (70 << 20) in head
    url = aws(glint, env, "s3", "presign", f"s3://{b}/tree/sub/f3.txt", "--expires-in", "60").stdout.strip()
    assert subprocess.run(["curl", "-sf", url], capture_output=True, text=True, check=True).stdout == "file 3\n"
    assert subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url.replace("Signature=", "Signature=x")],
                          capture_output=True, text=True).stdout == "403"
    aws(glint, env, "s3", "rm", "--recursive", f"s3://{b}")
    aws(glint, env, "s3", "rb", f"s3://{b}")
    assert b not in aws(glint, env, "s3", "ls").stdout


def test_boto3_presigned_v4_with_curl(glint):
    s3 = client(glint)
    b = bucket_name()
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="p", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "p"}, ExpiresIn=60)
    assert subprocess.run(["curl", "-sf", url], capture_output=True, check=True).stdout == b"presigned"
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "q"}, ExpiresIn=60)
    # No Content-Type: the URL was signed without one.
    subprocess.run(["curl", "-sf", "-X", "PUT", "-H", "Content-Type:", "--data-binary", "uploaded", put_url], check=True)
    assert s3.get_object(Bucket=b, Key="q")["Body"].read() == b"uploaded"


def test_s5cmd(glint, env, tmp_path):
    exe = shutil.which("s5cmd")
    if not exe:
        pytest.skip("s5cmd did not install")
    b = bucket_name()
    client(glint).create_bucket(Bucket=b)
    f = tmp_path / "s5.bin"
    f.write_bytes(os.urandom(3 << 20))
    base = [exe, "--endpoint-url", glint["endpoint"]]
    subprocess.run(base + ["cp", str(f), f"s3://{b}/s5.bin"], env=env, check=True, capture_output=True)
    subprocess.run(base + ["cp", f"s3://{b}/s5.bin", str(tmp_path / "s5.back")], env=env, check=True, capture_output=True)
    assert (tmp_path / "s5.back").read_bytes() == f.read_bytes()
    out = subprocess.run(base + ["ls", f"s3://{b}/"], env=env, check=True, capture_output=True, text=True).stdout
    assert "s5.bin" in out


def test_rclone(glint, tmp_path):
    exe = shutil.which("rclone")
    if not exe:
        pytest.skip("rclone did not install")
    b = bucket_name()
    client(glint).create_bucket(Bucket=b)
    src = tmp_path / "rc"
    src.mkdir()
    for i in range(3):
        (src / f"r{i}").write_bytes(os.urandom(100_000 + i))
    env = dict(os.environ, RCLONE_S3_PROVIDER="Other", RCLONE_S3_ACCESS_KEY_ID=glint["ak"],
               RCLONE_S3_SECRET_ACCESS_KEY=glint["sk"], RCLONE_S3_ENDPOINT=glint["endpoint"],
               RCLONE_S3_REGION="us-east-1", RCLONE_CONFIG="/dev/null")
    remote = f":s3:{b}/rc"
    for cmd in (["copy", str(src), remote], ["check", str(src), remote]):
        r = subprocess.run([exe, *cmd], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
