"""Builders for the compute-market tests: a funded net, market transactions, job lifecycles.

`MarketChain` is a `Chain` whose users are providers and buyers and whose validators have
balances (to pay verdict fees). It tracks the nonces of the block being built, so several
transactions from one sender can go in one block. `check_market` states every invariant
the market keeps after a block, so scripted and random tests check the same things;
`run_random_market` drives a chain with seeded random market traffic (and refused txs).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

import pytest

from consensus.block import Block
from consensus.errors import (
    DuplicateVerdict,
    InvalidBlock,
    InvalidJob,
    InvalidProviderTerms,
    InvalidTx,
    NotInCommittee,
    NotJobProvider,
    UnknownJob,
)
from consensus.hashing import sha256
from consensus.jobs import MATMUL, MLP, JobSpec
from consensus.market import Job, JobStatus, KernelStats, Provider
from consensus.market_rules import CHALLENGE_DOMAIN, select_committee
from consensus.params import BPS, ChainParams
from consensus.staking import Validator
from consensus.state import State
from consensus.tx import Body, CommitResult, PostVerdict, RegisterProvider, SubmitJob, make_tx
from genesis.document import Genesis, GenesisValidator
from genesis.presets import DEVNET
from tests.unit.helpers import CHAIN_ID, GENESIS_TIME_MS, Chain, Net, addr, key

VALIDATOR_STAKE = 10**12
FUNDS = 10**10
MIN_PROVIDER_STAKE = 1_000_000
ENDPOINT = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWMrcujA86svnn5cMYNxMK5YR8G8y2KN11KHGj7s2DAqES"

# block_reward 0 and every fee burned: an account changes only by what the market does
# and the fees it pays, so the lifecycle tests can state balances exactly.
PARAMS = replace(
    DEVNET, block_reward=0, fee_burn_bps=BPS, min_provider_stake=MIN_PROVIDER_STAKE,
    max_provider_capacity=4, max_job_units=64, max_job_deadline_blocks=50,
    job_queue_blocks=4, verify_blocks=3, committee_size=3, verifier_fee_bps=500,
    provider_slash_bps=5_000, compute_reward_per_unit=1_000, newcomer_share_bps=2_000,
    newcomer_jobs=2)
FEE = PARAMS.min_fee


def matmul(units: int = 1, seed: bytes = b"job") -> JobSpec:
    """A matrix product of exactly `units` priced units (256 x 256 x 16u MACs)."""
    return JobSpec(MATMUL, (256, 256, 16 * units), sha256(seed))


def mlp(units: int = 1, seed: bytes = b"mlp") -> JobSpec:
    """A one-layer MLP of exactly `units` priced units (16 x 256 x 256u MACs)."""
    return JobSpec(MLP, (16, 256, 256 * units), sha256(seed))


def make_market_net(params: ChainParams = PARAMS, validators: int = 4, providers: int = 4,
                    buyers: int = 2, label: str = "market") -> Net:
    """Equal-stake validators, all funded; user keys are the providers then the buyers."""
    vkeys = [key(f"{label}/validator/{i}") for i in range(validators)]
    ukeys = [key(f"{label}/user/{i}") for i in range(providers + buyers)]
    gvals = tuple(GenesisValidator(f"v{i}", k.public, VALIDATOR_STAKE)
                  for i, k in enumerate(vkeys))
    accounts = tuple(sorted((addr(k), FUNDS) for k in vkeys + ukeys))
    genesis = Genesis(CHAIN_ID, GENESIS_TIME_MS, validators == 1, params, gvals, accounts)
    return Net(genesis, vkeys, ukeys)


@dataclass
class MarketChain(Chain):
    n_providers: int = 4
    pending: dict[bytes, int] = field(default_factory=dict)  # nonces used in the next block
    history: list[Block] = field(default_factory=list)  # every accepted block, in order

    @property
    def providers(self) -> list:
        return self.net.user_keys[:self.n_providers]

    @property
    def buyers(self) -> list:
        return self.net.user_keys[self.n_providers:]

    def key_of(self, address: bytes):
        return next(k for k in self.net.validator_keys + self.net.user_keys
                    if addr(k) == address)

    # --- transactions ---------------------------------------------------------------------

    def tx(self, k, body: Body, *, nonce: int | None = None, fee: int = FEE) -> bytes:
        sender = addr(k)
        if nonce is None:
            nonce = self.pending.get(sender, self.nonce_of(k))
            self.pending[sender] = nonce + 1
        return make_tx(k, self.state.chain_id, body, nonce, fee).encode()

    def register(self, k, *, stake: int = 4 * MIN_PROVIDER_STAKE,
                 kernels: tuple[str, ...] = (MATMUL,), price: int = 1_000, capacity: int = 2,
                 region: str = "eu-north", carbon: int = 50, endpoint: str = ENDPOINT,
                 **kw: int) -> bytes:
        return self.tx(k, RegisterProvider(stake, kernels, price, capacity, region, carbon,
                                           endpoint), **kw)

    def submit(self, k, spec: JobSpec | None = None, *, max_price: int = 2_000,
               deadline: int = 5, carbon_max: int = 0, **kw: int) -> bytes:
        return self.tx(k, SubmitJob(spec or matmul(), max_price, deadline, carbon_max), **kw)

    def commit_result(self, k, job_id: bytes, root: bytes = b"\x07" * 32, **kw: int) -> bytes:
        return self.tx(k, CommitResult(job_id, root), **kw)

    def verdict(self, k, job_id: bytes, valid: int, reason: str = "", **kw: int) -> bytes:
        return self.tx(k, PostVerdict(job_id, valid, reason), **kw)

    # --- blocks ---------------------------------------------------------------------------

    def advance(self, txs: list[bytes] | tuple[bytes, ...] = ()) -> Block:
        self.pending.clear()
        block = super().advance(txs)
        self.history.append(block)
        return block

    def run_to(self, height: int) -> None:
        while self.state.height < height:
            self.advance()

    def rejects(self, txs: list[bytes]) -> InvalidTx:
        """The typed error that makes a block with `txs` (the last one bad) invalid; the
        state is unchanged."""
        self.pending.clear()
        before = (self.state.root(), self.state.market.hash())
        with pytest.raises(InvalidBlock, match=rf"tx {len(txs) - 1} \(") as info:
            self.apply(self.build(txs))
        assert (self.state.root(), self.state.market.hash()) == before
        cause = info.value.__cause__
        assert isinstance(cause, InvalidTx)
        assert cause.reason in info.value.reason
        return cause

    # --- reading --------------------------------------------------------------------------

    def job(self, job_id: bytes) -> Job:
        return self.state.market.jobs[job_id]

    def provider(self, k) -> Provider:
        return self.state.market.providers[addr(k)]

    def stats(self, kernel: str = MATMUL) -> KernelStats:
        return self.state.market.kernel_stats(kernel)

    def committee_keys(self, job_id: bytes) -> list:
        return [self.key_of(a) for a, _ in self.job(job_id).committee]

    def outsiders(self, job_id: bytes) -> list:
        """Validators not on the job's committee."""
        members = {a for a, _ in self.job(job_id).committee}
        return [k for k in self.net.validator_keys if addr(k) not in members]

    # --- lifecycle ------------------------------------------------------------------------

    def assigned_job(self, provider, buyer, **submit: int) -> bytes:
        """Register `provider` (unless it is) and submit a job it gets; returns the id."""
        if addr(provider) not in self.state.market.providers:
            self.advance([self.register(provider)])
        raw = self.submit(buyer, **submit)
        self.advance([raw])
        job_id = sha256(raw)
        assert self.job(job_id).status == JobStatus.ASSIGNED
        assert self.job(job_id).provider == addr(provider)
        return job_id

    def committed_job(self, job_id: bytes) -> None:
        """Commit the job's result, then one more block fixes its challenge and committee."""
        job = self.job(job_id)
        self.advance([self.commit_result(self.key_of(job.provider), job_id)])
        assert self.job(job_id).status == JobStatus.COMMITTED
        assert self.job(job_id).randomness == b""
        self.advance()
        assert self.job(job_id).randomness == expected_randomness(
            job_id, self.last_block.header.last_commit_hash)

    def vote(self, job_id: bytes, votes: list[int]) -> None:
        """One block in which the first len(votes) committee members vote."""
        members = self.committee_keys(job_id)
        self.advance([self.verdict(k, job_id, v) for k, v in zip(members, votes,
                                                                  strict=False)])


