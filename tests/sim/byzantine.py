"""Node behaviours: the honest one and swapped Byzantine hooks (the engine is never forked).

A behaviour decides what a node does on ProposeBlock and CastVote effects, on its
retransmit tick and on sync requests. Byzantine ones sign with the validator's key directly
(no guard: they mean to double-sign) and still run the real engine for everything else.
`Coalition` is shared knowledge of all split-brain nodes in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from consensus.bft.messages import CastVote, Proposal, ProposeBlock
from consensus.codec import encode
from consensus.hashing import sha256
from consensus.vote import Vote, VoteType
from tests.sim.wire import CHAIN_ID, Kind, encode_proposal

if TYPE_CHECKING:
    from consensus.block import Block
    from tests.sim.node import SimNode


@dataclass
class Coalition:
    """What colluding Byzantine nodes share: per (height, round), the value shown to each
    of two groups of honest nodes and the groups themselves; per (height, round, vote type)
    one plan saying which vote every member sends each honest peer."""

    members: set[int] = field(default_factory=set)
    values: dict[tuple[int, int], tuple[bytes, bytes]] = field(default_factory=dict)
    groups: dict[tuple[int, int], dict[int, int]] = field(default_factory=dict)
    plans: dict[tuple[int, int, int], dict[int, str]] = field(default_factory=dict)

    def split(self, node: SimNode, height: int, round_: int) -> dict[int, int]:
        """Two groups of the non-members (both non-empty when there are two or more)."""
        key = (height, round_)
        if key not in self.groups:
            rng = node.env.rng
            peers = [p for p in sorted(node.peers) if p not in self.members]
            groups = {p: rng.randrange(2) for p in peers}
            if len(peers) > 1 and len(set(groups.values())) == 1:
                groups[rng.choice(peers)] ^= 1
            self.groups[key] = groups
        return self.groups[key]

    def plan(self, node: SimNode, height: int, round_: int, vote_type: int) -> dict[int, str]:
        """Per honest peer: "group" (its group's value), "nil" or "engine" (the member's
        own engine's choice). Prevotes mostly split by group; precommits often go to a
        random subset only (a decision some honest nodes see and others do not)."""
        key = (height, round_, vote_type)
        if key not in self.plans:
            rng = node.env.rng
            mode = rng.random()
            if mode < 0.2:
                choices: tuple[str, ...] = ("engine",)
            elif vote_type == VoteType.PREVOTE or mode < 0.5:
                choices = ("group",)
            else:
                choices = ("group", "nil")
            self.plans[key] = {p: rng.choice(choices) for p in self.split(node, height, round_)}
        return self.plans[key]


class Behaviour:
    honest = True

    def __init__(self, coalition: Coalition) -> None:
        self.coalition = coalition
        self.resend: list[tuple[int, int, int, bytes]] = []  # (height, peer, kind, payload)

    def propose(self, node: SimNode, effect: ProposeBlock) -> None:
        node.propose(effect)

    def cast(self, node: SimNode, effect: CastVote) -> None:
        node.cast_vote(effect)

    def observe(self, node: SimNode, proposal: Proposal) -> None:
        """An authenticated proposal arrived (before the engine sees it)."""

    def on_tick(self, node: SimNode) -> None:
        node.retransmit()
        self.resend = [m for m in self.resend if m[0] == node.height]
        for _, peer, kind, payload in self.resend:
            node.env.net.send(node.endpoint, peer, kind, payload)

    def serve_sync(self, node: SimNode, peer: int, payload: bytes) -> None:
        node.serve_sync(peer, payload)

    # --- helpers for Byzantine behaviours -------------------------------------------------

    def send(self, node: SimNode, peer: int, kind: int, payload: bytes) -> None:
        """Send and remember it for the retransmit tick (this height only)."""
        self.resend.append((node.height, peer, kind, payload))
        node.env.net.send(node.endpoint, peer, kind, payload)

    @staticmethod
    def vote(node: SimNode, effect: CastVote, block_hash: bytes) -> bytes:
        vote = Vote(effect.type, effect.height, effect.round, block_hash, node.address)
        return vote.signed(node.key, CHAIN_ID).encode()

    @staticmethod
    def proposal(node: SimNode, effect: ProposeBlock, block: Block, pol_round: int) -> bytes:
        p = Proposal(effect.height, effect.round, block.hash(), pol_round, node.address)
        return encode_proposal(p.signed(node.key, CHAIN_ID), block.encode())

    def fresh_blocks(self, node: SimNode) -> tuple[Block, Block]:
        """Two different valid blocks for the current height."""
        a, b = node.build_block(), node.build_block()
        if a.hash() == b.hash():
            b = replace(b, header=replace(b.header, time_ms=b.header.time_ms + 1))
        return a, b


class Silent(Behaviour):
    """Withholds its votes (proposes normally)."""

    honest = False

    def cast(self, node: SimNode, effect: CastVote) -> None:
        return None


class EquivocatingProposer(Behaviour):
    """Sends one block to some peers and a different one to the others."""

    honest = False

    def propose(self, node: SimNode, effect: ProposeBlock) -> None:
        a, b = self.fresh_blocks(node)
        if effect.block_hash is not None:
            a = node.decode_block(node.blocks[effect.block_hash])
        payloads = (self.proposal(node, effect, a, effect.pol_round),
                    self.proposal(node, effect, b, -1))
        for peer in node.peers:
            self.send(node, peer, Kind.PROPOSAL, payloads[node.env.rng.randrange(2)])
        node.on_proposal(payloads[0], None)


class EquivocatingVoter(Behaviour):
    """Signs two different votes for every step and sends both to everyone."""

    honest = False

    def cast(self, node: SimNode, effect: CastVote) -> None:
        other = b"" if effect.block_hash else sha256(b"%d" % node.env.rng.getrandbits(64))
        votes = [self.vote(node, effect, effect.block_hash), self.vote(node, effect, other)]
        for peer in node.peers:
            for raw in node.env.rng.sample(votes, 2):
                self.send(node, peer, Kind.VOTE, raw)
        node.on_vote(votes[0], None)


class UnknownBlockVoter(Behaviour):
    """Votes for random block hashes nobody has."""

    honest = False

    def cast(self, node: SimNode, effect: CastVote) -> None:
        raw = self.vote(node, effect, node.env.rng.randbytes(32))
        for peer in node.peers:
            self.send(node, peer, Kind.VOTE, raw)
        node.on_vote(raw, None)


class InvalidProposer(Behaviour):
    """Proposes signed blocks that fail the state transition (a wrong state root)."""

    honest = False

    def propose(self, node: SimNode, effect: ProposeBlock) -> None:
        block = node.build_block()
        block = replace(block, header=replace(block.header, state_root=sha256(b"wrong")))
        payload = self.proposal(node, effect, block, -1)
        for peer in node.peers:
            self.send(node, peer, Kind.PROPOSAL, payload)
        node.on_proposal(payload, None)


class Amnesia(Behaviour):
    """Forgets its lock: proposes a fresh block every time and prevotes any proposal."""

    honest = False

    def propose(self, node: SimNode, effect: ProposeBlock) -> None:
        block = node.build_block()
        payload = self.proposal(node, effect, block, -1)
        for peer in node.peers:
            self.send(node, peer, Kind.PROPOSAL, payload)
        node.on_proposal(payload, None)

    def cast(self, node: SimNode, effect: CastVote) -> None:
        entry = node.engine.proposals.get(effect.round)
        value = effect.block_hash
        if effect.type == VoteType.PREVOTE and entry is not None and entry[1]:
            value = entry[0].block_hash
        raw = self.vote(node, effect, value)
        for peer in node.peers:
            self.send(node, peer, Kind.VOTE, raw)
        node.on_vote(raw, None)


class SplitBrain(Behaviour):
    """Colluding nodes show two groups of honest nodes different values: their proposals
    differ per group and each vote follows the coalition's plan for the (height, round,
    type): per honest peer, that peer's group value, nil, or what the engine chose."""

    honest = False

    def propose(self, node: SimNode, effect: ProposeBlock) -> None:
        a, b = self.fresh_blocks(node)
        payloads = (self.proposal(node, effect, a, -1), self.proposal(node, effect, b, -1))
        self.coalition.values[(effect.height, effect.round)] = (a.hash(), b.hash())
        groups = self.coalition.split(node, effect.height, effect.round)
        for peer in node.peers:
            group = 0 if peer in self.coalition.members else groups[peer]
            self.send(node, peer, Kind.PROPOSAL, payloads[group])
        node.on_proposal(payloads[0], None)

    def observe(self, node: SimNode, proposal: Proposal) -> None:
        value = proposal.block_hash
        self.coalition.values.setdefault((proposal.height, proposal.round), (value, value))

    def cast(self, node: SimNode, effect: CastVote) -> None:
        key = (effect.height, effect.round)
        values, groups = self.coalition.values.get(key), self.coalition.split(node, *key)
        plan = self.coalition.plan(node, effect.height, effect.round, effect.type)
        signed: dict[bytes, bytes] = {}
        for peer in node.peers:
            choice, value = plan.get(peer, "engine"), effect.block_hash
            if choice == "group" and values is not None:
                value = values[groups[peer]]
            elif choice == "nil":
                value = b""
            if value not in signed:
                signed[value] = self.vote(node, effect, value)
            self.send(node, peer, Kind.VOTE, signed[value])
        node.on_vote(self.vote(node, effect, effect.block_hash), None)


