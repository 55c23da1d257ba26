"""WAL records of engine inputs (canonical arrays), so a restarted node can replay them.

    [1, height]                                  StartHeight marker (set from the state)
    [2, proposal_bytes, valid, block_bytes]      ProposalReceived (+ the block, to commit it)
    [3, vote_bytes]                              VoteReceived
    [4, kind, height, round]                     TimeoutElapsed
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.bft.messages import Proposal, TimeoutKind
from consensus.codec import decode, encode, expect_bytes, expect_int, expect_list
from consensus.errors import DecodeError
from consensus.vote import Vote

START, PROPOSAL, VOTE, TIMEOUT = 1, 2, 3, 4
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


Record = StartRecord | ProposalRecord | VoteRecord | TimeoutRecord


def encode_record(record: Record) -> bytes:
    if isinstance(record, StartRecord):
        return encode([START, record.height])
    if isinstance(record, ProposalRecord):
        return encode([PROPOSAL, record.proposal.encode(), int(record.valid), record.block])
    if isinstance(record, VoteRecord):
        return encode([VOTE, record.vote.encode()])
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
    raise DecodeError(f"wal record: unknown kind {kind}")
