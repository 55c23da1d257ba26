"""Hostile and lying peers against NodeServices, with a real ConsensusHost on a real LevelDB
store and scripted peers in place of the network.

- A relay that pairs an honest signed proposal with other block bytes is reported, and the
  honest copy still counts (the engine keeps one proposal per round).
- The origin of a tx batch no node would admit (forged signature, another chain) is
  reported; the races honest nodes lose (repeats, stale nonces) are not. Such a batch stops
  at the first honest hop (drawn txs are screened before it is forwarded), and junk from
  senders with nothing costs no signature verification.
- Sync: one pass takes a node all the way to the peer's tip, with no timeout waited out; a
  peer serving blocks whose commit does not hold is reported and the next peer serves.
- A proposer signing blocks nobody has cannot hold consensus gossip up: block fetches run
  beside it, one source at a time per round, a bounded number per source, never for far
  rounds, never more than a few at once to one peer; a relay serving nothing cannot shut
  the honest source out.
- A votes-pull reply is handled once per distinct message and within a deadline.
- A blocks response stays under the requester's limit, commits included.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import trio
import trio.testing

from consensus.bft.engine import TimeoutConfig
from consensus.bft.messages import Proposal
from consensus.block import Block
from consensus.codec import encode
from consensus.crypto import PrivateKey
from consensus.vote import Commit, Vote, VoteType
from node.p2p.errors import RequestTimeout
from node.runtime import wire
from node.runtime.host import ConsensusHost, SyncedBlock
from node.runtime.services import (
    FETCH_TRIES_PER_PEER,
    FETCHES_PER_PEER,
    MAX_PARKED,
    MAX_SYNC_RESPONSE_BYTES,
    PROPOSAL_ROUNDS_AHEAD,
    PULL_DEADLINE_S,
    REQUEST_TIMEOUT_S,
    NodeServices,
)
from node.store.blockstore import BlockStore
from tests.unit.helpers import DEV_STAKE, Chain, addr, flip_byte, make_net

NET = make_net((DEV_STAKE,) * 4, label="peers")
GATE_S = 10.0


@dataclass
class ScriptedNet:
    """Peers in a fixed order; `serve(peer, protocol, payload, timeout)` answers requests."""

    serve: object = None
    order: tuple[str, ...] = ("peer",)
    reports: list[tuple[str, str]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    banned: set[str] = field(default_factory=set)

    def peers(self) -> list[str]:
        return list(self.order)

    def is_banned(self, peer: str) -> bool:
        return peer in self.banned

    def report_bad(self, peer: str, reason: str) -> None:
        self.reports.append((peer, reason))

    async def publish(self, topic: str, data: bytes) -> None:
        pass

    async def request(self, peer: str, protocol: str, payload: bytes, timeout: float,
                      max_response: int) -> bytes:
        self.requests.append((peer, protocol.rsplit("/", 2)[-2]))
        assert self.serve is not None, f"no request expected, got {protocol}"
        reply = await self.serve(peer, protocol, payload, timeout)
        assert len(reply) <= max_response
        return reply


@asynccontextmanager
async def running(tmp_path: Path, net: ScriptedNet
                  ) -> AsyncIterator[tuple[ConsensusHost, NodeServices]]:
    with BlockStore.open(tmp_path / "chain") as store:
        store.init_genesis(NET.genesis.hash(), NET.genesis.initial_state())
        host = ConsensusHost(store, net, NET.validator_keys[0], None, tmp_path / "wal",
                             TimeoutConfig(propose_ms=600_000))
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(host.run)
                services = NodeServices(host, net)
                await nursery.start(services.run, False)  # block fetches, no loops
                yield host, services
                nursery.cancel_scope.cancel()
        finally:
            host.close()


def signed_proposal(host: ConsensusHost, block: Block, round_: int = 0) -> Proposal:
    proposer = host.validator_set().proposer(1, round_)
    key = next(k for k in NET.validator_keys if addr(k) == proposer)
    return Proposal(1, round_, block.hash(), -1, proposer).signed(key, NET.chain_id)


def first_block(host: ConsensusHost, chain: Chain) -> Block:
    user = NET.user_keys[0]
    txs = [chain.transfer(user, addr(NET.user_keys[1]), 5, nonce=n).encode() for n in range(3)]
    return chain.build(txs, proposer=host.validator_set().proposer(1, 0))


# --- proposals ----------------------------------------------------------------------------


def test_a_relay_pairing_a_signed_proposal_with_other_bytes_is_reported_not_believed(
        tmp_path: Path) -> None:
    chain = Chain(NET)

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            block = first_block(host, chain)
            prop = signed_proposal(host, block)
            other = chain.build(proposer=block.header.proposer)  # a valid block, another hash
            swapped = Block(block.header, block.txs[:1], block.evidence, block.last_commit)
            for forged in (b"junk block bytes", other.encode(), swapped.encode()):
                await svc.on_consensus("relay", encode([wire.KIND_PROPOSAL, prop.encode(),
                                                        forged]))
            # a compact one whose tx list is not the header's (nothing to look up: no fetch)
            compact = encode([wire.KIND_COMPACT_PROPOSAL, prop.encode(),
                              [block.header.to_fields(), [], [],
                               block.last_commit.to_fields()]])
            await svc.on_consensus("relay", compact)
            await trio.testing.wait_all_tasks_blocked(0.05)  # the host had its turn
            assert host.engine.proposals == {}  # none of them reached the engine
            assert [peer for peer, _ in net.reports] == ["relay"] * 4
            await svc.on_consensus("proposer", wire.encode_proposal(prop, block.encode()))
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert host.engine.proposals == {0: (prop, True)}
            assert len(net.reports) == 4

    trio.run(main)


def test_an_invalid_block_that_is_the_signed_one_is_the_proposers_fault(
        tmp_path: Path) -> None:
    chain = Chain(NET)

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            proposer = host.validator_set().proposer(1, 0)
            bad = chain.build(proposer=proposer, time_ms=chain.state.time_ms)  # time not after
            prop = signed_proposal(host, bad)
            await svc.on_consensus("proposer", wire.encode_proposal(prop, bad.encode()))
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert host.engine.proposals == {0: (prop, False)}
            assert net.reports == []  # the relay passed on what the proposer signed

    trio.run(main)


def test_a_proposer_cannot_make_a_node_validate_and_keep_blocks_for_far_rounds(
        tmp_path: Path) -> None:
    """Before: any round up to the engine's window (1,000 ahead) was validated, so the
    proposer of a quarter of them could make every node apply a block and keep its state
    (a copy of every account) and log it to the WAL, for each of them: hundreds per
    height. Rounds past ours + PROPOSAL_ROUNDS_AHEAD wait for us to get there (pulled then)."""
    chain = Chain(NET)

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            vs = host.validator_set()
            sent = 0
            for round_ in range(200):
                proposer = vs.proposer(1, round_)
                key = next(k for k in NET.validator_keys if addr(k) == proposer)
                if key == NET.validator_keys[0]:
                    continue  # our own rounds
                block = chain.build(proposer=proposer,
                                    time_ms=chain.state.time_ms + 1000 + round_)
                prop = Proposal(1, round_, block.hash(), -1, proposer).signed(key,
                                                                             NET.chain_id)
                await svc.on_consensus("proposer", wire.encode_compact_proposal(prop, block))
                sent += 1
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert sent > 100
            assert len(host.candidates) <= PROPOSAL_ROUNDS_AHEAD + 1
            assert set(host.engine.proposals) <= set(range(PROPOSAL_ROUNDS_AHEAD + 1))
            assert len(svc._parked) == MAX_PARKED  # the lowest rounds, for later
            assert min(r for _, r in svc._parked) == PROPOSAL_ROUNDS_AHEAD + 1
            assert net.reports == []  # honest-looking: signed by each round's proposer

    trio.run(main)


async def held_in_commit(host: ConsensusHost, chain: Chain) -> threading.Event:
    """Commit `chain`'s next block (height 1) through sync with a slow disk: the host's
    state moves to it, then the host stays in the commit (its WAL rotation waits, the
    engine still at height 1) until the returned event is set."""
    first = chain.advance()
    rotate, disk = host.wal.rotate, threading.Event()

    def slow_rotate(record: bytes) -> None:  # a slow disk's fsync
        disk.wait(GATE_S)
        rotate(record)

    host.wal.rotate = slow_rotate
    await host.submit(SyncedBlock(first, chain.last_commit))
    with trio.fail_after(GATE_S):
        while host.height < 1:
            await trio.sleep(0.01)
    return disk


def key_of(address: bytes) -> PrivateKey:
    return next(k for k in NET.validator_keys if addr(k) == address)


def prevote(height: int, round_: int, block_hash: bytes, key: PrivateKey) -> bytes:
    return wire.encode_vote(Vote(VoteType.PREVOTE, height, round_, block_hash,
                                 addr(key)).signed(key, NET.chain_id))


def far_round_proposal(host: ConsensusHost, chain: Chain, round_: int
                       ) -> tuple[Block, Proposal, PrivateKey]:
    proposer = key_of(host.validator_set().proposer(1, round_))
    block = chain.build(proposer=addr(proposer))
    return block, Proposal(1, round_, block.hash(), -1, addr(proposer)).signed(
        proposer, NET.chain_id), proposer


def test_a_far_round_proposal_heard_before_the_round_skip_is_there_after_it(
        tmp_path: Path) -> None:
    """A node still in round 0 hears round 3's proposal, then the prevotes that take it
    there (f+1 of them: a round skip). The proposal, too far ahead to validate when it
    came, was parked and is handed over after the skip: pubsub delivers a message once,
    so dropped, it would be back only with a catch-up pull, seconds later."""
    round_ = PROPOSAL_ROUNDS_AHEAD + 1

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            block, prop, proposer = far_round_proposal(host, Chain(NET), round_)
            await svc.on_consensus("p", wire.encode_compact_proposal(prop, block))
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert host.engine.proposals == {} and len(svc._parked) == 1
            other = next(k for k in NET.validator_keys[1:] if k != proposer)
            for key in (other, proposer):
                await svc.on_consensus("p", prevote(1, round_, block.hash(), key))
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert host.engine.round == round_
            assert host.engine.proposals == {round_: (prop, True)} and not svc._parked

    trio.run(main)


def test_one_pull_brings_a_node_rounds_behind_into_the_round_with_its_proposal(
        tmp_path: Path) -> None:
    """A pull's reply lists the round's proposal before the votes that take us there: the
    proposal, too far ahead when it is handled, is parked and handed over once the votes
    have taken the engine there, so one pull is enough (it took two before)."""
    round_ = PROPOSAL_ROUNDS_AHEAD + 1

    async def main() -> None:
        async def serve(peer: str, protocol: str, payload: bytes, timeout: float) -> bytes:
            if protocol == svc.votes_proto:
                return wire.encode_messages(reply)
            return wire.encode([block.encode()])  # the block fetch that follows

        net = ScriptedNet(serve)
        async with running(tmp_path, net) as (host, svc):
            block, prop, proposer = far_round_proposal(host, Chain(NET), round_)
            other = next(k for k in NET.validator_keys[1:] if k != proposer)
            reply = [wire.encode_proposal(prop, b""),
                     prevote(1, round_, block.hash(), other),
                     prevote(1, round_, block.hash(), proposer)]
            await svc._pull_votes("peer")
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert host.engine.round == round_ and round_ in host.engine.proposals
            assert [kind for _, kind in net.requests] == ["votes", "block"]
            assert net.reports == []

    trio.run(main)


def test_a_round_skip_vote_queued_behind_a_release_still_releases(tmp_path: Path) -> None:
    """The first of the two votes that skip us to a parked proposal's round starts a
    release, which waits for the host to handle what came before it; the second vote,
    queued behind that wait, is the one that skips us. The release looks again after it
    (before, the proposal stayed parked until catch-up's next tick, or another vote)."""
    chain = Chain(NET)
    round_ = PROPOSAL_ROUNDS_AHEAD + 1

    async def main() -> None:
        async with running(tmp_path, ScriptedNet()) as (host, svc):
            disk = await held_in_commit(host, chain)
            proposer = key_of(host.validator_set().proposer(2, round_))
            block = chain.build(proposer=addr(proposer))
            prop = Proposal(2, round_, block.hash(), -1, addr(proposer)).signed(
                proposer, NET.chain_id)
            await svc.on_consensus("p", wire.encode_compact_proposal(prop, block))
            assert list(svc._parked) == [(2, round_)]
            other = next(k for k in NET.validator_keys[1:] if k != proposer)
            await svc.on_consensus("p", prevote(2, round_, block.hash(), other))
            await trio.testing.wait_all_tasks_blocked(0.05)  # the release waits its turn
            await svc.on_consensus("p", prevote(2, round_, block.hash(), proposer))
            disk.set()
            await trio.testing.wait_all_tasks_blocked(0.1)
            assert host.engine.height == 2 and host.engine.round == round_
            assert host.engine.proposals == {round_: (prop, True)} and not svc._parked

    trio.run(main)


def test_parked_proposals_of_a_height_left_behind_do_not_crowd_out_the_next_ones(
        tmp_path: Path) -> None:
    chain = Chain(NET)

    async def main() -> None:
        async with running(tmp_path, ScriptedNet()) as (host, svc):
            for round_ in range(PROPOSAL_ROUNDS_AHEAD + 1, 40):
                proposer = host.validator_set().proposer(1, round_)
                block = chain.build(proposer=proposer, time_ms=chain.state.time_ms + round_)
                prop = Proposal(1, round_, block.hash(), -1, proposer).signed(
                    key_of(proposer), NET.chain_id)
                await svc.on_consensus("p", wire.encode_compact_proposal(prop, block))
            assert len(svc._parked) == MAX_PARKED
            await host.submit(SyncedBlock(chain.advance(), chain.last_commit))
            await trio.testing.wait_all_tasks_blocked(0.1)
            proposer = host.validator_set().proposer(2, round_)
            block = chain.build(proposer=proposer)
            prop = Proposal(2, round_, block.hash(), -1, proposer).signed(key_of(proposer),
                                                                          NET.chain_id)
            await svc.on_consensus("p", wire.encode_compact_proposal(prop, block))
            assert list(svc._parked) == [(2, round_)]

    trio.run(main)


def test_a_proposal_whose_handover_was_cancelled_is_not_counted_as_offered(
        tmp_path: Path) -> None:
    """A pull's deadline can cancel the handover to the engine (its inbox full behind a
    slow host): the round must not count as offered, or no later copy would be taken."""

    async def main() -> None:
        async with running(tmp_path, ScriptedNet()) as (host, svc):
            block = Chain(NET).build(proposer=host.validator_set().proposer(1, 0))
            prop = signed_proposal(host, block)
            with trio.CancelScope() as scope:
                scope.cancel()
                await svc._propose("p", prop, block.encode(), block)
            assert not svc._has_proposal(prop)
            await svc.on_consensus("p", wire.encode_compact_proposal(prop, block))
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert host.engine.proposals == {0: (prop, True)}

    trio.run(main)


def test_equivocating_proposals_for_one_round_are_validated_once(tmp_path: Path) -> None:
    """The engine keeps the first proposal per round, but it records it only when the
    host gets to it: while the host was busy (a slow disk's fsync after a commit, here),
    each of an equivocating proposer's proposals for its round was applied, kept as a
    candidate (a state copy) and WAL-logged whole (40 of them before the fix)."""
    from node.runtime import events as ev
    from node.runtime.wal import replay

    chain = Chain(NET)

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            disk = await held_in_commit(host, chain)
            proposer = host.validator_set().proposer(2, 1)
            for i in range(40):
                block = chain.build(proposer=proposer, time_ms=chain.state.time_ms + 1 + i)
                prop = Proposal(2, 1, block.hash(), -1, proposer).signed(key_of(proposer),
                                                                         NET.chain_id)
                await svc.on_consensus("byz", wire.encode_compact_proposal(prop, block))
            assert len(host.candidates) == 1
            disk.set()
            await trio.testing.wait_all_tasks_blocked(0.1)
            logged = [r for r in map(ev.decode_record, replay(host.wal_path))
                      if isinstance(r, ev.ProposalRecord) and r.block]
            assert len(logged) == 1 and list(host.engine.proposals) == [1]

    trio.run(main)


def test_forged_consensus_messages_of_the_height_stop_at_the_first_honest_hop(
        tmp_path: Path) -> None:
    """Before: consensus gossip was only decoded before pubsub forwarded it, so a forged
    proposal carrying a big block went to every node, each checking it only on delivery."""
    from dataclasses import replace

    chain = Chain(NET)

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            voter = NET.validator_keys[1]
            vote = Vote(VoteType.PREVOTE, 1, 0, b"", addr(voter)).signed(voter, NET.chain_id)
            assert svc._check_consensus("relay", "origin", wire.encode_vote(vote))
            forged = replace(vote, signature=flip_byte(vote.signature, 0))
            assert not svc._check_consensus("relay", "forger", wire.encode_vote(forged))
            assert net.reports[-1][0] == "forger"  # the origin: the relay may be honest
            stranger = Vote(VoteType.PREVOTE, 1, 0, b"", addr(NET.user_keys[0])).signed(
                NET.user_keys[0], NET.chain_id)  # not in the set: dropped, not reported
            assert not svc._check_consensus("relay", "stranger", wire.encode_vote(stranger))
            # a later height is judged against the validators known here
            later = replace(vote, height=5, signature=flip_byte(vote.signature, 0))
            assert not svc._check_consensus("relay", "forger", wire.encode_vote(later))
            del net.reports[-1]
            block = first_block(host, chain)
            prop = signed_proposal(host, block)
            assert svc._check_consensus("relay", "origin",
                                        wire.encode_compact_proposal(prop, block))
            bad = replace(prop, signature=flip_byte(prop.signature, 0))
            assert not svc._check_consensus("relay", "forger",
                                            wire.encode_compact_proposal(bad, block))
            wrong = signed_proposal(host, block, round_=1)  # round 1's proposer, in round 0
            wrong = replace(wrong, round=0)
            assert not svc._check_consensus("relay", "origin",
                                            wire.encode_compact_proposal(wrong, block))
            assert [peer for peer, _ in net.reports] == ["forger", "forger"]
            # the real signed proposal of the height, with junk for a body, at any height:
            # nodes gossip compact proposals, so a whole block on gossip is a replay
            junk = Block(block.header, (b"junk" * 50_000,), (), block.last_commit)
            assert not svc._check_consensus("relay", "replayer",
                                            wire.encode_proposal(prop, junk.encode()))
            assert svc._check_consensus("relay", "puller", wire.encode_proposal(prop, b""))
            later = replace(prop, height=7)
            for carried in (Block(block.header, (b"junk",), (), block.last_commit),
                            Block(block.header, block.txs, (b"junk evidence",),
                                  block.last_commit)):
                for p in (prop, later):
                    assert not svc._check_consensus(
                        "relay", "replayer", wire.encode_compact_proposal(p, carried))
            assert [peer for peer, _ in net.reports][2:] == ["replayer"] * 4  # the origin

    trio.run(main)


def test_later_heights_are_judged_by_the_validators_known_here(tmp_path: Path) -> None:
    """Before: a vote or proposal of a later height passed unjudged, forged or not; each
    one reached every node and sent each syncing (asking every peer for its tip)."""
    from dataclasses import replace

    from consensus.staking import Validator

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            voter, newcomer = NET.validator_keys[1], NET.user_keys[0]
            honest = Vote(VoteType.PREVOTE, 5, 0, b"", addr(voter)).signed(voter,
                                                                            NET.chain_id)
            forged = replace(honest, signature=flip_byte(honest.signature, 0))
            joined = Vote(VoteType.PREVOTE, 2, 0, b"", addr(newcomer)).signed(newcomer,
                                                                                NET.chain_id)
            # the newcomer is in no set known here: dropped, nobody reported, no sync
            assert not svc._check_consensus("relay", "origin", wire.encode_vote(joined))
            await svc.on_consensus("origin", wire.encode_vote(joined))
            assert not svc.behind.is_set() and net.reports == []
            # a forged vote of a known validator: dropped, its origin reported, no sync
            assert not svc._check_consensus("relay", "forger", wire.encode_vote(forged))
            assert [peer for peer, _ in net.reports] == ["forger"]
            await svc.on_consensus("forger", wire.encode_vote(forged))  # delivered anyway
            assert not svc.behind.is_set() and len(net.reports) == 2
            # the honest one goes on, and says this node is behind
            assert svc._check_consensus("relay", "origin", wire.encode_vote(honest))
            await svc.on_consensus("origin", wire.encode_vote(honest))
            assert svc.behind.is_set()
            # once the newcomer signs the height after next, its votes for it go on
            host.state = replace(host.state, next_validators=(
                *host.state.validators, Validator(addr(newcomer), newcomer.public, 1)))
            assert svc._check_consensus("relay", "origin", wire.encode_vote(joined))
            # a (compact) proposal of a later height: its signer known, its signature checked
            svc.behind = trio.Event()
            block = first_block(host, Chain(NET))
            prop = Proposal(4, 0, block.hash(), -1, addr(voter)).signed(voter, NET.chain_id)
            bad = replace(prop, signature=flip_byte(prop.signature, 0))
            assert not svc._check_consensus("relay", "forger",
                                            wire.encode_compact_proposal(bad, block))
            await svc.on_consensus("forger", wire.encode_compact_proposal(bad, block))
            assert not svc.behind.is_set()
            assert [peer for peer, _ in net.reports] == ["forger"] * 4
            assert svc._check_consensus("relay", "origin",
                                        wire.encode_compact_proposal(prop, block))
            await svc.on_consensus("origin", wire.encode_compact_proposal(prop, block))
            assert svc.behind.is_set() and len(net.reports) == 4

    trio.run(main)


def test_a_consensus_message_checked_before_forwarding_is_verified_once(
        tmp_path: Path, monkeypatch) -> None:
    import node.runtime.services as services

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (_host, svc):
            voter = NET.validator_keys[1]
            vote = Vote(VoteType.PREVOTE, 1, 0, b"", addr(voter)).signed(voter, NET.chain_id)
            calls = []
            real = services.verify_signature
            monkeypatch.setattr(services, "verify_signature",
                                lambda *args: calls.append(args) or real(*args))
            raw = wire.encode_vote(vote)
            assert svc._check_consensus("relay", "origin", raw)
            await svc.on_consensus("origin", raw)
            assert len(calls) == 1 and svc.heard == 1

    trio.run(main)


# --- tx gossip ----------------------------------------------------------------------------


def test_a_tx_batch_no_node_would_admit_gets_its_origin_reported(tmp_path: Path) -> None:
    chain = Chain(NET)
    user, to = NET.user_keys[0], addr(NET.user_keys[1])

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            good = [chain.transfer(user, to, 5, nonce=n).encode() for n in range(3)]
            await svc.on_txs("honest", wire.encode_tx_batch(good))
            # the same again, and a stale nonce: races an honest node can lose
            stale = chain.transfer(user, to, 6, nonce=0).encode()
            await svc.on_txs("honest", wire.encode_tx_batch([*good, stale]))
            assert len(host.mempool) == 3 and svc.txs_rejected == 4
            assert net.reports == []
            signed = chain.transfer(user, to, 7, nonce=3).encode()
            forged = flip_byte(signed, len(signed) - 1)  # the signature's last byte
            other_chain = chain.transfer(user, to, 8, nonce=3, chain_id="other").encode()
            for name, tx in (("forger", forged), ("other", other_chain)):
                await svc.on_txs(name, wire.encode_tx_batch([tx]))
            assert [peer for peer, _ in net.reports] == ["forger", "other"]
            assert "bad_tx_signature" in net.reports[0][1]
            assert "wrong_chain_id" in net.reports[1][1]
            assert len(host.mempool) == 3

    trio.run(main)


class Verifications:
    """Counts Ed25519 verifications of txs, in the pool and inline on the loop (the real
    function runs)."""

    def __init__(self, monkeypatch) -> None:
        import consensus.transition
        import node.chain.sigverify

        self.pool = self.inline = 0
        for module, where in ((consensus.transition, "inline"),
                              (node.chain.sigverify, "pool")):
            real = module.verify_signature

            def counting(*args, real=real, where=where):
                setattr(self, where, getattr(self, where) + 1)
                return real(*args)

            monkeypatch.setattr(module, "verify_signature", counting)

    @property
    def count(self) -> int:
        return self.pool + self.inline


def test_a_batch_carrying_a_forged_tx_stops_at_the_first_honest_hop(tmp_path: Path) -> None:
    """Before: the batch was forwarded first and checked after, so a peer could make every
    node of the network verify its junk, and only the (fresh, free) origin key was ever
    charged. Now drawn txs are screened before pubsub forwards it."""
    chain = Chain(NET)
    user, to = NET.user_keys[0], addr(NET.user_keys[1])

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (_host, svc):
            good = [chain.transfer(user, to, 5, nonce=n).encode() for n in range(7)]
            signed = chain.transfer(user, to, 5, nonce=7).encode()
            forged = flip_byte(signed, len(signed) - 1)
            assert svc._check_txs("relay", "origin", wire.encode_tx_batch(good))
            # 8 txs: all of them are drawn, the forged one among them
            assert not svc._check_txs("relay", "forger", wire.encode_tx_batch([*good, forged]))
            assert [peer for peer, _ in net.reports] == ["forger"]  # not the relay
            assert "bad_tx_signature" in net.reports[0][1]
            many = [flip_byte(t, len(t) - 1) for t in
                    (chain.transfer(user, to, 5, nonce=n).encode() for n in range(200))]
            assert not svc._check_txs("relay", "forger", wire.encode_tx_batch(many))
            assert svc.tx_batches_stopped == 2 and len(net.reports) == 2
            # once banned, its batches stop here whatever they hold (honest relays too)
            net.banned.add("forger")
            assert not svc._check_txs("relay", "forger", wire.encode_tx_batch(good))
            assert svc.tx_batches_stopped == 3 and len(net.reports) == 2
            # txs held already pass unverified: a re-gossip of pending txs is not junk
            await svc.on_txs("origin", wire.encode_tx_batch(good))
            assert svc._check_txs("relay", "origin", wire.encode_tx_batch(good))

    trio.run(main)


def test_junk_from_senders_with_nothing_costs_no_verification(tmp_path: Path,
                                                               monkeypatch) -> None:
    """Txs the state refuses anyway (no account) are not verified, on admission or in the
    screen; a batch of nothing else is not forwarded, and no one is reported (the relay
    may hold a block we lack, in which those accounts exist)."""
    from consensus.crypto import PrivateKey
    from consensus.hashing import sha256

    chain = Chain(NET)
    user, to = NET.user_keys[0], addr(NET.user_keys[1])
    nobodies = [PrivateKey.from_seed(sha256(b"nobody %d" % i)) for i in range(300)]

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            junk = [chain.transfer(k, to, 5, nonce=0).encode() for k in nobodies]
            verifications = Verifications(monkeypatch)
            assert not svc._check_txs("relay", "origin", wire.encode_tx_batch(junk))
            await svc.on_txs("origin", wire.encode_tx_batch(junk))
            assert verifications.count == 0
            assert svc.txs_rejected == len(junk) and len(host.mempool) == 0
            assert net.reports == [] and svc.tx_batches_stopped == 1
            # mixed with txs the state takes, the batch goes on, and only those are verified
            good = [chain.transfer(user, to, 5, nonce=n).encode() for n in range(4)]
            mixed = wire.encode_tx_batch([*good, *junk[:4]])  # 8: all drawn
            assert svc._check_txs("relay", "origin", mixed)
            await svc.on_txs("origin", mixed)
            assert len(host.mempool) == 4 and verifications.count == 8  # 4 screened, 4 admitted
            assert net.reports == []

    trio.run(main)


def test_what_this_node_holds_pending_does_not_stop_others_batches(tmp_path: Path) -> None:
    """The screen judges by the committed state alone: a peer that fills our mempool with
    a sender's spending first must not make us refuse, and stop, others' batches."""
    chain = Chain(NET)
    user, to = NET.user_keys[0], addr(NET.user_keys[1])
    balance = chain.balance_of(addr(user))

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, svc):
            fee = host.params.min_fee
            big = chain.transfer(user, to, balance - fee - 1_000, nonce=0).encode()
            await svc.on_txs("origin", wire.encode_tx_batch([big]))
            assert len(host.mempool) == 1  # pending: nearly all of the balance
            others = [chain.transfer(user, to, 5_000, nonce=n).encode() for n in range(1, 9)]
            assert svc._check_txs("relay", "origin", wire.encode_tx_batch(others))
            assert svc.tx_batches_stopped == 0 and net.reports == []

    trio.run(main)