def expected_randomness(job_id: bytes, last_commit_hash: bytes) -> bytes:
    return sha256(CHALLENGE_DOMAIN + job_id + last_commit_hash)


def validators(stakes: list[int], label: str = "committee") -> tuple[Validator, ...]:
    vs = [Validator(addr(k), k.public, s)
          for k, s in ((key(f"{label}/{i}"), s) for i, s in enumerate(stakes))]
    return tuple(sorted(vs, key=lambda v: v.address))


def committee_of(state: State, job_id: bytes) -> tuple[tuple[bytes, int], ...]:
    job = state.market.jobs[job_id]
    judges = tuple(v for v in state.validators if v.address not in (job.provider, job.buyer))
    return select_committee(judges, job.randomness, state.params.committee_size)


# --- invariants ------------------------------------------------------------------------------


def check_market(state: State) -> None:
    """Every invariant of the market after a block (and the full supply invariant)."""
    market = state.market
    supply = state.supply
    assert state.total_balances_and_stakes() == supply.expected_total
    jobs = market.jobs
    assert len(set(market.queue)) == len(market.queue)
    assert len(set(market.open)) == len(market.open)
    assert not set(market.queue) & set(market.open)
    assert all(jobs[j].status == JobStatus.QUEUED for j in market.queue)
    assert all(jobs[j].status in (JobStatus.ASSIGNED, JobStatus.COMMITTED) for j in market.open)
    live = set(market.queue) | set(market.open)
    assert {j for j, job in jobs.items() if not job.status.is_final} == live
    assert market.escrowed() == sum(jobs[j].escrow for j in live)
    for address, provider in market.providers.items():
        active = sum(1 for j in market.open if jobs[j].provider == address)
        assert provider.active_jobs == active
        done = [j for j in jobs.values() if j.provider == address and j.status.is_final]
        assert provider.jobs_accepted == sum(j.status == JobStatus.ACCEPTED for j in done)
        assert provider.jobs_rejected == sum(j.status == JobStatus.REJECTED for j in done)
        assert provider.jobs_failed == sum(j.status == JobStatus.FAILED for j in done)
        assert provider.slashed == sum(j.slashed for j in done)
    assert supply.slashed == sum(p.slashed for p in market.providers.values())
    assert supply.minted == (state.height * state.params.block_reward
                             + sum(j.reward for j in jobs.values()))
    for job in jobs.values():
        check_settled_job(job, state.params)
    for kernel, stats in market.stats.items():
        check_stats(state, kernel, stats)


