"""The compute market: every transaction rule, each settlement path over real blocks,
assignment, committees, the supply invariant under random market traffic, encodings and
determinism.

Rule cases run against one scene (a chain of four blocks with a committed, an assigned and
a queued job); each case is checked inside a block (InvalidBlock caused by the typed error,
state root unchanged) and through process_tx on a working copy (nothing written).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.builder import select_txs
from consensus.codec import MAX_INT64, decode, encode
from consensus.crypto import PrivateKey
from consensus.errors import (
    AmountOverflow,
    DeadlinePassed,
    DecodeError,
    DuplicateVerdict,
    InsufficientFunds,
    InvalidJob,
    InvalidProviderTerms,
    InvalidTx,
    MalformedTx,
    NotInCommittee,
    NotJobProvider,
    UnknownJob,
    WrongJobStatus,
)
from consensus.hashing import sha256
from consensus.jobs import MATMUL, MAX_DIM, MLP, JobSpec
from consensus.market import Job, JobStatus, KernelStats, Market, Provider, Verdict
from consensus.market_rules import (
    ASSIGN_DOMAIN,
    MAX_CARBON,
    assign_jobs,
    choose_provider,
    compute_reward,
    is_reserved_slot,
    select_committee,
    tally,
    verify_deadline,
)
from consensus.params import BPS, MAX_AMOUNT, ChainParams
from consensus.state import State
from consensus.transition import apply_block, process_tx
from consensus.tx import (
    CommitResult,
    PostVerdict,
    RegisterProvider,
    SubmitJob,
    Tx,
    TxKind,
    make_tx,
)
from tests.unit.helpers import BLOCK_INTERVAL_MS, addr, key, sign_commit
from tests.unit.market_helpers import (
    ENDPOINT,
    FEE,
    FUNDS,
    MIN_PROVIDER_STAKE,
    PARAMS,
    MarketChain,
    check_market,
    committee_of,
    expected_randomness,
    make_market_net,
    matmul,
    mlp,
    run_random_market,
    validators,
)

MIN = MIN_PROVIDER_STAKE


# --- the scene the rule cases run against ----------------------------------------------------


@dataclass
class Scene:
    chain: MarketChain
    committed: bytes  # p0's job, committed in block 3, challenge fixed in block 4
    assigned: bytes  # p0's job, not committed
    queued: bytes  # an MLP job nobody offers

    @property
    def p0(self) -> PrivateKey:
        return self.chain.providers[0]

    @property
    def p1(self) -> PrivateKey:
        return self.chain.providers[1]

    @property
    def newcomer(self) -> PrivateKey:
        return self.chain.providers[2]

    @property
    def buyer(self) -> PrivateKey:
        return self.chain.buyers[0]

    def member(self) -> PrivateKey:
        return self.chain.committee_keys(self.committed)[0]


def make_scene() -> Scene:
    chain = MarketChain(make_market_net(label="rules"))
    p0, p1 = chain.providers[:2]
    buyer = chain.buyers[0]
    chain.advance([chain.register(p0, price=1_000), chain.register(p1, price=1_500)])
    raws = [chain.submit(buyer), chain.submit(buyer), chain.submit(buyer, mlp())]
    chain.advance(raws)
    committed, assigned, queued = (sha256(r) for r in raws)
    chain.committed_job(committed)
    assert chain.job(assigned).status == JobStatus.ASSIGNED
    assert chain.job(queued).status == JobStatus.QUEUED
    check_market(chain.state)
    return Scene(chain, committed, assigned, queued)


@pytest.fixture(scope="module")
def scene() -> Scene:
    return make_scene()


@dataclass(frozen=True)
class Case:
    make: Callable[[Scene], list[bytes]]  # txs for one block, the last one invalid
    error: type[InvalidTx]


def _reg(s: Scene, who: str = "newcomer", **terms: object) -> list[bytes]:
    return [s.chain.register(getattr(s, who), **terms)]


def _sub(s: Scene, spec: JobSpec | None = None, **terms: int) -> list[bytes]:
    return [s.chain.submit(s.chain.buyers[1], spec, **terms)]


REGISTER_CASES = {
    "kernels unsorted": Case(lambda s: _reg(s, kernels=(MLP, MATMUL)), InvalidProviderTerms),
    "kernels repeated": Case(lambda s: _reg(s, kernels=(MATMUL, MATMUL)), InvalidProviderTerms),
    "unknown kernel": Case(lambda s: _reg(s, kernels=("conv-int8",)), InvalidProviderTerms),
    "no kernels": Case(lambda s: _reg(s, kernels=()), InvalidProviderTerms),
    "capacity 0": Case(lambda s: _reg(s, capacity=0), InvalidProviderTerms),
    "capacity above max": Case(lambda s: _reg(s, capacity=PARAMS.max_provider_capacity + 1),
                               InvalidProviderTerms),
    "capacity 2**64 - 1": Case(lambda s: _reg(s, capacity=2**64 - 1), InvalidProviderTerms),
    "carbon too high": Case(lambda s: _reg(s, carbon=MAX_CARBON + 1), InvalidProviderTerms),
    "price above MAX_AMOUNT": Case(lambda s: _reg(s, price=MAX_AMOUNT + 1),
                                   InvalidProviderTerms),
    "no endpoint": Case(lambda s: _reg(s, endpoint=""), InvalidProviderTerms),
    "endpoint with a trailing protocol": Case(
        lambda s: _reg(s, endpoint=ENDPOINT + "/tcp/5"), InvalidProviderTerms),
    "endpoint without a peer id": Case(
        lambda s: _reg(s, endpoint="/ip4/127.0.0.1/tcp/4001"), InvalidProviderTerms),
    "no region": Case(lambda s: _reg(s, region=""), InvalidProviderTerms),
    "stake below min": Case(lambda s: _reg(s, stake=MIN - 1), InvalidProviderTerms),
    "stake 0 for a new provider": Case(lambda s: _reg(s, stake=0), InvalidProviderTerms),
    "negative stake": Case(lambda s: _reg(s, stake=-1), InvalidProviderTerms),
    "negative stake, registered": Case(lambda s: _reg(s, "p0", stake=-1),
                                       InvalidProviderTerms),
    "most negative stake": Case(lambda s: _reg(s, "p0", stake=-MAX_INT64),
                                InvalidProviderTerms),
    "stake above balance": Case(lambda s: _reg(s, stake=FUNDS), InsufficientFunds),
    "stake + fee above balance": Case(lambda s: _reg(s, stake=FUNDS - FEE + 1),
                                      InsufficientFunds),
    "bond above MAX_AMOUNT": Case(lambda s: _reg(s, "p0", stake=MAX_AMOUNT), AmountOverflow),
    "stake 2**64 - 1": Case(lambda s: _reg(s, stake=2**64 - 1), AmountOverflow),
}

SUBMIT_CASES = {
    "unknown kernel": Case(lambda s: _sub(s, JobSpec("conv-int8", (4, 4, 4), bytes(32))),
                           InvalidJob),
    "zero dimension": Case(lambda s: _sub(s, JobSpec(MATMUL, (4, 0, 4), bytes(32))),
                           InvalidJob),
    "dimension above max": Case(lambda s: _sub(s, JobSpec(MATMUL, (MAX_DIM + 1, 1, 1),
                                                          bytes(32))), InvalidJob),
    "matmul with 2 dims": Case(lambda s: _sub(s, JobSpec(MATMUL, (4, 4), bytes(32))),
                               InvalidJob),
    "matmul with 4 dims": Case(lambda s: _sub(s, JobSpec(MATMUL, (4, 4, 4, 4), bytes(32))),
                               InvalidJob),
    "mlp with 2 dims": Case(lambda s: _sub(s, JobSpec(MLP, (4, 4), bytes(32))), InvalidJob),
    "mlp with 19 dims": Case(lambda s: _sub(s, JobSpec(MLP, (2,) * 19, bytes(32))),
                             MalformedTx),
    "too many units": Case(lambda s: _sub(s, matmul(PARAMS.max_job_units + 1)), InvalidJob),
    "deadline 0": Case(lambda s: _sub(s, deadline=0), InvalidJob),
    "deadline above max": Case(lambda s: _sub(s, deadline=PARAMS.max_job_deadline_blocks + 1),
                               InvalidJob),
    "max price 0": Case(lambda s: _sub(s, max_price=0), InvalidJob),
    "max price above MAX_AMOUNT": Case(lambda s: _sub(s, max_price=MAX_AMOUNT + 1),
                                       InvalidJob),
    "carbon ceiling too high": Case(lambda s: _sub(s, carbon_max=MAX_CARBON + 1), InvalidJob),
    "escrow above balance": Case(lambda s: _sub(s, matmul(2), max_price=FUNDS // 2),
                                 InsufficientFunds),
    "escrow + fee above balance": Case(lambda s: _sub(s, max_price=FUNDS - FEE + 1),
                                       InsufficientFunds),
    "escrow above MAX_AMOUNT": Case(lambda s: _sub(s, matmul(2), max_price=MAX_AMOUNT),
                                    AmountOverflow),
}

COMMIT_CASES = {
    "unknown job": Case(lambda s: [s.chain.commit_result(s.p0, sha256(b"nope"))], UnknownJob),
    "not the assigned provider": Case(lambda s: [s.chain.commit_result(s.p1, s.assigned)],
                                      NotJobProvider),
    "a buyer": Case(lambda s: [s.chain.commit_result(s.buyer, s.assigned)], NotJobProvider),
    "queued job": Case(lambda s: [s.chain.commit_result(s.p0, s.queued)], NotJobProvider),
    "already committed": Case(lambda s: [s.chain.commit_result(s.p0, s.committed)],
                              WrongJobStatus),
    "twice in one block": Case(lambda s: [s.chain.commit_result(s.p0, s.assigned),
                                          s.chain.commit_result(s.p0, s.assigned)],
                               WrongJobStatus),
}

VERDICT_CASES = {
    "unknown job": Case(lambda s: [s.chain.verdict(s.member(), sha256(b"nope"), 1)],
                        UnknownJob),
    "job not committed": Case(lambda s: [s.chain.verdict(s.member(), s.assigned, 1)],
                              WrongJobStatus),
    "queued job": Case(lambda s: [s.chain.verdict(s.member(), s.queued, 1)], WrongJobStatus),
    "randomness not yet set": Case(lambda s: [
        s.chain.commit_result(s.p0, s.assigned),
        s.chain.verdict(s.chain.net.validator_keys[0], s.assigned, 1)], WrongJobStatus),
    "validator off the committee": Case(lambda s: [
        s.chain.verdict(s.chain.outsiders(s.committed)[0], s.committed, 1)], NotInCommittee),
    "the provider": Case(lambda s: [s.chain.verdict(s.p0, s.committed, 1)], NotInCommittee),
    "duplicate": Case(lambda s: [s.chain.verdict(s.member(), s.committed, 1),
                                 s.chain.verdict(s.member(), s.committed, 0)],
                      DuplicateVerdict),
}

CASES = {f"{group}: {name}": case
         for group, cases in (("register", REGISTER_CASES), ("submit", SUBMIT_CASES),
                              ("commit", COMMIT_CASES), ("verdict", VERDICT_CASES))
         for name, case in cases.items()}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_rejects_the_block(scene: Scene, case: Case) -> None:
    cause = scene.chain.rejects(case.make(scene))
    assert type(cause) is case.error


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_rejects_the_tx_directly(scene: Scene, case: Case) -> None:
    chain = scene.chain
    raws = case.make(scene)
    chain.pending.clear()
    state = chain.state.copy()
    with pytest.raises(InvalidTx) as info:
        for raw in raws:
            before = (state.root(), state.market.hash(), state.supply.to_fields())
            try:
                tx = Tx.decode(raw, chain.params.max_tx_bytes)
            except DecodeError as exc:
                raise MalformedTx(str(exc)) from exc
            process_tx(state, tx, chain.params)
    assert type(info.value) is case.error
    assert (state.root(), state.market.hash(), state.supply.to_fields()) == before


def test_valid_txs_of_the_scene_apply(scene: Scene) -> None:
    """The cases' txs differ from valid ones only in the broken field."""
    chain, s = scene.chain, scene
    member = s.member()
    block = chain.build([chain.register(s.newcomer, stake=MIN), chain.submit(s.buyer),
                         chain.commit_result(s.p0, s.assigned),
                         chain.verdict(member, s.committed, 1)])
    chain.pending.clear()
    state = chain.apply(block)
    assert addr(s.newcomer) in state.market.providers
    assert state.market.jobs[s.assigned].status == JobStatus.COMMITTED
    assert state.market.jobs[s.committed].verdicts == (Verdict(addr(member), 1, ""),)
    check_market(state)