def test_txs_a_block_makes_admissible_during_admission_are_verified_in_the_pool(
        tmp_path: Path, monkeypatch) -> None:
    """A tx the state refused when its batch started (a sender funded by a block committed
    meanwhile) is verified with the others off the loop, not one by one on it."""
    from consensus.crypto import PrivateKey
    from consensus.hashing import sha256

    chain = Chain(NET)
    user = NET.user_keys[0]
    newcomers = [PrivateKey.from_seed(sha256(b"newcomer %d" % i)) for i in range(20)]
    funding = [chain.transfer(user, addr(k), 10_000, nonce=n).encode()
               for n, k in enumerate(newcomers)]
    chain.advance(funding)  # the state after the block that funds them

    async def main() -> None:
        net = ScriptedNet()
        async with running(tmp_path, net) as (host, _svc):
            real_check = host.verifier.check_async

            async def commit_during_the_first_pass(*args):
                result = await real_check(*args)
                if host.state.height == 0:
                    host.state = chain.state  # as if the block committed meanwhile
                return result

            monkeypatch.setattr(host.verifier, "check_async", commit_during_the_first_pass)
            txs = [chain.transfer(k, addr(user), 5, nonce=0).encode() for k in newcomers]
            verifications = Verifications(monkeypatch)
            admitted, rejected = await host.admit(txs)
            assert len(admitted) == len(txs) and rejected == []
            assert (verifications.pool, verifications.inline) == (len(txs), 0)

    trio.run(main)


