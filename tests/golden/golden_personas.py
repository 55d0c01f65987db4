#!/usr/bin/env python3
"""Golden cases per persona with real Keystone tokens: project admin, member, reader, another
project's member, and a system-scoped admin, over images, members, tags, the cache API and
metadata definitions.

Usage: golden_personas.py ENDPOINT KEYSTONE_V3_URL OUT.jsonl [--compare GOLDEN.jsonl]

Keystone must hold the users ../shared/peers/glance-ref/start.sh (and tests/keystone) create:
admin (admin of project admin, and of the system), demo and alt_demo (members of their own
projects), demo_reader (reader in demo), password "secret". The image service must have two
stores and the cache API enabled, as the Keystone golden transcript was recorded.

A record holds the case, the persona, the status and the JSON body with ids, timestamps and
project ids replaced; --compare passes when every status and every body is identical (but
the few bodies BODY_ALLOWED names, with reasons), and prints each difference otherwise.
"""
import http.client
import json
import sys
import urllib.parse

PASSWORD = "secret"
PERSONAS = {
    "admin": ("admin", {"project": {"name": "admin", "domain": {"id": "default"}}}),
    "member": ("demo", {"project": {"name": "demo", "domain": {"id": "default"}}}),
    "reader": ("demo_reader", {"project": {"name": "demo", "domain": {"id": "default"}}}),
    "other": ("alt_demo", {"project": {"name": "alt_demo", "domain": {"id": "default"}}}),
    "system": ("admin", {"system": {"all": True}}),
}
PATCH = "application/openstack-images-v2.1-json-patch"


