"""Evidence of misbehaviour carried in blocks. Today: duplicate votes (equivocation).

Wire form: [kind=1, vote_a, vote_b] with the two votes of one validator at one (height,
round, type) for different blocks, ordered by block hash so each equivocation has one byte
form. The state transition verifies both signatures, slashes and tombstones the validator.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.codec import decode, encode, expect_int, expect_list
from consensus.errors import DecodeError
from consensus.hashing import sha256
from consensus.vote import Vote

EVIDENCE_DUPLICATE_VOTE = 1
MAX_EVIDENCE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    vote_a: Vote
    vote_b: Vote

    @classmethod
    def of(cls, one: Vote, other: Vote) -> DuplicateVoteEvidence:
        """Canonical order: the vote for the smaller block hash first."""
        first, second = sorted((one, other), key=lambda v: v.block_hash)
        return cls(first, second)

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    @property
    def height(self) -> int:
        return self.vote_a.height

    def encode(self) -> bytes:
        return encode([EVIDENCE_DUPLICATE_VOTE, self.vote_a.to_fields(),
                       self.vote_b.to_fields()])

    def hash(self) -> bytes:
        return sha256(self.encode())

    @classmethod
    def decode(cls, raw: bytes) -> DuplicateVoteEvidence:
        kind, a, b = expect_list(decode(raw, MAX_EVIDENCE_BYTES), 3, "evidence")
        if expect_int(kind, "evidence.kind") != EVIDENCE_DUPLICATE_VOTE:
            raise DecodeError(f"evidence.kind: unknown kind {kind}")
        ev = cls(Vote.from_fields(a), Vote.from_fields(b))
        va, vb = ev.vote_a, ev.vote_b
        if (va.validator, va.height, va.round, va.type) != (vb.validator, vb.height, vb.round,
                                                            vb.type):
            raise DecodeError("evidence: votes differ in validator, height, round or type")
        if not va.block_hash < vb.block_hash:
            raise DecodeError("evidence: votes must be for different blocks, in hash order")
        return ev