# --- sync ---------------------------------------------------------------------------------


def served_chain(count: int) -> tuple[list[bytes], list[Commit]]:
    chain = Chain(NET)
    blocks, commits = [], []
    for _ in range(count):
        blocks.append(chain.advance().encode())
        commits.append(chain.last_commit)
    return blocks, commits


def test_one_sync_pass_reaches_the_peers_tip_and_a_lying_peer_is_reported(
        tmp_path: Path) -> None:
    """Before, the wait for a batch's blocks aimed past them whenever the host had already
    applied some: it ran out its 10 s and gave up on the peer (about half the batches)."""
    count = 3 * wire.MAX_SYNC_BLOCKS + 5
    blocks, commits = served_chain(count)
    lies = [Commit(c.height, c.round, c.block_hash, c.signatures[:1]) for c in commits]

    async def serve(peer: str, protocol: str, payload: bytes, timeout: float) -> bytes:
        if protocol.endswith("/status/1"):
            return wire.encode_status(count, b"\0" * 32)
        start, n = wire.decode_blocks_request(payload)
        return wire.encode_blocks(list(zip(blocks, lies if peer == "liar" else commits,
                                           strict=True))[start - 1:start - 1 + n])

    async def main() -> None:
        net = ScriptedNet(serve, ("liar", "honest"))
        async with running(tmp_path, net) as (host, svc):
            with trio.move_on_after(60):
                await svc._sync_from("liar")
                assert host.height == 0
                assert len(net.reports) == 1 and net.reports[0][0] == "liar"
                assert "needs more than 2/3" in net.reports[0][1]
                await svc._sync_from("honest")
            assert host.height == count
            assert [p for p, proto in net.requests if proto == "blocks"] == \
                ["liar"] + ["honest"] * 4
            assert len(net.reports) == 1

    trio.run(main)


