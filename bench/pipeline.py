"""Bench: one validator's CPU per transaction, stage by stage, in one process.

Runs the work a node does for each signed transfer, without the network, on a dev genesis
with --senders funded accounts and a real LevelDB store: decode a gossiped batch, hash it,
check it (decode, the committed state's refusals, signatures on all cores), admit it to the
mempool; as the proposer: reap, select, build and apply the block, encode it and its
compact proposal; as a receiver: decode the compact proposal, check its hashes, rebuild the
block from the mempool, check its body, re-check its (cached) signatures and apply it; then
store it and update the mempool. Prints one JSON line: each stage's median µs per tx over
--runs runs (`stages_us`), `total_us`, `check_us` (the stage holding the signature
verification) and `outside_check_us` (everything else: what Python costs a tx besides its
signature), with `verify_us`, one single-threaded verification here and now, to compare
runs by. bench/network.py measures the same work across processes and the network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.network import verify_us  # noqa: E402
from consensus.address import address_from_pubkey  # noqa: E402
from consensus.bft.messages import Proposal  # noqa: E402
from consensus.builder import build_block, select_txs  # noqa: E402
from consensus.crypto import PrivateKey  # noqa: E402
from consensus.hashing import sha256  # noqa: E402
from consensus.sigcache import SigCache  # noqa: E402
from consensus.transition import apply_block  # noqa: E402
from consensus.tx import make_transfer  # noqa: E402
from consensus.vote import Commit  # noqa: E402
from genesis.dev import make_genesis  # noqa: E402
from genesis.presets import DEVNET  # noqa: E402
from node.chain.sigverify import ParallelVerifier  # noqa: E402
from node.runtime import wire  # noqa: E402
from node.runtime.mempool import Mempool  # noqa: E402
from node.store.blockstore import BlockStore  # noqa: E402

CHAIN_ID = "jevons-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=2000, help="txs per block (<= 2000: one "
                        "gossip batch)")
    parser.add_argument("--senders", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.txs <= wire.MAX_TX_BATCH or args.senders < 1 or args.runs < 1:
        raise SystemExit(f"bench: need 1 <= --txs <= {wire.MAX_TX_BATCH}, --senders >= 1, "
                         "--runs >= 1")
    senders = [PrivateKey.from_seed(sha256(b"pipeline-sender-%d" % i))
               for i in range(args.senders)]
    validator = PrivateKey.from_seed(sha256(b"pipeline-validator"))
    proposer = address_from_pubkey(validator.public)
    genesis = make_genesis(CHAIN_ID, 1_700_000_000_000, [("v0", validator.public)],
                           [address_from_pubkey(k.public) for k in senders])
    state = genesis.initial_state()
    recipient = sha256(b"pipeline-recipient")[:20]
    txs = [make_transfer(senders[i % args.senders], CHAIN_ID, recipient, 1,
                         i // args.senders, DEVNET.min_fee).encode() for i in range(args.txs)]
    batch = wire.encode_tx_batch(txs)
    speed = verify_us()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="jevons-bench-pipeline-") as tmp:
        for run in range(args.runs):
            one_run(state, batch, proposer, validator, Path(tmp) / f"chain{run}", times,
                    args.txs)
    stages = {name: round(statistics.median(values), 2) for name, values in times.items()}
    total = sum(stages.values())
    print(json.dumps({
        "txs": args.txs, "senders": args.senders, "runs": args.runs,
        "total_us": round(total, 1), "check_us": stages["check"],
        "outside_check_us": round(total - stages["check"], 1),
        "stages_us": stages, "verify_us": speed,
    }))


def one_run(state, batch: bytes, proposer: bytes, key: PrivateKey, path: Path,
            times: dict[str, list[float]], count: int) -> None:
    params = state.params
    cache = SigCache(capacity=1_000_000)
    pool = Mempool(params, CHAIN_ID, cache, max_txs=100_000, max_bytes=1 << 30)

    def timed(name: str, work: Callable[[], object]) -> object:
        start = time.perf_counter()
        result = work()
        times.setdefault(name, []).append((time.perf_counter() - start) / count * 1e6)
        return result

    with BlockStore.open(path) as store, ParallelVerifier(cache) as verifier:
        store.init_genesis(state.genesis_hash, state)
        raws = timed("batch_decode", lambda: wire.decode_tx_batch(batch, params.max_tx_bytes))
        hashes = timed("hash", lambda: [sha256(raw) for raw in raws])
        good, bad = timed("check", lambda: verifier.check(
            raws, params.max_tx_bytes, hashes, lambda tx: pool.refused_by_state(tx, state)))
        if bad:
            raise SystemExit(f"bench: {len(bad)} txs failed their check")
        verified = dict(good)
        timed("mempool_add", lambda: [pool.add(raw, state, h, verified=verified[h])
                                      for raw, h in zip(raws, hashes, strict=True)])
        pending = timed("reap", lambda: pool.reap(state, len(raws)))
        chosen, rejected = timed("select", lambda: select_txs(state, pending, params, cache))
        if rejected or len(chosen) != len(raws):
            raise SystemExit(f"bench: selection took {len(chosen)} of {len(raws)} txs")
        block = timed("build", lambda: build_block(state, chosen, proposer,
                                                   state.time_ms + 1000, Commit.empty()))
        timed("apply_proposer", lambda: apply_block(state, block, params, cache))
        raw_block = timed("block_encode", block.encode)
        proposal = Proposal(block.height, 0, block.hash(), -1, proposer).signed(key, CHAIN_ID)
        compact = timed("compact_encode",
                        lambda: wire.encode_compact_proposal(proposal, block))
        msg = timed("compact_decode", lambda: wire.decode_consensus(compact))
        if timed("compact_mismatch", msg.mismatch) is not None:
            raise SystemExit("bench: the compact proposal does not match its block")
        rebuilt = timed("rebuild", lambda: msg.rebuild(pool.raw_of))
        timed("body_check", rebuilt.body_mismatch)
        timed("verify_cached", lambda: verifier.verify_raw(
            list(rebuilt.txs), params.max_tx_bytes, list(rebuilt.tx_hashes)))
        after = timed("apply_receiver", lambda: apply_block(state, rebuilt, params, cache))
        timed("store_commit", lambda: store.commit_block(rebuilt, after, raw=raw_block))
        timed("mempool_update", lambda: pool.update(after, list(rebuilt.tx_hashes)))
        if len(pool):
            raise SystemExit(f"bench: {len(pool)} txs left in the mempool after the block")


if __name__ == "__main__":
    main()
