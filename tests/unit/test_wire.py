"""Compact proposals: a block sent as tx hashes, rebuilt from the receiver's mempool."""

from __future__ import annotations

import pytest

from consensus.bft.messages import Proposal
from consensus.codec import encode
from consensus.errors import DecodeError
from node.runtime import wire
from tests.unit.helpers import Chain, addr, make_net


def chain_with_block(n_txs: int) -> tuple[Chain, Proposal, object, list[bytes]]:
    net = make_net()
    chain = Chain(net)
    chain.accept(chain.build())  # height 1, so the block below carries a real last commit
    alice, bob = net.user_keys[:2]
    txs = [chain.transfer(alice, addr(bob), 1 + i, nonce=i).encode() for i in range(n_txs)]
    block = chain.build(txs)
    proposal = Proposal(block.height, 0, block.hash(), -1, addr(net.validator_keys[0]),
                        b"\x07" * 64)  # the signature is checked later, by the node
    return chain, proposal, block, txs


def test_compact_proposal_round_trips_and_rebuilds_the_exact_block() -> None:
    _, proposal, block, txs = chain_with_block(5)
    raw = wire.encode_compact_proposal(proposal, block)
    msg = wire.decode_consensus(raw)
    assert isinstance(msg, wire.CompactProposal)
    assert msg.proposal == proposal and msg.header == block.header
    assert msg.tx_hashes == block.tx_hashes and len(msg.tx_hashes) == 5
    pool = dict(zip(block.tx_hashes, txs, strict=True))
    rebuilt = msg.rebuild(pool.get)
    assert rebuilt == block and rebuilt.encode() == block.encode()
    # far smaller than the block inline: 32 bytes a tx instead of the tx
    assert len(raw) < len(wire.encode_proposal(proposal, block.encode()))


def test_rebuild_gives_none_when_a_tx_is_missing() -> None:
    _, proposal, block, txs = chain_with_block(3)
    msg = wire.decode_consensus(wire.encode_compact_proposal(proposal, block))
    pool = dict(zip(block.tx_hashes, txs, strict=True))
    del pool[block.tx_hashes[1]]
    assert msg.rebuild(pool.get) is None


def test_an_empty_block_needs_no_mempool() -> None:
    _, proposal, block, _ = chain_with_block(0)
    msg = wire.decode_consensus(wire.encode_compact_proposal(proposal, block))
    assert msg.rebuild(lambda h: None) == block


@pytest.mark.parametrize("mangle", [
    lambda p, c: [3, p, c[:3]],                                  # compact block too short
    lambda p, c: [3, p, [c[0], [b"\x01" * 31], c[2], c[3]]],     # a hash of 31 bytes
    lambda p, c: [3, p, [c[0], "not a list", c[2], c[3]]],
    lambda p, c: [3, p, [c[0][:5], c[1], c[2], c[3]]],           # header cut short
    lambda p, c: [3, p, [c[0], c[1], c[2], "commit"]],
    lambda p, c: [3, b"\x00", c],                                # proposal bytes garbage
    lambda p, c: [3, p, [c[0], [b"\x01" * 32] * (wire.MAX_COMPACT_TXS + 1), c[2], c[3]]],
])
def test_malformed_compact_proposals_are_decode_errors(mangle) -> None:
    _, proposal, block, _ = chain_with_block(2)
    compact = [block.header.to_fields(), list(block.tx_hashes), list(block.evidence),
               block.last_commit.to_fields()]
    with pytest.raises(DecodeError):
        wire.decode_consensus(encode(mangle(proposal.encode(), compact)))
