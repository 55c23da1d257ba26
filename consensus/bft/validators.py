"""A height's validator set: stake, quorums and the stake-weighted round-robin proposer.

Proposer order: stakes are scaled to integer powers summing to about POWER_SCALE (each at
least 1) and interleaved by smooth weighted round robin (each turn every validator gains
its power, the highest total proposes and pays the sum back; ties go to the lower address).
The resulting cycle is computed once per set; proposer(h, r) = cycle[(h + r) % len(cycle)].
So a validator with k% of the stake proposes about k% of rounds, spread evenly, and the
choice is a pure function of (set, height, round).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from consensus.state import Validator, validators_hash

POWER_SCALE = 1_000


class ValidatorSet:
    __slots__ = ("_cycle", "_hash", "by_address", "total", "validators")

    def __init__(self, validators: Iterable[Validator]) -> None:
        ordered = tuple(sorted(validators, key=lambda v: v.address))
        if not ordered:
            raise ValueError("a validator set needs at least one validator")
        if len({v.address for v in ordered}) != len(ordered):
            raise ValueError("duplicate validator address")
        self.validators = ordered
        self.by_address = {v.address: v for v in ordered}
        self.total = sum(v.stake for v in ordered)
        self._cycle: tuple[bytes, ...] | None = None
        self._hash: bytes | None = None

    def __len__(self) -> int:
        return len(self.validators)

    def __contains__(self, address: bytes) -> bool:
        return address in self.by_address

    def stake_of(self, address: bytes) -> int:
        v = self.by_address.get(address)
        return v.stake if v else 0

    def hash(self) -> bytes:
        if self._hash is None:
            self._hash = validators_hash(self.validators)
        return self._hash

    def is_quorum(self, stake: int) -> bool:
        """More than 2/3 of the stake (2f+1 in the paper)."""
        return 3 * stake > 2 * self.total

    def is_one_third(self, stake: int) -> bool:
        """More than 1/3 of the stake (f+1 in the paper): at least one honest validator."""
        return 3 * stake > self.total

    def proposer(self, height: int, round_: int) -> bytes:
        cycle = self._cycle or self._build_cycle()
        return cycle[(height + round_) % len(cycle)]

    def _build_cycle(self) -> tuple[bytes, ...]:
        powers = tuple(max(1, v.stake * POWER_SCALE // self.total) for v in self.validators)
        self._cycle = tuple(self.validators[i].address for i in _round_robin(powers))
        return self._cycle


@functools.lru_cache(maxsize=64)
def _round_robin(powers: tuple[int, ...]) -> tuple[int, ...]:
    """Smooth weighted round robin over `powers`: the index proposing at each turn of one
    full cycle. A pure function of the powers, so it is cached: stakes change a little
    with every block's rewards, the integer powers (and so the cycle) rarely do."""
    total_power = sum(powers)
    priority = [0] * len(powers)
    order = []
    for _ in range(total_power):
        best = 0
        for i, p in enumerate(powers):
            priority[i] += p
            if priority[i] > priority[best]:
                best = i  # strictly greater: a tie goes to the lower index (address)
        priority[best] -= total_power
        order.append(best)
    return tuple(order)
