"""Starts the real Glint binary on a free loopback port with a fresh store for the session."""
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

AK, SK = "PYTESTACCESSKEY", "pytest-secret-key"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="session")
def glint():
    binary = os.environ["GLINT_BIN"]
    root = tempfile.mkdtemp(prefix="glint-pytest-")
    port = free_port()
    conf = os.path.join(root, "glance-api.conf")
    with open(conf, "w") as f:
        f.write(f"""[DEFAULT]
bind_host = 127.0.0.1
bind_port = 0
[glance_store]
filesystem_store_datadirs = {root}/data
[glint]
catalog_dir = {root}/catalog
s3_bind_host = 127.0.0.1
s3_bind_port = {port}
s3_domain = s3.localhost
s3_access_key = {AK}
s3_secret_key = {SK}
s3_bootstrap_project = pytest
""")
    log = open(os.path.join(root, "glint.log"), "w")
    env = dict(os.environ, RUST_LOG="warn")
    env.pop("GLINT_S3_ACCESS_KEY", None)
    env.pop("GLINT_S3_SECRET_KEY", None)
    proc = subprocess.Popen([binary, "--config", conf, "serve"], stdout=log, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint + "/", timeout=1)
        except urllib.error.HTTPError:
            break  # it answers (403 for an anonymous ListBuckets)
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("glint did not start; see " + log.name)
    yield {"endpoint": endpoint, "port": port, "root": root, "ak": AK, "sk": SK, "conf": conf}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def env(glint):
    e = dict(os.environ)
    e.update(AWS_ACCESS_KEY_ID=glint["ak"], AWS_SECRET_ACCESS_KEY=glint["sk"], AWS_DEFAULT_REGION="us-east-1")
    e.pop("AWS_PROFILE", None)
    return e
