"""A single-validator dev chain: each tick builds a block from pending transactions,
executes it, signs its precommit, and stores block, state and commit in one atomic batch.

It runs the same core as every node (build_block, apply_block, commits signed with the
validator key) without networking: the multi-validator runtime replaces the tick with the
consensus engine. Time comes from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.address import address_from_pubkey
from consensus.block import Block
from consensus.builder import build_block, select_txs
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.sigcache import SigCache
from consensus.state import State
from consensus.transition import apply_block
from consensus.vote import Commit, Vote, VoteType, make_commit
from genesis.document import Genesis
from node.chain.sigverify import ParallelVerifier
from node.errors import NodeError
from node.store.blockstore import BlockStore


@dataclass(frozen=True)
class Produced:
    block: Block
    state: State
    fees: int
    rejected: int  # pending txs dropped because they do not apply (signature, nonce, funds…)


class DevChain:
    def __init__(self, store: BlockStore, genesis: Genesis, key: PrivateKey) -> None:
        if not genesis.single_validator_dev_chain:
            raise NodeError(f"genesis of {genesis.chain_id!r} has {len(genesis.validators)} "
                            "validators; the dev chain runs single-validator genesis only")
        self.address = address_from_pubkey(key.public)
        if genesis.validators[0].address != self.address:
            raise NodeError("this home's validator key is not the genesis validator")
        self.store = store
        self.key = key
        self.genesis = genesis
        self.cache = SigCache()
        self.verifier = ParallelVerifier(self.cache)
        store.init_genesis(genesis.hash(), genesis.initial_state())
        self.state = store.load_state()
        tip = store.tip()
        self.last_commit = Commit.empty()
        if tip is not None and tip[0] > 0:
            self.last_commit = store.get_seen_commit(tip[0])

    def close(self) -> None:
        self.verifier.close()

    def produce(self, pending: list[bytes], now_ms: int) -> Produced:
        """Make the next block from `pending` (encoded txs, in order). Txs that do not apply
        (bad signature, nonce, funds…) are dropped, so the block is always valid."""
        params = self.state.params
        self.verifier.verify_raw(pending[:params.max_block_txs], params.max_tx_bytes)
        txs, rejected = select_txs(self.state, pending, params, self.cache)
        time_ms = max(now_ms, self.state.time_ms + 1)
        block = build_block(self.state, txs, self.address, time_ms, self.last_commit)
        new_state = apply_block(self.state, block, params, self.cache)
        vote = Vote(VoteType.PRECOMMIT, block.height, 0, block.hash(), self.address)
        commit = make_commit(block.height, 0, block.hash(),
                             [vote.signed(self.key, self.state.chain_id)])
        self.store.commit_block(block, new_state, seen_commit=commit)
        fees = sum(self.cache.get(sha256(raw)).fee for raw in txs)
        self.state, self.last_commit = new_state, commit
        return Produced(block, new_state, fees, len(rejected))
