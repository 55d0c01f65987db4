#!/usr/bin/env python3
"""Differential check: Glint's answers to golden.py against upstream Glance 33's.

Usage: compare.py UPSTREAM_PREFIX OURS_PREFIX ALLOW_LIST [--min-identical 0.95]
  *_PREFIX.md   golden.py's report (its summary table names every case in order)
  *_PREFIX.jsonl the recorded exchanges, one per case, in the same order
  ALLOW_LIST    lines "section / case title<TAB>justification": differences we accept

Cases are paired by (section, title) in order. A pair is identical when the status is
the same, the response media types agree and, for JSON bodies, the shapes agree (the
same keys at every level and the same JSON types; values such as ids, timestamps and
checksums are ignored). Exit 0 when at least --min-identical of the upstream cases are
identical and every other one is in the allow-list (and no allow-list entry is stale, except
those whose reason starts with "data-dependent").
"""
import argparse
import difflib
import json
import re
import sys

ROW = re.compile(r"^\| (\d+) \| (.*?) \| (.*) \| (\S+) \| `(\S+) (.*)` \| (\d+) \|$")


def cases(prefix):
    rows = []
    with open(prefix + ".md") as fh:
        for line in fh:
            m = ROW.match(line.rstrip("\n"))
            if m:
                n, section, title, who, method, path, status = m.groups()
                rows.append({"section": section, "title": title.replace("\\|", "|").strip(),
                             "method": method, "path": path, "status": int(status)})
    with open(prefix + ".jsonl") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    if len(records) != len(rows):
        sys.exit("%s: %d cases but %d recorded exchanges" % (prefix, len(rows), len(records)))
    for row, rec in zip(rows, records):
        row["record"] = rec
    return rows


def header(rec, name):
    for k, v in rec["response"]["headers"]:
        if k.lower() == name:
            return v
    return ""


def shape_diff(a, b, path=""):
    """Where two JSON documents differ in shape ("" when they agree). Values are ignored;
    so is null vs a value inside list items (an image's size is null until it has data).
    Lists of objects are compared by the keys every item has: which images a listing
    returns depends on what else the server held (upstream's database had older images),
    so optional extra properties and item counts are not compared; an empty list agrees
    with any list."""
    if isinstance(a, dict) and isinstance(b, dict):
        missing = sorted(set(a) - set(b))
        extra = sorted(set(b) - set(a))
        parts = []
        if missing:
            parts.append("%s missing %s" % (path or "/", missing))
        if extra:
            parts.append("%s extra %s" % (path or "/", extra))
        for k in sorted(set(a) & set(b)):
            d = shape_diff(a[k], b[k], path + "/" + k)
            if d:
                parts.append(d)
        return "; ".join(parts)
    if isinstance(a, list) and isinstance(b, list):
        if not a or not b:
            return ""
        if all(isinstance(x, dict) for x in a) and all(isinstance(x, dict) for x in b):
            ka = set.intersection(*(set(x) for x in a))
            kb = set.intersection(*(set(x) for x in b))
            if ka != kb:
                return "%s[] items: missing %s, extra %s" % (path, sorted(ka - kb), sorted(kb - ka))
            return ""
        return "" if type(a[0]) is type(b[0]) else "%s[] item types differ" % path
    if type(a) is type(b):
        return ""
    return "%s %s vs ours %s" % (path or "/", type_name(a), type_name(b))


def type_name(v):
    return "null" if v is None else type(v).__name__


def body_json(rec):
    ctype = header(rec, "content-type")
    text = rec["response"]["body"].get("text")
    if not ctype.startswith("application/json") or text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def differences(up, ours):
    """What differs between two exchanges, as short phrases (empty when identical)."""
    a, b = up["record"], ours["record"]
    out = []
    if a["response"]["status"] != b["response"]["status"]:
        out.append("status %d vs ours %d" % (a["response"]["status"], b["response"]["status"]))
        return out
    media = lambda r: header(r, "content-type").split(";")[0].strip().lower()
    if a["response"]["status"] not in (204, 302) and media(a) != media(b):
        out.append("content-type %r vs ours %r" % (media(a), media(b)))
    ja, jb = body_json(a), body_json(b)
    if ja is not None or jb is not None:
        d = shape_diff(ja, jb)
        if d:
            out.append("JSON shape: " + d)
    return out


def key(c):
    return c["section"] + " / " + c["title"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("upstream")
    ap.add_argument("ours")
    ap.add_argument("allow")
    ap.add_argument("--min-identical", type=float, default=0.95)
    args = ap.parse_args()
    up, ours = cases(args.upstream), cases(args.ours)
    allow = {}
    with open(args.allow) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.strip() and not line.startswith("#"):
                k, _, why = line.partition("\t")
                allow[k.strip()] = why.strip()
    sm = difflib.SequenceMatcher(a=[key(c) for c in up], b=[key(c) for c in ours], autojunk=False)
    identical, listed, unexplained, used = 0, [], [], set()
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            pairs = zip(up[i1:i2], ours[j1:j2])
        else:
            pairs = [(c, None) for c in up[i1:i2]]
        for u, o in pairs:
            diff = differences(u, o) if o else ["case not run against Glint"]
            k = key(u)
            if not diff:
                identical += 1
            elif k in allow:
                used.add(k)
                listed.append((k, diff, allow[k]))
            else:
                unexplained.append((k, diff))
    total = len(up)
    ratio = identical / total if total else 0
    print("golden: %d/%d upstream cases identical (%.1f%%), %d allow-listed, %d unexplained"
          % (identical, total, 100 * ratio, len(listed), len(unexplained)))
    for k, diff, why in listed:
        print("  allowed  %s: %s -- %s" % (k, "; ".join(diff), why))
    for k, diff in unexplained:
        print("  DIFFERS  %s: %s" % (k, "; ".join(diff)))
    # An entry whose reason starts with "data-dependent" may match in one run and not in the
    # next (which images fill a page depends on timestamps within one second), so it is not
    # stale when unused.
    stale = sorted(k for k in set(allow) - used if not allow[k].startswith("data-dependent"))
    for k in stale:
        print("  STALE allow-list entry (now identical or gone): %s" % k)
    ok = ratio >= args.min_identical and not unexplained and not stale
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