class Garbage(Behaviour):
    """Honest votes and proposals, plus garbage on every tick: random bytes, truncated and
    bit-flipped messages, forged signers, far-future heights, bogus sync responses."""

    honest = False

    def on_tick(self, node: SimNode) -> None:
        super().on_tick(node)
        rng = node.env.rng
        for _ in range(rng.randint(1, 3)):
            kind, payload = self.junk(node)
            node.env.net.send(node.endpoint, rng.choice(node.peers), kind, payload)

    def serve_sync(self, node: SimNode, peer: int, payload: bytes) -> None:
        self.send(node, peer, Kind.SYNC_RESPONSE, self.junk(node)[1])

    def junk(self, node: SimNode) -> tuple[int, bytes]:
        rng = node.env.rng
        h, r = node.height, node.engine.round
        vote = Vote(VoteType.PREVOTE, h, r, rng.randbytes(32), node.address)
        good = vote.signed(node.key, CHAIN_ID).encode()
        choice = rng.randrange(8)
        if choice == 0:
            return rng.randrange(8), rng.randbytes(rng.randint(0, 200))
        if choice == 1:
            return Kind.VOTE, good[:rng.randint(0, len(good) - 1)]
        if choice == 2:
            flip = rng.randrange(len(good))
            return Kind.VOTE, good[:flip] + bytes([good[flip] ^ 1]) + good[flip + 1:]
        if choice == 3:  # a real validator's address, signed with this node's key
            victim = node.env.rng.choice(node.vset.validators).address
            return Kind.VOTE, replace(vote, validator=victim).signed(node.key, CHAIN_ID).encode()
        if choice == 4:  # far in the future: peers may ask this node for blocks
            return Kind.VOTE, replace(vote, height=h + rng.randint(2, 50)).signed(
                node.key, CHAIN_ID).encode()
        if choice == 5:  # a signed proposal whose block does not hash to it
            p = Proposal(h, r, rng.randbytes(32), -1, node.address).signed(node.key, CHAIN_ID)
            return Kind.PROPOSAL, encode_proposal(p, node.build_block().encode())
        if choice == 6:  # a real block with a forged commit
            raw = node.build_block().encode()
            return Kind.SYNC_RESPONSE, encode([[raw, [h, 0, rng.randbytes(32),
                                                      [[node.address, rng.randbytes(64)]]]]])
        return rng.choice([Kind.PROPOSAL, Kind.SYNC_REQUEST]), encode([rng.randbytes(8), 7])


BEHAVIOURS: dict[str, type[Behaviour]] = {
    "honest": Behaviour,
    "silent": Silent,
    "equivocating_proposer": EquivocatingProposer,
    "equivocating_voter": EquivocatingVoter,
    "unknown_block_votes": UnknownBlockVoter,
    "invalid_block": InvalidProposer,
    "amnesia": Amnesia,
    "split_brain": SplitBrain,
    "garbage": Garbage,
}
