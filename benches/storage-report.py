#!/usr/bin/env python3
"""Turns criterion's estimates and the limits measured in the same run into a Markdown table
of throughput and ratio to the relevant machine limit."""
import json, pathlib, sys

limits = dict(line.split() for line in open(sys.argv[1]) if len(line.split()) == 2)
limits = {k: float(v) for k, v in limits.items()}
if "md5" in limits and "sha512" in limits:
    # Both digests over the same bytes on one core: the rate a single-threaded ingest could reach.
    limits["md5+sha512"] = 1 / (1 / limits["md5"] + 1 / limits["sha512"])
root = pathlib.Path(sys.argv[2])
MIB = 1 << 20

def mean_ns(group, name):
    p = root / group / name / "new" / "estimates.json"
    if not p.exists():
        return None
    return json.load(open(p))["mean"]["point_estimate"]

rows = []
def add(group, name, what, bytes_per_iter, limit_key, limit_label):
    ns = mean_ns(group, name)
    if ns is None:
        return
    mibs = bytes_per_iter / MIB / (ns / 1e9)
    lim = limits.get(limit_key)
    ratio = f"{mibs / lim:.2f}× {limit_label} ({lim:.0f} MiB/s)" if lim else "n/a"
    rows.append(f"| {what} | {mibs:,.0f} MiB/s | {ratio} |")

size = 256 * MIB
for chunk in ["256KiB", "1024KiB", "4096KiB"]:
    add("ingest", f"md5/{chunk}", f"ingest 256 MiB, MD5, {chunk} chunks", size, "md5", "openssl MD5 1 core")
add("ingest", "md5+sha512/1024KiB", "ingest 256 MiB, MD5 + SHA-512, 1 MiB chunks", size, "md5+sha512", "openssl MD5 + SHA-512 on 1 core")
add("ingest", "dedup_second_copy", "ingest a second copy (dedup), MD5", size, "md5", "openssl MD5 1 core")
for name in ["crc_256KiB", "crc_1024KiB", "crc_4096KiB", "blake3_1024KiB"]:
    add("read_cached", name, f"read 256 MiB from page cache ({name.replace('_', ', ')})", size, "cat_cached", "cat from page cache")
add("read_cold", "crc_1024KiB", "read 256 MiB cold (1 MiB chunks)", size, "dd_cold", "dd cold")
for chunk in ["256KiB", "1024KiB", "4096KiB"]:
    ns = mean_ns("range_64k", chunk)
    if ns is not None:
        rows.append(f"| 1000 random 64 KiB ranged reads, {chunk} chunks | {1000 / (ns / 1e9):,.0f} reads/s | {ns / 1e6 / 1000 * 1000:.1f} µs each |")

print("| benchmark | result | ratio to this machine's limit, same run |")
print("| --- | --- | --- |")
print("\n".join(rows))
print()
print("limits measured: " + ", ".join(f"{k} {v:.0f} MiB/s" for k, v in limits.items()))
