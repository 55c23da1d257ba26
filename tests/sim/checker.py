"""The checker: safety after every delivered message, liveness at the end of a run.

Safety (honest nodes only; Byzantine nodes and twins are excluded):
- agreement: no two honest nodes commit different blocks at one height;
- validity: every committed block passed apply_block, and honest state roots agree per
  height; no honest node decides a block it did not judge valid; no honest validator is
  ever slashed (evidence in blocks slashes Byzantine ones, changing the set at H+2);
- no double signing: from the signed messages honest nodes actually sent, no two different
  messages at one (validator, height, round, step); the engine never asks an honest node
  to sign past its guard;
- evidence: an honest node never reports an honest validator as an equivocator.
Each check runs when its event happens (a send, a commit, an effect), so after every
delivered message all of them hold or the run stops with the violation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consensus.bft.guard import SignStep
from consensus.bft.messages import EquivocationDetected
from consensus.block import Block
from consensus.errors import DecodeError
from consensus.state import State
from consensus.vote import Vote
from tests.sim.wire import CHAIN_ID, Kind, decode_proposal

if TYPE_CHECKING:
    from tests.sim.node import SimNode


class SimFailure(AssertionError):
    """A safety violation or a liveness failure, with what is needed to replay it."""

    def __init__(self, scenario: str, seed: int, problems: list[str]) -> None:
        super().__init__(f"scenario {scenario} seed {seed}: {'; '.join(problems)} "
                         f"(replay: tests.sim.runner.replay({seed}, {scenario!r}))")
        self.scenario, self.seed, self.problems = scenario, seed, problems


@dataclass
class Checker:
    byzantine: set[bytes]  # addresses of Byzantine validators (twins included)
    violations: list[str] = field(default_factory=list)
    blocks: dict[int, bytes] = field(default_factory=dict)  # height -> block hash
    roots: dict[int, bytes] = field(default_factory=dict)  # height -> state root after
    signed: dict[tuple[bytes, int, int, int], bytes] = field(default_factory=dict)
    checked: set[bytes] = field(default_factory=set)  # payloads already checked
    evidence: set[bytes] = field(default_factory=set)  # validators reported, by address
    max_round: int = 0
    synced: int = 0  # blocks honest nodes took from block sync
    slashed: int = 0  # validators slashed for evidence in committed blocks

    def violation(self, node: SimNode, what: str) -> None:
        if node.honest:
            self.violations.append(f"node {node.endpoint}: {what}")

    def on_commit(self, node: SimNode, block: Block, state: State, how: str) -> None:
        if not node.honest:
            return
        height, block_hash, root = block.height, block.hash(), state.root()
        if how == "sync":
            self.synced += 1
        else:
            self.max_round = max(self.max_round, int(how.split()[-1]))
        known = self.blocks.setdefault(height, block_hash)
        if known == block_hash and len(self.roots) < height:
            self.slashed += len(block.evidence)
            wronged = [a for a in state.staking.tombstoned if a not in self.byzantine]
            if wronged:
                self.violation(node, f"validity: honest {wronged[0].hex()[:12]} slashed")
        if known != block_hash:
            self.violation(node, f"agreement: committed {block_hash.hex()[:12]} at height "
                                 f"{height}, another honest node committed {known.hex()[:12]}")
        if self.roots.setdefault(height, root) != root:
            self.violation(node, f"validity: state root after height {height} differs")

    def on_send(self, node: SimNode, kind: int, payload: bytes) -> None:
        """Record what an honest node signed and sent; two different messages at one
        (validator, height, round, step) is a double sign."""
        if not node.honest or payload in self.checked:
            return
        self.checked.add(payload)
        try:
            if kind == Kind.VOTE:
                vote = Vote.decode(payload)
                key = (vote.validator, vote.height, vote.round, vote.type + 1)
                message = vote.sign_message(CHAIN_ID)
            elif kind == Kind.PROPOSAL:
                p, _ = decode_proposal(payload)
                key = (p.proposer, p.height, p.round, int(SignStep.PROPOSAL))
                message = p.sign_message(CHAIN_ID)
            else:
                return
        except DecodeError:
            self.violation(node, f"sent an undecodable {Kind(kind).name} message")
            return
        if key[0] != node.address:
            return  # relayed, not signed by this node
        if self.signed.setdefault(key, message) != message:
            self.violation(node, f"double sign at height {key[1]} round {key[2]} "
                                 f"{SignStep(key[3]).name.lower()}")

    def on_evidence(self, node: SimNode, effect: EquivocationDetected) -> None:
        first, second = effect.first, effect.second
        same_slot = (first.validator, first.height, first.round, first.type) == (
            second.validator, second.height, second.round, second.type)
        if not same_slot or first.block_hash == second.block_hash:
            self.violation(node, "EquivocationDetected for votes that do not conflict")
        if node.honest:
            self.evidence.add(first.validator)
            if first.validator not in self.byzantine:
                self.violation(node, f"reported honest validator {first.validator.hex()[:12]} "
                                     "as an equivocator")