def test_a_blocks_response_fits_the_requesters_limit_with_its_commits() -> None:
    """100 validators' commit is about 13 kB a block: counting the blocks' bytes alone, 31
    blocks of 1.04 MB came to 11.8 kB over the limit, and nobody could sync past them."""
    net = make_net((DEV_STAKE,) * 100, label="big")
    chain = Chain(net)
    chain.advance()
    block = bytes(1_040_000)
    store = SimpleNamespace(get_block=lambda height: block,
                            get_seen_commit=lambda height: chain.last_commit)
    host = SimpleNamespace(chain_id="c", height=10_000, store=store)
    svc = NodeServices(host, ScriptedNet())  # type: ignore[arg-type]
    reply = trio.run(svc.serve_blocks, "peer", wire.encode_blocks_request(1, 64))
    assert len(reply) <= MAX_SYNC_RESPONSE_BYTES
    served = len(wire.decode_blocks(reply, 2 << 20))
    item = len(block) + len(encode(chain.last_commit.to_fields()))
    assert served == MAX_SYNC_RESPONSE_BYTES // (item + 16) == 31  # as many as fit


# --- votes pull ---------------------------------------------------------------------------


@dataclass
class Fetches:
    """Block requests a scripted peer saw: when each began, who was asked, how many were
    open at once at most."""

    times: list[float] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    open: int = 0
    most_open: int = 0

    def begin(self, peer: str) -> None:
        self.times.append(trio.current_time())
        self.peers.append(peer)
        self.open += 1
        self.most_open = max(self.most_open, self.open)


