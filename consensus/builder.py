"""Building a block on top of a state (what a proposer does). Pure: time comes in."""

from __future__ import annotations

from consensus.block import Block, Header, evidence_root, tx_root
from consensus.errors import InvalidTx
from consensus.hashing import sha256
from consensus.params import ChainParams
from consensus.sigcache import SigCache
from consensus.state import State, validators_hash
from consensus.transition import get_verified_tx, process_tx
from consensus.vote import Commit

BLOCK_OVERHEAD_BYTES = 4096  # header, last commit and framing, generously


def select_txs(state: State, raws: list[bytes], params: ChainParams,
               sig_cache: SigCache | None) -> tuple[list[bytes], list[tuple[int, InvalidTx]]]:
    """Pick, in order, the txs that apply cleanly on top of `state` and fit in one block.

    Returns (chosen, rejected) where rejected holds (index in `raws`, the typed error).
    Txs beyond the block's count or byte limit are neither chosen nor rejected.
    """
    work = state.copy()
    chosen: list[bytes] = []
    rejected: list[tuple[int, InvalidTx]] = []
    room = params.max_block_bytes - BLOCK_OVERHEAD_BYTES
    for index, raw in enumerate(raws):
        if len(chosen) >= params.max_block_txs or len(raw) + 8 > room:
            break
        try:
            tx = get_verified_tx(raw, sha256(raw), state.chain_id, params, sig_cache)
            process_tx(work, tx, params)
        except InvalidTx as exc:
            rejected.append((index, exc))
            continue
        chosen.append(raw)
        room -= len(raw) + 8
    return chosen, rejected


def build_block(state: State, txs: list[bytes], proposer: bytes, time_ms: int,
                last_commit: Commit, evidence: tuple[bytes, ...] = ()) -> Block:
    """A block at state.height + 1 carrying `txs` (raw encoded) in the given order and
    `evidence` (encoded DuplicateVoteEvidence, checked by apply_block)."""
    header = Header(
        chain_id=state.chain_id,
        height=state.height + 1,
        time_ms=time_ms,
        prev_hash=state.last_block_hash,
        last_commit_hash=last_commit.hash(),
        tx_root=tx_root(txs),
        evidence_root=evidence_root(list(evidence)),
        state_root=state.root(),
        validators_hash=validators_hash(state.validators),
        proposer=proposer,
    )
    return Block(header, tuple(txs), tuple(evidence), last_commit)
