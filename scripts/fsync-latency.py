#!/usr/bin/env python3
"""The disk's fdatasync latency, the floor under every durable commit: a
4 KiB write and an fdatasync of it, N times (or for S seconds) in a
file in DIR (the store's disk). Prints one JSON line of percentiles in
milliseconds. Usage: fsync-latency.py [DIR] [N] [S]"""
import json
import os
import sys
import tempfile
import time

d = sys.argv[1] if len(sys.argv) > 1 else "."
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
secs = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
fd, path = tempfile.mkstemp(prefix=".fsync-probe.", dir=d)
os.unlink(path)
buf = b"x" * 4096
lat = []
end = time.monotonic() + secs
while len(lat) < n and time.monotonic() < end:
    os.pwrite(fd, buf, (len(lat) % 256) * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    lat.append((time.perf_counter() - t) * 1000)
os.close(fd)
lat.sort()


def q(p):
    return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3)


print(json.dumps({"bench": "fdatasync-4k", "n": len(lat), "p50_ms": q(0.5),
                  "p90_ms": q(0.9), "p99_ms": q(0.99), "p999_ms": q(0.999),
                  "max_ms": round(lat[-1], 3)}))
