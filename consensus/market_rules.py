"""The compute market's state transition: transaction rules and per-block processing.

Called by consensus.transition: `process_market_tx` for each market transaction,
`begin_market_block` before a block's transactions (fix challenge randomness and
committees for results committed in the previous block) and `end_market_block` after
them (settle decided jobs, fail late providers, expire stale queue entries, assign queued
jobs). Everything is integer arithmetic over lists in a fixed order.

Randomness. A result committed in block H is challenged with
    SHA-256(CHALLENGE_DOMAIN || job id || last_commit_hash of block H+1),
i.e. block H's hash mixed with the validators' precommit signatures on it: it did not exist
when the provider committed. Assignment ties are broken with the previous block's hash.
"""

from __future__ import annotations

import bisect
from dataclasses import replace

from consensus.errors import (
    AmountOverflow,
    DeadlinePassed,
    DuplicateVerdict,
    InsufficientFunds,
    InvalidJob,
    InvalidProviderTerms,
    MalformedTx,
    NotInCommittee,
    NotJobProvider,
    UnknownJob,
    WrongJobStatus,
)
from consensus.hashing import sha256
from consensus.jobs import endpoint_problem, kernel_list_problem
from consensus.market import Job, JobStatus, Market, Provider, Verdict
from consensus.params import BPS, MAX_AMOUNT, ChainParams
from consensus.staking import Validator
from consensus.state import Account, State
from consensus.tx import CommitResult, PostVerdict, RegisterProvider, SubmitJob, Tx

CHALLENGE_DOMAIN = b"jevons/market/challenge/v1"
COMMITTEE_DOMAIN = b"jevons/market/committee/v1"
ASSIGN_DOMAIN = b"jevons/market/assign/v1"
MAX_CARBON = 100_000  # gCO2e/kWh; the dirtiest grids are near 1,000
PRICE_INDEX_WEIGHT = 8


# --- transactions ------------------------------------------------------------------------
# Each rule checks everything first and writes last, so a rejected tx leaves no trace.


def process_market_tx(state: State, tx: Tx, account: Account, params: ChainParams) -> None:
    body = tx.body
    if isinstance(body, RegisterProvider):
        register_provider(state, tx, account, body, params)
    elif isinstance(body, SubmitJob):
        submit_job(state, tx, account, body, params)
    elif isinstance(body, CommitResult):
        commit_result(state, tx, account, body)
    elif isinstance(body, PostVerdict):
        post_verdict(state, tx, account, body, params)
    else:
        raise MalformedTx(f"transaction kind {tx.kind} has no rule")


def _debit(state: State, tx: Tx, account: Account, amount: int) -> None:
    """Take `amount` + fee from the sender and bump its nonce."""
    if amount > MAX_AMOUNT or tx.fee > MAX_AMOUNT or amount + tx.fee > MAX_AMOUNT:
        raise AmountOverflow(f"amount + fee = {amount + tx.fee} exceeds {MAX_AMOUNT}")
    if amount + tx.fee > account.balance:
        raise InsufficientFunds(f"balance {account.balance} < {amount} + fee {tx.fee}")
    state.set_account(tx.sender, Account(account.balance - amount - tx.fee,
                                         account.nonce + 1))


def register_provider(state: State, tx: Tx, account: Account, body: RegisterProvider,
                      params: ChainParams) -> None:
    market = state.market
    existing = market.providers.get(tx.sender)
    problem = kernel_list_problem(body.kernels)
    if problem:
        raise InvalidProviderTerms(problem)
    if not 1 <= body.capacity <= params.max_provider_capacity:
        raise InvalidProviderTerms(f"capacity {body.capacity} outside 1.."
                                   f"{params.max_provider_capacity}")
    if body.carbon > MAX_CARBON:
        raise InvalidProviderTerms(f"carbon intensity {body.carbon} gCO2e/kWh exceeds "
                                   f"{MAX_CARBON}")
    if body.price > MAX_AMOUNT:
        raise InvalidProviderTerms(f"price {body.price} exceeds {MAX_AMOUNT}")
    problem = endpoint_problem(body.endpoint)
    if problem:
        raise InvalidProviderTerms(f"{problem}: verifiers fetch openings from it")
    if not body.region:
        raise InvalidProviderTerms("a region is required")
    if body.stake < 0:
        raise InvalidProviderTerms(f"stake {body.stake} is negative")
    bonded = (existing.stake if existing else 0) + body.stake
    if bonded < params.min_provider_stake:
        raise InvalidProviderTerms(f"bond would be {bonded}, the minimum is "
                                   f"{params.min_provider_stake}")
    if bonded > MAX_AMOUNT:
        raise AmountOverflow(f"provider bond would exceed {MAX_AMOUNT}")
    _debit(state, tx, account, body.stake)
    height = state.height + 1
    if existing is None:
        market.providers[tx.sender] = Provider(
            tx.sender, bonded, body.kernels, body.price, body.capacity, body.region,
            body.carbon, body.endpoint, height)
    else:
        market.providers[tx.sender] = replace(
            existing, stake=bonded, kernels=body.kernels, price=body.price,
            capacity=body.capacity, region=body.region, carbon=body.carbon,
            endpoint=body.endpoint)