def test_select_txs_keeps_valid_market_txs_and_names_the_bad(scene: Scene) -> None:
    chain, s = scene.chain, scene
    raws = [chain.submit(s.buyer), chain.commit_result(s.p1, s.assigned),
            chain.commit_result(s.p0, s.assigned), chain.verdict(s.p0, s.committed, 1),
            chain.verdict(s.member(), s.committed, 1)]
    chain.pending.clear()
    chosen, rejected = select_txs(chain.state, raws, chain.params, None)
    assert [type(e) for _, e in rejected] == [NotJobProvider, NotInCommittee]
    assert chosen == [raws[0], raws[2], raws[4]]
    state = chain.apply(chain.build(chosen))
    assert state.market.jobs[s.assigned].status == JobStatus.COMMITTED


def test_commit_after_its_deadline_is_refused(scene: Scene) -> None:
    """Through blocks a late commit finds the job FAILED (WrongJobStatus, see the lifecycle
    tests); the deadline rule itself is checked on a state whose job is still assigned."""
    chain = scene.chain
    state = chain.state.copy()
    job = state.market.jobs[scene.assigned]
    state.market.jobs[job.id] = replace(job, assigned_height=state.height - job.deadline_blocks)
    assert state.market.jobs[job.id].deadline_height == state.height  # the next block is late
    root = state.root()
    tx = Tx.decode(chain.commit_result(scene.p0, job.id))
    chain.pending.clear()
    with pytest.raises(DeadlinePassed):
        process_tx(state, tx, chain.params)
    assert state.root() == root


