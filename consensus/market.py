"""Compute-market state: providers, jobs, the assignment queue and market statistics.

Every record is immutable (updated with `dataclasses.replace`), so copying the market for a
block is a shallow copy of its dicts and lists. Iteration in the rules is over lists
(queue and open jobs, in the order they entered) or sorted keys, never over a set.

Job lifecycle (status):
    QUEUED --assign--> ASSIGNED --commit tx--> COMMITTED --verdicts--> ACCEPTED | REJECTED
    QUEUED --job_queue_blocks pass--> EXPIRED (refunded)
    ASSIGNED --deadline passes--> FAILED (provider slashed, refunded)
    COMMITTED --verify_blocks pass without a decision--> UNDECIDED (refunded, nobody paid)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from consensus.codec import (
    encode,
    expect_array,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from consensus.hashing import HASH_LEN, sha256
from consensus.jobs import JobSpec
from consensus.params import MAX_AMOUNT

ADDRESS_LEN = 20
MAX_RECORDS = 1 << 20


class JobStatus(IntEnum):
    QUEUED = 0
    ASSIGNED = 1
    COMMITTED = 2
    ACCEPTED = 3
    REJECTED = 4
    EXPIRED = 5
    FAILED = 6
    UNDECIDED = 7

    @property
    def is_final(self) -> bool:
        return self >= JobStatus.ACCEPTED


@dataclass(frozen=True, slots=True)
class Provider:
    address: bytes
    stake: int
    kernels: tuple[str, ...]
    price: int
    capacity: int
    region: str
    carbon: int
    endpoint: str
    registered_height: int
    active_jobs: int = 0
    jobs_accepted: int = 0
    jobs_rejected: int = 0
    jobs_failed: int = 0
    slashed: int = 0

    def to_fields(self) -> list:
        return [self.address, self.stake, list(self.kernels), self.price, self.capacity,
                self.region, self.carbon, self.endpoint, self.registered_height,
                self.active_jobs, self.jobs_accepted, self.jobs_rejected, self.jobs_failed,
                self.slashed]

    @classmethod
    def from_fields(cls, value: object) -> Provider:
        (address, stake, kernels, price, capacity, region, carbon, endpoint, registered,
         active, accepted, rejected, failed, slashed) = expect_list(value, 14, "provider")
        return cls(expect_bytes(address, "provider.address", ADDRESS_LEN),
                   expect_int(stake, "provider.stake", 0, MAX_AMOUNT),
                   tuple(expect_str(k, "provider.kernels", 32)
                         for k in expect_array(kernels, "provider.kernels", 16)),
                   expect_int(price, "provider.price", 0, MAX_AMOUNT),
                   expect_int(capacity, "provider.capacity"),
                   expect_str(region, "provider.region", 64),
                   expect_int(carbon, "provider.carbon"),
                   expect_str(endpoint, "provider.endpoint", 256),
                   expect_int(registered, "provider.registered_height"),
                   expect_int(active, "provider.active_jobs"),
                   expect_int(accepted, "provider.jobs_accepted"),
                   expect_int(rejected, "provider.jobs_rejected"),
                   expect_int(failed, "provider.jobs_failed"),
                   expect_int(slashed, "provider.slashed", 0, MAX_AMOUNT))


@dataclass(frozen=True, slots=True)
class Verdict:
    member: bytes
    valid: int
    reason: str

    def to_fields(self) -> list:
        return [self.member, self.valid, self.reason]

    @classmethod
    def from_fields(cls, value: object) -> Verdict:
        member, valid, reason = expect_list(value, 3, "verdict")
        return cls(expect_bytes(member, "verdict.member", ADDRESS_LEN),
                   expect_int(valid, "verdict.valid", 0, 1),
                   expect_str(reason, "verdict.reason", 128))


@dataclass(frozen=True, slots=True)
class Job:
    """One job. Heights are block heights; times are block times (ms), so queue time is a
    deterministic quantity the API can publish."""

    id: bytes
    buyer: bytes
    spec: JobSpec
    max_price: int
    deadline_blocks: int
    carbon_max: int
    escrow: int
    submitted_height: int
    submitted_time_ms: int
    status: JobStatus = JobStatus.QUEUED
    provider: bytes = b""
    price: int = 0
    assigned_height: int = 0
    assigned_time_ms: int = 0
    root: bytes = b""
    committed_height: int = 0
    randomness: bytes = b""
    committee: tuple[tuple[bytes, int], ...] = ()  # (address, stake) in address order
    verdicts: tuple[Verdict, ...] = ()
    settled_height: int = 0
    outcome: str = ""
    paid: int = 0  # to the provider from escrow (after verifier fees)
    reward: int = 0  # minted to the provider
    refunded: int = 0
    slashed: int = 0

    @property
    def units(self) -> int:
        return self.spec.units

    @property
    def deadline_height(self) -> int:
        return self.assigned_height + self.deadline_blocks

    def to_fields(self) -> list:
        return [self.id, self.buyer, self.spec.to_fields(), self.max_price,
                self.deadline_blocks, self.carbon_max, self.escrow, self.submitted_height,
                self.submitted_time_ms, int(self.status), self.provider, self.price,
                self.assigned_height, self.assigned_time_ms, self.root,
                self.committed_height, self.randomness,
                [[a, s] for a, s in self.committee], [v.to_fields() for v in self.verdicts],
                self.settled_height, self.outcome, self.paid, self.reward, self.refunded,
                self.slashed]

    @classmethod
    def from_fields(cls, value: object) -> Job:
        f = expect_list(value, 25, "job")
        committee = []
        for item in expect_array(f[17], "job.committee", 1_000):
            address, stake = expect_list(item, 2, "job.committee member")
            committee.append((expect_bytes(address, "job.committee.address", ADDRESS_LEN),
                              expect_int(stake, "job.committee.stake", 1, MAX_AMOUNT)))
        ints = [expect_int(f[i], f"job field {i}", 0, MAX_AMOUNT)
                for i in (3, 4, 5, 6, 7, 8, 11, 12, 13, 15, 19, 21, 22, 23, 24)]
        (max_price, deadline, carbon_max, escrow, sub_h, sub_t, price, asg_h, asg_t, com_h,
         set_h, paid, reward, refunded, slashed) = ints
        return cls(expect_bytes(f[0], "job.id", HASH_LEN),
                   expect_bytes(f[1], "job.buyer", ADDRESS_LEN), JobSpec.from_fields(f[2]),
                   max_price, deadline, carbon_max, escrow, sub_h, sub_t,
                   JobStatus(expect_int(f[9], "job.status", 0, max(JobStatus))),
                   expect_bytes(f[10], "job.provider", max_len=ADDRESS_LEN), price, asg_h,
                   asg_t, expect_bytes(f[14], "job.root", max_len=HASH_LEN), com_h,
                   expect_bytes(f[16], "job.randomness", max_len=HASH_LEN), tuple(committee),
                   tuple(Verdict.from_fields(v)
                         for v in expect_array(f[18], "job.verdicts", 1_000)),
                   set_h, expect_str(f[20], "job.outcome", 64), paid, reward, refunded, slashed)


@dataclass(frozen=True, slots=True)
class KernelStats:
    """Per-kernel market statistics, all integers. Averages are derived by readers:
    queue time = queue_ms_total / assigned; acceptance = accepted / (accepted + rejected
    + failed)."""

    submitted: int = 0
    assigned: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    expired: int = 0
    undecided: int = 0
    queue_blocks_total: int = 0
    queue_ms_total: int = 0
    units_accepted: int = 0
    price_index: int = 0  # per unit; moves 1/8 of the way to each agreed price
    last_price: int = 0

    def to_fields(self) -> list[int]:
        return [self.submitted, self.assigned, self.accepted, self.rejected, self.failed,
                self.expired, self.undecided, self.queue_blocks_total, self.queue_ms_total,
                self.units_accepted, self.price_index, self.last_price]

    @classmethod
    def from_fields(cls, value: object) -> KernelStats:
        return cls(*[expect_int(x, "kernel stats", 0, 2**63 - 1)
                     for x in expect_list(value, 12, "kernel stats")])


@dataclass(slots=True)
class Market:
    providers: dict[bytes, Provider] = field(default_factory=dict)
    jobs: dict[bytes, Job] = field(default_factory=dict)
    queue: list[bytes] = field(default_factory=list)  # QUEUED job ids, submission order
    open: list[bytes] = field(default_factory=list)  # ASSIGNED/COMMITTED ids, by assignment
    stats: dict[str, KernelStats] = field(default_factory=dict)
    assignments: int = 0  # total ever made: spaces out the newcomer-reserved slots

    def copy(self) -> Market:
        return Market(dict(self.providers), dict(self.jobs), list(self.queue),
                      list(self.open), dict(self.stats), self.assignments)

    def escrowed(self) -> int:
        """Base units held in escrow by unsettled jobs (part of the supply)."""
        return sum(self.jobs[j].escrow for j in self.queue) + sum(
            self.jobs[j].escrow for j in self.open)

    def bonded(self) -> int:
        return sum(p.stake for p in self.providers.values())

    def total(self) -> int:
        """Everything the market holds that counts toward supply."""
        return self.escrowed() + self.bonded()

    def kernel_stats(self, kernel: str) -> KernelStats:
        return self.stats.get(kernel, KernelStats())

    def to_fields(self) -> list:
        return [[self.providers[a].to_fields() for a in sorted(self.providers)],
                [self.jobs[j].to_fields() for j in sorted(self.jobs)],
                list(self.queue), list(self.open),
                [[k, self.stats[k].to_fields()] for k in sorted(self.stats)],
                self.assignments]

    def hash(self) -> bytes:
        return sha256(encode(self.to_fields()))

    @classmethod
    def from_fields(cls, value: object) -> Market:
        providers, jobs, queue, open_, stats, assignments = expect_list(value, 6, "market")
        ps = [Provider.from_fields(p) for p in expect_array(providers, "market.providers",
                                                              MAX_RECORDS)]
        js = [Job.from_fields(j) for j in expect_array(jobs, "market.jobs", MAX_RECORDS)]
        stat_items = {}
        for item in expect_array(stats, "market.stats", 64):
            kernel, values = expect_list(item, 2, "market.stats entry")
            stat_items[expect_str(kernel, "market.stats.kernel", 32)] = (
                KernelStats.from_fields(values))
        return cls({p.address: p for p in ps}, {j.id: j for j in js},
                   [expect_bytes(j, "market.queue", HASH_LEN)
                    for j in expect_array(queue, "market.queue", MAX_RECORDS)],
                   [expect_bytes(j, "market.open", HASH_LEN)
                    for j in expect_array(open_, "market.open", MAX_RECORDS)],
                   stat_items, expect_int(assignments, "market.assignments"))
