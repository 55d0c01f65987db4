#!/usr/bin/env python3
"""Holds hostile connections against one or more listeners and reports when the server
closed them (run by benches/edge-load.sh).

  connhold.py HOST:PORT[,HOST:PORT…] IDLE SLOW SECONDS

Per listener: IDLE connections that never send a byte, and SLOW connections that send a
request head one byte per second and never finish it. Prints "ready" once all are open,
then, after SECONDS (or when all are closed), one JSON line per kind and listener: how many
were opened, how many the server closed, and the close times (seconds after opening; the
first byte of a slow head is sent on opening): min / median / max. Last, a line with this
process's own CPU time, so that its cost can be told from the server's.

asyncio protocols (callbacks, no coroutine per socket) and one ticker that writes the next
byte to every slow connection keep this client cheap next to the load it shares the machine
with.
"""
import asyncio
import json
import os
import statistics
import sys
import time

HEAD = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000


class Held(asyncio.Protocol):
    def __init__(self, closed, slow):
        self.closed, self.slow, self.sent = closed, slow, 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.t0 = time.monotonic()
        if self.slow:
            self.tick()

    def tick(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(HEAD[self.sent:self.sent + 1])
            self.sent += 1

    def data_received(self, data):
        pass

    def connection_lost(self, exc):
        self.closed.append(time.monotonic() - self.t0)
        self.transport = None


def summary(values):
    if not values:
        return None
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


async def main():
    loop = asyncio.get_running_loop()
    targets = [t.rsplit(":", 1) for t in sys.argv[1].split(",")]
    n_idle, n_slow, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    groups = []
    slow_conns = []
    for host, port in targets:
        for kind, n in (("idle", n_idle), ("slow_header", n_slow)):
            closed, opened = [], 0
            for i in range(0, n, 250):
                batch = [
                    loop.create_connection(lambda c=closed, k=kind: Held(c, k == "slow_header"), host, int(port))
                    for _ in range(min(250, n - i))
                ]
                for r in await asyncio.gather(*batch, return_exceptions=True):
                    if isinstance(r, tuple):
                        opened += 1
                        if kind == "slow_header":
                            slow_conns.append(r[1])
            groups.append((f"{host}:{port}", kind, opened, closed))
    print("ready", flush=True)
    cpu0 = os.times()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        for p in slow_conns:
            p.tick()
        if all(len(c) >= o for _, _, o, c in groups):
            break
    cpu1 = os.times()
    for target, kind, opened, closed in groups:
        print(json.dumps({
            "listener": target, "kind": kind, "opened": opened,
            "closed_by_server": len(closed), "close_after_s": summary(closed),
        }), flush=True)
    print(json.dumps({"client_cpu_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 2)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