def test_verdict_after_the_verify_deadline_is_refused(scene: Scene) -> None:
    chain = scene.chain
    state = chain.state.copy()
    job = state.market.jobs[scene.committed]
    late = state.height - 1 - chain.params.verify_blocks  # deadline = state.height
    state.market.jobs[job.id] = replace(job, committed_height=late)
    assert verify_deadline(state.market.jobs[job.id], chain.params) == state.height
    root = state.root()
    tx = Tx.decode(chain.verdict(scene.member(), job.id, 1))
    chain.pending.clear()
    with pytest.raises(DeadlinePassed):
        process_tx(state, tx, chain.params)
    assert state.root() == root


# --- registration and submission effects -----------------------------------------------------


def test_registration_bonds_stake_and_an_update_changes_terms() -> None:
    chain = MarketChain(make_market_net(label="register"))
    p = chain.providers[0]
    supply = chain.state.supply.expected_total
    chain.advance([chain.register(p, stake=MIN, price=7, capacity=1, carbon=300)])
    provider = chain.provider(p)
    assert provider == Provider(addr(p), MIN, (MATMUL,), 7, 1, "eu-north", 300,
                                provider.endpoint, 1)
    assert chain.balance_of(addr(p)) == FUNDS - MIN - FEE
    assert chain.state.market.bonded() == MIN
    chain.advance()
    moved, moved_again = ENDPOINT.replace("4001", "4101"), ENDPOINT.replace("4001", "4102")
    chain.advance([chain.register(p, stake=0, kernels=(MATMUL, MLP), price=9, capacity=3,
                                  region="us-west", carbon=20, endpoint=moved),
                   chain.register(p, stake=5, price=11, capacity=3, region="us-west",
                                  carbon=20, endpoint=moved_again)])
    provider = chain.provider(p)
    assert provider == Provider(addr(p), MIN + 5, (MATMUL,), 11, 3, "us-west", 20,
                                moved_again, 1)  # registered_height kept
    assert chain.balance_of(addr(p)) == FUNDS - MIN - 5 - 3 * FEE
    assert chain.state.supply.expected_total == supply - 3 * FEE  # every fee burned
    check_market(chain.state)


def test_submission_escrows_max_price_times_units() -> None:
    chain = MarketChain(make_market_net(label="escrow"))
    buyer = chain.buyers[0]
    raws = [chain.submit(buyer, matmul(3), max_price=777, deadline=9, carbon_max=120),
            chain.submit(buyer, mlp(2), max_price=5)]
    chain.advance(raws)
    assert chain.balance_of(addr(buyer)) == FUNDS - 3 * 777 - 2 * 5 - 2 * FEE
    assert chain.state.market.escrowed() == 3 * 777 + 2 * 5
    job = chain.job(sha256(raws[0]))
    assert (job.buyer, job.units, job.escrow, job.max_price, job.deadline_blocks,
            job.carbon_max) == (addr(buyer), 3, 3 * 777, 777, 9, 120)
    assert (job.status, job.submitted_height, job.submitted_time_ms) == (
        JobStatus.QUEUED, 1, chain.state.time_ms)
    assert chain.state.market.queue == [sha256(r) for r in raws]
    assert chain.stats(MATMUL).submitted == chain.stats(MLP).submitted == 1
    check_market(chain.state)


# --- the lifecycle over real blocks ----------------------------------------------------------


def balances(chain: MarketChain, keys: list[PrivateKey]) -> list[int]:
    return [chain.balance_of(addr(k)) for k in keys]


def test_accepted_job_pays_provider_verifiers_and_refunds_the_buyer() -> None:
    chain = MarketChain(make_market_net(label="accept"))
    p, buyer = chain.providers[0], chain.buyers[0]
    chain.advance([chain.register(p, price=1_234)])
    job_id = chain.assigned_job(p, buyer, spec=matmul(3), max_price=2_000)
    job = chain.job(job_id)
    assert (job.price, job.assigned_height, job.escrow) == (1_234, 2, 6_000)
    assert chain.provider(p).active_jobs == 1
    assert chain.stats().assigned == 1
    chain.committed_job(job_id)
    members = chain.committee_keys(job_id)
    assert len(members) == 3 == len({addr(k) for k in members})
    assert chain.job(job_id).committee == committee_of(chain.state, job_id)
    before = balances(chain, [p, buyer, *members])
    supply = chain.state.supply.to_fields()
    chain.vote(job_id, [1, 1, 1])
    payment, fee = 1_234 * 3, 1_234 * 3 * 500 // BPS
    share = fee // 3
    paid = payment - 3 * share
    assert paid > payment - fee  # the rounding dust goes to the provider
    reward = 3 * PARAMS.compute_reward_per_unit
    after = balances(chain, [p, buyer, *members])
    assert after[0] == before[0] + paid + reward
    assert after[1] == before[1] + 6_000 - payment
    assert after[2:] == [b - FEE + share for b in before[2:]]
    job = chain.job(job_id)
    assert (job.status, job.outcome, job.settled_height) == (JobStatus.ACCEPTED, "accepted", 5)
    assert (job.paid, job.reward, job.refunded, job.slashed) == (paid, reward, 6_000 - payment, 0)
    assert chain.state.supply.minted == supply[1] + reward
    assert chain.state.supply.burned == supply[2] + 3 * FEE
    assert chain.state.supply.slashed == 0
    provider = chain.provider(p)
    assert (provider.active_jobs, provider.jobs_accepted, provider.stake) == (0, 1, 4 * MIN)
    stats = chain.stats()
    assert (stats.accepted, stats.units_accepted, stats.price_index, stats.last_price) == (
        1, 3, 1_234, 1_234)
    assert (stats.queue_blocks_total, stats.queue_ms_total) == (0, 0)
    assert chain.state.market.open == [] and chain.state.market.escrowed() == 0
    check_market(chain.state)
    late = chain.verdict(chain.committee_keys(job_id)[0], job_id, 1)
    assert type(chain.rejects([late])) is WrongJobStatus  # a late verdict finds it settled
    # the price index moves 1/8 of the way to the next agreed price
    chain.advance([chain.register(p, stake=0, price=2_034)])
    second = chain.assigned_job(p, buyer, max_price=2_034)
    chain.committed_job(second)
    chain.vote(second, [1, 1, 1])
    assert chain.stats().price_index == 1_234 + 800 // 8
    assert chain.stats().last_price == 2_034
    check_market(chain.state)


