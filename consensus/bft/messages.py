"""Consensus messages (proposals), engine events (inputs) and effects (outputs)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from consensus.address import ADDRESS_LEN
from consensus.bft.validators import ValidatorSet
from consensus.codec import decode, encode, expect_bytes, expect_int, expect_list
from consensus.crypto import DOMAIN_PROPOSAL, SIG_LEN, PrivateKey, signing_domain
from consensus.errors import DecodeError
from consensus.hashing import HASH_LEN
from consensus.vote import MAX_ROUND, Commit, Vote


class Step(IntEnum):
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    DECIDED = 4  # decided this height; waiting for the host's StartHeight of the next


class TimeoutKind(IntEnum):
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


@dataclass(frozen=True, slots=True)
class Proposal:
    """⟨PROPOSAL, h, r, v, vr⟩ signed by the proposer; v is named by its block hash.
    pol_round is vr: -1, or the round of a proof of lock (2f+1 prevotes) for v."""

    height: int
    round: int
    block_hash: bytes
    pol_round: int
    proposer: bytes
    signature: bytes = b""

    def sign_payload(self) -> bytes:
        return encode([self.height, self.round, self.block_hash, self.pol_round,
                       self.proposer])

    def sign_message(self, chain_id: str) -> bytes:
        return signing_domain(DOMAIN_PROPOSAL, chain_id) + self.sign_payload()

    def signed(self, key: PrivateKey, chain_id: str) -> Proposal:
        sig = key.sign(DOMAIN_PROPOSAL, chain_id, self.sign_payload())
        return Proposal(self.height, self.round, self.block_hash, self.pol_round,
                        self.proposer, sig)

    def encode(self) -> bytes:
        return encode([self.height, self.round, self.block_hash, self.pol_round,
                       self.proposer, self.signature])

    @classmethod
    def decode(cls, raw: bytes) -> Proposal:
        height, round_, block_hash, pol_round, proposer, sig = expect_list(
            decode(raw, 512), 6, "proposal")
        round_ = expect_int(round_, "proposal.round", 0, MAX_ROUND)
        pol_round = expect_int(pol_round, "proposal.pol_round", -1, MAX_ROUND)
        if pol_round >= round_:
            raise DecodeError(f"proposal.pol_round {pol_round} must be below round {round_}")
        return cls(expect_int(height, "proposal.height", 1), round_,
                   expect_bytes(block_hash, "proposal.block_hash", HASH_LEN), pol_round,
                   expect_bytes(proposer, "proposal.proposer", ADDRESS_LEN),
                   expect_bytes(sig, "proposal.signature", SIG_LEN))


# --- events: what the host feeds in -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartHeight:
    height: int
    validators: ValidatorSet


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """An authenticated proposal, with the host's verdict valid(v) on its block."""

    proposal: Proposal
    valid: bool


@dataclass(frozen=True, slots=True)
class VoteReceived:
    vote: Vote  # authenticated by the host (signature checked against the set)


@dataclass(frozen=True, slots=True)
class TimeoutElapsed:
    kind: TimeoutKind
    height: int
    round: int


Event = StartHeight | ProposalReceived | VoteReceived | TimeoutElapsed


# --- effects: what the host must do -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposeBlock:
    """Sign and broadcast a proposal for (height, round): of `block_hash` (validValue) when
    set, else of a new block the host builds (getValue()). Feed it back as received."""

    height: int
    round: int
    block_hash: bytes | None
    pol_round: int


@dataclass(frozen=True, slots=True)
class CastVote:
    """Sign (through the double-sign guard), broadcast, and feed back this vote."""

    type: int
    height: int
    round: int
    block_hash: bytes  # b"" = nil


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    kind: TimeoutKind
    height: int
    round: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Decide:
    height: int
    round: int
    block_hash: bytes
    commit: Commit


@dataclass(frozen=True, slots=True)
class EquivocationDetected:
    """Two conflicting signed votes from one validator: evidence for a block."""

    first: Vote
    second: Vote


Effect = ProposeBlock | CastVote | ScheduleTimeout | Decide | EquivocationDetected
