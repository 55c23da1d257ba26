"""A simulated node: the host loop around the real engine, as node/ will run it.

Inputs are decoded from bytes, authenticated and judged (valid(v) = the real apply_block on a
copy of the state) before the engine sees them; anything malformed is dropped here. Every
input goes to the durable WAL before it is handled; every signature passes the double-sign
guard and is persisted before it leaves. Decisions are applied and committed atomically;
a node that falls behind fetches decided blocks with their commits from peers. Own messages
for the current height are re-broadcast on a timer, since the network loses messages.

Byzantine behaviour is a swapped `behaviour` object (tests/sim/byzantine.py) that decides
what happens on ProposeBlock, CastVote, ticks and sync requests; the engine is never forked.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from consensus.bft.engine import EngineState, step
from consensus.bft.guard import DoubleSignRefused, SignState, SignStep, check_sign
from consensus.bft.messages import (
    CastVote,
    Decide,
    Effect,
    EquivocationDetected,
    Event,
    Proposal,
    ProposalReceived,
    ProposeBlock,
    ScheduleTimeout,
    StartHeight,
    TimeoutElapsed,
    TimeoutKind,
    VoteReceived,
)
from consensus.bft.validators import ValidatorSet
from consensus.block import Block
from consensus.builder import build_block
from consensus.crypto import verify_signature
from consensus.errors import DecodeError, InvalidBlock
from consensus.evidence import DuplicateVoteEvidence
from consensus.sigcache import SigCache
from consensus.state import State, Validator
from consensus.transition import apply_block
from consensus.vote import Commit, Vote
from tests.sim.gossip import Gossip
from tests.sim.network import Message, Network, Tick, Timer
from tests.sim.storage import Durable, WalRecord
from tests.sim.wire import (
    CHAIN_ID,
    GENESIS_TIME_MS,
    Kind,
    decode_proposal,
    encode_proposal,
    make_txs,
    validator_address,
    validator_key,
)

if TYPE_CHECKING:
    import random

    from tests.sim.byzantine import Behaviour

RETRANSMIT_MS = 400  # re-broadcast own messages of the current height this often
PENDING_LIMIT = 64  # next-height messages buffered until this node decides


class NodeCrashed(Exception):
    """Raised at a crash point; the runner drops the node's volatile state."""

    def __init__(self, endpoint: int) -> None:
        super().__init__(f"node {endpoint} crashed")
        self.endpoint = endpoint


class Env(Protocol):
    """What a node needs from the simulation (tests/sim/runner.py)."""

    net: Network
    rng: random.Random
    checker: Checker
    stats: Counter[str]  # what happened, for reports: restarts, drops, re-releases, ...

    def validator_set(self, validators: tuple[Validator, ...]) -> ValidatorSet: ...

    def crash_point(self, node: SimNode) -> None: ...


class Checker(Protocol):
    def on_commit(self, node: SimNode, block: Block, state: State, how: str) -> None: ...

    def on_send(self, node: SimNode, kind: int, payload: bytes) -> None: ...

    def on_evidence(self, node: SimNode, effect: EquivocationDetected) -> None: ...

    def violation(self, node: SimNode, what: str) -> None: ...