def stalling_fetches(reply: list[bytes]) -> tuple[object, Fetches]:
    """Peers that answer votes pulls with `reply[0]` and stall every block fetch."""
    fetches = Fetches()

    async def serve(peer: str, protocol: str, payload: bytes, timeout: float) -> bytes:
        if protocol.endswith("/votes/1"):
            return reply[0]
        fetches.begin(peer)
        try:
            await trio.sleep(timeout)
        finally:
            fetches.open -= 1
        raise RequestTimeout("stalled")

    return serve, fetches


def tx_nobody_has(chain: Chain, salt: int = 0) -> bytes:
    """A valid tx no mempool holds (distinct per `salt`)."""
    return chain.transfer(NET.user_keys[1], addr(NET.user_keys[2]), 1 + salt,
                          nonce=0).encode()


def compact_nobody_has(host: ConsensusHost, chain: Chain, round_: int, salt: int) -> bytes:
    """A signed compact proposal for `round_` whose one tx no mempool holds."""
    block = chain.build([tx_nobody_has(chain, salt)],
                        proposer=host.validator_set().proposer(1, round_))
    return wire.encode_compact_proposal(signed_proposal(host, block, round_), block)


def test_a_proposer_signing_blocks_nobody_has_cannot_hold_up_votes(tmp_path: Path) -> None:
    """Before, each such proposal's fetch ran inside the one task that delivers consensus
    gossip: 10 s with no vote reaching the engine, for every distinct block it signed."""
    chain = Chain(NET)
    serve, fetches = stalling_fetches([b""])

    async def main() -> None:
        net = ScriptedNet(serve)
        async with running(tmp_path, net) as (host, svc):
            start = trio.current_time()
            for salt in range(12):  # distinct blocks, one round
                await svc.on_consensus("proposer", compact_nobody_has(host, chain, 0, salt))
            voter = NET.validator_keys[1]
            vote = Vote(VoteType.PREVOTE, 1, 0, b"", addr(voter)).signed(voter, NET.chain_id)
            await svc.on_consensus("voter", wire.encode_vote(vote))
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert trio.current_time() - start < 1  # the vote did not wait on any fetch
            assert addr(voter) in host.engine.prevotes[0].by_value[b""]
            assert len(fetches.times) == 1  # one at a time per round
            await trio.sleep(5 * (REQUEST_TIMEOUT_S + 1))
            for salt in range(5):  # more blocks of that round, well apart
                await svc.on_consensus("proposer", compact_nobody_has(host, chain, 0, salt))
                await trio.sleep(REQUEST_TIMEOUT_S + 1)
            assert len(fetches.times) == FETCH_TRIES_PER_PEER  # what that peer may cost us
            assert host.engine.proposals == {}
            assert svc.compact_misses == 17

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_relay_serving_nothing_cannot_shut_the_honest_source_out(tmp_path: Path) -> None:
    """A relay can re-wrap the proposer's signed proposal as compact proposals naming txs
    nobody has (each a new gossip message) and answer the fetch with nothing. Fetch tries
    are counted per source, and a failed one moves on to the next source."""
    chain = Chain(NET)

    async def main() -> None:
        async def serve(peer: str, protocol: str, payload: bytes, timeout: float) -> bytes:
            asked.append(peer)
            if peer == "relay":
                await trio.sleep(timeout / 2)  # then nothing
                return wire.encode([])
            return wire.encode([block.encode()])

        asked: list[str] = []
        net = ScriptedNet(serve)
        async with running(tmp_path, net) as (host, svc):
            block = chain.build([tx_nobody_has(chain)],
                                proposer=host.validator_set().proposer(1, 0))
            prop = signed_proposal(host, block)
            forged = encode([wire.KIND_COMPACT_PROPOSAL, prop.encode(),
                             [block.header.to_fields(), [bytes(32)], list(block.evidence),
                              block.last_commit.to_fields()]])  # a tx hash nobody has
            for _ in range(6):
                await svc.on_consensus("relay", forged)
                await trio.sleep(1)
            await svc.on_consensus("proposer", wire.encode_compact_proposal(prop, block))
            await trio.sleep(3 * REQUEST_TIMEOUT_S)
            assert host.engine.proposals == {0: (prop, True)}
            assert asked.count("relay") == FETCH_TRIES_PER_PEER
            assert asked.count("proposer") == 1
            assert net.reports == []  # a relay may have dropped a block it served before

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_fetched_block_reaches_the_engine_and_far_rounds_are_not_fetched(
        tmp_path: Path) -> None:
    chain = Chain(NET)

    async def main() -> None:
        async def serve(peer: str, protocol: str, payload: bytes, timeout: float) -> bytes:
            served.append(wire.decode(payload, 64)[0])
            return wire.encode([block.encode()])

        served: list[bytes] = []
        net = ScriptedNet(serve)
        async with running(tmp_path, net) as (host, svc):
            block = first_block(host, chain)
            await svc.on_consensus("proposer", compact_nobody_has(
                host, chain, PROPOSAL_ROUNDS_AHEAD + 1, 0))
            prop = signed_proposal(host, block)
            await svc.on_consensus("proposer", wire.encode_compact_proposal(prop, block))
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert served == [block.hash()]  # the far round's block was not asked for
            assert host.engine.proposals == {0: (prop, True)}
            assert svc.heard == 1

    trio.run(main)


