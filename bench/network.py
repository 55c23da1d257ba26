"""Bench: 4 validators on this machine under a saturating load of signed transfers.

Starts a fresh `jevons testnet` of N validator processes, pre-signs transfers from many
funded dev accounts, submits them in batches through the nodes' HTTP APIs (round-robin,
a few concurrent clients) and follows the chain through /status and /blocks. Prints one
JSON line: validators, tx_per_s (committed txs / time from the first submission to the
last commit),
finality_p50_s / finality_p99_s (submission -> the block holding the tx is visible),
block_interval_s (median), and verify_us: one Ed25519 verification's time on this machine
just before the run (median of 5 runs of 400, one thread). These shared machines change speed by
2x or more from hour to hour; compare runs by it. Bounded by --txs and --seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.localnet import local_net  # noqa: E402
from consensus.crypto import PrivateKey, signing_domain, verify_signature  # noqa: E402
from consensus.hashing import sha256  # noqa: E402
from consensus.tx import make_transfer  # noqa: E402


def call(api: str, path: str, body: dict | bytes | None = None, timeout: float = 30) -> dict:
    """GET `path`, or POST `body` (a dict as JSON, or bytes already encoded)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(f"http://{api}{path}", data=data,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--senders", type=int, default=400)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--rate", type=float, default=0,
                        help="submit at this many tx/s (0: as fast as the nodes take them)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jevons-bench-net-"))
    print(f"bench network in {tmp}", file=sys.stderr)
    speed = verify_us()
    with local_net(tmp, args.validators, args.senders, "jevons-bench", "info") as net:
        result = run(args, net.keys, net.apis)
    result["verify_us"] = speed
    print(json.dumps(result))


def verify_us() -> float:
    """Median time of one signature verification here, now (single thread)."""
    key = PrivateKey.from_seed(sha256(b"bench verify"))
    payload = bytes(150)  # about a transfer's size
    signature = key.sign("tx", "jevons-bench", payload)
    message = signing_domain("tx", "jevons-bench") + payload
    if not verify_signature(key.public, signature, message):
        raise SystemExit("bench: a fresh signature does not verify")
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(400):
            verify_signature(key.public, signature, message)
        runs.append((time.perf_counter() - start) / 400 * 1e6)
    return round(statistics.median(runs), 1)


def metric(api: str, name: str) -> int:
    """One unlabelled counter from a node's /metrics (0 if it is not there)."""
    with urllib.request.urlopen(f"http://{api}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    return 0


def run(args: argparse.Namespace, keys: list[PrivateKey], apis: list[str]) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if call(apis[0], "/status", timeout=2)["height"] >= 2:
                break
        except OSError:
            pass
        time.sleep(0.2)
    recipient = sha256(b"bench-recipient")[:20]
    per_sender = -(-args.txs // len(keys))
    txs = [make_transfer(k, "jevons-bench", recipient, 1, n, 100).encode()
           for n in range(per_sender) for k in keys][:args.txs]  # nonces in order per sender
    batches = [txs[i:i + args.batch] for i in range(0, len(txs), args.batch)]
    # encoded and hashed before the clock starts, like the signing: the client shares the
    # nodes' cores, and its own work is not what is measured
    bodies = [json.dumps({"txs": [t.hex() for t in batch]}).encode() for batch in batches]
    hashes = [[sha256(raw).hex() for raw in batch] for batch in batches]
    submitted: dict[str, float] = {}
    lock = threading.Lock()
    rejected = [0]

    def client(index: int) -> None:
        for b in range(index, len(batches), args.clients):
            if args.rate:  # batch b is due when the rate has "earned" its txs
                due = start + b * args.batch / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            with lock:
                for tx_hash in hashes[b]:
                    submitted[tx_hash] = now
            reply = call(apis[b % len(apis)], "/txs", bodies[b], 120)
            rejected[0] += len(reply.get("rejected", []))

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(args.clients)]
    for t in threads:
        t.start()
    committed: dict[str, float] = {}
    block_times: list[int] = []
    height = call(apis[0], "/status")["height"]
    while len(committed) < len(txs) and time.monotonic() - start < args.seconds:
        tip = call(apis[0], "/status")["height"]
        while height < tip:
            height += 1
            block = call(apis[0], f"/blocks/{height}")
            seen = time.monotonic()
            block_times.append(block["time_ms"])
            for h in block["txs"]:
                committed[h] = seen
        time.sleep(0.05)
    misses = sum(metric(api, "jevons_compact_block_misses_total") for api in apis)
    finality = sorted(committed[h] - submitted[h] for h in committed if h in submitted)
    # throughput over the whole run: first submission to the last commit (a window between
    # first and last commit would flatter bursts that queue before the first block)
    span = (max(committed.values()) - start) if committed else 0
    intervals = [(b - a) / 1000 for a, b in itertools.pairwise(block_times)]
    return {
        "validators": len(apis),
        "tx_per_s": round(len(committed) / span, 1) if span else 0.0,
        "finality_p50_s": round(statistics.median(finality), 3) if finality else None,
        "finality_p99_s": round(finality[int(0.99 * (len(finality) - 1))], 3)
        if finality else None,
        "block_interval_s": round(statistics.median(intervals), 3) if intervals else None,
        "txs_submitted": len(submitted), "txs_committed": len(committed),
        "txs_rejected": rejected[0], "blocks": len(block_times),
        "compact_misses": misses, "offered_rate": args.rate or "max",
        "seconds": round(time.monotonic() - start, 1),
    }


if __name__ == "__main__":
    main()
