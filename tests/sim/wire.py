"""Wire messages of the simulated network and the simulated chain's genesis and txs.

Message kinds: a proposal travels with its block's bytes; votes alone; block sync is a
request (from height) and a response ([block bytes, commit] items). Every payload is
canonical bytes and is decoded strictly, so a garbage payload raises DecodeError.
"""

from __future__ import annotations

import functools
import random
from enum import IntEnum

from consensus.address import address_from_pubkey
from consensus.bft.messages import Proposal
from consensus.codec import decode, encode, expect_array, expect_bytes, expect_int, expect_list
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.state import State
from consensus.vote import Commit
from genesis.dev import dev_accounts
from genesis.document import Genesis, GenesisValidator
from genesis.presets import DEVNET
from tests.chainutil import make_transfers

CHAIN_ID = "jevons-sim"
GENESIS_TIME_MS = 1_700_000_000_000
STAKE_UNIT = 10**12
DEV_ACCOUNTS = 6
SYNC_BATCH = 8  # blocks per sync response
MAX_MESSAGE_BYTES = DEVNET.max_block_bytes + 4096
MAX_SYNC_BYTES = SYNC_BATCH * MAX_MESSAGE_BYTES


class Kind(IntEnum):
    PROPOSAL = 1
    VOTE = 2
    SYNC_REQUEST = 3
    SYNC_RESPONSE = 4


# --- payloads -----------------------------------------------------------------------------


def encode_proposal(proposal: Proposal, block_raw: bytes) -> bytes:
    return encode([proposal.encode(), block_raw])


def decode_proposal(payload: bytes) -> tuple[Proposal, bytes]:
    proposal_raw, block_raw = expect_list(decode(payload, MAX_MESSAGE_BYTES), 2, "proposal msg")
    proposal = Proposal.decode(expect_bytes(proposal_raw, "proposal msg.proposal", max_len=512))
    return proposal, expect_bytes(block_raw, "proposal msg.block", max_len=MAX_MESSAGE_BYTES)


def encode_sync_request(height: int) -> bytes:
    return encode([height])


def decode_sync_request(payload: bytes) -> int:
    (height,) = expect_list(decode(payload, 64), 1, "sync request")
    return expect_int(height, "sync request.height", 1)


def encode_sync_response(items: list[tuple[bytes, Commit]]) -> bytes:
    return encode([[raw, commit.to_fields()] for raw, commit in items])


def decode_sync_response(payload: bytes) -> list[tuple[bytes, Commit]]:
    items = expect_array(decode(payload, MAX_SYNC_BYTES), "sync response", SYNC_BATCH)
    out = []
    for i, item in enumerate(items):
        raw, commit = expect_list(item, 2, f"sync response[{i}]")
        out.append((expect_bytes(raw, "sync block", max_len=MAX_MESSAGE_BYTES),
                    Commit.from_fields(commit)))
    return out


# --- chain --------------------------------------------------------------------------------


@functools.cache
def validator_key(index: int) -> PrivateKey:
    return PrivateKey.from_seed(sha256(b"jevons sim validator %d" % index))


def validator_address(index: int) -> bytes:
    return address_from_pubkey(validator_key(index).public)


@functools.cache
def account_keys() -> tuple[PrivateKey, ...]:
    return tuple(dev_accounts(DEV_ACCOUNTS))


@functools.cache
def genesis_state(stakes: tuple[int, ...]) -> State:
    """The state at height 0 for validators with these stakes (in units of STAKE_UNIT).
    Shared by every node: apply_block never changes its input state."""
    validators = tuple(GenesisValidator(f"v{i}", validator_key(i).public, s * STAKE_UNIT)
                       for i, s in enumerate(stakes))
    accounts = tuple(sorted((address_from_pubkey(k.public), 10**12) for k in account_keys()))
    return Genesis(CHAIN_ID, GENESIS_TIME_MS, False, DEVNET, validators,
                   accounts).initial_state()


def make_txs(state: State, rng: random.Random, count: int) -> list[bytes]:
    """`count` real signed transfers between dev accounts, valid on top of `state`."""
    return make_transfers(state, list(account_keys()), rng, count) if count else []
