"""Bench: signed transfers decoded, verified and applied per second, one process.

Builds a block of N signed transfers (default 10,000) on a dev genesis, then times, over
several runs with a fresh signature cache each: Block.decode -> parallel signature
verification (node.chain.sigverify, all cores) -> apply_block (which then trusts the cache,
so each signature is verified exactly once) -> the new state root. Prints one JSON line:
    {"tx_per_s": median, "block_txs": N, "verify_share": median share of time in verify, ...}
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from consensus.address import address_from_pubkey
from consensus.block import Block
from consensus.builder import build_block
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.sigcache import SigCache
from consensus.transition import apply_block
from consensus.tx import make_transfer
from consensus.vote import Commit
from genesis.dev import make_genesis
from genesis.presets import DEVNET
from node.chain.sigverify import ParallelVerifier


def build(n_txs: int, n_senders: int, seed: int) -> tuple[object, bytes]:
    rng = random.Random(seed)
    senders = [PrivateKey.from_seed(sha256(b"bench-sender-%d" % i)) for i in range(n_senders)]
    validator = PrivateKey.from_seed(sha256(b"bench-validator"))
    addresses = [address_from_pubkey(k.public) for k in senders]
    genesis = make_genesis("jevons-bench", 1_700_000_000_000, [("v0", validator.public)],
                           addresses)
    state = genesis.initial_state()
    nonces = [0] * n_senders
    txs = []
    for i in range(n_txs):
        s = i % n_senders
        to = addresses[rng.randrange(n_senders)]
        txs.append(make_transfer(senders[s], genesis.chain_id, to, rng.randint(1, 10_000),
                                 nonces[s], DEVNET.min_fee).encode())
        nonces[s] += 1
    block = build_block(state, txs, address_from_pubkey(validator.public),
                        state.time_ms + 1000, Commit.empty())
    return state, block.encode()


def run_once(state, raw: bytes, workers: int) -> tuple[float, float]:
    params = state.params
    cache = SigCache(capacity=1_000_000)
    with ParallelVerifier(cache, workers) as verifier:
        t0 = time.perf_counter()
        block = Block.decode(raw, params.max_block_bytes, params.max_block_txs)
        t1 = time.perf_counter()
        bad = verifier.verify_raw(list(block.txs), params.max_tx_bytes)
        t2 = time.perf_counter()
        after = apply_block(state, block, params, cache)
        after.root()  # the next block's header needs it: count it here
        t3 = time.perf_counter()
    if bad or after.height != 1:
        raise SystemExit(f"bench block rejected: bad txs {bad[:5]}")
    return t3 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    state, raw = build(args.txs, args.senders, args.seed)
    totals, shares = [], []
    for _ in range(args.runs):
        total, verify = run_once(state, raw, args.workers or None)
        totals.append(total)
        shares.append(verify / total)
    median = statistics.median(totals)
    print(json.dumps({
        "tx_per_s": round(args.txs / median),
        "block_txs": args.txs,
        "verify_share": round(statistics.median(shares), 3),
        "runs": args.runs,
        "senders": args.senders,
        "seconds_median": round(median, 4),
        "tx_per_s_best": round(args.txs / min(totals)),
    }))


if __name__ == "__main__":
    main()
