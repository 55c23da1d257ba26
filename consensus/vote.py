"""Votes and commit certificates.

A vote is [type, height, round, block_hash, validator_address, signature], signed in the
`vote` domain of the chain over the first five fields. A commit is the set of precommit
signatures for one block at one (height, round); it becomes the next block's last commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from consensus.address import ADDRESS_LEN
from consensus.codec import (
    decode,
    encode,
    expect_array,
    expect_bytes,
    expect_int,
    expect_list,
)
from consensus.crypto import DOMAIN_VOTE, SIG_LEN, PrivateKey, signing_domain, verify_signature
from consensus.errors import DecodeError, InvalidCommit
from consensus.hashing import HASH_LEN, sha256

MAX_ROUND = 2**31 - 1
MAX_VALIDATORS = 1_000


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


def vote_sign_message(chain_id: str, vote_type: int, height: int, round_: int,
                      block_hash: bytes, validator: bytes) -> bytes:
    return signing_domain(DOMAIN_VOTE, chain_id) + encode(
        [vote_type, height, round_, block_hash, validator])


@dataclass(frozen=True, slots=True)
class Vote:
    type: int
    height: int
    round: int
    block_hash: bytes  # b"" is a vote for nil
    validator: bytes
    signature: bytes = b""

    def sign_payload(self) -> bytes:
        return encode([self.type, self.height, self.round, self.block_hash, self.validator])

    def sign_message(self, chain_id: str) -> bytes:
        return signing_domain(DOMAIN_VOTE, chain_id) + self.sign_payload()

    def signed(self, key: PrivateKey, chain_id: str) -> Vote:
        sig = key.sign(DOMAIN_VOTE, chain_id, self.sign_payload())
        return Vote(self.type, self.height, self.round, self.block_hash, self.validator, sig)

    def verify(self, chain_id: str, public: bytes) -> bool:
        return verify_signature(public, self.signature, self.sign_message(chain_id))

    def to_fields(self) -> list:
        return [self.type, self.height, self.round, self.block_hash, self.validator,
                self.signature]

    def encode(self) -> bytes:
        return encode(self.to_fields())

    @classmethod
    def from_fields(cls, value: object) -> Vote:
        vtype, height, round_, block_hash, validator, sig = expect_list(value, 6, "vote")
        vtype = expect_int(vtype, "vote.type", 1, 2)
        block_hash = expect_bytes(block_hash, "vote.block_hash", max_len=HASH_LEN)
        if len(block_hash) not in (0, HASH_LEN):
            raise DecodeError(f"vote.block_hash: expected 0 or {HASH_LEN} bytes")
        return cls(vtype, expect_int(height, "vote.height", 1),
                   expect_int(round_, "vote.round", 0, MAX_ROUND), block_hash,
                   expect_bytes(validator, "vote.validator", ADDRESS_LEN),
                   expect_bytes(sig, "vote.signature", SIG_LEN))

    @classmethod
    def decode(cls, raw: bytes) -> Vote:
        return cls.from_fields(decode(raw, 512))


@dataclass(frozen=True, slots=True)
class CommitSig:
    validator: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    """Precommits of more than 2/3 of stake for `block_hash` at (height, round).

    Signatures are sorted by validator address, one per validator. The empty commit
    (height 0) is the last commit of block 1.
    """

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSig, ...]

    @classmethod
    def empty(cls) -> Commit:
        return cls(0, 0, b"", ())

    def is_empty(self) -> bool:
        return self.height == 0

    def to_fields(self) -> list:
        return [self.height, self.round, self.block_hash,
                [[s.validator, s.signature] for s in self.signatures]]

    def hash(self) -> bytes:
        return sha256(encode(self.to_fields()))

    @classmethod
    def from_fields(cls, value: object) -> Commit:
        height, round_, block_hash, sigs = expect_list(value, 4, "commit")
        items = []
        for i, item in enumerate(expect_array(sigs, "commit.signatures", MAX_VALIDATORS)):
            validator, sig = expect_list(item, 2, f"commit.signatures[{i}]")
            items.append(CommitSig(expect_bytes(validator, "commit.validator", ADDRESS_LEN),
                                   expect_bytes(sig, "commit.signature", SIG_LEN)))
        addresses = [s.validator for s in items]
        if addresses != sorted(set(addresses)):
            raise DecodeError("commit.signatures: not sorted by validator or duplicated")
        block_hash = expect_bytes(block_hash, "commit.block_hash", max_len=HASH_LEN)
        commit = cls(expect_int(height, "commit.height"),
                     expect_int(round_, "commit.round", 0, MAX_ROUND), block_hash, tuple(items))
        if commit.is_empty() and (commit.round or block_hash or items):
            raise DecodeError("commit: height 0 must be the empty commit")
        if not commit.is_empty() and len(block_hash) != HASH_LEN:
            raise DecodeError(f"commit.block_hash: expected {HASH_LEN} bytes")
        return commit


def make_commit(height: int, round_: int, block_hash: bytes, votes: list[Vote]) -> Commit:
    """Assemble a commit from signed precommits for one block (order does not matter)."""
    sigs = sorted({v.validator: v.signature for v in votes
                   if v.type == VoteType.PRECOMMIT and v.height == height
                   and v.round == round_ and v.block_hash == block_hash}.items())
    return Commit(height, round_, block_hash, tuple(CommitSig(a, s) for a, s in sigs))


def verify_commit(commit: Commit, chain_id: str, height: int, block_hash: bytes,
                  validators: dict[bytes, tuple[bytes, int]]) -> int:
    """Check that `commit` certifies `block_hash` at `height` with > 2/3 of stake.

    `validators` maps address -> (public key, stake). Returns the stake that signed.
    """
    if commit.height != height:
        raise InvalidCommit(f"last commit is for height {commit.height}, expected {height}")
    if commit.block_hash != block_hash:
        raise InvalidCommit("last commit certifies a different block than prev_hash")
    addresses = [item.validator for item in commit.signatures]
    if addresses != sorted(set(addresses)):
        raise InvalidCommit("last commit signatures are repeated or not sorted by validator")
    total = sum(stake for _, stake in validators.values())
    signed = 0
    for item in commit.signatures:
        entry = validators.get(item.validator)
        if entry is None:
            raise InvalidCommit(f"last commit signed by non-validator {item.validator.hex()}")
        message = vote_sign_message(chain_id, VoteType.PRECOMMIT, commit.height, commit.round,
                                    commit.block_hash, item.validator)
        if not verify_signature(entry[0], item.signature, message):
            raise InvalidCommit(f"bad precommit signature from {item.validator.hex()}")
        signed += entry[1]
    if 3 * signed <= 2 * total:
        raise InvalidCommit(f"last commit has {signed} of {total} stake; needs more than 2/3")
    return signed
