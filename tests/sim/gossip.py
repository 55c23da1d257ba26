"""Gossip and catch-up for a simulated node (a mixin of SimNode).

The network loses messages, so a node re-broadcasts its own messages of the rounds peers may
still need and relays the prevotes of the proofs of lock it holds (as Tendermint's gossip
sends POL prevotes). A node that sees messages for later heights asks a peer for decided
blocks with their commits, checks each commit (> 2/3 of the stake signed it) and applies
the block with the real state transition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus.block import Block
from consensus.errors import DecodeError, InvalidBlock
from consensus.transition import apply_block
from consensus.vote import Commit, verify_commit
from tests.sim.wire import (
    CHAIN_ID,
    SYNC_BATCH,
    Kind,
    decode_sync_request,
    decode_sync_response,
    encode_sync_request,
    encode_sync_response,
)

if TYPE_CHECKING:
    from consensus.bft.engine import EngineState
    from consensus.bft.validators import ValidatorSet
    from consensus.sigcache import SigCache
    from consensus.state import State
    from tests.sim.node import Env
    from tests.sim.storage import Durable

SYNC_AFTER_MS = 800  # one height behind for this long: ask a peer for decided blocks
SYNC_RETRY_MS = 500


class Gossip:
    endpoint: int
    address: bytes
    env: Env
    durable: Durable
    engine: EngineState
    vset: ValidatorSet
    sig_cache: SigCache
    peers: list[int]
    outbox: dict[tuple[int, int], tuple[int, bytes]]
    ahead: dict[int, int]
    behind_since: int | None
    next_sync_at: int

    @property
    def height(self) -> int:
        """The height this node is deciding (one above its last committed block)."""
        return self.durable.state.height + 1

    @property
    def now(self) -> int:
        return self.env.net.now_ms

    def decode_block(self, raw: bytes) -> Block:
        params = self.durable.state.params
        return Block.decode(raw, params.max_block_bytes, params.max_block_txs)

    def commit(self, raw: bytes, commit: Commit, state: State, how: str) -> None:
        raise NotImplementedError

    def start_height(self) -> None:
        raise NotImplementedError

    # --- gossip -------------------------------------------------------------------------

    def release(self, kind: int, key: tuple[int, int], payload: bytes) -> None:
        self.outbox[key] = (kind, payload)
        self.broadcast(kind, payload)

    def broadcast(self, kind: int, payload: bytes) -> None:
        self.env.checker.on_send(self, kind, payload)
        for peer in self.peers:
            self.env.net.send(self.endpoint, peer, kind, payload)

    def relay(self, kind: int, payload: bytes) -> None:
        """Pass on a message signed by someone else."""
        for peer in self.peers:
            self.env.net.send(self.endpoint, peer, kind, payload)

    def send(self, peer: int, kind: int, payload: bytes) -> None:
        self.env.checker.on_send(self, kind, payload)
        self.env.net.send(self.endpoint, peer, kind, payload)

    def retransmit(self) -> None:
        """Re-broadcast own messages of the rounds peers may still need (this round and the
        last, and the proof-of-lock rounds) and relay the prevotes of each proof of lock
        this node holds, as Tendermint's gossip sends POL prevotes: a Byzantine validator
        may have shown its prevote to some honest nodes only."""
        e = self.engine
        entry = e.proposals.get(e.round)
        rounds = {e.round, e.round - 1, e.valid_round, e.locked_round,
                  entry[0].pol_round if entry else -1}
        for (round_, _), (kind, payload) in list(self.outbox.items()):
            if round_ in rounds:
                self.broadcast(kind, payload)
        polkas = [(e.valid_round, e.valid_value)]
        if entry is not None:
            polkas.append((entry[0].pol_round, entry[0].block_hash))
        for round_, value in polkas:
            votes = e.prevotes.get(round_)
            if value is None or votes is None or not self.vset.is_quorum(
                    votes.stake_for.get(value, 0)):
                continue
            for vote in votes.votes_for(value):
                if vote.validator != self.address:
                    self.relay(Kind.VOTE, vote.encode())

    # --- block sync -------------------------------------------------------------------

    def note_ahead(self, peer: int, height: int) -> None:
        self.ahead[peer] = max(height, self.ahead.get(peer, 0))
        far = self.now - SYNC_AFTER_MS  # two or more heights ahead: ask at once
        since = self.now if height == self.height + 1 else far
        self.behind_since = since if self.behind_since is None else min(self.behind_since,
                                                                          since)
        self.maybe_sync()

    def maybe_sync(self) -> None:
        if (not self.ahead or self.behind_since is None or self.now < self.next_sync_at
                or self.now - self.behind_since < SYNC_AFTER_MS):
            return
        self.next_sync_at = self.now + SYNC_RETRY_MS
        peer = self.env.rng.choice(sorted(self.ahead))
        self.send(peer, Kind.SYNC_REQUEST, encode_sync_request(self.height))

    def serve_sync(self, peer: int, payload: bytes) -> None:
        try:
            start = decode_sync_request(payload)
        except DecodeError:
            return
        top = min(start + SYNC_BATCH, self.height)
        items = [(self.durable.blocks[h], self.durable.commits[h]) for h in range(start, top)]
        if items:
            self.send(peer, Kind.SYNC_RESPONSE, encode_sync_response(items))

    def on_sync_response(self, payload: bytes) -> None:
        try:
            items = decode_sync_response(payload)
        except DecodeError:
            self.env.stats["dropped_malformed"] += 1
            return
        start = self.height
        for raw, commit in items:
            if not self.apply_synced(raw, commit):
                break
        if self.height != start:
            self.start_height()

    def apply_synced(self, raw: bytes, commit: Commit) -> bool:
        """Apply a decided block fetched from a peer, after checking its commit."""
        state = self.durable.state
        try:
            block = self.decode_block(raw)
            if block.height < self.height:
                return True  # already have it
            if block.height > self.height:
                return False
            verify_commit(commit, CHAIN_ID, block.height, block.hash(),
                          state.validator_map(state.validators))
            after = apply_block(state, block, state.params, self.sig_cache)
        except (DecodeError, InvalidBlock):
            self.env.stats["sync_blocks_rejected"] += 1
            return False
        self.commit(raw, commit, after, "sync")
        return True