def submit_job(state: State, tx: Tx, account: Account, body: SubmitJob,
               params: ChainParams) -> None:
    market = state.market
    problem = body.spec.problem()
    if problem:
        raise InvalidJob(problem)
    units = body.spec.units
    if units > params.max_job_units:
        raise InvalidJob(f"{units} units of work, the limit is {params.max_job_units}")
    if not 1 <= body.deadline_blocks <= params.max_job_deadline_blocks:
        raise InvalidJob(f"deadline {body.deadline_blocks} blocks outside 1.."
                         f"{params.max_job_deadline_blocks}")
    if not 1 <= body.max_price <= MAX_AMOUNT:
        raise InvalidJob(f"max price {body.max_price} must be in 1..{MAX_AMOUNT}")
    if body.carbon_max > MAX_CARBON:
        raise InvalidJob(f"carbon ceiling {body.carbon_max} exceeds {MAX_CARBON} (0 = none)")
    escrow = body.max_price * units
    _debit(state, tx, account, escrow)
    job_id = tx.hash()
    market.jobs[job_id] = Job(job_id, tx.sender, body.spec, body.max_price,
                              body.deadline_blocks, body.carbon_max, escrow,
                              submitted_height=state.height + 1, submitted_time_ms=0)
    market.queue.append(job_id)
    _count(market, body.spec.kernel, submitted=1)


def _open_job(market: Market, job_id: bytes) -> Job:
    job = market.jobs.get(job_id)
    if job is None:
        raise UnknownJob(f"no job {job_id.hex()}")
    return job


def commit_result(state: State, tx: Tx, account: Account, body: CommitResult) -> None:
    market = state.market
    job = _open_job(market, body.job_id)
    if job.provider != tx.sender:
        raise NotJobProvider(f"job {job.id.hex()[:16]} is not assigned to the sender")
    if job.status != JobStatus.ASSIGNED:
        raise WrongJobStatus(f"job {job.id.hex()[:16]} is {job.status.name.lower()}, not "
                             "assigned")
    height = state.height + 1
    if height > job.deadline_height:
        raise DeadlinePassed(f"the deadline was height {job.deadline_height}")
    _debit(state, tx, account, 0)
    market.jobs[job.id] = replace(job, status=JobStatus.COMMITTED, root=body.root,
                                  committed_height=height)


def verify_deadline(job: Job, params: ChainParams) -> int:
    """The last height at which a verdict on `job` counts."""
    return job.committed_height + 1 + params.verify_blocks


def post_verdict(state: State, tx: Tx, account: Account, body: PostVerdict,
                 params: ChainParams) -> None:
    market = state.market
    job = _open_job(market, body.job_id)
    if job.status != JobStatus.COMMITTED or not job.randomness:
        raise WrongJobStatus(f"job {job.id.hex()[:16]} is not awaiting verdicts")
    if all(member != tx.sender for member, _ in job.committee):
        raise NotInCommittee(f"the sender is not on job {job.id.hex()[:16]}'s committee")
    if any(v.member == tx.sender for v in job.verdicts):
        raise DuplicateVerdict("the sender already posted a verdict on this job")
    if state.height + 1 > verify_deadline(job, params):
        raise DeadlinePassed(f"verdicts closed at height {verify_deadline(job, params)}")
    _debit(state, tx, account, 0)
    market.jobs[job.id] = replace(
        job, verdicts=(*job.verdicts, Verdict(tx.sender, body.valid, body.reason)))


