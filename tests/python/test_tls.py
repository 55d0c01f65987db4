"""TLS on every listener (`[DEFAULT] cert_file` / `key_file`): the real clients over https
with the test CA (curl --cacert, aws-cli --ca-bundle, boto3 verify=, openstack CLI
--os-cacert), plain HTTP refused on the TLS port, and a certificate renewed in place taken
up on SIGHUP without a restart."""
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import boto3
import pytest

from conftest import AK, SK, free_port, start_glint


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(cwd, name):
    """A server certificate for 127.0.0.1 / localhost signed by the test CA."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=localhost", cwd=cwd)
    with open(os.path.join(cwd, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=glint test CA", "-days", "2",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    issue(d, "one")
    issue(d, "two")
    shutil.copy(os.path.join(d, "one.crt"), os.path.join(d, "server.crt"))
    shutil.copy(os.path.join(d, "one.key"), os.path.join(d, "server.key"))
    s3_port, glance_port, admin_port = free_port(), free_port(), free_port()
    ca = os.path.join(d, "ca.crt")
    proc, root, _ = start_glint({
        "DEFAULT": {"bind_port": glance_port, "cert_file": os.path.join(d, "server.crt"),
                    "key_file": os.path.join(d, "server.key")},
        "glint": {"s3_bind_port": s3_port, "s3_access_key": AK, "s3_secret_key": SK,
                  "s3_bootstrap_project": "pytest", "admin_bind_port": admin_port},
    }, glance_port, "tls", rust_log="info", https_ca=ca)
    yield {"dir": d, "ca": ca, "proc": proc, "root": root, "s3": f"https://127.0.0.1:{s3_port}",
           "glance": f"https://127.0.0.1:{glance_port}", "admin": f"https://127.0.0.1:{admin_port}",
           "ports": (s3_port, glance_port, admin_port)}
    proc.terminate()
    proc.wait(timeout=10)


def curl(tls, *args):
    p = subprocess.run(["curl", "-sS", "--cacert", tls["ca"], "-o", "/dev/null", "-w", "%{http_code}",
                        *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout


def test_curl_on_every_listener(tls):
    assert curl(tls, tls["glance"] + "/versions") == (0, "200")
    assert curl(tls, tls["admin"] + "/metrics") == (0, "200")
    assert curl(tls, tls["s3"] + "/") == (0, "403")  # anonymous ListBuckets, over TLS
    # Without the CA the certificate is not trusted; plain HTTP on a TLS port gets no answer.
    p = subprocess.run(["curl", "-sS", tls["glance"] + "/versions"], capture_output=True, timeout=30)
    assert p.returncode == 60, p  # SSL certificate problem
    for port in tls["ports"]:
        p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and p.stdout in ("", "000"), p


def test_aws_cli_and_boto3(tls, tmp_path):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_PROFILE", None)
    aws = ["aws", "--endpoint-url", tls["s3"], "--ca-bundle", tls["ca"]]
    src = tmp_path / "src.bin"
    data = os.urandom(9 * 1024 * 1024 + 7)  # multipart with aws-cli's 8 MiB parts
    src.write_bytes(data)
    subprocess.run(aws + ["s3", "mb", "s3://tls"], env=env, check=True, capture_output=True)
    subprocess.run(aws + ["s3", "cp", str(src), "s3://tls/obj"], env=env, check=True, capture_output=True)
    subprocess.run(aws + ["s3", "cp", "s3://tls/obj", str(tmp_path / "back.bin")], env=env, check=True,
                   capture_output=True)
    assert (tmp_path / "back.bin").read_bytes() == data
    s3 = boto3.client("s3", endpoint_url=tls["s3"], verify=tls["ca"], aws_access_key_id=AK,
                      aws_secret_access_key=SK, region_name="us-east-1")
    put = s3.put_object(Bucket="tls", Key="small", Body=b"over tls")
    assert put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert s3.get_object(Bucket="tls", Key="small")["Body"].read() == b"over tls"
    got = s3.get_object(Bucket="tls", Key="obj", Range="bytes=100-199")["Body"].read()
    assert got == data[100:200]


def test_openstack_cli(tls, tmp_path):
    if not shutil.which("openstack"):
        pytest.skip("openstack is not installed (tests/python/requirements-openstack.txt)")
    osc = ["openstack", "--os-auth-type", "admin_token", "--os-endpoint", tls["glance"] + "/v2",
           "--os-token", "demo:demo", "--os-cacert", tls["ca"]]
    src = tmp_path / "img.raw"
    data = os.urandom(3 * 1024 * 1024 + 1)
    src.write_bytes(data)

    def run(*args):
        p = subprocess.run(osc + list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=120)
        assert p.returncode == 0, (args, p.stderr[-2000:])
        return p.stdout

    img = json.loads(run("image", "create", "--file", str(src), "--disk-format", "raw",
                         "--container-format", "bare", "-f", "json", "over-tls"))
    assert img["checksum"] == hashlib.md5(data).hexdigest()
    assert img["id"] in [i["ID"] for i in json.loads(run("image", "list", "-f", "json"))]
    run("image", "save", "--file", str(tmp_path / "back.raw"), img["id"])
    assert (tmp_path / "back.raw").read_bytes() == data
    # Without the CA the CLI refuses the server.
    p = subprocess.run([a for a in osc if a not in ("--os-cacert", tls["ca"])] + ["image", "list"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert p.returncode != 0 and "certificate" in p.stderr.lower(), p.stderr[-2000:]


def served_certificate(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_sighup_reloads_the_certificate(tls):
    d, glance_port = tls["dir"], tls["ports"][1]
    assert served_certificate(glance_port) == der(os.path.join(d, "one.crt"))
    # A renewal copied in halfway (certificate without its key) is refused: the old pair stays.
    shutil.copy(os.path.join(d, "two.crt"), os.path.join(d, "server.crt"))
    tls["proc"].send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert served_certificate(glance_port) == der(os.path.join(d, "one.crt"))
    shutil.copy(os.path.join(d, "two.key"), os.path.join(d, "server.key"))
    tls["proc"].send_signal(signal.SIGHUP)
    for _ in range(50):
        if served_certificate(glance_port) == der(os.path.join(d, "two.crt")):
            break
        time.sleep(0.1)
    for port in tls["ports"]:
        assert served_certificate(port) == der(os.path.join(d, "two.crt"))
    assert tls["proc"].poll() is None, "SIGHUP must not end the server"
    assert curl(tls, tls["glance"] + "/versions") == (0, "200")
    log = open(os.path.join(tls["root"], "glint.log")).read()
    assert "certificate not reloaded" in log and "certificate reloaded" in log
