"""Bench: a validator network on a slow disk. Every fsync and fdatasync of the node
processes is delayed by --fsync-ms (an LD_PRELOAD shim built here with the C compiler;
Linux only), as on a cloud volume or a busy disk.

Starts an idle network of --validators processes, then for --seconds asks node 0 for
/status every 10 ms and counts blocks. Prints one JSON line: validators, fsync_ms,
blocks_per_s, status_p50_ms, status_p99_ms, status_max_ms (how long the API, and so the
node's event loop, was held up), requests, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.localnet import local_net  # noqa: E402

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
static void delay(void) {
    const char *v = getenv("JEVONS_BENCH_FSYNC_US");
    long us = v ? atol(v) : 0;
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}
int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    delay();
    return real(fd);
}
int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    delay();
    return real(fd);
}
"""


def build_shim(tmp: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("slow_disk: needs a C compiler (cc or gcc) to build the fsync shim")
    source, library = tmp / "slowfsync.c", tmp / "slowfsync.so"
    source.write_text(SHIM)
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source),
                    "-ldl"], check=True)
    return library


def status(api: str) -> dict:
    with urllib.request.urlopen(f"http://{api}/status", timeout=10) as resp:
        return json.loads(resp.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--fsync-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if sys.platform != "linux":
        raise SystemExit("slow_disk: the fsync shim needs Linux (LD_PRELOAD)")
    tmp = Path(tempfile.mkdtemp(prefix="jevons-bench-disk-"))
    print(f"bench slow disk in {tmp}", file=sys.stderr)
    env = dict(os.environ, LD_PRELOAD=str(build_shim(tmp)),
               JEVONS_BENCH_FSYNC_US=str(int(args.fsync_ms * 1000)))
    with local_net(tmp, args.validators, 4, "jevons-bench-disk", env=env) as net:
        api = net.apis[0]
        deadline = time.monotonic() + 60
        while True:  # wait for the network to make blocks
            try:
                if status(api)["height"] >= 2:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("slow_disk: the network made no block in 60 s")
            time.sleep(0.2)
        latencies: list[float] = []
        start, first = time.monotonic(), status(api)["height"]
        while time.monotonic() - start < args.seconds:
            sent = time.perf_counter()
            status(api)
            latencies.append(time.perf_counter() - sent)
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        blocks = status(api)["height"] - first
    latencies.sort()
    print(json.dumps({
        "validators": args.validators, "fsync_ms": args.fsync_ms,
        "blocks_per_s": round(blocks / elapsed, 2),
        "status_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "status_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1),
        "status_max_ms": round(latencies[-1] * 1000, 1),
        "requests": len(latencies), "seconds": round(elapsed, 1),
    }))


if __name__ == "__main__":
    main()