# --- per block -----------------------------------------------------------------------------


def select_committee(validators: tuple[Validator, ...], seed: bytes,
                     size: int) -> tuple[tuple[bytes, int], ...]:
    """`size` validators drawn by stake without replacement (integer draws from `seed`),
    returned in address order with their stake."""
    pool = sorted(validators, key=lambda v: v.address)
    chosen: list[Validator] = []
    draw = 0
    while pool and len(chosen) < size:
        total = sum(v.stake for v in pool)
        x = int.from_bytes(sha256(COMMITTEE_DOMAIN + seed + draw.to_bytes(4, "big")),
                           "big") % total
        index = 0
        while x >= pool[index].stake:
            x -= pool[index].stake
            index += 1
        chosen.append(pool.pop(index))
        draw += 1
    return tuple(sorted((v.address, v.stake) for v in chosen))


def begin_market_block(state: State, height: int, last_commit_hash: bytes,
                       params: ChainParams) -> None:
    """Fix the challenge randomness and committee of every result committed at height-1.
    The job's provider and buyer are not drawn (unless nobody else validates)."""
    market = state.market
    for job_id in market.open:
        job = market.jobs[job_id]
        if job.status == JobStatus.COMMITTED and not job.randomness:
            randomness = sha256(CHALLENGE_DOMAIN + job.id + last_commit_hash)
            judges = tuple(v for v in state.validators
                           if v.address not in (job.provider, job.buyer))
            committee = select_committee(judges or state.validators, randomness,
                                         params.committee_size)
            market.jobs[job_id] = replace(job, randomness=randomness, committee=committee)


def end_market_block(state: State, height: int, time_ms: int,
                     params: ChainParams) -> tuple[int, int]:
    """Settle, fail, expire and assign; returns (minted, slashed)."""
    market = state.market
    minted = slashed = 0
    still_open = []
    for job_id in market.open:
        job = market.jobs[job_id]
        if job.status == JobStatus.COMMITTED and job.randomness:
            outcome = tally(job)
            if outcome == JobStatus.ACCEPTED:
                minted += settle_accepted(state, job, height, params)
                continue
            if outcome == JobStatus.REJECTED:
                slashed += settle_slashed(state, job, height, params, JobStatus.REJECTED,
                                          "invalid_result")
                continue
            if height >= verify_deadline(job, params):
                settle_refund(state, job, height, JobStatus.UNDECIDED, "no_quorum")
                continue
        elif job.status == JobStatus.ASSIGNED and height >= job.deadline_height:
            slashed += settle_slashed(state, job, height, params, JobStatus.FAILED,
                                      "missed_deadline")
            continue
        still_open.append(job_id)
    market.open = still_open
    stamp_submissions(market, height, time_ms)
    expire_queue(state, height, params)
    assign_jobs(state, height, time_ms, params)
    return minted, slashed


def tally(job: Job) -> JobStatus:
    """ACCEPTED when more than 2/3 of the committee's stake says valid, REJECTED when more
    than 1/3 says invalid, else COMMITTED (undecided so far)."""
    stake = dict(job.committee)
    total = sum(stake.values())
    valid = sum(stake[v.member] for v in job.verdicts if v.valid)
    invalid = sum(stake[v.member] for v in job.verdicts if not v.valid)
    if invalid * 3 > total:
        return JobStatus.REJECTED
    if valid * 3 > total * 2:
        return JobStatus.ACCEPTED
    return JobStatus.COMMITTED


def compute_reward(units: int, payment: int, height: int, params: ChainParams) -> int:
    """Minted per verified unit, halving every compute_reward_halving_blocks, and never more
    than the buyer paid (so a free job earns nothing)."""
    halvings = height // params.compute_reward_halving_blocks
    base = (units * params.compute_reward_per_unit) >> min(halvings, 63)
    return min(base, payment)


def _credit(state: State, address: bytes, amount: int) -> None:
    if amount:
        account = state.get_account(address) or Account()
        state.set_account(address, Account(account.balance + amount, account.nonce))


def _release(market: Market, job: Job, **counts: int) -> None:
    provider = market.providers[job.provider]
    market.providers[job.provider] = replace(
        provider, active_jobs=provider.active_jobs - 1,
        **{k: getattr(provider, k) + v for k, v in counts.items()})