class SimNode(Gossip):
    def __init__(self, endpoint: int, validator: int, env: Env, durable: Durable,
                 behaviour: Behaviour, honest: bool) -> None:
        self.endpoint, self.validator, self.env = endpoint, validator, env
        self.key = validator_key(validator)
        self.address = validator_address(validator)
        self.durable, self.behaviour, self.honest = durable, behaviour, honest
        self.alive, self.epoch, self.replaying = False, 0, False
        self.peers: list[int] = []  # every other endpoint, set by the runner
        self.crash()

    # --- lifecycle ----------------------------------------------------------------------

    def crash(self) -> None:
        """Lose everything volatile: engine, caches, buffers, timers (by epoch)."""
        self.alive = False
        self.env.net.alive[self.endpoint] = False
        self.engine = EngineState(self.address)
        self.inbox: deque[tuple[WalRecord | None, Event]] = deque()
        self.sig_cache = SigCache(10_000)
        self.pending: list[Message] = []
        self._reset_height()

    def boot(self) -> None:
        """Start (or restart): fresh engine, StartHeight from the durable chain, replay the
        WAL of the current height through the same code paths, then resume."""
        self.crash()
        self.alive, self.epoch = True, self.epoch + 1
        self.env.net.alive[self.endpoint] = True
        height, records = self.height, list(self.durable.wal)
        self.env.stats["restarts" if self.epoch > 1 else "boots"] += 1
        self.env.stats["wal_records_replayed"] += len(records)
        self.replaying = True
        self.feed(None, StartHeight(height, self.vset))
        self.drain()
        for record in records:
            if not self.replaying or self.height != height:
                break  # decided during replay: the rest belongs to a finished height
            self.handle_record(record)
            self.drain()
        self.replaying = False
        self.schedule_tick()

    def _reset_height(self) -> None:
        vset = self.env.validator_set(self.durable.state.validators)
        if getattr(self, "vset", vset) is not vset:
            self.env.stats["validator_set_changes"] += 1
        self.vset = vset
        self.valid: dict[bytes, State | None] = {}  # block hash -> state after it, or None
        self.blocks: dict[bytes, bytes] = {}  # block hash -> block bytes
        self.seen: set[bytes] = set()  # payloads already fed this height
        self.outbox: dict[tuple[int, int], tuple[int, bytes]] = {}  # (round, step) -> msg
        self.ahead: dict[int, int] = {}  # peer -> highest height it sent
        self.behind_since: int | None = None
        self.next_sync_at = 0

    def start_height(self) -> None:
        """After a commit: the next height, then the messages buffered for it."""
        self.replaying = False  # the WAL being replayed (if any) is of a finished height
        self.inbox.clear()
        self._reset_height()
        self.feed(None, StartHeight(self.height, self.vset))
        pending, self.pending = self.pending, []
        for message in pending:
            self.dispatch(message)

    # --- inputs -------------------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        self.dispatch(message)
        self.drain()

    def dispatch(self, message: Message) -> None:
        if message.kind == Kind.PROPOSAL:
            self.on_proposal(message.payload, message.sender)
        elif message.kind == Kind.VOTE:
            self.on_vote(message.payload, message.sender)
        elif message.kind == Kind.SYNC_REQUEST:
            self.behaviour.serve_sync(self, message.sender, message.payload)
        elif message.kind == Kind.SYNC_RESPONSE:
            self.on_sync_response(message.payload)

    def on_timer(self, timer: Timer) -> None:
        ev = timer.event
        if timer.epoch == self.epoch and ev.height == self.height:
            self.feed(("timeout", int(ev.kind), ev.height, ev.round), ev)
            self.drain()

    def on_tick(self, tick: Tick) -> None:
        if tick.epoch != self.epoch:
            return
        self.behaviour.on_tick(self)
        self.maybe_sync()
        self.schedule_tick()
        self.drain()

    def schedule_tick(self) -> None:
        self.env.net.schedule(self.endpoint, RETRANSMIT_MS + self.env.rng.randint(0, 100),
                              Tick(self.epoch))

    def handle_record(self, record: WalRecord) -> None:
        if record[0] == "proposal":
            self.on_proposal(record[1], None)
        elif record[0] == "vote":
            self.on_vote(record[1], None)
        else:
            _, kind, height, round_ = record
            self.feed(record, TimeoutElapsed(TimeoutKind(kind), height, round_))

    def on_proposal(self, payload: bytes, sender: int | None, own: bool = False) -> None:
        """A proposal from a peer (sender), from the WAL (None), or just signed (own)."""
        if payload in self.seen:
            return
        try:
            proposal, block_raw = decode_proposal(payload)
        except DecodeError:
            self.env.stats["dropped_malformed"] += 1
            return
        if not self.is_current(proposal.height, sender, Kind.PROPOSAL, payload):
            return
        validator = self.vset.by_address.get(proposal.proposer)
        if validator is None or (not own and not verify_signature(
                validator.pubkey, proposal.signature, proposal.sign_message(CHAIN_ID))):
            self.env.stats["dropped_unauthenticated"] += 1
            return
        try:
            block = self.decode_block(block_raw)
        except DecodeError:
            self.env.stats["dropped_malformed"] += 1
            return
        block_hash = block.hash()
        if block_hash != proposal.block_hash:
            self.env.stats["dropped_unauthenticated"] += 1
            return
        self.seen.add(payload)
        self.blocks[block_hash] = block_raw
        self.behaviour.observe(self, proposal)
        self.feed(("proposal", payload), ProposalReceived(proposal, self.judge(block)))

    def on_vote(self, raw: bytes, sender: int | None, own: bool = False) -> None:
        if raw in self.seen:
            return
        try:
            vote = Vote.decode(raw)
        except DecodeError:
            self.env.stats["dropped_malformed"] += 1
            return
        if not self.is_current(vote.height, sender, Kind.VOTE, raw):
            return
        validator = self.vset.by_address.get(vote.validator)
        if validator is None or (not own and not vote.verify(CHAIN_ID, validator.pubkey)):
            self.env.stats["dropped_unauthenticated"] += 1
            return
        self.seen.add(raw)
        if self.replaying and vote.validator == self.address:
            self.outbox[(vote.round, vote.type + 1)] = (Kind.VOTE, raw)
        self.feed(("vote", raw), VoteReceived(vote))

    def is_current(self, height: int, sender: int | None, kind: int, payload: bytes) -> bool:
        """Is a message for this height? Buffer the next height's; note peers ahead."""
        if height == self.height:
            return True
        if height > self.height and sender is not None:
            if height == self.height + 1 and len(self.pending) < PENDING_LIMIT:
                self.pending.append(Message(kind, sender, payload))
            self.note_ahead(sender, height)
        return False

    def judge(self, block: Block) -> bool:
        """valid(v): the real state transition on a copy of this node's state (cached)."""
        block_hash = block.hash()
        if block_hash not in self.valid:
            state = self.durable.state
            try:
                self.valid[block_hash] = apply_block(state, block, state.params, self.sig_cache)
            except InvalidBlock:
                self.valid[block_hash] = None
        return self.valid[block_hash] is not None

    # --- the engine ---------------------------------------------------------------------

    def feed(self, record: WalRecord | None, event: Event) -> None:
        self.inbox.append((record, event))

    def drain(self) -> None:
        while self.inbox:
            record, event = self.inbox.popleft()
            if record is not None and not self.replaying:
                self.durable.wal.append(record)  # log before acting
            self.engine, effects = step(self.engine, event)
            for effect in effects:
                self.on_effect(effect)

    def on_effect(self, effect: Effect) -> None:
        if isinstance(effect, ScheduleTimeout):
            event = TimeoutElapsed(effect.kind, effect.height, effect.round)
            self.env.net.schedule(self.endpoint, effect.delay_ms, Timer(self.epoch, event))
        elif isinstance(effect, ProposeBlock):
            self.behaviour.propose(self, effect)
        elif isinstance(effect, CastVote):
            self.behaviour.cast(self, effect)
        elif isinstance(effect, Decide):
            self.on_decide(effect)
        elif isinstance(effect, EquivocationDetected):
            self.env.checker.on_evidence(self, effect)
            evidence = DuplicateVoteEvidence.of(effect.first, effect.second)
            self.durable.evidence[evidence.hash()] = evidence

    def on_decide(self, effect: Decide) -> None:
        state, raw = self.valid.get(effect.block_hash), self.blocks.get(effect.block_hash)
        if state is None or raw is None:
            self.env.checker.violation(self, f"decided block {effect.block_hash.hex()[:12]} at "
                                             f"height {effect.height} without a valid block")
            return
        self.commit(raw, effect.commit, state, f"round {effect.round}")
        self.start_height()

    def commit(self, raw: bytes, commit: Commit, state: State, how: str) -> None:
        self.durable.commit_block(raw, commit, state)
        self.env.checker.on_commit(self, self.decode_block(raw), state, how)

    # --- honest actions (behaviours call these) -----------------------------------------

    def propose(self, effect: ProposeBlock) -> None:
        payload = self.durable.own_proposals.get(effect.round)
        if payload is None:  # not signed before a crash: sign now (through the guard)
            block_raw = (self.build_block().encode() if effect.block_hash is None
                         else self.blocks[effect.block_hash])
            payload = self.sign_proposal(effect, block_raw)
        if payload is not None:
            self.release(Kind.PROPOSAL, (effect.round, SignStep.PROPOSAL), payload)
            self.on_proposal(payload, None, own=True)

    def sign_proposal(self, effect: ProposeBlock, block_raw: bytes) -> bytes | None:
        block_hash = self.decode_block(block_raw).hash()
        proposal = Proposal(effect.height, effect.round, block_hash, effect.pol_round,
                            self.address)

        def payload_of(signature: bytes) -> bytes:
            return encode_proposal(replace(proposal, signature=signature), block_raw)

        def persist(signature: bytes) -> None:
            self.durable.own_proposals[effect.round] = payload_of(signature)

        signature = self.sign(SignStep.PROPOSAL, effect.height, effect.round,
                              proposal.sign_message(CHAIN_ID),
                              lambda: proposal.signed(self.key, CHAIN_ID).signature, persist)
        return None if signature is None else payload_of(signature)

    def cast_vote(self, effect: CastVote) -> None:
        vote = Vote(effect.type, effect.height, effect.round, effect.block_hash, self.address)
        signature = self.sign(SignStep(effect.type + 1), effect.height, effect.round,
                              vote.sign_message(CHAIN_ID),
                              lambda: vote.signed(self.key, CHAIN_ID).signature)
        if signature is not None:
            raw = replace(vote, signature=signature).encode()
            self.release(Kind.VOTE, (effect.round, effect.type + 1), raw)
            self.on_vote(raw, None, own=True)

    def sign(self, sign_step: SignStep, height: int, round_: int, sign_bytes: bytes,
             make: Callable[[], bytes], persist: Callable[[bytes], None] | None = None,
             ) -> bytes | None:
        """The double-sign guard: persist the sign state (and `persist` in the same write)
        before the signature can leave; None when the guard refuses."""
        try:
            fresh = check_sign(self.durable.sign_state, height, round_, sign_step, sign_bytes)
        except DoubleSignRefused as exc:
            if self.replaying:  # replay re-derives signatures already released: expected
                self.env.stats["guard_refusals_in_replay"] += 1
            else:
                self.env.checker.violation(self, f"engine asked to double-sign: {exc}")
            return None
        if not fresh:
            self.env.stats["signatures_re_released"] += 1
            return self.durable.sign_state.signature  # the same message: re-release it
        signature = make()
        self.durable.sign_state = SignState(height, round_, sign_step, sign_bytes, signature)
        if persist is not None:
            persist(signature)
        self.env.crash_point(self)  # persisted, not yet sent
        return signature

    def build_block(self) -> Block:
        """A real block on this node's chain: a few signed transfers, or none, and the
        evidence of equivocation this node holds that the chain can still act on."""
        state, rng = self.durable.state, self.env.rng
        count = 0 if rng.random() < 0.3 else rng.randint(1, 3)
        time_ms = max(state.time_ms + 1, GENESIS_TIME_MS + self.now)
        return build_block(state, make_txs(state, rng, count), self.address, time_ms,
                           self.durable.last_commit(), self.includable_evidence())

    def includable_evidence(self) -> tuple[bytes, ...]:
        state, pool = self.durable.state, self.durable.evidence
        chosen: dict[bytes, bytes] = {}  # one piece per validator
        for key, ev in list(pool.items()):
            if (ev.validator in state.staking.tombstoned or ev.validator not in
                    state.staking.bonded or state.height + 1 - ev.height
                    > state.params.evidence_max_age):
                del pool[key]  # acted on already, or too old
            elif ev.validator not in chosen:
                chosen[ev.validator] = ev.encode()
        return tuple(chosen.values())[:4]