def check_settled_job(job: Job, params: ChainParams) -> None:
    assert job.escrow == job.max_price * job.units
    if job.status == JobStatus.ACCEPTED:
        payment = job.price * job.units
        voters = sum(1 for v in job.verdicts if v.valid)
        share = payment * params.verifier_fee_bps // BPS // voters
        assert job.paid + share * voters == payment
        assert job.refunded == job.escrow - payment
        assert job.slashed == 0
    elif job.status.is_final:
        assert job.refunded == job.escrow
        assert job.paid == job.reward == 0
        if job.status in (JobStatus.EXPIRED, JobStatus.UNDECIDED):
            assert job.slashed == 0
    if job.status != JobStatus.QUEUED:
        assert job.price <= job.max_price
    if job.status.is_final:
        assert job.settled_height >= job.submitted_height


def check_stats(state: State, kernel: str, stats: KernelStats) -> None:
    jobs = [j for j in state.market.jobs.values() if j.spec.kernel == kernel]
    by = {s: sum(1 for j in jobs if j.status == s) for s in JobStatus}
    assert stats.submitted == len(jobs)
    assert stats.assigned == len(jobs) - by[JobStatus.QUEUED] - by[JobStatus.EXPIRED]
    assert stats.accepted == by[JobStatus.ACCEPTED]
    assert stats.rejected == by[JobStatus.REJECTED]
    assert stats.failed == by[JobStatus.FAILED]
    assert stats.expired == by[JobStatus.EXPIRED]
    assert stats.undecided == by[JobStatus.UNDECIDED]
    assert stats.units_accepted == sum(j.units for j in jobs if j.status == JobStatus.ACCEPTED)
    assigned = [j for j in jobs if j.provider]
    assert stats.queue_blocks_total == sum(j.assigned_height - j.submitted_height
                                           for j in assigned)
    assert stats.queue_ms_total == sum(j.assigned_time_ms - j.submitted_time_ms
                                       for j in assigned)


