#!/usr/bin/env python3
"""Holds hostile connections against one or more listeners and reports when the server
closed them (run by benches/edge-load.sh).

  connhold.py HOST:PORT[,HOST:PORT…] IDLE SLOW SECONDS

Per listener: IDLE connections that never send a byte, and SLOW connections that send a
request head one byte per second and never finish it. Prints "ready" once all are open,
then, after SECONDS (or when all are closed), one JSON line per kind and listener: how many
were opened, how many the server closed, and the close times (seconds after opening, or
after the first byte for slow ones): min / median / max.
"""
import asyncio
import json
import statistics
import sys
import time


async def idle(host, port, closed):
    r, w = await asyncio.open_connection(host, port)
    t0 = time.monotonic()
    try:
        await r.read(1)  # b"" on close
    except (ConnectionError, OSError):
        pass
    closed.append(time.monotonic() - t0)
    w.close()


async def slow(host, port, closed):
    r, w = await asyncio.open_connection(host, port)
    t0 = time.monotonic()
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
    reader = asyncio.ensure_future(r.read(1))
    try:
        for b in head:
            w.write(bytes([b]))
            await w.drain()
            done, _ = await asyncio.wait([reader], timeout=1.0)
            if done:
                break
    except (ConnectionError, OSError):
        pass
    closed.append(time.monotonic() - t0)
    reader.cancel()
    w.close()


def summary(values):
    if not values:
        return None
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


async def main():
    targets = [t.rsplit(":", 1) for t in sys.argv[1].split(",")]
    n_idle, n_slow, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    results = []
    tasks = []
    for host, port in targets:
        port = int(port)
        for kind, n, fn in (("idle", n_idle, idle), ("slow_header", n_slow, slow)):
            closed = []
            opened = []
            results.append((f"{host}:{port}", kind, n, closed, opened))
            for i in range(0, n, 250):
                batch = [asyncio.ensure_future(fn(host, port, closed)) for _ in range(min(250, n - i))]
                tasks.extend(batch)
                opened.extend(batch)
                await asyncio.sleep(0.05)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(not t.done() for t in tasks):
        await asyncio.sleep(0.5)
    for target, kind, n, closed, opened in results:
        failed = sum(1 for t in opened if t.done() and t.exception() is not None)
        print(json.dumps({
            "listener": target, "kind": kind, "opened": n - failed,
            "closed_by_server": len(closed), "close_after_s": summary(closed),
        }), flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