def request(url, method, path, token=None, body=None, ctype="application/json", raw=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    h = {"Content-Type": ctype}
    if token:
        h["X-Auth-Token"] = token
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    c.request(method, u.path.rstrip("/") + path, data, h)
    r = c.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    c.close()
    return out


def tokens(keystone):
    """Each persona's token, and its project id (None for the system scope)."""
    out, projects = {}, {}
    for who, (user, scope) in PERSONAS.items():
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": PASSWORD}}}, "scope": scope}}
        st, h, b = request(keystone, "POST", "/auth/tokens", body=body)
        assert st == 201, (who, st)
        out[who] = h.get("X-Subject-Token") or h.get("x-subject-token")
        projects[who] = json.loads(b)["token"].get("project", {}).get("id")
    return out, projects


def steps(image_of):
    """(persona, method, path, body, content type) per case; `image_of(kind)` names an image."""
    for who in PERSONAS:
        pub, shared, private = image_of("public"), image_of("shared"), image_of("private")
        yield who, "GET", "/v2/images?limit=1000&visibility=public", None, None
        yield who, "POST", "/v2/images", {"name": "p-" + who, "visibility": "private"}, None
        for img in (pub, shared, private):
            yield who, "GET", f"/v2/images/{img}", None, None
            yield who, "GET", f"/v2/images/{img}/members", None, None
            yield who, "GET", f"/v2/images/{img}/file", None, None
            yield who, "PATCH", f"/v2/images/{img}", [{"op": "add", "path": "/x_" + who, "value": "1"}], PATCH
            yield who, "PUT", f"/v2/images/{img}/tags/t-{who}", None, None
            yield who, "DELETE", f"/v2/images/{img}/tags/t-{who}", None, None
            yield who, "POST", f"/v2/images/{img}/actions/deactivate", None, None
            yield who, "POST", f"/v2/images/{img}/actions/reactivate", None, None
            yield who, "PUT", f"/v2/cache/{img}", None, None
            yield who, "DELETE", f"/v2/cache/{img}", None, None
        yield who, "POST", f"/v2/images/{shared}/members", {"member": "someone"}, None
        yield who, "GET", f"/v2/images/{shared}/members/someone", None, None
        yield who, "PUT", f"/v2/images/{shared}/members/someone", {"status": "accepted"}, None
        yield who, "DELETE", f"/v2/images/{shared}/members/someone", None, None
        yield who, "GET", "/v2/cache", None, None
        yield who, "GET", "/v2/tasks", None, None
        yield who, "GET", "/v2/info/import", None, None
        yield who, "GET", "/v2/info/stores", None, None
        yield who, "GET", "/v2/info/stores/detail", None, None
        yield who, "GET", "/v2/metadefs/namespaces?limit=100", None, None
        yield who, "GET", "/v2/metadefs/resource_types", None, None
        yield who, "GET", "/v2/metadefs/namespaces/OS::Compute::Watchdog", None, None
        yield who, "GET", "/v2/metadefs/namespaces/OS::Glance::CommonImageProperties", None, None
        yield who, "POST", "/v2/metadefs/namespaces", {"namespace": "Persona::" + who}, None
        yield who, "DELETE", "/v2/metadefs/namespaces/Persona::" + who, None, None


def strip(v, ids):
    if isinstance(v, dict):
        return {k: strip(x, ids) for k, x in v.items()
                if k not in ("created_at", "updated_at", "id", "file", "self", "owner", "checksum",
                             "os_hash_value", "member_id", "image_id")}
    if isinstance(v, list):
        items = [strip(x, ids) for x in v]
        if all(isinstance(x, dict) for x in items):
            items.sort(key=lambda x: json.dumps(x, sort_keys=True))
        return items
    if isinstance(v, str):
        for real, alias in ids.items():
            v = v.replace(real, alias)
    return v


def run(endpoint, keystone, out):
    tok, projects = tokens(keystone)
    ids = {p: "<project:" + w + ">" for w, p in projects.items() if p}
    made = {}
    # Three active images owned by the admin's project, one per visibility.
    for vis in ("public", "shared", "private"):
        st, _, b = request(endpoint, "POST", "/v2/images", tok["admin"],
                           {"name": "persona-" + vis, "visibility": vis, "disk_format": "raw",
                            "container_format": "bare"})
        assert st == 201, (vis, st, b)
        img = json.loads(b)["id"]
        made[vis] = img
        ids[img] = "<" + vis + ">"
        st, _, _ = request(endpoint, "PUT", f"/v2/images/{img}/file", tok["admin"], raw=b"persona" * 100,
                           ctype="application/octet-stream")
        assert st == 204, st
    # The member persona's project is an accepted member of the shared image.
    st, _, _ = request(endpoint, "POST", f"/v2/images/{made['shared']}/members", tok["admin"],
                       {"member": projects["member"]})
    assert st == 200, st
    st, _, _ = request(endpoint, "PUT", f"/v2/images/{made['shared']}/members/{projects['member']}",
                       tok["member"], {"status": "accepted"})
    assert st == 200, st
    records = []
    created = []
    for n, (who, method, path, body, ctype) in enumerate(steps(made.__getitem__)):
        st, _, b = request(endpoint, method, path, tok[who], body, ctype or "application/json")
        try:
            doc = json.loads(b) if b else None
        except ValueError:
            doc = None
        if method == "POST" and path == "/v2/images" and st == 201:
            created.append(doc["id"])
        if isinstance(doc, dict) and isinstance(doc.get("images"), list):
            # Only this run's images: a server shared with other tests holds more.
            doc["images"] = [i for i in doc["images"] if str(i.get("name", "")).startswith(("persona-", "p-"))]
        records.append({"n": n, "who": who, "method": method, "path": strip(path, ids), "status": st,
                        "body": strip(doc, ids) if isinstance(doc, (dict, list)) else None})
    for img in created + list(made.values()):
        request(endpoint, "DELETE", f"/v2/images/{img}", tok["admin"])
    with open(out, "w") as f:
        for rec in records:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
    return records


#: Bodies that differ on purpose, by path, with the reason (statuses must still match).
BODY_ALLOWED = {
    "/v2/info/import": "Glint adds its own import method, glint-s3-object",
    "/v2/info/stores/detail": "store properties are deployment facts (data_dir, chunk_size)",
    "/v2/cache": "Glint keeps no API-node cache: its listing is always empty",
    "/v2/tasks": "data-dependent: the tasks of imports earlier tests ran on the same server",
}


def main():
    endpoint, keystone, out = sys.argv[1:4]
    ours = run(endpoint, keystone, out)
    if "--compare" not in sys.argv:
        print(f"recorded {len(ours)} cases to {out}")
        return 0
    golden = [json.loads(line) for line in open(sys.argv[sys.argv.index("--compare") + 1])]
    bad = [(g, o) for g, o in zip(golden, ours) if g["status"] != o["status"]
           or (g["body"] != o["body"] and g["path"] not in BODY_ALLOWED)]
    for g, o in bad:
        print(f"DIFF #{g['n']} {g['who']} {g['method']} {g['path']}: upstream {g['status']} "
              f"{json.dumps(g['body'])[:300]}\n     ours {o['status']} {json.dumps(o['body'])[:300]}")
    for path, why in BODY_ALLOWED.items():
        print(f"body allowed to differ: {path}: {why}")
    print(f"personas golden: {len(golden) - len(bad)}/{len(golden)} identical (status and body)")
    return 1 if bad or len(golden) != len(ours) else 0


if __name__ == "__main__":
    sys.exit(main())
