"""Staking: bonded stake, unbonding queue, tombstones, and the validator set they produce.

Validator-set changes made by block H (stake, unstake, slashing) take effect at H+2: after
block H the state holds `validators` (signing H+1, fixed one block earlier) and
`next_validators` (signing H+2, computed from the staking table after H).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.codec import encode, expect_array, expect_bytes, expect_int, expect_list
from consensus.crypto import PUBKEY_LEN
from consensus.hashing import sha256
from consensus.params import BPS, MAX_AMOUNT, ChainParams

MAX_UNBONDING = 100_000


@dataclass(frozen=True, slots=True)
class Validator:
    address: bytes
    pubkey: bytes
    stake: int

    def to_fields(self) -> list:
        return [self.address, self.pubkey, self.stake]

    @classmethod
    def from_fields(cls, value: object) -> Validator:
        address, pubkey, stake = expect_list(value, 3, "validator")
        return cls(expect_bytes(address, "validator.address", 20),
                   expect_bytes(pubkey, "validator.pubkey", PUBKEY_LEN),
                   expect_int(stake, "validator.stake", 1, MAX_AMOUNT))


def validators_hash(validators: tuple[Validator, ...]) -> bytes:
    return sha256(encode([v.to_fields() for v in validators]))


@dataclass(frozen=True, slots=True)
class Unbonding:
    release_height: int
    address: bytes
    amount: int

    def to_fields(self) -> list:
        return [self.release_height, self.address, self.amount]

    @classmethod
    def from_fields(cls, value: object) -> Unbonding:
        height, address, amount = expect_list(value, 3, "unbonding")
        return cls(expect_int(height, "unbonding.release_height"),
                   expect_bytes(address, "unbonding.address", 20),
                   expect_int(amount, "unbonding.amount", 1))


@dataclass(slots=True)
class Staking:
    bonded: dict[bytes, Validator] = field(default_factory=dict)  # address -> stake entry
    unbonding: list[Unbonding] = field(default_factory=list)  # in release order
    tombstoned: dict[bytes, int] = field(default_factory=dict)  # address -> slash height

    def copy(self) -> Staking:
        return Staking(dict(self.bonded), list(self.unbonding), dict(self.tombstoned))

    def total(self) -> int:
        return (sum(v.stake for v in self.bonded.values())
                + sum(u.amount for u in self.unbonding))

    def to_fields(self) -> list:
        return [[self.bonded[a].to_fields() for a in sorted(self.bonded)],
                [u.to_fields() for u in self.unbonding],
                [[a, self.tombstoned[a]] for a in sorted(self.tombstoned)]]

    def hash(self) -> bytes:
        return sha256(encode(self.to_fields()))

    @classmethod
    def from_fields(cls, value: object) -> Staking:
        bonded, unbonding, tombstoned = expect_list(value, 3, "staking")
        entries = [Validator.from_fields(v)
                   for v in expect_array(bonded, "staking.bonded", MAX_UNBONDING)]
        stones = {}
        for item in expect_array(tombstoned, "staking.tombstoned", MAX_UNBONDING):
            address, height = expect_list(item, 2, "tombstone")
            stones[expect_bytes(address, "tombstone.address", 20)] = expect_int(
                height, "tombstone.height")
        return cls({v.address: v for v in entries},
                   [Unbonding.from_fields(u)
                    for u in expect_array(unbonding, "staking.unbonding", MAX_UNBONDING)],
                   stones)


def compute_validator_set(staking: Staking, params: ChainParams) -> tuple[Validator, ...]:
    """The top `max_validators` bonded entries with at least `min_validator_stake` (ties
    by address), excluding tombstoned ones; returned sorted by address."""
    eligible = [v for v in staking.bonded.values()
                if v.stake >= params.min_validator_stake and v.address not in staking.tombstoned]
    eligible.sort(key=lambda v: (-v.stake, v.address))
    return tuple(sorted(eligible[:params.max_validators], key=lambda v: v.address))


def compute_slash(amount: int, params: ChainParams) -> int:
    return amount * params.slash_double_sign_bps // BPS
