"""Chain state: accounts, validators, supply counters, and the state root over all of it.

Accounts live in a dict keyed by 20-byte address; an `AccountTree` keeps each account's leaf
hash and the addresses in sorted order, so the accounts root is recomputed from cached leaves
(only changed accounts are re-hashed). Accounts are never deleted: a nonce must survive an
emptied balance, or old transactions could be replayed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import NamedTuple

from consensus.codec import (
    encode,
    expect_array,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from consensus.hashing import HASH_LEN, leaf_hash, merkle_root_of_hashes, sha256
from consensus.market import Market
from consensus.params import MAX_AMOUNT, ChainParams
from consensus.staking import Staking, Validator, validators_hash
from consensus.tx import MAX_CHAIN_ID_LEN
from consensus.vote import MAX_VALIDATORS

STATE_VERSION = b"jevons/state/v1"


class Account(NamedTuple):
    """Immutable (a NamedTuple: about 3x cheaper to build than a frozen dataclass, and
    accounts are rebuilt twice per transfer)."""

    balance: int = 0
    nonce: int = 0

    def to_fields(self) -> list[int]:
        return [self.balance, self.nonce]

    @classmethod
    def from_fields(cls, value: object) -> Account:
        balance, nonce = expect_list(value, 2, "account")
        return cls(expect_int(balance, "account.balance", 0, MAX_AMOUNT),
                   expect_int(nonce, "account.nonce"))


def account_leaf(address: bytes, account: Account) -> bytes:
    return leaf_hash(encode([address, account.balance, account.nonce]))


class AccountTree:
    """Leaf hashes of all accounts in address order, with a cached root.

    Writes only record the new account; leaves are hashed when the root is asked for, so an
    account written many times in a block is hashed once.
    """

    __slots__ = ("_dirty", "_leaves", "_order", "_root")

    def __init__(self) -> None:
        self._leaves: dict[bytes, bytes] = {}
        self._dirty: dict[bytes, Account] = {}
        self._order: list[bytes] = []
        self._root: bytes | None = None

    def copy(self) -> AccountTree:
        other = AccountTree()
        other._leaves = dict(self._leaves)
        other._dirty = dict(self._dirty)
        other._order = list(self._order)
        other._root = self._root
        return other

    def update(self, address: bytes, account: Account) -> None:
        if address not in self._leaves and address not in self._dirty:
            bisect.insort(self._order, address)
        self._dirty[address] = account
        self._root = None

    def _flush(self) -> None:
        leaves = self._leaves
        for address, account in self._dirty.items():
            leaves[address] = account_leaf(address, account)
        self._dirty.clear()

    def root(self) -> bytes:
        if self._root is None:
            self._flush()
            leaves = self._leaves
            self._root = merkle_root_of_hashes([leaves[a] for a in self._order])
        return self._root

    def proof_leaves(self) -> list[bytes]:
        self._flush()
        return [self._leaves[a] for a in self._order]

    def index_of(self, address: bytes) -> int:
        i = bisect.bisect_left(self._order, address)
        if i == len(self._order) or self._order[i] != address:
            raise KeyError(address.hex())
        return i


@dataclass(slots=True)
class Supply:
    genesis: int
    minted: int = 0
    burned: int = 0
    slashed: int = 0

    @property
    def expected_total(self) -> int:
        return self.genesis + self.minted - self.burned - self.slashed

    def to_fields(self) -> list[int]:
        return [self.genesis, self.minted, self.burned, self.slashed]


def _validator_tuple(value: object, what: str) -> tuple[Validator, ...]:
    return tuple(Validator.from_fields(v) for v in expect_array(value, what, MAX_VALIDATORS))


@dataclass(slots=True)
class State:
    """The whole chain state after block `height` (height 0 = genesis).

    `last_validators` signed block `height`; `validators` sign `height + 1`;
    `next_validators` sign `height + 2` (changes take effect two blocks later).
    """

    chain_id: str
    params: ChainParams
    genesis_hash: bytes
    height: int
    time_ms: int
    last_block_hash: bytes
    validators: tuple[Validator, ...]
    last_validators: tuple[Validator, ...]
    supply: Supply
    next_validators: tuple[Validator, ...] = ()
    staking: Staking = field(default_factory=Staking)
    accounts: dict[bytes, Account] = field(default_factory=dict)
    tree: AccountTree = field(default_factory=AccountTree)
    touched: set[bytes] = field(default_factory=set)  # accounts written since the last copy
    market: Market = field(default_factory=Market)

    def copy(self) -> State:
        """A working copy for applying one block; `touched` starts empty."""
        return State(self.chain_id, self.params, self.genesis_hash, self.height, self.time_ms,
                     self.last_block_hash, self.validators, self.last_validators,
                     Supply(*self.supply.to_fields()), self.next_validators,
                     self.staking.copy(), dict(self.accounts), self.tree.copy(), set(),
                     self.market.copy())

    def get_account(self, address: bytes) -> Account | None:
        return self.accounts.get(address)

    def set_account(self, address: bytes, account: Account) -> None:
        self.accounts[address] = account
        self.tree.update(address, account)
        self.touched.add(address)

    def validator_map(self, which: tuple[Validator, ...]) -> dict[bytes, tuple[bytes, int]]:
        return {v.address: (v.pubkey, v.stake) for v in which}

    def total_balances_and_stakes(self) -> int:
        """Everything that counts toward supply: balances, bonded and unbonding stake,
        provider bonds and job escrow."""
        return (sum(a.balance for a in self.accounts.values()) + self.staking.total()
                + self.market.total())

    def root(self) -> bytes:
        return sha256(encode([
            STATE_VERSION, self.chain_id, self.genesis_hash, self.height, self.time_ms,
            self.last_block_hash, self.tree.root(), validators_hash(self.validators),
            validators_hash(self.last_validators), validators_hash(self.next_validators),
            self.staking.hash(), self.supply.to_fields(), self.params.hash(),
            self.market.hash(),
        ]))

    def meta_fields(self) -> list:
        """Everything but accounts, for storage (accounts are stored one key each)."""
        return [self.chain_id, self.params.to_fields(), self.genesis_hash, self.height,
                self.time_ms, self.last_block_hash,
                [v.to_fields() for v in self.validators],
                [v.to_fields() for v in self.last_validators], self.supply.to_fields(),
                [v.to_fields() for v in self.next_validators], self.staking.to_fields(),
                self.market.to_fields()]

    @classmethod
    def from_meta(cls, value: object, accounts: dict[bytes, Account]) -> State:
        (chain_id, params, genesis_hash, height, time_ms, last_hash, vals, last_vals,
         supply, next_vals, staking, market) = expect_list(value, 12, "state meta")
        tree = AccountTree()
        for address in sorted(accounts):
            tree.update(address, accounts[address])
        return cls(expect_str(chain_id, "state.chain_id", MAX_CHAIN_ID_LEN),
                   ChainParams.from_fields(params),
                   expect_bytes(genesis_hash, "state.genesis_hash", HASH_LEN),
                   expect_int(height, "state.height"), expect_int(time_ms, "state.time_ms"),
                   expect_bytes(last_hash, "state.last_block_hash", HASH_LEN),
                   _validator_tuple(vals, "state.validators"),
                   _validator_tuple(last_vals, "state.last_validators"),
                   Supply(*[expect_int(x, "state.supply")
                            for x in expect_list(supply, 4, "supply")]),
                   _validator_tuple(next_vals, "state.next_validators"),
                   Staking.from_fields(staking), dict(accounts), tree, set(),
                   Market.from_fields(market))