def test_far_rounds_are_not_fetched_while_the_engine_has_not_started_the_height(
        tmp_path: Path) -> None:
    """While a block is stored and the WAL rotated, our tip is the new block but the engine
    is still at the height before: the round window must hold then too."""
    chain = Chain(NET)
    serve, fetches = stalling_fetches([b""])

    async def main() -> None:
        net = ScriptedNet(serve)
        async with running(tmp_path, net) as (host, svc):
            rotating = await held_in_commit(host, chain)
            assert host.engine.height == 1  # not started on height 2 yet
            second = chain.build([tx_nobody_has(chain)])
            vs = host.validator_set()
            for round_ in range(PROPOSAL_ROUNDS_AHEAD + 1, PROPOSAL_ROUNDS_AHEAD + 30):
                key = next(k for k in NET.validator_keys
                           if addr(k) == vs.proposer(2, round_))
                proposal = Proposal(2, round_, second.hash(), -1, addr(key)).signed(
                    key, NET.chain_id)
                await svc.on_consensus("byzantine",
                                       wire.encode_compact_proposal(proposal, second))
            await trio.testing.wait_all_tasks_blocked(0.05)
            rotating.set()
            assert fetches.times == []

    trio.run(main)


def test_a_votes_reply_is_handled_once_per_message_and_within_a_deadline(
        tmp_path: Path) -> None:
    chain = Chain(NET)
    reply = [b""]
    serve, fetches = stalling_fetches(reply)

    async def main() -> None:
        net = ScriptedNet(serve)
        async with running(tmp_path, net) as (host, svc):
            block = first_block(host, chain)
            repeated = [wire.encode_proposal(signed_proposal(host, block), b"")] * 4000
            reply[0] = wire.encode_messages(repeated)
            start = trio.current_time()
            await svc._pull_votes("peer")
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert len(fetches.times) == 1  # 4,000 copies were 4,000 fetches, 11 hours
            assert trio.current_time() - start < 1  # and it waits on none of them
            rounds = [wire.encode_proposal(signed_proposal(host, block, r), b"")
                      for r in range(50)]  # distinct
            reply[0] = wire.encode_messages(rounds)
            await trio.sleep(REQUEST_TIMEOUT_S / 2)
            start = trio.current_time()
            await svc._pull_votes("peer")
            assert trio.current_time() - start <= PULL_DEADLINE_S + 1
            await trio.sleep(4 * REQUEST_TIMEOUT_S)
            # round 0 twice (a second try: its first failed), then rounds 1 and 2, never
            # more than FETCHES_PER_PEER at once to the one peer; not the 47 beyond
            assert len(fetches.times) == FETCH_TRIES_PER_PEER + PROPOSAL_ROUNDS_AHEAD
            assert fetches.most_open == FETCHES_PER_PEER

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
