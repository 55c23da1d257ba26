"""Tendermint's Algorithm 1 as a pure state machine: `step(state, event) -> (state, effects)`.

Comments `L22`… cite the lines of Algorithm 1 in "The latest gossip on BFT consensus"
(Buchman, Kwon, Milosevic, 2018). After every input the `upon` rules are evaluated until
none fires, so rule order never changes the outcome. Values are block hashes; the host
judges valid(v) before feeding a proposal and authenticates every message.

`step` consumes its state (the returned state may be the same object, changed); use
`EngineState.clone()` to keep a snapshot.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

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
    Step,
    TimeoutElapsed,
    TimeoutKind,
    VoteReceived,
)
from consensus.bft.validators import ValidatorSet
from consensus.vote import Vote, VoteType, make_commit

NIL = b""
ROUND_WINDOW = 1_000  # ignore messages more than this many rounds ahead (memory bound)


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """timeout(r) = min(base + r * delta, cap), in milliseconds."""

    propose_ms: int = 1_000
    propose_delta_ms: int = 500
    prevote_ms: int = 500
    prevote_delta_ms: int = 250
    precommit_ms: int = 500
    precommit_delta_ms: int = 250
    cap_ms: int = 10_000

    def delay(self, kind: TimeoutKind, round_: int) -> int:
        base, delta = {
            TimeoutKind.PROPOSE: (self.propose_ms, self.propose_delta_ms),
            TimeoutKind.PREVOTE: (self.prevote_ms, self.prevote_delta_ms),
            TimeoutKind.PRECOMMIT: (self.precommit_ms, self.precommit_delta_ms),
        }[kind]
        return min(base + round_ * delta, self.cap_ms)


class RoundVotes:
    """One round's votes of one type. Stake per value counts each validator once per value:
    a validator's conflicting votes each count for their own value, as the paper counts
    messages from distinct senders per value (otherwise an equivocator that reaches a node
    first with another vote hides a polka from it for ever). `any_stake` and `by_validator`
    count each validator once (its first vote)."""

    __slots__ = ("any_stake", "by_validator", "by_value", "stake_for")

    def __init__(self) -> None:
        self.by_validator: dict[bytes, Vote] = {}
        self.by_value: dict[bytes, dict[bytes, Vote]] = {}
        self.stake_for: dict[bytes, int] = {}
        self.any_stake = 0

    def add(self, vote: Vote, stake: int) -> bool:
        """Record a vote; False if this validator already voted for this value."""
        voters = self.by_value.setdefault(vote.block_hash, {})
        if vote.validator in voters:
            return False
        voters[vote.validator] = vote
        self.stake_for[vote.block_hash] = self.stake_for.get(vote.block_hash, 0) + stake
        if vote.validator not in self.by_validator:
            self.by_validator[vote.validator] = vote
            self.any_stake += stake
        return True

    def votes_for(self, block_hash: bytes) -> list[Vote]:
        return list(self.by_value.get(block_hash, {}).values())


@dataclass
class EngineState:
    address: bytes | None  # this validator's address; None for a non-validating node
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    height: int = 0
    round: int = 0
    step: Step = Step.DECIDED
    locked_value: bytes | None = None
    locked_round: int = -1
    valid_value: bytes | None = None
    valid_round: int = -1
    validators: ValidatorSet | None = None
    proposals: dict[int, tuple[Proposal, bool]] = field(default_factory=dict)
    prevotes: dict[int, RoundVotes] = field(default_factory=dict)
    precommits: dict[int, RoundVotes] = field(default_factory=dict)
    senders: dict[int, dict[bytes, int]] = field(default_factory=dict)
    fired: set[tuple[int, int]] = field(default_factory=set)  # (rule line, round): once-only
    equivocators: set[tuple[bytes, int, int]] = field(default_factory=set)
    decision: bytes | None = None
    future: list[Event] = field(default_factory=list)  # next height's messages, bounded

    def clone(self) -> EngineState:
        validators, self.validators = self.validators, None
        try:
            twin = copy.deepcopy(self)
        finally:
            self.validators = validators
        twin.validators = validators  # immutable and shared
        return twin


def step(state: EngineState, event: Event) -> tuple[EngineState, list[Effect]]:
    effects: list[Effect] = []
    if isinstance(event, StartHeight):
        on_start_height(state, event, effects)
    elif isinstance(event, ProposalReceived):
        on_proposal(state, event, effects)
    elif isinstance(event, VoteReceived):
        on_vote(state, event.vote, effects)
    elif isinstance(event, TimeoutElapsed):
        on_timeout(state, event, effects)
    else:
        raise TypeError(f"unknown consensus event {type(event).__name__}")
    return state, effects


# --- inputs -------------------------------------------------------------------------------


def on_start_height(s: EngineState, ev: StartHeight, fx: list[Effect]) -> None:
    if ev.height <= s.height:
        return  # a stale or repeated start: heights only move forward
    buffered = [e for e in s.future if _event_height(e) == ev.height]
    s.height, s.validators = ev.height, ev.validators
    s.locked_value, s.locked_round, s.valid_value, s.valid_round = None, -1, None, -1  # L53
    s.proposals, s.prevotes, s.precommits, s.senders = {}, {}, {}, {}
    s.fired, s.equivocators, s.decision, s.future = set(), set(), None, []
    start_round(s, 0, fx)  # L10 / L54
    for buffered_event in buffered:
        if isinstance(buffered_event, ProposalReceived):
            _accept_proposal(s, buffered_event)
        elif isinstance(buffered_event, VoteReceived):
            _accept_vote(s, buffered_event.vote, fx)
    run_rules(s, fx)


def on_proposal(s: EngineState, ev: ProposalReceived, fx: list[Effect]) -> None:
    if _buffer_if_next_height(s, ev, ev.proposal.height):
        return
    if _acceptable(s, ev.proposal.height, ev.proposal.round) and _accept_proposal(s, ev):
        run_rules(s, fx)


def on_vote(s: EngineState, vote: Vote, fx: list[Effect]) -> None:
    if _buffer_if_next_height(s, VoteReceived(vote), vote.height):
        return
    if _acceptable(s, vote.height, vote.round) and _accept_vote(s, vote, fx):
        run_rules(s, fx)


def on_timeout(s: EngineState, ev: TimeoutElapsed, fx: list[Effect]) -> None:
    if ev.height != s.height or ev.round != s.round or s.step == Step.DECIDED:
        return
    if ev.kind == TimeoutKind.PROPOSE and s.step == Step.PROPOSE:  # L57-60
        cast(s, VoteType.PREVOTE, NIL, fx)
        s.step = Step.PREVOTE
    elif ev.kind == TimeoutKind.PREVOTE and s.step == Step.PREVOTE:  # L61-64
        cast(s, VoteType.PRECOMMIT, NIL, fx)
        s.step = Step.PRECOMMIT
    elif ev.kind == TimeoutKind.PRECOMMIT:  # L65-67
        start_round(s, s.round + 1, fx)
    run_rules(s, fx)


def _event_height(ev: Event) -> int:
    if isinstance(ev, ProposalReceived):
        return ev.proposal.height
    if isinstance(ev, VoteReceived):
        return ev.vote.height
    return -1


def _buffer_if_next_height(s: EngineState, ev: Event, height: int) -> bool:
    if height != s.height + 1:
        return False
    limit = 4 * (len(s.validators) if s.validators else 1) + 8
    if len(s.future) < limit:
        s.future.append(ev)
    return True


def _acceptable(s: EngineState, height: int, round_: int) -> bool:
    return (s.validators is not None and height == s.height and s.step != Step.DECIDED
            and round_ <= s.round + ROUND_WINDOW)


def _accept_proposal(s: EngineState, ev: ProposalReceived) -> bool:
    p = ev.proposal
    if p.proposer != _vals(s).proposer(p.height, p.round) or p.round in s.proposals:
        return False  # not the round's proposer, or a second proposal (first one wins)
    s.proposals[p.round] = (p, ev.valid)
    _note_sender(s, p.round, p.proposer)
    return True


def _accept_vote(s: EngineState, vote: Vote, fx: list[Effect]) -> bool:
    stake = _vals(s).stake_of(vote.validator)
    if stake == 0:
        return False
    book = s.prevotes if vote.type == VoteType.PREVOTE else s.precommits
    votes = book.setdefault(vote.round, RoundVotes())
    earlier = votes.by_validator.get(vote.validator)
    if earlier is not None and earlier.block_hash != vote.block_hash:  # reported once
        key = (vote.validator, vote.round, vote.type)
        if key not in s.equivocators:
            s.equivocators.add(key)
            fx.append(EquivocationDetected(earlier, vote))
    if not votes.add(vote, stake):
        return False  # a repeat
    _note_sender(s, vote.round, vote.validator)
    return True


def _vals(s: EngineState) -> ValidatorSet:
    if s.validators is None:
        raise RuntimeError("engine used before StartHeight gave it a validator set")
    return s.validators


def _note_sender(s: EngineState, round_: int, address: bytes) -> None:
    s.senders.setdefault(round_, {})[address] = _vals(s).stake_of(address)


# --- actions ------------------------------------------------------------------------------


def start_round(s: EngineState, round_: int, fx: list[Effect]) -> None:  # L11-21
    s.round, s.step = round_, Step.PROPOSE
    if s.address is not None and _vals(s).proposer(s.height, round_) == s.address:  # L14
        fx.append(ProposeBlock(s.height, round_, s.valid_value, s.valid_round))  # L15-19
    else:
        fx.append(ScheduleTimeout(TimeoutKind.PROPOSE, s.height, round_,  # L21
                                  s.timeouts.delay(TimeoutKind.PROPOSE, round_)))


def cast(s: EngineState, vote_type: VoteType, value: bytes, fx: list[Effect]) -> None:
    """broadcast ⟨PREVOTE/PRECOMMIT, h, r, value⟩, if this node is a validator."""
    if s.address is not None and s.validators is not None and s.address in s.validators:
        fx.append(CastVote(int(vote_type), s.height, s.round, value))


def _stake(book: dict[int, RoundVotes], round_: int, value: bytes | None = None) -> int:
    votes = book.get(round_)
    if votes is None:
        return 0
    return votes.any_stake if value is None else votes.stake_for.get(value, 0)


# --- upon rules ---------------------------------------------------------------------------


def run_rules(s: EngineState, fx: list[Effect]) -> None:
    """Fire `upon` rules until none applies (each firing changes state, so this ends)."""
    while s.step != Step.DECIDED and (
            rule_decide(s, fx) or rule_round_skip(s, fx) or rule_prevote_proposal(s, fx)
            or rule_prevote_locked_proposal(s, fx) or rule_lock(s, fx)
            or rule_precommit_nil(s, fx) or rule_prevote_timeout(s, fx)
            or rule_precommit_timeout(s, fx)):
        pass


def rule_prevote_proposal(s: EngineState, fx: list[Effect]) -> bool:  # L22-27
    entry = s.proposals.get(s.round)
    if s.step != Step.PROPOSE or entry is None or entry[0].pol_round != -1:
        return False
    proposal, valid = entry
    v = proposal.block_hash
    ok = valid and (s.locked_round == -1 or s.locked_value == v)  # L23
    cast(s, VoteType.PREVOTE, v if ok else NIL, fx)  # L24 / L26
    s.step = Step.PREVOTE  # L27
    return True


def rule_prevote_locked_proposal(s: EngineState, fx: list[Effect]) -> bool:  # L28-33
    entry = s.proposals.get(s.round)
    if s.step != Step.PROPOSE or entry is None:
        return False
    proposal, valid = entry
    v, vr = proposal.block_hash, proposal.pol_round
    if not (0 <= vr < s.round and _vals(s).is_quorum(_stake(s.prevotes, vr, v))):
        return False
    ok = valid and (s.locked_round <= vr or s.locked_value == v)  # L29
    cast(s, VoteType.PREVOTE, v if ok else NIL, fx)  # L30 / L32
    s.step = Step.PREVOTE  # L33
    return True


def rule_prevote_timeout(s: EngineState, fx: list[Effect]) -> bool:  # L34-35
    key = (34, s.round)
    if (s.step != Step.PREVOTE or key in s.fired
            or not _vals(s).is_quorum(_stake(s.prevotes, s.round))):
        return False
    s.fired.add(key)
    fx.append(ScheduleTimeout(TimeoutKind.PREVOTE, s.height, s.round,
                              s.timeouts.delay(TimeoutKind.PREVOTE, s.round)))
    return True


def rule_lock(s: EngineState, fx: list[Effect]) -> bool:  # L36-43
    key = (36, s.round)
    entry = s.proposals.get(s.round)
    if s.step < Step.PREVOTE or key in s.fired or entry is None or not entry[1]:
        return False
    v = entry[0].block_hash
    if not _vals(s).is_quorum(_stake(s.prevotes, s.round, v)):
        return False
    s.fired.add(key)
    if s.step == Step.PREVOTE:  # L37
        s.locked_value, s.locked_round = v, s.round  # L38-39
        cast(s, VoteType.PRECOMMIT, v, fx)  # L40
        s.step = Step.PRECOMMIT  # L41
    s.valid_value, s.valid_round = v, s.round  # L42-43
    return True


def rule_precommit_nil(s: EngineState, fx: list[Effect]) -> bool:  # L44-46
    if s.step != Step.PREVOTE or not _vals(s).is_quorum(_stake(s.prevotes, s.round, NIL)):
        return False
    cast(s, VoteType.PRECOMMIT, NIL, fx)  # L45
    s.step = Step.PRECOMMIT  # L46
    return True


def rule_precommit_timeout(s: EngineState, fx: list[Effect]) -> bool:  # L47-48
    key = (47, s.round)
    if key in s.fired or not _vals(s).is_quorum(_stake(s.precommits, s.round)):
        return False
    s.fired.add(key)
    fx.append(ScheduleTimeout(TimeoutKind.PRECOMMIT, s.height, s.round,
                              s.timeouts.delay(TimeoutKind.PRECOMMIT, s.round)))
    return True


def rule_decide(s: EngineState, fx: list[Effect]) -> bool:  # L49-54
    for r in sorted(s.proposals):
        proposal, valid = s.proposals[r]
        v = proposal.block_hash
        if valid and _vals(s).is_quorum(_stake(s.precommits, r, v)):  # L49-50
            s.decision = v  # L51
            s.step = Step.DECIDED  # L52-54 happen when the host starts the next height
            commit = make_commit(s.height, r, v, s.precommits[r].votes_for(v))
            fx.append(Decide(s.height, r, v, commit))
            return True
    return False


def rule_round_skip(s: EngineState, fx: list[Effect]) -> bool:  # L55-56
    for r in sorted(s.senders, reverse=True):
        if r <= s.round:
            break
        if _vals(s).is_one_third(sum(s.senders[r].values())):
            start_round(s, r, fx)
            return True
    return False