@pytest.mark.parametrize("votes", [[0, 0], [1, 0, 0], [0, 1, 0]])
def test_rejected_job_slashes_the_provider_and_refunds_the_buyer(votes: list[int]) -> None:
    chain = MarketChain(make_market_net(label="reject"))
    p, buyer = chain.providers[0], chain.buyers[0]
    job_id = chain.assigned_job(p, buyer, spec=matmul(2))
    chain.committed_job(job_id)
    members = chain.committee_keys(job_id)
    before = balances(chain, [p, buyer, *members])
    chain.vote(job_id, votes)
    cut = 4 * MIN * PARAMS.provider_slash_bps // BPS
    job = chain.job(job_id)
    assert (job.status, job.outcome, job.slashed, job.refunded) == (
        JobStatus.REJECTED, "invalid_result", cut, 2 * 2_000)
    assert chain.state.supply.slashed == cut
    provider = chain.provider(p)
    assert (provider.stake, provider.slashed, provider.jobs_rejected, provider.active_jobs) == (
        4 * MIN - cut, cut, 1, 0)
    after = balances(chain, [p, buyer, *members])
    assert after[:2] == [before[0], before[1] + 2 * 2_000]
    assert after[2:] == [b - FEE * (i < len(votes)) for i, b in enumerate(before[2:])]
    assert chain.stats().rejected == 1
    check_market(chain.state)


@pytest.mark.parametrize("votes", [[], [1], [1, 1, 0]])
def test_undecided_job_is_refunded_after_verify_blocks(votes: list[int]) -> None:
    """[1, 1, 0]: exactly 2/3 valid and exactly 1/3 invalid decide nothing."""
    chain = MarketChain(make_market_net(label="undecided"))
    p, buyer = chain.providers[0], chain.buyers[0]
    job_id = chain.assigned_job(p, buyer)
    chain.committed_job(job_id)
    chain.vote(job_id, votes)
    deadline = verify_deadline(chain.job(job_id), PARAMS)
    assert deadline == 3 + 1 + PARAMS.verify_blocks
    before = balances(chain, [p, buyer])
    chain.run_to(deadline - 1)
    assert chain.job(job_id).status == JobStatus.COMMITTED
    check_market(chain.state)
    chain.run_to(deadline)
    job = chain.job(job_id)
    assert (job.status, job.outcome, job.refunded, job.settled_height) == (
        JobStatus.UNDECIDED, "no_quorum", 2_000, deadline)
    assert balances(chain, [p, buyer]) == [before[0], before[1] + 2_000]
    assert chain.state.supply.slashed == 0
    assert chain.state.supply.minted == 0
    provider = chain.provider(p)
    assert (provider.active_jobs, provider.stake, provider.jobs_accepted) == (0, 4 * MIN, 0)
    assert chain.stats().undecided == 1
    check_market(chain.state)
    member = chain.committee_keys(job_id)[-1]
    assert type(chain.rejects([chain.verdict(member, job_id, 1)])) is WrongJobStatus


def test_missed_deadline_fails_and_slashes() -> None:
    chain = MarketChain(make_market_net(label="failed"))
    p, buyer = chain.providers[0], chain.buyers[0]
    chain.advance([chain.register(p, stake=MIN)])
    job_id = chain.assigned_job(p, buyer, deadline=2)
    assert chain.job(job_id).deadline_height == 4
    chain.advance()
    # a commit in the deadline block itself is still in time
    late_but_ok = chain.apply(chain.build([chain.commit_result(p, job_id)]))
    assert late_but_ok.market.jobs[job_id].status == JobStatus.COMMITTED
    chain.pending.clear()
    before = balances(chain, [p, buyer])
    chain.advance()
    job = chain.job(job_id)
    cut = MIN * PARAMS.provider_slash_bps // BPS
    assert (job.status, job.outcome, job.slashed, job.refunded, job.settled_height) == (
        JobStatus.FAILED, "missed_deadline", cut, 2_000, 4)
    assert balances(chain, [p, buyer]) == [before[0], before[1] + 2_000]
    assert chain.state.supply.slashed == cut
    provider = chain.provider(p)
    assert (provider.stake, provider.jobs_failed, provider.active_jobs) == (MIN - cut, 1, 0)
    assert chain.stats().failed == 1
    check_market(chain.state)
    assert type(chain.rejects([chain.commit_result(p, job_id)])) is WrongJobStatus
    # the bond is now below the minimum: the provider gets no new job until it tops up
    waiting = chain.submit(buyer)
    chain.advance([waiting])
    assert chain.job(sha256(waiting)).status == JobStatus.QUEUED
    # topping up to less than the minimum is refused, as is a bare update of terms
    assert type(chain.rejects([chain.register(p, stake=cut - 1)])) is InvalidProviderTerms
    assert type(chain.rejects([chain.register(p, stake=0)])) is InvalidProviderTerms
    chain.advance([chain.register(p, stake=cut)])
    assert chain.provider(p).stake == MIN
    assert chain.job(sha256(waiting)).provider == addr(p)
    check_market(chain.state)


def test_job_nobody_can_take_expires_and_is_refunded() -> None:
    chain = MarketChain(make_market_net(label="expire"))
    p, buyer = chain.providers[0], chain.buyers[0]
    chain.advance([chain.register(p)])  # matmul only
    raw = chain.submit(buyer, mlp(2), max_price=50)
    chain.advance([raw])
    job_id = sha256(raw)
    balance = chain.balance_of(addr(buyer))
    chain.run_to(1 + PARAMS.job_queue_blocks)
    assert chain.job(job_id).status == JobStatus.QUEUED
    chain.advance()
    job = chain.job(job_id)
    assert (job.status, job.outcome, job.refunded, job.provider) == (
        JobStatus.EXPIRED, "no_provider", 100, b"")
    assert chain.balance_of(addr(buyer)) == balance + 100
    assert chain.state.market.queue == []
    assert (chain.stats(MLP).expired, chain.stats(MLP).assigned) == (1, 0)
    check_market(chain.state)


