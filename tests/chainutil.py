"""Test chains: a deterministic single-validator genesis, signed transfers, blocks, commits.

Everything is derived from a seed, so a failing test can be replayed. `ChainBuilder` extends
a chain one valid block at a time (build, apply, commit), which is what most tests need.
"""

from __future__ import annotations

import random

from consensus.address import address_from_pubkey
from consensus.block import Block
from consensus.builder import build_block
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.state import State
from consensus.transition import apply_block
from consensus.tx import make_transfer
from consensus.vote import Commit, Vote, VoteType, make_commit
from genesis.document import Genesis, GenesisValidator
from genesis.presets import DEVNET

CHAIN_ID = "jevons-test"
GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_INTERVAL_MS = 1_000
ACCOUNT_BALANCE = 10**12
VALIDATOR_STAKE = 10**12
MAX_TRANSFER = 10_000
NEW_ACCOUNT_SHARE = 0.2  # share of transfers that pay a fresh address (creates an account)


def key_from_label(label: str) -> PrivateKey:
    return PrivateKey.from_seed(sha256(label.encode()))


def address_of(key: PrivateKey) -> bytes:
    return address_from_pubkey(key.public)


def make_genesis(n_accounts: int, seed: int) -> tuple[Genesis, PrivateKey, list[PrivateKey]]:
    """A dev-chain genesis with one validator and `n_accounts` funded accounts."""
    validator_key = key_from_label(f"validator/{seed}")
    account_keys = [key_from_label(f"account/{seed}/{i}") for i in range(n_accounts)]
    accounts = tuple(sorted((address_of(k), ACCOUNT_BALANCE) for k in account_keys))
    validators = (GenesisValidator("v0", validator_key.public, VALIDATOR_STAKE),)
    genesis = Genesis(CHAIN_ID, GENESIS_TIME_MS, True, DEVNET, validators, accounts)
    return genesis, validator_key, account_keys


def make_transfers(state: State, keys: list[PrivateKey], rng: random.Random,
                   count: int) -> list[bytes]:
    """`count` signed transfers between `keys` (some to fresh addresses), valid on `state`."""
    next_nonce: dict[bytes, int] = {}
    txs = []
    for _ in range(count):
        sender = rng.choice(keys)
        address = address_of(sender)
        nonce = next_nonce.get(address, state.accounts[address].nonce)
        to = (rng.randbytes(20) if rng.random() < NEW_ACCOUNT_SHARE
              else address_of(rng.choice(keys)))
        fee = rng.randint(state.params.min_fee, 2 * state.params.min_fee)
        tx = make_transfer(sender, state.chain_id, to, rng.randint(1, MAX_TRANSFER), nonce, fee)
        txs.append(tx.encode())
        next_nonce[address] = nonce + 1
    return txs


def make_block(state: State, validator_key: PrivateKey, txs: list[bytes],
               last_commit: Commit) -> Block:
    """The next block on `state`, proposed by `validator_key`, one interval later."""
    return build_block(state, txs, address_of(validator_key),
                       state.time_ms + BLOCK_INTERVAL_MS, last_commit)


def commit_for(block: Block, validator_key: PrivateKey) -> Commit:
    """The single validator's precommit for `block`: the next block's last commit."""
    block_hash = block.hash()
    vote = Vote(VoteType.PRECOMMIT, block.height, 0, block_hash, address_of(validator_key))
    signed = vote.signed(validator_key, block.header.chain_id)
    return make_commit(block.height, 0, block_hash, [signed])


def decode_block(raw: bytes) -> Block:
    return Block.decode(raw, DEVNET.max_block_bytes, DEVNET.max_block_txs)


class ChainBuilder:
    """Extends a chain from `state`: each `next_block` builds, applies and commits a block."""

    def __init__(self, state: State, validator_key: PrivateKey, account_keys: list[PrivateKey],
                 rng: random.Random, last_commit: Commit | None = None) -> None:
        self.state = state
        self.validator_key = validator_key
        self.account_keys = account_keys
        self.rng = rng
        self.last_commit = Commit.empty() if last_commit is None else last_commit

    def next_block(self, n_txs: int) -> tuple[Block, State]:
        """A valid block with `n_txs` transfers and the state after it."""
        txs = make_transfers(self.state, self.account_keys, self.rng, n_txs)
        block = make_block(self.state, self.validator_key, txs, self.last_commit)
        self.state = apply_block(self.state, block, self.state.params)
        self.last_commit = commit_for(block, self.validator_key)
        return block, self.state
