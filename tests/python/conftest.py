"""Starts the real Glint binary on a free loopback port with a fresh store for the session."""
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest

AK, SK = "PYTESTACCESSKEY", "pytest-secret-key"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_conf(root, sections):
    """A glance-api.conf for a fresh store under root; sections = {section: {key: value}}."""
    conf = {
        "DEFAULT": {"bind_host": "127.0.0.1", "bind_port": 0},
        "glance_store": {"filesystem_store_datadirs": f"{root}/data"},
        "glint": {"catalog_dir": f"{root}/catalog", "s3_bind_host": "127.0.0.1", "s3_bind_port": 0},
    }
    for name, values in sections.items():
        conf.setdefault(name, {}).update(values)
    path = os.path.join(root, "glance-api.conf")
    with open(path, "w") as f:
        for name, values in conf.items():
            f.write(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    return path


def cluster_sections(sections, root):
    """With GLINT_TEST_CATALOG_URL (a PostgreSQL admin URL) and GLINT_TEST_PACK_STORE (an S3
    endpoint), the server runs as a cluster-mode node: its catalog in a database of its own,
    its packs in the object store under a prefix of its own."""
    sections = dict(sections)
    tag = "p_" + uuid.uuid4().hex[:16]
    admin = os.environ.get("GLINT_TEST_CATALOG_URL")
    if admin and "database" not in sections:
        subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {tag}"], check=True)
        sections["database"] = {"connection": admin.rsplit("/", 1)[0] + "/" + tag}
        # A catalog of its own: start-up recovery may roll back what it finds.
        sections["glint"] = dict(sections.get("glint", {}), only_node="true")
    endpoint = os.environ.get("GLINT_TEST_PACK_STORE")
    if endpoint and "chunk_store" not in sections:
        sections["chunk_store"] = {
            "endpoint": endpoint,
            "bucket": os.environ.get("GLINT_TEST_PACK_BUCKET", "glint-test"),
            "access_key": os.environ.get("GLINT_TEST_PACK_ACCESS_KEY", "glint"),
            "secret_key": os.environ.get("GLINT_TEST_PACK_SECRET_KEY", "glint-secret"),
            "prefix": tag,
        }
    return sections


def start_glint(sections, probe_port, name, rust_log="warn", https_ca=None):
    """Starts the real binary; waits until probe_port answers HTTP (HTTPS verified against
    https_ca when given). Returns (proc, root, conf)."""
    binary = os.environ["GLINT_BIN"]
    # GLINT_TEST_STORE_FORMAT=v1 runs the whole suite on the engine's format v1 (v2 is the default).
    if os.environ.get("GLINT_TEST_STORE_FORMAT"):
        sections = dict(sections)
        sections["glint"] = dict(sections.get("glint", {}),
                                 store_format=os.environ["GLINT_TEST_STORE_FORMAT"])
    root = tempfile.mkdtemp(prefix=f"glint-pytest-{name}-")
    sections = cluster_sections(sections, root)
    conf = write_conf(root, sections)
    log = open(os.path.join(root, "glint.log"), "w")
    env = dict(os.environ, RUST_LOG=rust_log)
    env.pop("GLINT_S3_ACCESS_KEY", None)
    env.pop("GLINT_S3_SECRET_KEY", None)
    # The standard metadata definitions (upstream's files from glance's wheel, which
    # scripts/test.sh downloads), loaded as an operator would before the first start.
    metadefs = os.environ.get("GLINT_METADEFS_DIR")
    if metadefs:
        subprocess.run([binary, "--config", conf, "metadefs", "load", metadefs], stdout=log,
                       stderr=subprocess.STDOUT, env=env, check=True)
    proc = subprocess.Popen([binary, "--config", conf, "serve"], stdout=log, stderr=subprocess.STDOUT, env=env)
    scheme, context = "http", None
    if https_ca:
        import ssl
        scheme, context = "https", ssl.create_default_context(cafile=https_ca)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{scheme}://127.0.0.1:{probe_port}/", timeout=1, context=context)
            break
        except urllib.error.HTTPError:
            break  # it answers (S3: 403 for an anonymous ListBuckets; Glance: 300)
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("glint did not start; see " + log.name)
    return proc, root, conf


@pytest.fixture(scope="session")
def glint():
    port = free_port()
    proc, root, conf = start_glint({"glint": {
        "s3_bind_port": port, "s3_domain": "s3.localhost", "s3_access_key": AK,
        "s3_secret_key": SK, "s3_bootstrap_project": "pytest"}}, port, "s3")
    yield {"endpoint": f"http://127.0.0.1:{port}", "port": port, "root": root, "ak": AK, "sk": SK,
           "conf": conf}
    proc.terminate()
    proc.wait(timeout=10)


#: The settings the golden transcripts were recorded with: a 16 MiB image_size_cap and a
#: web-download source on a loopback port the import filter allows.
GOLDEN_SIZE_CAP = 16777216


@pytest.fixture(scope="session")
def glance():
    port, web_port, s3_port = free_port(), free_port(), free_port()
    proc, root, conf = start_glint({
        "DEFAULT": {"bind_port": port, "image_size_cap": GOLDEN_SIZE_CAP},
        # An S3 key of project "demo" (the golden identities' member project), for the
        # images bucket and S3-object imports.
        "glint": {"s3_bind_port": s3_port, "s3_access_key": "DEMOACCESSKEY", "s3_secret_key": "demo-secret",
                  "s3_bootstrap_project": "demo"},
        "import_filtering_opts": {"allowed_hosts": "127.0.0.1", "allowed_ports": f"80,443,{web_port}"},
    }, port, "glance")
    yield {"endpoint": f"http://127.0.0.1:{port}", "port": port, "root": root, "conf": conf,
           "web_port": web_port, "size_cap": GOLDEN_SIZE_CAP, "s3_endpoint": f"http://127.0.0.1:{s3_port}",
           "s3_key": ("DEMOACCESSKEY", "demo-secret")}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def env(glint):
    e = dict(os.environ)
    e.update(AWS_ACCESS_KEY_ID=glint["ak"], AWS_SECRET_ACCESS_KEY=glint["sk"], AWS_DEFAULT_REGION="us-east-1")
    e.pop("AWS_PROFILE", None)
    return e


@pytest.fixture(scope="session")
def glance_multistore():
    """Two stores as the multistore transcripts were recorded with: fast (default), cheap."""
    port, web_port = free_port(), free_port()
    root = tempfile.mkdtemp(prefix="glint-pytest-ms-")
    proc, root, conf = start_glint({
        "DEFAULT": {"bind_port": port, "image_size_cap": GOLDEN_SIZE_CAP,
                    "enabled_backends": "cheap:file, fast:file"},
        "glance_store": {"default_backend": "fast"},
        "fast": {"filesystem_store_datadir": f"{root}/fast", "store_description": "default file store"},
        "cheap": {"filesystem_store_datadir": f"{root}/cheap", "store_description": "second file store"},
        "import_filtering_opts": {"allowed_hosts": "127.0.0.1", "allowed_ports": f"80,443,{web_port}"},
    }, port, "glance-ms")
    yield {"endpoint": f"http://127.0.0.1:{port}", "port": port, "root": root, "conf": conf,
           "web_port": web_port, "size_cap": GOLDEN_SIZE_CAP}
    proc.terminate()
    proc.wait(timeout=10)
