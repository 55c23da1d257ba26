"""A simulated node's durable storage: what survives a crash.

The chain (state, blocks, commits) is committed atomically per decided block, which also
starts a new WAL for the next height. The sign state and the node's own signed proposals
for the current height are written before a signature leaves the node, and the evidence of
equivocation its engine reported is kept until a block carries it. Everything else a node
holds is volatile and lost on a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.bft.guard import SignState
from consensus.evidence import DuplicateVoteEvidence
from consensus.state import State
from consensus.vote import Commit

# WAL records, one per input the host fed its engine (replayed through the same code):
#   ("start", height) | ("proposal", payload) | ("vote", raw vote)
#   | ("timeout", kind, height, round)
WalRecord = tuple


@dataclass
class Durable:
    state: State
    blocks: dict[int, bytes] = field(default_factory=dict)
    commits: dict[int, Commit] = field(default_factory=dict)
    sign_state: SignState = field(default_factory=SignState)
    own_proposals: dict[int, bytes] = field(default_factory=dict)  # round -> payload
    wal: list[WalRecord] = field(default_factory=list)
    evidence: dict[bytes, DuplicateVoteEvidence] = field(default_factory=dict)  # by hash

    def commit_block(self, block_raw: bytes, commit: Commit, state: State) -> None:
        """One atomic write: the block, its commit and the state after it; a fresh WAL."""
        self.blocks[state.height] = block_raw
        self.commits[state.height] = commit
        self.state = state
        self.wal = []
        self.own_proposals = {}

    def last_commit(self) -> Commit:
        return self.commits.get(self.state.height, Commit.empty())