def test_verdicts_count_from_the_block_that_fixes_the_challenge() -> None:
    """begin_market_block runs before the txs: a member may vote in the very block whose
    last commit fixed its committee."""
    chain = MarketChain(make_market_net(label="early"))
    job_id = chain.assigned_job(chain.providers[0], chain.buyers[0])
    chain.advance([chain.commit_result(chain.providers[0], job_id)])
    randomness = expected_randomness(job_id, chain.last_commit.hash())
    committee = select_committee(chain.state.validators, randomness, PARAMS.committee_size)
    members = [chain.key_of(a) for a, _ in committee]
    chain.advance([chain.verdict(k, job_id, 1) for k in members])
    assert chain.job(job_id).status == JobStatus.ACCEPTED
    check_market(chain.state)


def test_challenge_depends_on_the_last_commit() -> None:
    chain = MarketChain(make_market_net(label="challenge"))
    job_id = chain.assigned_job(chain.providers[0], chain.buyers[0])
    block = chain.advance([chain.commit_result(chain.providers[0], job_id)])
    keys = chain.net.validator_keys
    commits = [sign_commit(block.hash(), block.height, signers, chain.state.chain_id)
               for signers in (keys, keys[:3], keys[1:])]
    results = set()
    for commit in commits:
        state = chain.apply(chain.build(last_commit=commit))
        job = state.market.jobs[job_id]
        assert job.randomness == expected_randomness(job_id, commit.hash())
        assert job.committee == committee_of(state, job_id)
        results.add(job.randomness)
    assert len(results) == 3


@pytest.mark.parametrize(("votes", "outcome"), [
    ({"big": 1}, JobStatus.COMMITTED),  # 4/6 is exactly 2/3: not more
    ({"big": 1, "s1": 1}, JobStatus.ACCEPTED),  # 5/6
    ({"s1": 0, "s2": 0}, JobStatus.COMMITTED),  # 2/6 is exactly 1/3: not more
    ({"s1": 0, "s2": 0, "big": 1}, JobStatus.COMMITTED),
    ({"big": 0}, JobStatus.REJECTED),
    ({"s1": 1, "s2": 1, "big": 0}, JobStatus.REJECTED),  # invalid wins over a valid minority
    ({}, JobStatus.COMMITTED),
])
def test_tally_weighs_verdicts_by_committee_stake(votes: dict[str, int],
                                                  outcome: JobStatus) -> None:
    members = {name: addr(key(f"tally/{name}")) for name in ("s1", "s2", "big")}
    committee = tuple(sorted([(members["s1"], 1), (members["s2"], 1), (members["big"], 4)]))
    job = replace(open_job("tally"), committee=committee,
                  verdicts=tuple(Verdict(members[n], v, "") for n, v in votes.items()))
    assert tally(job) == outcome


def test_compute_reward_stops_at_the_supply_cap() -> None:
    net = make_market_net(label="cap")
    total = sum(b for _, b in net.genesis.accounts) + sum(v.stake for v in net.genesis.validators)
    rich = net.user_keys[-1]
    room = 100 + 3 * FEE  # the fees of the settling block are burned after settlement
    accounts = tuple(sorted((a, b + (MAX_AMOUNT - total - room if a == addr(rich) else 0))
                            for a, b in net.genesis.accounts))
    net = replace(net, genesis=replace(net.genesis, accounts=accounts))
    chain = MarketChain(net)
    assert chain.state.supply.expected_total == MAX_AMOUNT - room
    p, buyer = chain.providers[0], chain.buyers[0]
    job_id = chain.assigned_job(p, buyer)
    chain.committed_job(job_id)
    balance = chain.balance_of(addr(p))
    chain.vote(job_id, [1, 1, 1])
    job = chain.job(job_id)
    assert job.status == JobStatus.ACCEPTED and job.reward == 0
    assert chain.balance_of(addr(p)) == balance + job.paid
    assert chain.state.supply.minted == 0
    check_market(chain.state)


# --- assignment ------------------------------------------------------------------------------


def provider(label: str, price: int = 10, carbon: int = 100, *, capacity: int = 4,
             stake: int = MIN, kernels: tuple[str, ...] = (MATMUL,), accepted: int = 0,
             active: int = 0) -> Provider:
    return Provider(addr(key(f"assign/{label}")), stake, kernels, price, capacity, "eu",
                    carbon, "/ip4/1", 1, active_jobs=active, jobs_accepted=accepted)


def open_job(label: str, max_price: int = 100, carbon_max: int = 0,
             spec: JobSpec | None = None) -> Job:
    spec = spec or matmul()
    return Job(sha256(label.encode()), bytes(20), spec, max_price, 5, carbon_max,
               max_price * spec.units, 1, 0)


LABELS = {addr(key(f"assign/{label}")): label for label in ("a", "b", "c", "new", "old")}


def pick(providers: list[Provider], job: Job | None = None, *, assignments: int = 0,
         seed: bytes = bytes(32), params: ChainParams = PARAMS) -> str | None:
    """The label of the provider choose_provider picks (None when nobody is eligible)."""
    market = Market({p.address: p for p in providers}, assignments=assignments)
    chosen = choose_provider(market, job or open_job("j"), seed, params)
    return None if chosen is None else LABELS[chosen.address]


@pytest.mark.parametrize(("providers", "job", "winner"), [
    ([provider("a", 10), provider("b", 9), provider("c", 11)], None, "b"),
    ([provider("a", 9, 300), provider("b", 9, 200), provider("c", 9, 250)], None, "b"),
    ([provider("a", 5, 900), provider("b", 9, 200)], open_job("j", carbon_max=500), "b"),
    ([provider("a", 5, 500), provider("b", 9, 200)], open_job("j", carbon_max=500), "a"),
    ([provider("a", 5, 900), provider("b", 9, 200)], open_job("j", carbon_max=0), "a"),
    ([provider("a", 5, 900)], open_job("j", carbon_max=899), None),
    ([provider("a", 5, active=4), provider("b", 9)], None, "b"),
    ([provider("a", 5, capacity=2, active=1), provider("b", 9)], None, "a"),
    ([provider("a", 5, active=4)], None, None),
    ([provider("a", 5, kernels=(MLP,)), provider("b", 9, kernels=(MATMUL, MLP))], None, "b"),
    ([provider("a", 5)], open_job("j", spec=mlp()), None),
    ([provider("a", 101), provider("b", 100)], open_job("j", max_price=100), "b"),
    ([provider("a", 101)], open_job("j", max_price=100), None),
    ([provider("a", 5, stake=MIN - 1), provider("b", 9, stake=MIN)], None, "b"),
    ([provider("a", 0), provider("b", 1)], None, "a"),
    ([], None, None),
], ids=["cheapest", "then lowest carbon", "ceiling excludes dirty", "ceiling is inclusive",
        "0 is no ceiling", "nobody clean enough", "full provider skipped",
        "free capacity used", "everyone full", "kernel filter", "nobody runs the kernel",
        "price above max excluded", "everyone too dear", "stake below min excluded",
        "free provider", "no providers"])
