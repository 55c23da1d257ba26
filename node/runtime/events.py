"""WAL records of engine inputs (canonical arrays), so a restarted node can replay them.

    [1, height]                                  StartHeight marker (set from the state)
    [2, proposal_bytes, valid, block_bytes]      ProposalReceived (+ the block, to commit it)
    [3, vote_bytes]                              VoteReceived
    [4, kind, height, round]                     TimeoutElapsed
    [5, height, round, block_bytes]              our own block for a round, logged before
                                                 its proposal is signed (not an engine input)
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.bft.messages import Proposal, TimeoutKind
from consensus.codec import decode, encode, expect_bytes, expect_int, expect_list
from consensus.errors import DecodeError
from consensus.vote import Vote

START, PROPOSAL, VOTE, TIMEOUT, BUILT = 1, 2, 3, 4, 5
MAX_RECORD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StartRecord:
    height: int


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    proposal: Proposal
    valid: bool
    block: bytes


@dataclass(frozen=True, slots=True)
class VoteRecord:
    vote: Vote


@dataclass(frozen=True, slots=True)
class TimeoutRecord:
    kind: TimeoutKind
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class BuiltRecord:
    """The block this node built to propose at (height, round). Durable before the proposal
    is signed, so a node killed in between proposes the same block again after a restart
    (the signer re-releases the signature it stored) instead of losing the round to its
    own double-sign guard."""

    height: int
    round: int
    block: bytes


Record = StartRecord | ProposalRecord | VoteRecord | TimeoutRecord | BuiltRecord


def encode_record(record: Record) -> bytes:
    if isinstance(record, StartRecord):
        return encode([START, record.height])
    if isinstance(record, ProposalRecord):
        return encode([PROPOSAL, record.proposal.encode(), int(record.valid), record.block])
    if isinstance(record, VoteRecord):
        return encode([VOTE, record.vote.encode()])
    if isinstance(record, BuiltRecord):
        return encode([BUILT, record.height, record.round, record.block])
    return encode([TIMEOUT, int(record.kind), record.height, record.round])


def decode_record(raw: bytes) -> Record:
    items = decode(raw, MAX_RECORD_BYTES)
    kind = expect_int(items[0] if items else None, "wal record kind")
    if kind == START:
        return StartRecord(expect_int(expect_list(items, 2, "start")[1], "height"))
    if kind == PROPOSAL:
        _, proposal, valid, block = expect_list(items, 4, "proposal record")
        return ProposalRecord(Proposal.decode(expect_bytes(proposal, "proposal", max_len=512)),
                              bool(expect_int(valid, "valid", 0, 1)),
                              expect_bytes(block, "block", max_len=MAX_RECORD_BYTES))
    if kind == VOTE:
        return VoteRecord(Vote.decode(expect_bytes(expect_list(items, 2, "vote")[1], "vote",
                                                   max_len=512)))
    if kind == TIMEOUT:
        _, tk, height, round_ = expect_list(items, 4, "timeout record")
        return TimeoutRecord(TimeoutKind(expect_int(tk, "timeout kind", 1, 3)),
                             expect_int(height, "height"), expect_int(round_, "round"))
    if kind == BUILT:
        _, height, round_, block = expect_list(items, 4, "built record")
        return BuiltRecord(expect_int(height, "height"), expect_int(round_, "round"),
                           expect_bytes(block, "block", max_len=MAX_RECORD_BYTES))
    raise DecodeError(f"wal record: unknown kind {kind}")
