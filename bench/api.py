"""Bench: requests per second one node's HTTP API serves while its chain runs.

Starts a fresh `jevons testnet` of N validator processes on loopback, waits for blocks,
then loads node0's API with concurrent keep-alive httpx clients for a bounded time:
GET /status and GET /accounts/{addr} (a funded dev account), alternating, several runs
each. Optional demo transfers (--tx-rate) keep the mempool and blocks busy meanwhile.
Prints one JSON line: status_rps and account_rps (median over runs), their p50/p99
latency, errors, and the context (validators, concurrency, client processes, seconds, runs,
blocks committed during the measurement, CPUs and the 1-minute load average before and
after: every node and the client share this machine, so other work on it shows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.localnet import local_net  # noqa: E402
from consensus.address import address_from_pubkey, to_bech32  # noqa: E402
from consensus.crypto import PrivateKey  # noqa: E402
from consensus.hashing import sha256  # noqa: E402
from consensus.tx import make_transfer  # noqa: E402

CHAIN = "jevons-bench-api"


Load = tuple[int, int, list[float], float]


async def load(url: str, concurrency: int, seconds: float) -> Load:
    """`concurrency` clients, each sending its next request when the last one is answered,
    for `seconds`: (answered with 200, errors, latencies in seconds, elapsed seconds)."""
    ok, errors, latencies = 0, 0, []
    start = time.monotonic()
    deadline = start + seconds

    async def worker() -> None:
        """One client with one keep-alive connection (a pool shared by many tasks costs the
        client more CPU per request than the node spends answering)."""
        nonlocal ok, errors
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1),
                                     timeout=10) as client:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = await client.get(url)
                    good = response.status_code == 200
                except httpx.HTTPError:
                    good = False
                latencies.append(time.monotonic() - sent)
                ok, errors = ok + good, errors + (not good)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, errors, latencies, time.monotonic() - start


def load_in_process(url: str, concurrency: int, seconds: float) -> Load:
    return asyncio.run(load(url, concurrency, seconds))


def measure(pool: ProcessPoolExecutor, procs: int, url: str, concurrency: int,
            seconds: float) -> tuple[float, int, list[float]]:
    """One run: `procs` client processes share `concurrency`; returns (rps, errors, latencies)."""
    shares = [concurrency // procs + (i < concurrency % procs) for i in range(procs)]
    results = list(pool.map(load_in_process, [url] * procs, shares, [seconds] * procs))
    rate = sum(ok / elapsed for ok, _, _, elapsed in results)
    return rate, sum(r[1] for r in results), [x for r in results for x in r[2]]


def get_json(url: str) -> dict:
    return httpx.get(url, timeout=5).json()


def wait_for_height(api: str, height: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get_json(f"http://{api}/status")["height"] >= height:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"the bench chain did not reach height {height} in {timeout:g} s")


def demo_transfers(apis: list[str], keys: list[PrivateKey], rate: float,
                   stop: threading.Event) -> None:
    """About `rate` signed transfers per second, round-robin over the nodes."""
    recipient = sha256(b"bench-api-recipient")[:20]
    nonces = {i: 0 for i in range(len(keys))}
    sent = 0
    start = time.monotonic()
    while not stop.is_set():
        due = start + sent / rate
        if stop.wait(max(0.0, due - time.monotonic())):
            return
        i = sent % len(keys)
        raw = make_transfer(keys[i], CHAIN, recipient, 1, nonces[i], 100).encode()
        try:
            httpx.post(f"http://{apis[sent % len(apis)]}/txs", json={"tx": raw.hex()},
                       timeout=5)
            nonces[i] += 1
        except httpx.HTTPError:
            pass
        sent += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16,
                        help="concurrent keep-alive clients, shared by the client processes")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--runs", type=int, default=3, help="runs per route (median)")
    parser.add_argument("--tx-rate", type=float, default=0.0,
                        help="demo transfers per second during the runs (0: none)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jevons-bench-api-"))
    print(f"bench api network in {tmp}", file=sys.stderr)
    stop = threading.Event()
    with local_net(tmp, args.validators, 16, CHAIN) as net:
        try:
            wait_for_height(net.apis[0], 2)
            if args.tx_rate:
                threading.Thread(target=demo_transfers,
                                 args=(net.apis, net.keys, args.tx_rate, stop),
                                 daemon=True).start()
            result = run(args, net.apis[0], to_bech32(address_from_pubkey(net.keys[0].public)))
        finally:
            stop.set()
    print(json.dumps(result))


def percentile_ms(latencies: list[float], q: float) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def run(args: argparse.Namespace, api: str, address: str) -> dict:
    routes = {"status": f"http://{api}/status", "account": f"http://{api}/accounts/{address}"}
    rps: dict[str, list[float]] = {name: [] for name in routes}
    latencies: dict[str, list[float]] = {name: [] for name in routes}
    errors = 0
    height_start = get_json(routes["status"])["height"]
    load_before = os.getloadavg()[0]
    with ProcessPoolExecutor(args.procs) as pool:
        measure(pool, args.procs, routes["status"], args.concurrency, 1.0)  # warm up
        for _ in range(args.runs):
            for name, url in routes.items():
                rate, failed, times = measure(pool, args.procs, url, args.concurrency,
                                              args.seconds)
                rps[name].append(rate)
                latencies[name].extend(times)
                errors += failed
    height_end = get_json(routes["status"])["height"]
    return {
        "status_rps": round(statistics.median(rps["status"]), 1),
        "account_rps": round(statistics.median(rps["account"]), 1),
        "status_p50_ms": percentile_ms(latencies["status"], 0.5),
        "status_p99_ms": percentile_ms(latencies["status"], 0.99),
        "account_p50_ms": percentile_ms(latencies["account"], 0.5),
        "account_p99_ms": percentile_ms(latencies["account"], 0.99),
        "errors": errors, "validators": args.validators, "concurrency": args.concurrency,
        "client_procs": args.procs, "seconds": args.seconds, "runs": args.runs,
        "tx_rate": args.tx_rate, "blocks_during": height_end - height_start,
        "cpus": os.cpu_count(), "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    main()
