"""Metadata definitions through the real clients: the openstack CLI (`openstack image metadef
…`), glanceclient (`glance md-…`) and openstacksdk, against Glint loaded with the standard
definitions of upstream Glance 33 (from the PyPI wheel scripts/test.sh downloads; never
committed here)."""
import json
import os

import pytest

from test_glance_clients import glance_cli, need, osc

ADMIN = "admin:admin"
MEMBER = "demo:demo"


@pytest.fixture(scope="module")
def loaded(glance):
    if not os.environ.get("GLINT_METADEFS_DIR"):
        pytest.skip("GLINT_METADEFS_DIR is not set (scripts/test.sh sets it from glance's wheel)")
    return glance


def test_openstack_cli_metadef_namespaces_and_objects(loaded):
    need("openstack")
    out = json.loads(osc(loaded, MEMBER, "image", "metadef", "namespace", "list", "-f", "json").stdout)
    names = {n["namespace"] for n in out}
    assert {"OS::Compute::Watchdog", "OS::Compute::CPUPinning"} <= names, names
    # Two standard namespaces have no visibility in their files: private, owned by "admin",
    # as upstream loads them (a member does not see them).
    assert "OS::Glance::CommonImageProperties" not in names
    shown = json.loads(osc(loaded, MEMBER, "image", "metadef", "namespace", "show", "OS::Compute::Watchdog",
                           "-f", "json").stdout)
    assert shown["namespace"] == "OS::Compute::Watchdog" and shown["protected"] in (True, "True")
    osc(loaded, ADMIN, "image", "metadef", "namespace", "create", "Glint::CLI", "--display-name", "From the CLI",
        "--public")
    shown = json.loads(osc(loaded, MEMBER, "image", "metadef", "namespace", "show", "Glint::CLI", "-f", "json").stdout)
    assert shown["display_name"] == "From the CLI" and shown["visibility"] == "public"
    # Members may read but not create.
    p = osc(loaded, MEMBER, "image", "metadef", "namespace", "create", "Glint::Nope", check=False)
    assert p.returncode != 0 and "403" in p.stderr
    osc(loaded, ADMIN, "image", "metadef", "object", "create", "--namespace", "Glint::CLI", "cpu")
    objs = json.loads(osc(loaded, MEMBER, "image", "metadef", "object", "list", "Glint::CLI", "-f", "json").stdout)
    assert [o["name"] for o in objs] == ["cpu"], objs
    osc(loaded, ADMIN, "image", "metadef", "namespace", "delete", "Glint::CLI")
    p = osc(loaded, MEMBER, "image", "metadef", "namespace", "show", "Glint::CLI", check=False)
    assert p.returncode != 0


def test_glanceclient_md_commands(loaded):
    need("glance")
    out = glance_cli(loaded, MEMBER, "md-namespace-list").stdout
    assert "OS::Compute::Watchdog" in out
    out = glance_cli(loaded, MEMBER, "md-resource-type-list").stdout
    assert "OS::Glance::Image" in out and "OS::Nova::Flavor" in out
    out = glance_cli(loaded, MEMBER, "md-namespace-show", "OS::Compute::Watchdog").stdout
    assert "watchdog_action" in out
    out = glance_cli(loaded, MEMBER, "md-namespace-resource-type-list", "OS::Compute::Watchdog").stdout
    assert "hw_" in out
    out = glance_cli(loaded, MEMBER, "md-property-list", "OS::Compute::Watchdog").stdout
    assert "watchdog_action" in out


def test_openstacksdk_metadefs(loaded):
    openstack = pytest.importorskip("openstack")
    from keystoneauth1 import session, token_endpoint

    def conn(token):
        sess = session.Session(auth=token_endpoint.Token(loaded["endpoint"], token))
        return openstack.connection.Connection(session=sess, image_endpoint_override=loaded["endpoint"])

    member, admin = conn(MEMBER), conn(ADMIN)
    names = {n.namespace for n in member.image.metadef_namespaces()}
    assert "OS::Compute::Watchdog" in names
    ns = member.image.get_metadef_namespace("OS::Compute::Watchdog")
    assert ns.display_name == "Watchdog Behavior"
    types = {t.name for t in member.image.metadef_resource_types()}
    assert "OS::Glance::Image" in types
    admin.image.create_metadef_namespace(namespace="Glint::SDK", visibility="private")
    admin.image.create_metadef_property("Glint::SDK", name="speed", type="integer", title="Speed")
    props = admin.image.metadef_properties("Glint::SDK")
    assert [p.name for p in props] == ["speed"]
    # Private: another project does not see it at all.
    assert "Glint::SDK" not in {n.namespace for n in member.image.metadef_namespaces()}
    admin.image.delete_metadef_namespace("Glint::SDK")


def test_golden_metadefs_per_persona(tmp_path):
    """tests/golden/golden_metadefs.py: 124 requests by four personas (schemas, every read,
    errors, a namespace's whole lifecycle) against a fresh Glint holding the standard
    definitions, compared with what upstream Glance 33 answered (golden-metadefs-noauth.jsonl):
    every status and every body identical apart from timestamps."""
    if not os.environ.get("GLINT_METADEFS_DIR"):
        pytest.skip("GLINT_METADEFS_DIR is not set (scripts/test.sh sets it from glance's wheel)")
    import subprocess
    import sys

    from conftest import free_port, start_glint

    port = free_port()
    proc, _, _ = start_glint({"DEFAULT": {"bind_port": port}, "glint": {"s3_bind_port": free_port()}},
                             port, "metadefs-golden")
    try:
        golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden")
        run = subprocess.run([sys.executable, os.path.join(golden, "golden_metadefs.py"),
                              f"http://127.0.0.1:{port}", str(tmp_path / "ours.jsonl"), "--compare",
                              os.path.join(golden, "golden-metadefs-noauth.jsonl")],
                             capture_output=True, text=True, timeout=300)
        print(run.stdout[-5000:], run.stderr[-2000:])
        assert run.returncode == 0, run.stdout[-3000:]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
