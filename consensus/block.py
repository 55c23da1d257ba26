"""Block headers and blocks.

Header (canonical array, its SHA-256 is the block hash):
    [chain_id, height, time_ms, prev_hash, last_commit_hash, tx_root, evidence_root,
     state_root, validators_hash, proposer]
`state_root` is the root of the state after block height-1 (so a proposer can build a
header before executing its own block); `prev_hash` of block 1 is the genesis hash.
Block: [header, txs (each the raw canonical tx bytes), evidence, last_commit].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from consensus.address import ADDRESS_LEN
from consensus.codec import (
    decode,
    encode,
    expect_array,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from consensus.hashing import HASH_LEN, merkle_root, sha256
from consensus.tx import MAX_CHAIN_ID_LEN
from consensus.vote import Commit

MAX_EVIDENCE = 100


@dataclass(frozen=True, slots=True)
class Header:
    chain_id: str
    height: int
    time_ms: int
    prev_hash: bytes
    last_commit_hash: bytes
    tx_root: bytes
    evidence_root: bytes
    state_root: bytes
    validators_hash: bytes
    proposer: bytes

    def to_fields(self) -> list:
        return [self.chain_id, self.height, self.time_ms, self.prev_hash, self.last_commit_hash,
                self.tx_root, self.evidence_root, self.state_root, self.validators_hash,
                self.proposer]

    def hash(self) -> bytes:
        return sha256(encode(self.to_fields()))

    @classmethod
    def from_fields(cls, value: object) -> Header:
        (chain_id, height, time_ms, prev_hash, last_commit_hash, tx_root, evidence_root,
         state_root, validators_hash, proposer) = expect_list(value, 10, "header")
        return cls(
            chain_id=expect_str(chain_id, "header.chain_id", MAX_CHAIN_ID_LEN),
            height=expect_int(height, "header.height", 1),
            time_ms=expect_int(time_ms, "header.time_ms"),
            prev_hash=expect_bytes(prev_hash, "header.prev_hash", HASH_LEN),
            last_commit_hash=expect_bytes(last_commit_hash, "header.last_commit_hash", HASH_LEN),
            tx_root=expect_bytes(tx_root, "header.tx_root", HASH_LEN),
            evidence_root=expect_bytes(evidence_root, "header.evidence_root", HASH_LEN),
            state_root=expect_bytes(state_root, "header.state_root", HASH_LEN),
            validators_hash=expect_bytes(validators_hash, "header.validators_hash", HASH_LEN),
            proposer=expect_bytes(proposer, "header.proposer", ADDRESS_LEN),
        )


def tx_root(txs: list[bytes]) -> bytes:
    """Merkle root over the transaction hashes, in block order."""
    return merkle_root([sha256(raw) for raw in txs])


def evidence_root(evidence: list[bytes]) -> bytes:
    """Merkle root over the encoded evidence, so the block hash covers it too."""
    return merkle_root(list(evidence))


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    txs: tuple[bytes, ...]
    evidence: tuple[bytes, ...]
    last_commit: Commit
    tx_hashes: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    """sha256 of each tx, in order: computed once, read by validation, the tx root,
    storage and the mempool."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tx_hashes", tuple(sha256(raw) for raw in self.txs))

    @property
    def height(self) -> int:
        return self.header.height

    def hash(self) -> bytes:
        return self.header.hash()

    def to_fields(self) -> list:
        return [self.header.to_fields(), list(self.txs), list(self.evidence),
                self.last_commit.to_fields()]

    def encode(self) -> bytes:
        return encode(self.to_fields())

    def body_mismatch(self) -> str | None:
        """Why this body (last commit, txs, evidence) is not the one the header names, or
        None. The block hash covers only the header, so a body that fails here is some
        other block under a borrowed header: whoever relayed it is at fault, not the
        proposer who signed the hash."""
        return body_mismatch(self.header, self.tx_hashes, self.evidence, self.last_commit)

    @classmethod
    def decode(cls, raw: bytes, max_bytes: int, max_txs: int) -> Block:
        header, txs, evidence, last_commit = expect_list(decode(raw, max_bytes), 4, "block")
        tx_list = expect_array(txs, "block.txs", max_txs)
        for i, tx in enumerate(tx_list):
            expect_bytes(tx, f"block.txs[{i}]", max_len=max_bytes)
        ev_list = expect_array(evidence, "block.evidence", MAX_EVIDENCE)
        for i, ev in enumerate(ev_list):
            expect_bytes(ev, f"block.evidence[{i}]", max_len=max_bytes)
        return cls(Header.from_fields(header), tuple(tx_list), tuple(ev_list),
                   Commit.from_fields(last_commit))


def body_mismatch(h: Header, tx_hashes: Sequence[bytes], evidence: Sequence[bytes],
                  last_commit: Commit) -> str | None:
    """`Block.body_mismatch` for a body given by its tx hashes (a compact block)."""
    if h.last_commit_hash != last_commit.hash():
        return "last_commit_hash does not match the block's last commit"
    if h.tx_root != merkle_root(list(tx_hashes)):
        return "tx_root does not match the block's transactions"
    if h.evidence_root != evidence_root(list(evidence)):
        return "evidence_root does not match the block's evidence"
    return None
