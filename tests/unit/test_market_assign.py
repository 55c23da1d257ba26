"""Job assignment: the per-kernel availability index (`Availability`) only skips jobs that
no provider could take, so every block assigns exactly what a scan of every provider for
every queued job assigns, at a cost that does not grow with jobs nobody can take."""

from __future__ import annotations

import random

import pytest

from consensus.hashing import sha256
from consensus.jobs import MATMUL, MLP
from consensus.market import Job, JobStatus, Market, Provider
from consensus.market_rules import assign, assign_jobs, choose_provider
from tests.unit.market_helpers import (
    MIN_PROVIDER_STAKE,
    PARAMS,
    MarketChain,
    make_market_net,
    matmul,
    mlp,
)


def scan_every_provider(state, height: int, time_ms: int, params) -> None:
    """The assignment rule written as the plain scan (what assign_jobs must equal)."""
    market = state.market
    waiting = []
    for job_id in market.queue:
        provider = choose_provider(market, market.jobs[job_id], state.last_block_hash, params)
        if provider is None:
            waiting.append(job_id)
        else:
            assign(market, market.jobs[job_id], provider, height, time_ms)
    market.queue = waiting


def random_market(rng: random.Random, providers: int, jobs: int) -> Market:
    market = Market()
    for i in range(providers):
        address = sha256(b"provider %d" % i)[:20]
        kernels = rng.choice([(MATMUL,), (MLP,), (MATMUL, MLP)])
        capacity = rng.randint(1, 3)
        market.providers[address] = Provider(
            address, rng.choice([MIN_PROVIDER_STAKE - 1, MIN_PROVIDER_STAKE, 10**9]), kernels,
            rng.randint(1, 40), capacity, "r", rng.randint(0, 600), "", 0,
            active_jobs=rng.randint(0, capacity), jobs_accepted=rng.randint(0, 3))
    for i in range(jobs):
        spec = matmul(seed=b"%d" % i) if rng.random() < 0.6 else mlp(seed=b"%d" % i)
        job_id = sha256(b"job %d" % i)
        market.jobs[job_id] = Job(job_id, b"\x01" * 20, spec, rng.randint(1, 45), 5,
                                  rng.choice([0, 0, rng.randint(1, 600)]), 1, 1, 0)
        market.queue.append(job_id)
    market.assignments = rng.randint(0, 40)
    return market


@pytest.mark.parametrize("seed", range(30))
def test_assignment_equals_a_scan_of_every_provider(seed: int) -> None:
    rng = random.Random(seed)
    base = MarketChain(make_market_net(label="assign")).state
    market = random_market(rng, rng.randint(0, 25), rng.randint(0, 60))
    fast, slow = base.copy(), base.copy()
    fast.market, slow.market = market.copy(), market.copy()
    assign_jobs(fast, 7, 7_000, PARAMS)
    scan_every_provider(slow, 7, 7_000, PARAMS)
    assert fast.market.to_fields() == slow.market.to_fields()
    if seed == 0:  # the draw must exercise both outcomes
        statuses = {j.status for j in fast.market.jobs.values()}
        assert statuses == {JobStatus.QUEUED, JobStatus.ASSIGNED}
