"""Bench: one block's job assignment with a long queue of jobs no provider can take.

Such jobs are cheap to queue (their escrow is refunded when they expire, after
job_queue_blocks), so a spammer can keep tens of thousands waiting. The providers here are
split so that no single rule rejects the jobs: the cheap ones are dirty, the clean ones
expensive, and each job's price ceiling is below every clean provider's price while its
carbon ceiling is below every cheap provider's carbon. Times, median of --runs:
    assign_ms: consensus.market_rules.assign_jobs over the whole queue (what a block does);
    scan_ms: choose_provider called for every queued job (what each block did before the
        per-kernel availability index).
Prints one JSON line: providers, queued_jobs, assign_ms, scan_ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.jobs import MATMUL, JobSpec
from consensus.market import Job, Market, Provider
from consensus.market_rules import assign_jobs, choose_provider
from genesis.dev import make_genesis
from genesis.presets import DEVNET


def build_market(providers: int, jobs: int) -> Market:
    market = Market()
    for i in range(providers):
        address = sha256(b"bench provider %d" % i)[:20]
        cheap = i % 2 == 0
        market.providers[address] = Provider(
            address, DEVNET.min_provider_stake, (MATMUL,), 100 + i if cheap else 10_000 + i,
            8, "bench", 800 if cheap else 50, "", 0)
    spec = JobSpec(MATMUL, (64, 64, 64), b"\x00" * 32)
    for i in range(jobs):
        job_id = sha256(b"bench job %d" % i)
        market.jobs[job_id] = Job(job_id, b"\x01" * 20, spec, 5_000 + i % 1_000, 10,
                                  100 + i % 500, 5_000 * spec.units, 1, 0)
        market.queue.append(job_id)
    return market


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    validator = PrivateKey.from_seed(sha256(b"bench validator"))
    genesis = make_genesis("jevons-bench", 1_700_000_000_000, [("v0", validator.public)], [])
    state = genesis.initial_state()
    market = build_market(args.providers, args.jobs)
    assign, scan = [], []
    for _ in range(args.runs):
        work = state.copy()
        work.market = market.copy()
        start = time.perf_counter()
        assign_jobs(work, 2, 2_000, DEVNET)
        assign.append((time.perf_counter() - start) * 1e3)
        if len(work.market.queue) != args.jobs:
            raise SystemExit("bench: a job was assigned; the market is not what it should be")
        start = time.perf_counter()
        for job_id in market.queue:
            if choose_provider(market, market.jobs[job_id], state.last_block_hash, DEVNET):
                raise SystemExit("bench: the scan found a provider")
        scan.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"providers": args.providers, "queued_jobs": args.jobs,
                      "assign_ms": round(statistics.median(assign), 1),
                      "scan_ms": round(statistics.median(scan), 1)}))


if __name__ == "__main__":
    main()