# --- random market traffic -------------------------------------------------------------------

RANDOM_PARAMS = replace(PARAMS, block_reward=DEVNET.block_reward, fee_burn_bps=5_000,
                        max_provider_capacity=2, job_queue_blocks=3, verify_blocks=3,
                        max_job_deadline_blocks=4)


def random_txs(chain: MarketChain, rng: random.Random) -> list[bytes]:
    market = chain.state.market
    txs = []
    for k in chain.providers:
        current = market.providers.get(addr(k))
        if rng.random() < (0.12 if current else 0.35):
            need = max(0, MIN_PROVIDER_STAKE - (current.stake if current else 0))
            txs.append(chain.register(
                k, stake=need + rng.choice([0, 0, MIN_PROVIDER_STAKE // 2]),
                kernels=rng.choice([(MATMUL,), (MATMUL,), (MLP,), (MATMUL, MLP)]),
                price=rng.randint(0, 40), capacity=rng.randint(1, 2),
                carbon=rng.choice([10, 100, 400, 900])))
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        spec = rng.choice([matmul, matmul, mlp])(rng.randint(1, 3), seed=rng.randbytes(4))
        txs.append(chain.submit(rng.choice(chain.buyers), spec, max_price=rng.randint(1, 45),
                                deadline=rng.randint(1, 4),
                                carbon_max=rng.choice([0, 0, 150, 500])))
    for job_id in market.open:
        job = market.jobs[job_id]
        if job.status == JobStatus.ASSIGNED and rng.random() < 0.6:
            txs.append(chain.commit_result(chain.key_of(job.provider), job_id))
        elif job.randomness:
            voted = {v.member for v in job.verdicts}
            txs.extend(chain.verdict(chain.key_of(m), job_id, int(rng.random() < 0.8))
                       for m, _ in job.committee if m not in voted and rng.random() < 0.7)
    return txs


def random_bad_tx(chain: MarketChain, rng: random.Random) -> tuple[bytes, type[InvalidTx]]:
    market = chain.state.market
    assigned = [market.jobs[j] for j in market.open
                if market.jobs[j].status == JobStatus.ASSIGNED]
    voting = [market.jobs[j] for j in market.open if market.jobs[j].randomness]
    voted = [j for j in voting if j.verdicts]
    p0 = chain.providers[0]
    options = [
        lambda: (chain.commit_result(p0, rng.randbytes(32)), UnknownJob),
        lambda: (chain.submit(chain.buyers[0], deadline=0), InvalidJob),
        lambda: (chain.register(p0, capacity=0), InvalidProviderTerms),
    ]
    if assigned:
        job = rng.choice(assigned)
        options.append(lambda: (chain.commit_result(chain.buyers[0], job.id),
                                NotJobProvider))
    if voting:
        job = rng.choice(voting)
        options.append(lambda: (chain.verdict(chain.buyers[1], job.id, 1), NotInCommittee))
    if voted:
        job = rng.choice(voted)
        member = chain.key_of(job.verdicts[0].member)
        options.append(lambda: (chain.verdict(member, job.id, 1), DuplicateVerdict))
    return rng.choice(options)()


def run_random_market(seed: int | random.Random,
                      blocks: int) -> tuple[MarketChain, Counter]:
    chain = MarketChain(make_market_net(RANDOM_PARAMS, label="random"))
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    outcomes: Counter = Counter()
    check_market(chain.state)
    for _ in range(blocks):
        txs = random_txs(chain, rng)
        if rng.random() < 0.2:
            bad, error = random_bad_tx(chain, rng)
            assert type(chain.rejects([*txs, bad])) is error, f"seed {seed}"
        before = chain.state.supply.to_fields()
        chain.advance(txs)
        supply = chain.state.supply
        assert supply.minted - before[1] >= RANDOM_PARAMS.block_reward
        check_market(chain.state)
        outcomes.update(j.status.name for j in chain.state.market.jobs.values()
                        if j.settled_height == chain.state.height)
    return chain, outcomes