def settle_accepted(state: State, job: Job, height: int, params: ChainParams) -> int:
    """Pay the provider (price x units less the verifier fee) plus the minted reward, pay
    the members who voted valid, refund the buyer the rest. Returns the amount minted."""
    market = state.market
    payment = job.price * job.units
    fee = payment * params.verifier_fee_bps // BPS
    voters = sorted(v.member for v in job.verdicts if v.valid)
    share = fee // len(voters)
    paid = payment - share * len(voters)
    reward = compute_reward(job.units, payment, height, params)
    if state.supply.expected_total + reward > MAX_AMOUNT:
        reward = 0
    refund = job.escrow - payment
    for member in voters:
        _credit(state, member, share)
    _credit(state, job.provider, paid + reward)
    _credit(state, job.buyer, refund)
    state.supply.minted += reward
    _release(market, job, jobs_accepted=1)
    market.jobs[job.id] = replace(job, status=JobStatus.ACCEPTED, settled_height=height,
                                  outcome="accepted", paid=paid, reward=reward,
                                  refunded=refund)
    stats = market.kernel_stats(job.spec.kernel)
    index = job.price if stats.accepted == 0 else (
        stats.price_index + (job.price - stats.price_index) // PRICE_INDEX_WEIGHT)
    market.stats[job.spec.kernel] = replace(
        stats, accepted=stats.accepted + 1, units_accepted=stats.units_accepted + job.units,
        price_index=index, last_price=job.price)
    return reward


def settle_slashed(state: State, job: Job, height: int, params: ChainParams, status: JobStatus,
                   outcome: str) -> int:
    """Cut provider_slash_bps of the provider's bond (burned) and refund the buyer's whole
    escrow. Returns the amount slashed."""
    market = state.market
    provider = market.providers[job.provider]
    cut = provider.stake * params.provider_slash_bps // BPS
    market.providers[job.provider] = replace(provider, stake=provider.stake - cut,
                                             slashed=provider.slashed + cut)
    _credit(state, job.buyer, job.escrow)
    state.supply.slashed += cut
    counter = "jobs_rejected" if status == JobStatus.REJECTED else "jobs_failed"
    _release(market, job, **{counter: 1})
    market.jobs[job.id] = replace(job, status=status, settled_height=height, outcome=outcome,
                                  refunded=job.escrow, slashed=cut)
    _count(market, job.spec.kernel, **{status.name.lower(): 1})
    return cut


def settle_refund(state: State, job: Job, height: int, status: JobStatus, outcome: str) -> None:
    market = state.market
    _credit(state, job.buyer, job.escrow)
    if job.provider:
        _release(market, job)
    market.jobs[job.id] = replace(job, status=status, settled_height=height, outcome=outcome,
                                  refunded=job.escrow)
    _count(market, job.spec.kernel, **{status.name.lower(): 1})


def _count(market: Market, kernel: str, **counts: int) -> None:
    stats = market.kernel_stats(kernel)
    market.stats[kernel] = replace(stats, **{k: getattr(stats, k) + v
                                             for k, v in counts.items()})


def stamp_submissions(market: Market, height: int, time_ms: int) -> None:
    """Jobs submitted in this block get its time (unknown while its txs are applied)."""
    for job_id in reversed(market.queue):
        job = market.jobs[job_id]
        if job.submitted_height != height:
            break
        market.jobs[job_id] = replace(job, submitted_time_ms=time_ms)


def expire_queue(state: State, height: int, params: ChainParams) -> None:
    market = state.market
    kept = []
    for job_id in market.queue:
        job = market.jobs[job_id]
        if height - job.submitted_height >= params.job_queue_blocks:
            settle_refund(state, job, height, JobStatus.EXPIRED, "no_provider")
        else:
            kept.append(job_id)
    market.queue = kept


def eligible(provider: Provider, job: Job, params: ChainParams) -> bool:
    return (job.spec.kernel in provider.kernels and provider.price <= job.max_price
            and (job.carbon_max == 0 or provider.carbon <= job.carbon_max)
            and provider.active_jobs < provider.capacity
            and provider.stake >= params.min_provider_stake)


def is_reserved_slot(assignments: int, params: ChainParams) -> bool:
    """Whether assignment number `assignments` is reserved for newcomers: exactly
    newcomer_share_bps / 10,000 of all slots, evenly spaced."""
    share = params.newcomer_share_bps
    return assignments * share // BPS != (assignments + 1) * share // BPS


def choose_provider(market: Market, job: Job, tie_seed: bytes,
                    params: ChainParams) -> Provider | None:
    """The cheapest eligible provider, then the lowest carbon, then a seeded tie-break; in
    a newcomer-reserved slot, the best newcomer when there is one."""
    candidates = [market.providers[a] for a in sorted(market.providers)
                  if eligible(market.providers[a], job, params)]
    if not candidates:
        return None
    if is_reserved_slot(market.assignments, params):
        newcomers = [p for p in candidates if p.jobs_accepted < params.newcomer_jobs]
        candidates = newcomers or candidates
    return min(candidates, key=lambda p: (p.price, p.carbon,
                                          sha256(ASSIGN_DOMAIN + tie_seed + job.id + p.address)))


class Availability:
    """Per kernel, the providers that could take a job right now (capacity left, enough
    stake) as a list sorted by price with the running minimum of their carbon, so whether
    *any* of them is eligible for a job is one binary search. `may_take(job)` is False
    only when `choose_provider` would find no candidate (so skipping those jobs changes
    nothing), and True otherwise. Without it every queued job scans every provider every
    block, and jobs no provider can take (cheap to queue: their escrow is refunded at
    expiry) would make blocks take seconds to apply."""

    def __init__(self, market: Market, params: ChainParams) -> None:
        self.market, self.params = market, params
        self._kernels: dict[str, tuple[list[int], list[int]]] = {}

    def _index(self, kernel: str) -> tuple[list[int], list[int]]:
        index = self._kernels.get(kernel)
        if index is None:
            offers = sorted((p.price, p.carbon) for p in self.market.providers.values()
                            if kernel in p.kernels and p.active_jobs < p.capacity
                            and p.stake >= self.params.min_provider_stake)
            lowest, carbon = [], MAX_CARBON + 1
            for _, c in offers:
                carbon = min(carbon, c)
                lowest.append(carbon)
            index = self._kernels[kernel] = ([price for price, _ in offers], lowest)
        return index

    def may_take(self, job: Job) -> bool:
        prices, lowest_carbon = self._index(job.spec.kernel)
        cheap_enough = bisect.bisect_right(prices, job.max_price)
        return cheap_enough > 0 and (job.carbon_max == 0
                                     or lowest_carbon[cheap_enough - 1] <= job.carbon_max)

    def took_job(self, provider: Provider) -> None:
        """`provider` (as it was before) was given one more job."""
        if provider.active_jobs + 1 >= provider.capacity:  # it is full now: not available
            for kernel in provider.kernels:
                self._kernels.pop(kernel, None)


def assign_jobs(state: State, height: int, time_ms: int, params: ChainParams) -> None:
    market = state.market
    if not market.queue:
        return
    waiting = []
    available = Availability(market, params)
    for job_id in market.queue:
        job = market.jobs[job_id]
        provider = (choose_provider(market, job, state.last_block_hash, params)
                    if available.may_take(job) else None)
        if provider is None:
            waiting.append(job_id)
            continue
        available.took_job(provider)
        assign(market, job, provider, height, time_ms)
    market.queue = waiting


def assign(market: Market, job: Job, provider: Provider, height: int, time_ms: int) -> None:
    """Give `job` to `provider`: one more active job, the job opens, the kernel's stats."""
    market.providers[provider.address] = replace(provider, active_jobs=provider.active_jobs + 1)
    market.jobs[job.id] = replace(job, status=JobStatus.ASSIGNED, provider=provider.address,
                                  price=provider.price, assigned_height=height,
                                  assigned_time_ms=time_ms)
    market.open.append(job.id)
    market.assignments += 1
    stats = market.kernel_stats(job.spec.kernel)
    market.stats[job.spec.kernel] = replace(
        stats, assigned=stats.assigned + 1,
        queue_blocks_total=stats.queue_blocks_total + height - job.submitted_height,
        queue_ms_total=stats.queue_ms_total + max(0, time_ms - job.submitted_time_ms))