def test_choose_provider(providers: list[Provider], job: Job | None, winner: str | None) -> None:
    assert pick(providers, job) == winner


@pytest.mark.parametrize("share", [0, 1, 1_000, 2_000, 3_333, 5_000, 9_999, BPS])
def test_reserved_slots_are_exactly_the_share(share: int) -> None:
    params = replace(PARAMS, newcomer_share_bps=share)
    reserved = [n for n in range(20_000) if is_reserved_slot(n, params)]
    for total in (1, 5, 7, 100, 999, 10_000, 20_000):
        assert sum(1 for n in reserved if n < total) == total * share // BPS
    gaps = {b - a for a, b in pairwise(reserved)}
    if share:  # evenly spaced: consecutive reserved slots differ by floor or ceil of BPS/share
        assert gaps <= {BPS // share, -(-BPS // share)}


def test_reserved_slot_prefers_a_newcomer_even_when_dearer() -> None:
    cheap_old = provider("old", 5, accepted=PARAMS.newcomer_jobs)
    dear_new = provider("new", 50, 900, accepted=PARAMS.newcomer_jobs - 1)
    reserved = next(n for n in range(100) if is_reserved_slot(n, PARAMS))
    assert pick([cheap_old, dear_new], assignments=reserved) == "new"
    assert pick([cheap_old, dear_new], assignments=reserved - 1) == "old"
    # no eligible newcomer: the slot goes to the best provider there is
    assert pick([cheap_old, replace(dear_new, price=101)], assignments=reserved) == "old"
    assert pick([cheap_old], assignments=reserved) == "old"
    # among newcomers, the usual order
    other_new = provider("a", 40, 900)
    assert pick([cheap_old, dear_new, other_new], assignments=reserved) == "a"


def test_assign_jobs_gives_newcomers_exactly_their_share() -> None:
    state = make_market_net(label="share").genesis.initial_state()
    old = provider("old", 5, capacity=1_000, accepted=50)
    new = provider("new", 50, capacity=1_000)
    jobs = [open_job(f"share/{i}") for i in range(60)]
    state.market = Market({old.address: old, new.address: new}, {j.id: j for j in jobs},
                          [j.id for j in jobs], assignments=3)
    assign_jobs(state, 1, 0, PARAMS)
    market = state.market
    to_new = [n for n, j in enumerate(jobs, start=3)
              if market.jobs[j.id].provider == new.address]
    assert to_new == [n for n in range(3, 63) if is_reserved_slot(n, PARAMS)]
    assert len(to_new) == (63 * 2_000 // BPS) - (3 * 2_000 // BPS) == 12
    assert market.assignments == 63 and market.queue == []
    assert market.providers[new.address].active_jobs == 12
    assert market.providers[old.address].active_jobs == 48


def test_capacity_is_respected_within_one_block() -> None:
    state = make_market_net(label="cap").genesis.initial_state()
    a, b = provider("a", 5, capacity=2), provider("b", 9, capacity=1)
    jobs = [open_job(f"cap/{i}") for i in range(5)]
    state.market = Market({a.address: a, b.address: b}, {j.id: j for j in jobs},
                          [j.id for j in jobs])
    assign_jobs(state, 1, 0, PARAMS)
    got = [state.market.jobs[j.id].provider for j in jobs]
    assert got == [a.address, a.address, b.address, b"", b""]
    assert state.market.queue == [jobs[3].id, jobs[4].id]


def test_ties_are_broken_by_the_seed() -> None:
    twins = [provider("a", 7, 70), provider("b", 7, 70)]
    job = open_job("tie")
    winners = Counter()
    for i in range(64):
        seed = sha256(b"prev block %d" % i)
        won = pick(twins, job, seed=seed)
        assert won == pick(twins, job, seed=seed)  # deterministic
        expected = min(twins, key=lambda p: sha256(ASSIGN_DOMAIN + seed + job.id + p.address))
        assert addr(key(f"assign/{won}")) == expected.address
        winners[won] += 1
    assert set(winners) == {"a", "b"}
    assert 16 <= winners["a"] <= 48
    # the job id matters too
    picks = {pick(twins, open_job(f"tie/{i}")) for i in range(16)}
    assert picks == {"a", "b"}


def test_assignment_over_blocks_follows_price_carbon_and_the_previous_hash() -> None:
    chain = MarketChain(make_market_net(label="order"))
    p = chain.providers
    buyer = chain.buyers[0]
    chain.advance([chain.register(p[0], price=10, carbon=300, capacity=4),
                   chain.register(p[1], price=8, carbon=500, capacity=4),
                   chain.register(p[2], price=8, carbon=100, capacity=1),
                   chain.register(p[3], price=5, carbon=900, capacity=1)])
    terms = {"deadline": 50}
    raws = [chain.submit(buyer, max_price=20, **terms),  # p3: the cheapest
            chain.submit(buyer, max_price=20, **terms),  # p2: p3 is full; lowest carbon
            chain.submit(buyer, max_price=20, carbon_max=400, **terms),  # p0: p2 is full
            chain.submit(buyer, max_price=9, carbon_max=400, **terms),  # nobody: waits
            chain.submit(buyer, max_price=20, carbon_max=600, **terms)]  # p1
    chain.advance(raws)
    got = [chain.job(sha256(r)).provider for r in raws]
    assert got == [addr(p[3]), addr(p[2]), addr(p[0]), b"", addr(p[1])]
    check_market(chain.state)
    # twins: the winner is the one the previous block's hash picks
    chain.advance([chain.register(p[0], stake=0, price=8, carbon=500, capacity=4)])
    twins = [chain.provider(p[0]), chain.provider(p[1])]
    winners = set()
    for i in range(6):
        raw = chain.submit(chain.buyers[1], matmul(seed=b"twin %d" % i), max_price=8,
                           carbon_max=600, deadline=50)
        prev = chain.state.last_block_hash
        free = [q for q in twins
                if chain.provider(chain.key_of(q.address)).active_jobs < q.capacity]
        chain.advance([raw])
        job_id = sha256(raw)
        expected = min(free, key=lambda q: sha256(ASSIGN_DOMAIN + prev + job_id + q.address))
        assert chain.job(job_id).provider == expected.address
        winners.add(expected.address)
    assert len(winners) == 2
    check_market(chain.state)


def test_waiting_job_is_assigned_when_capacity_frees() -> None:
    chain = MarketChain(make_market_net(label="frees"))
    p, buyer = chain.providers[0], chain.buyers[0]
    chain.advance([chain.register(p, capacity=1)])
    raws = [chain.submit(buyer), chain.submit(buyer)]
    chain.advance(raws)
    first, second = (sha256(r) for r in raws)
    assert chain.job(first).provider == addr(p)
    assert chain.state.market.queue == [second]
    chain.committed_job(first)
    assert chain.state.market.queue == [second]
    chain.vote(first, [1, 1, 1])  # block 5: settled, then the freed slot is taken
    job = chain.job(second)
    assert (job.status, job.provider, job.assigned_height) == (JobStatus.ASSIGNED, addr(p), 5)
    stats = chain.stats()
    assert (stats.queue_blocks_total, stats.queue_ms_total) == (3, 3 * BLOCK_INTERVAL_MS)
    check_market(chain.state)


# --- committees ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_committee_is_distinct_and_sized(n: int, size: int) -> None:
    vals = validators([10 * (i + 1) for i in range(n)])
    for i in range(20):
        committee = select_committee(vals, sha256(b"%d" % i), size)
        assert len(committee) == min(size, n)
        assert len({a for a, _ in committee}) == len(committee)
        assert list(committee) == sorted(committee)
        stakes = {v.address: v.stake for v in vals}
        assert all(stakes[a] == s for a, s in committee)
        assert committee == select_committee(tuple(reversed(vals)), sha256(b"%d" % i), size)


def test_committee_depends_on_the_seed() -> None:
    vals = validators([100] * 10)
    committees = {select_committee(vals, sha256(b"%d" % i), 3) for i in range(60)}
    assert len(committees) >= 40  # 120 possible committees


def test_committee_is_drawn_by_stake() -> None:
    stakes = [1, 2, 3, 4]
    vals = validators([s * 10**9 for s in stakes], label="weights")
    by_address = {v.address: v.stake // 10**9 for v in vals}
    draws = 4_000
    counts = Counter(select_committee(vals, sha256(b"w%d" % i), 1)[0][0] for i in range(draws))
    for address, stake in by_address.items():
        expected = draws * stake / sum(stakes)
        assert abs(counts[address] - expected) < 4 * (expected ** 0.5) + 10
    # in pairs the heaviest still shows up more than the lightest
    pairs = Counter(a for i in range(1_000) for a, _ in select_committee(
        vals, sha256(b"p%d" % i), 2))
    heavy = max(by_address, key=by_address.get)
    light = min(by_address, key=by_address.get)
    assert pairs[heavy] > 1.5 * pairs[light]
    assert sum(pairs.values()) == 2_000


# --- supply invariant under random market traffic --------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_supply_invariant_under_random_market_traffic(seed: int) -> None:
    chain, outcomes = run_random_market(seed, 45)
    assert set(outcomes) == {"ACCEPTED", "REJECTED", "FAILED", "UNDECIDED", "EXPIRED"}, (
        f"seed {seed} reached only {dict(outcomes)}")
    assert chain.state.supply.slashed > 0
    assert any(j.reward for j in chain.state.market.jobs.values())


@given(st.randoms(use_true_random=False))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_supply_invariant_property(rng: random.Random) -> None:
    run_random_market(rng, 25)


# --- encodings -------------------------------------------------------------------------------


def _roundtrip(obj: object) -> object:
    return type(obj).from_fields(decode(encode(obj.to_fields())))


@pytest.fixture(scope="module")
def busy() -> MarketChain:
    """A chain with jobs in every status, including a settled one with verdicts."""
    chain, _ = run_random_market(1, 30)
    return chain


def test_market_records_roundtrip(busy: MarketChain) -> None:
    market = busy.state.market
    assert {j.status for j in market.jobs.values()} >= {JobStatus.ACCEPTED, JobStatus.QUEUED}
    for job in market.jobs.values():
        assert _roundtrip(job) == job
    for p in market.providers.values():
        assert _roundtrip(p) == p
    for stats in market.stats.values():
        assert _roundtrip(stats) == stats
    assert _roundtrip(KernelStats()) == KernelStats()
    again = Market.from_fields(decode(encode(market.to_fields()), 1 << 24))
    assert again == market and again.hash() == market.hash()
    assert Market.from_fields(decode(encode(Market().to_fields()))) == Market()


def test_state_meta_roundtrip_keeps_the_root(busy: MarketChain) -> None:
    state = busy.state
    assert state.market.jobs
    meta = decode(encode(state.meta_fields()), 1 << 24)
    again = State.from_meta(meta, dict(state.accounts))
    assert again.root() == state.root()
    assert again.market == state.market
    # and the chain goes on from the reloaded state exactly as from the original
    block = busy.build()
    assert apply_block(again, block, again.params).root() == busy.apply(block).root()


def test_state_root_commits_to_the_market(busy: MarketChain) -> None:
    state = busy.state
    job = next(iter(state.market.jobs.values()))
    p = next(iter(state.market.providers.values()))
    changes = [
        lambda m: m.jobs.__setitem__(job.id, replace(job, outcome=job.outcome + "x")),
        lambda m: m.providers.__setitem__(p.address, replace(p, carbon=p.carbon + 1)),
        lambda m: m.stats.__setitem__(MATMUL, replace(m.kernel_stats(MATMUL),
                                                      queue_ms_total=1)),
        lambda m: setattr(m, "assignments", m.assignments + 1),
        lambda m: m.queue.append(job.id),
    ]
    roots = {state.root()}
    for change in changes:
        other = state.copy()
        change(other.market)
        roots.add(other.root())
    assert len(roots) == len(changes) + 1
    assert state.root() == busy.state.root()  # the copies did not touch the original


@pytest.mark.parametrize(("index", "value"), [
    (9, 8),  # status beyond UNDECIDED
    (0, bytes(31)),  # job id length
    (1, bytes(21)),  # buyer address length
    (3, -1),  # negative max price
    (6, MAX_AMOUNT + 1),  # escrow above MAX_AMOUNT
    (17, [[bytes(20), 0]]),  # committee member with no stake
    (18, [[bytes(20), 2, ""]]),  # verdict neither valid nor invalid
    (20, b"accepted"),  # outcome not a string
    (2, ["matmul-int8", [4, 4, 4], bytes(31)]),  # seed length
])
def test_job_decoding_rejects_bad_fields(index: int, value: object) -> None:
    fields = open_job("decode").to_fields()
    assert Job.from_fields(fields) == open_job("decode")
    fields[index] = value
    with pytest.raises(DecodeError):
        Job.from_fields(fields)


@pytest.mark.parametrize("fields", [
    [], [bytes(20)] * 14, [bytes(20), -1, [], 0, 0, "", 0, "", 0, 0, 0, 0, 0, 0],
    [bytes(20), 1, "matmul-int8", 0, 0, "", 0, "", 0, 0, 0, 0, 0, 0],
])
def test_provider_decoding_rejects_bad_fields(fields: list) -> None:
    with pytest.raises(DecodeError):
        Provider.from_fields(fields)


def test_market_decoding_rejects_bad_fields() -> None:
    good = Market().to_fields()
    for bad in ([*good, 0], good[:5], [[], [], [b"x"], [], [], 0], [[], [], [], [], [], -1],
                [[], [], [], [], [["k", [0] * 11]], 0], [[], [], [], [], [["k", [-1] * 12]], 0]):
        with pytest.raises(DecodeError):
            Market.from_fields(bad)
    with pytest.raises(DecodeError):
        KernelStats.from_fields([0] * 13)


BODIES = [
    RegisterProvider(MIN, (MATMUL, MLP), 12, 3, "eu-north", 42, "/ip4/1.2.3.4/tcp/1"),
    RegisterProvider(-5, (), 0, 0, "", 0, ""),  # decodes; the rules refuse it
    SubmitJob(matmul(2), 99, 7, 300),
    SubmitJob(JobSpec(MLP, (8, 16, 32, 16), bytes(32)), 1, 1, 0),
    CommitResult(sha256(b"job"), sha256(b"root")),
    PostVerdict(sha256(b"job"), 0, "row 17 differs"),
    PostVerdict(sha256(b"job"), 1, ""),
]


@pytest.mark.parametrize("body", BODIES, ids=[type(b).__name__ for b in BODIES])
def test_market_tx_bodies_roundtrip(body: object) -> None:
    k = key("encode")
    tx = make_tx(k, "jevons-unit", body, 3, 100)
    again = Tx.decode(tx.encode())
    assert again == tx and again.body == body and again.hash() == tx.hash()
    assert type(body).from_fields(decode(encode(body.to_fields()))) == body


@pytest.mark.parametrize(("kind", "body"), [
    (TxKind.REGISTER_PROVIDER, [1, "matmul-int8", 1, 1, "eu", 1, "e"]),  # kernels not a list
    (TxKind.REGISTER_PROVIDER, [b"1", [], 1, 1, "eu", 1, "e"]),  # stake not an int
    (TxKind.REGISTER_PROVIDER, [1, [], -1, 1, "eu", 1, "e"]),  # negative price
    (TxKind.REGISTER_PROVIDER, [1, ["matmul-int8"] * 9, 1, 1, "eu", 1, "e"]),  # 9 kernels
    (TxKind.REGISTER_PROVIDER, [1, [], 1, 1, "e" * 33, 1, "e"]),  # region too long
    (TxKind.REGISTER_PROVIDER, [1, [], 1, 1, "eu", 1, "e" * 257]),  # endpoint too long
    (TxKind.REGISTER_PROVIDER, [1, [], 1, 1, "eu", 1]),  # a field short
    (TxKind.SUBMIT_JOB, [["matmul-int8", [4, 4, 4], bytes(32)], -1, 1, 0]),  # negative price
    (TxKind.SUBMIT_JOB, [["matmul-int8", [4, 4, 4], bytes(32)], 1, "1", 0]),  # deadline str
    (TxKind.SUBMIT_JOB, [["matmul-int8", 4, bytes(32)], 1, 1, 0]),  # dims not a list
    (TxKind.SUBMIT_JOB, [["matmul-int8", [4, 4, 2**32 + 1], bytes(32)], 1, 1, 0]),  # dim
    (TxKind.SUBMIT_JOB, [["m" * 33, [4, 4, 4], bytes(32)], 1, 1, 0]),  # kernel too long
    (TxKind.COMMIT_RESULT, [bytes(31), bytes(32)]),  # job id length
    (TxKind.COMMIT_RESULT, [bytes(32), bytes(33)]),  # root length
    (TxKind.COMMIT_RESULT, [bytes(32), "root"]),  # root not bytes
    (TxKind.POST_VERDICT, [bytes(32), 2, ""]),  # verdict neither 0 nor 1
    (TxKind.POST_VERDICT, [bytes(32), -1, ""]),
    (TxKind.POST_VERDICT, [bytes(32), 1, "x" * 97]),  # reason too long
    (TxKind.POST_VERDICT, [bytes(32), 1, b"why"]),  # reason not a string
])
def test_market_tx_bodies_reject_wrong_types(kind: TxKind, body: list) -> None:
    raw = encode([1, "jevons-unit", int(kind), key("encode").public, 0, 100, body, bytes(64)])
    with pytest.raises(DecodeError):
        Tx.decode(raw)


def test_params_validate_market_fields() -> None:
    assert ChainParams.from_dict(PARAMS.to_dict()) == PARAMS
    for name, value in (("newcomer_share_bps", BPS + 1), ("provider_slash_bps", BPS + 1),
                        ("verifier_fee_bps", BPS + 1), ("committee_size", 0),
                        ("verify_blocks", 0), ("job_queue_blocks", 0),
                        ("compute_reward_halving_blocks", 0), ("challenge_vectors", 17)):
        with pytest.raises(DecodeError, match=name.split("_")[0]):
            ChainParams.from_dict({**PARAMS.to_dict(), name: value})


def test_compute_reward_halves_and_never_exceeds_the_payment() -> None:
    params = replace(PARAMS, compute_reward_per_unit=1_000, compute_reward_halving_blocks=10)
    assert compute_reward(3, 10**9, 9, params) == 3_000
    assert compute_reward(3, 10**9, 10, params) == 1_500
    assert compute_reward(3, 10**9, 25, params) == 750
    assert compute_reward(3, 10**9, 10 * 70, params) == 0
    assert compute_reward(3, 1_234, 0, params) == 1_234
    assert compute_reward(3, 0, 0, params) == 0


# --- determinism -----------------------------------------------------------------------------


def test_replaying_the_blocks_gives_the_same_roots(busy: MarketChain) -> None:
    state = busy.net.genesis.initial_state()
    roots = []
    for block in busy.history:
        state = apply_block(state, block, state.params)
        roots.append(state.root())
    assert state.root() == busy.state.root()
    assert state.market == busy.state.market
    again, _ = run_random_market(1, 30)
    assert [b.hash() for b in again.history] == [b.hash() for b in busy.history]
    assert again.state.root() == roots[-1]


def test_provider_and_buyer_never_judge_their_own_job() -> None:
    """Validators that provide or buy a job are left out of its committee: with 4
    validators and committees of 3, the other two always sit on it and they never do."""
    chain = MarketChain(make_market_net(label="own-job"))
    provider, buyer = chain.net.validator_keys[0], chain.net.validator_keys[1]
    chain.advance([chain.register(provider, capacity=4)])
    for i in range(6):
        job_id = chain.assigned_job(provider, buyer, spec=matmul(1, seed=b"own-%d" % i))
        chain.committed_job(job_id)
        members = {a for a, _ in chain.job(job_id).committee}
        assert members == {addr(k) for k in chain.net.validator_keys[2:]}
        chain.vote(job_id, [1, 1])
        assert chain.job(job_id).status == JobStatus.ACCEPTED
