"""What nodes send each other: gossip payloads and request/response bodies.

Gossip (canonical msgpack arrays; every field is decoded strictly and bounded):
    consensus topic:  [1, proposal_bytes, block_bytes | b""]     a proposal (block inline
                                                                   when it fits in gossip)
                      [3, proposal_bytes, compact_block]           a proposal whose block
                          carries tx hashes instead of txs: [header, [tx_hash, …], evidence,
                          last_commit]. Receivers rebuild it from their mempools (the txs
                          were gossiped already) and fetch the whole block by hash only
                          when one is missing: a tx crosses each link once, not twice.
                      [2, vote_bytes]                              a vote
    txs topic:        [tx_bytes, …]                                a batch of transactions
Streams:
    status:  request [] -> [height, tip_hash]
    blocks:  request [from_height, max_count] -> [[block_bytes, commit_fields], …]
    block:   request [block_hash] -> [block_bytes] (or [] when unknown)
    votes:   request [height] -> [consensus message, …]: the peer's proposals (without
             blocks) and every vote it holds for that height, for a node that missed gossip
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consensus.bft.messages import Proposal
from consensus.block import MAX_EVIDENCE, Block, Header, body_mismatch
from consensus.codec import (
    decode,
    encode,
    expect_array,
    expect_bytes,
    expect_int,
    expect_list,
)
from consensus.errors import DecodeError
from consensus.hashing import HASH_LEN
from consensus.vote import Commit, Vote

KIND_PROPOSAL = 1
KIND_VOTE = 2
KIND_COMPACT_PROPOSAL = 3
MAX_COMPACT_TXS = 30_000  # 32-byte hashes in one gossip message
MAX_GOSSIP_BYTES = 1_000_000
INLINE_BLOCK_LIMIT = 900_000
MAX_TX_BATCH = 2_000
MAX_SYNC_BLOCKS = 64
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def topics(chain_id: str) -> tuple[str, str]:
    return f"/jevons/{chain_id}/consensus/1", f"/jevons/{chain_id}/txs/1"


def protocols(chain_id: str) -> tuple[str, str, str, str]:
    return (f"/jevons/{chain_id}/status/1", f"/jevons/{chain_id}/blocks/1",
            f"/jevons/{chain_id}/block/1", f"/jevons/{chain_id}/votes/1")


MAX_VOTE_SET_MESSAGES = 4_000


def encode_messages(messages: list[bytes]) -> bytes:
    return encode(messages[:MAX_VOTE_SET_MESSAGES])


def decode_messages(raw: bytes) -> list[bytes]:
    items = expect_array(decode(raw, MAX_RESPONSE_BYTES), "messages", MAX_VOTE_SET_MESSAGES)
    return [expect_bytes(m, "message", max_len=MAX_GOSSIP_BYTES) for m in items]


@dataclass(frozen=True, slots=True)
class ProposalMessage:
    proposal: Proposal
    block: bytes  # b"" when the block must be fetched from the sender


def encode_proposal(proposal: Proposal, block: bytes) -> bytes:
    """Inline the block when it fits in gossip (b"": receivers fetch it by hash)."""
    inline = block if len(block) <= INLINE_BLOCK_LIMIT else b""
    return encode([KIND_PROPOSAL, proposal.encode(), inline])


@dataclass(frozen=True, slots=True)
class CompactProposal:
    """A proposal and its block with each tx given by its hash."""

    proposal: Proposal
    header: Header
    tx_hashes: tuple[bytes, ...]
    evidence: tuple[bytes, ...]
    last_commit: Commit

    def mismatch(self) -> str | None:
        """Why the header is not the proposal's block, or the carried hashes not its body;
        None if they are. Hashing only: a relay cannot make every node check its junk."""
        if self.header.hash() != self.proposal.block_hash:
            return "compact block does not match its proposal"
        return body_mismatch(self.header, self.tx_hashes, self.evidence, self.last_commit)

    def rebuild(self, lookup: Callable[[bytes], bytes | None]) -> Block | None:
        """The block, with each tx's bytes from `lookup(hash)`; None if one is missing.
        The result is only a candidate: validation checks the header's tx root (and so
        every tx) before anything trusts it."""
        txs = []
        for tx_hash in self.tx_hashes:
            raw = lookup(tx_hash)
            if raw is None:
                return None
            txs.append(raw)
        return Block(self.header, tuple(txs), self.evidence, self.last_commit)


def encode_compact_proposal(proposal: Proposal, block: Block) -> bytes:
    return encode([KIND_COMPACT_PROPOSAL, proposal.encode(),
                   [block.header.to_fields(), list(block.tx_hashes), list(block.evidence),
                    block.last_commit.to_fields()]])


def encode_vote(vote: Vote) -> bytes:
    return encode([KIND_VOTE, vote.encode()])


def decode_consensus(raw: bytes) -> ProposalMessage | CompactProposal | Vote:
    items = decode(raw, MAX_GOSSIP_BYTES)
    if not items:
        raise DecodeError("consensus message: empty array")
    kind = expect_int(items[0], "consensus message kind")
    if kind == KIND_PROPOSAL:
        _, proposal, block = expect_list(items, 3, "proposal message")
        return ProposalMessage(Proposal.decode(expect_bytes(proposal, "proposal", max_len=512)),
                               expect_bytes(block, "block", max_len=MAX_GOSSIP_BYTES))
    if kind == KIND_VOTE:
        _, vote = expect_list(items, 2, "vote message")
        return Vote.decode(expect_bytes(vote, "vote", max_len=512))
    if kind == KIND_COMPACT_PROPOSAL:
        _, proposal, compact = expect_list(items, 3, "compact proposal message")
        header, hashes, evidence, last_commit = expect_list(compact, 4, "compact block")
        return CompactProposal(
            Proposal.decode(expect_bytes(proposal, "proposal", max_len=512)),
            Header.from_fields(header),
            tuple(expect_bytes(h, "compact block tx hash", HASH_LEN)
                  for h in expect_array(hashes, "compact block tx hashes", MAX_COMPACT_TXS)),
            tuple(expect_bytes(e, "compact block evidence", max_len=MAX_GOSSIP_BYTES)
                  for e in expect_array(evidence, "compact block evidence", MAX_EVIDENCE)),
            Commit.from_fields(last_commit))
    raise DecodeError(f"consensus message: unknown kind {kind}")


def encode_tx_batch(txs: list[bytes]) -> bytes:
    return encode(list(txs))


TX_BATCH_ITEM_OVERHEAD = 5  # a msgpack bin header: 0xc4-0xc6 and a 1-, 2- or 4-byte length
TX_BATCH_OVERHEAD = 5  # the array header


def tx_batch_prefix(txs: list[bytes]) -> int:
    """How many of `txs`, from the first, fit one gossip batch: at most MAX_TX_BATCH, and
    encoded within MAX_GOSSIP_BYTES (2,000 txs of 4 KiB would not). Always at least 1 when
    `txs` is not empty (a tx is at most max_tx_bytes, far below the gossip limit)."""
    size, count = TX_BATCH_OVERHEAD, 0
    for raw in txs[:MAX_TX_BATCH]:
        size += len(raw) + TX_BATCH_ITEM_OVERHEAD
        if size > MAX_GOSSIP_BYTES and count:
            break
        count += 1
    return count


def decode_tx_batch(raw: bytes, max_tx_bytes: int) -> list[bytes]:
    txs = expect_array(decode(raw, MAX_GOSSIP_BYTES), "tx batch", MAX_TX_BATCH)
    return [expect_bytes(t, "tx", max_len=max_tx_bytes) for t in txs]


def encode_status(height: int, tip: bytes) -> bytes:
    return encode([height, tip])


def decode_status(raw: bytes) -> tuple[int, bytes]:
    height, tip = expect_list(decode(raw, 256), 2, "status")
    return expect_int(height, "status.height"), expect_bytes(tip, "status.tip", HASH_LEN)


def encode_blocks_request(from_height: int, count: int) -> bytes:
    return encode([from_height, count])


def decode_blocks_request(raw: bytes) -> tuple[int, int]:
    start, count = expect_list(decode(raw, 64), 2, "blocks request")
    return expect_int(start, "from_height", 1), expect_int(count, "count", 1, MAX_SYNC_BLOCKS)


def encode_blocks(items: list[tuple[bytes, Commit]]) -> bytes:
    return encode([[block, commit.to_fields()] for block, commit in items])


def decode_blocks(raw: bytes, max_block_bytes: int) -> list[tuple[bytes, Commit]]:
    out = []
    for i, item in enumerate(expect_array(decode(raw, MAX_RESPONSE_BYTES), "blocks",
                                          MAX_SYNC_BLOCKS)):
        block, commit = expect_list(item, 2, f"blocks[{i}]")
        out.append((expect_bytes(block, "block", max_len=max_block_bytes),
                    Commit.from_fields(commit)))
    return out
