"""Building a block on top of a state (what a proposer does). Pure: time comes in."""

from __future__ import annotations

from consensus.block import Block, Header, tx_root
from consensus.state import State, validators_hash
from consensus.vote import Commit


def build_block(state: State, txs: list[bytes], proposer: bytes, time_ms: int,
                last_commit: Commit) -> Block:
    """A block at state.height + 1 carrying `txs` (raw encoded) in the given order."""
    header = Header(
        chain_id=state.chain_id,
        height=state.height + 1,
        time_ms=time_ms,
        prev_hash=state.last_block_hash,
        last_commit_hash=last_commit.hash(),
        tx_root=tx_root(txs),
        state_root=state.root(),
        validators_hash=validators_hash(state.validators),
        proposer=proposer,
    )
    return Block(header, tuple(txs), (), last_commit)
