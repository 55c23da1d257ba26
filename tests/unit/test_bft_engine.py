"""Table-driven tests of the engine: each case is a list of (input, expected effects).

Validators are v0..v3 (equal stake unless a case says otherwise). The node under test is
`me`; the round's proposer comes from the validator set, so cases pick `me` to be or not be
the proposer. Effects are compared exactly (ScheduleTimeout delays included).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from itertools import groupby

import pytest

from consensus.address import address_from_pubkey
from consensus.bft.engine import EngineState, TimeoutConfig, step
from consensus.bft.messages import (
    CastVote,
    Decide,
    EquivocationDetected,
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
from consensus.crypto import PrivateKey
from consensus.state import Validator
from consensus.vote import Vote, VoteType

CHAIN = "jevons-test"
KEYS = [PrivateKey.from_seed(hashlib.sha256(b"engine-v%d" % i).digest()) for i in range(4)]
ADDR = [address_from_pubkey(k.public) for k in KEYS]
A = hashlib.sha256(b"block A").digest()
B = hashlib.sha256(b"block B").digest()
NIL = b""
T = TimeoutConfig()
PV, PC = int(VoteType.PREVOTE), int(VoteType.PRECOMMIT)


def vset(stakes: list[int] | None = None) -> ValidatorSet:
    stakes = stakes or [10, 10, 10, 10]
    return ValidatorSet(Validator(ADDR[i], KEYS[i].public, s) for i, s in enumerate(stakes))


VS = vset()


def idx(address: bytes) -> int:
    return ADDR.index(address)


def proposer(height: int, round_: int, vs: ValidatorSet = VS) -> int:
    return idx(vs.proposer(height, round_))


def not_proposer(height: int, *rounds: int, vs: ValidatorSet = VS) -> int:
    """A validator that proposes none of `rounds` at `height`."""
    busy = {proposer(height, r, vs) for r in rounds}
    return next(i for i in range(4) if i not in busy)


def prop(round_: int, value: bytes, pol: int = -1, valid: bool = True, height: int = 1,
         vs: ValidatorSet = VS) -> ProposalReceived:
    who = proposer(height, round_, vs)
    p = Proposal(height, round_, value, pol, ADDR[who]).signed(KEYS[who], CHAIN)
    return ProposalReceived(p, valid)


def vote(kind: int, who: int, value: bytes, round_: int = 0, height: int = 1) -> VoteReceived:
    return VoteReceived(Vote(kind, height, round_, value, ADDR[who]).signed(KEYS[who], CHAIN))


def timeout(kind: TimeoutKind, round_: int = 0, height: int = 1) -> ScheduleTimeout:
    return ScheduleTimeout(kind, height, round_, T.delay(kind, round_))


def elapsed(kind: TimeoutKind, round_: int = 0, height: int = 1) -> TimeoutElapsed:
    return TimeoutElapsed(kind, height, round_)


def others(me: int) -> list[int]:
    return [i for i in range(4) if i != me]


def test_start_round_proposer_proposes_others_wait() -> None:
    p, q = proposer(1, 0), not_proposer(1, 0)
    for me, expected in ((p, [ProposeBlock(1, 0, None, -1)]),
                         (q, [timeout(TimeoutKind.PROPOSE)])):
        state = EngineState(ADDR[me], T)
        state, effects = step(state, StartHeight(1, VS))
        assert effects == expected
        assert (state.height, state.round, state.step) == (1, 0, Step.PROPOSE)


CASES: dict[str, tuple[int, list[tuple[object, list[object]]]]] = {}


def case(name: str, me: int, table: list[tuple[object, list[object]]]) -> None:
    CASES[name] = (me, table)


q = not_proposer(1, 0)
o = others(q)

# L22-27: a valid proposal with no lock gets a prevote; an invalid one gets nil.
case("prevote_valid_proposal", q, [(prop(0, A), [CastVote(PV, 1, 0, A)])])
case("prevote_nil_for_invalid_proposal", q, [(prop(0, A, valid=False), [CastVote(PV, 1, 0, NIL)])])
# L36-43: 2f+1 prevotes for the proposal: lock and precommit (once; L34 timeout too).
case("lock_and_precommit_on_polka", q, [
    (prop(0, A), [CastVote(PV, 1, 0, A)]),
    (vote(PV, o[0], A), []),
    (vote(PV, o[1], A), []),
    (vote(PV, q, A), [CastVote(PC, 1, 0, A)]),  # L36 first: the L34 timeout is moot
    (vote(PV, o[2], A), []),
])
# L44-46: 2f+1 prevotes for nil: precommit nil.
case("precommit_nil_on_nil_polka", q, [
    (prop(0, A), [CastVote(PV, 1, 0, A)]),
    (vote(PV, o[0], NIL), []),
    (vote(PV, o[1], NIL), []),
    (vote(PV, o[2], NIL), [CastVote(PC, 1, 0, NIL)]),  # L44 first: the L34 timeout is moot
])
# L34-35 then L61-64: mixed 2f+1 prevotes start the prevote timeout; on expiry precommit nil.
case("prevote_timeout_then_precommit_nil", q, [
    (prop(0, A), [CastVote(PV, 1, 0, A)]),
    (vote(PV, q, A), []),
    (vote(PV, o[0], NIL), []),
    (vote(PV, o[1], B), [timeout(TimeoutKind.PREVOTE)]),
    (elapsed(TimeoutKind.PREVOTE), [CastVote(PC, 1, 0, NIL)]),
    (elapsed(TimeoutKind.PREVOTE), []),  # a second expiry changes nothing
])
# L57-60: no proposal in time: prevote nil.
case("propose_timeout_prevotes_nil", q, [
    (elapsed(TimeoutKind.PROPOSE), [CastVote(PV, 1, 0, NIL)]),
    (prop(0, A), []),  # too late for this round's prevote
])
# L47-48 then L65-67: 2f+1 precommits (any) start the precommit timeout; expiry: next round.
case("precommit_timeout_starts_next_round", q, [
    (vote(PC, o[0], NIL), []),
    (vote(PC, o[1], NIL), []),
    (vote(PC, o[2], B), [timeout(TimeoutKind.PRECOMMIT)]),
    (elapsed(TimeoutKind.PRECOMMIT),
     [ProposeBlock(1, 1, None, -1)] if proposer(1, 1) == q
     else [timeout(TimeoutKind.PROPOSE, 1)]),
])
# L49-54: the proposal plus 2f+1 precommits for it: decide, with those precommits.
case("decide_on_precommit_quorum", q, [
    (prop(0, A), [CastVote(PV, 1, 0, A)]),
    (vote(PC, o[0], A), []),
    (vote(PC, o[1], A), []),
    (vote(PC, o[2], A), [("Decide", A, 0)]),
    (vote(PV, o[0], A), []),  # decided: further votes do nothing
])
# L49 needs the proposal: precommits alone decide nothing until it arrives.
case("no_decision_without_proposal", q, [
    (vote(PC, o[0], A), []),
    (vote(PC, o[1], A), []),
    (vote(PC, o[2], A), [timeout(TimeoutKind.PRECOMMIT)]),
    (prop(0, A), [("Decide", A, 0)]),
])
# L55-56: f+1 messages from a higher round move us there; f do not.
r_skip = 3
case("round_skip_on_f_plus_1", q, [
    (vote(PV, o[0], NIL, round_=r_skip), []),
    (vote(PV, o[1], NIL, round_=r_skip),
     [ProposeBlock(1, r_skip, None, -1)] if proposer(1, r_skip) == q
     else [timeout(TimeoutKind.PROPOSE, r_skip)]),
])
# Equivocation: a second, different vote is reported once and not counted.
# Equivocation is reported once per (validator, round, type). Like the paper, which counts
# messages from distinct senders per value, each vote counts toward its own value (a
# validator once per value), so an equivocator cannot hide a polka by voting early.
case("equivocation_reported_once_votes_count_per_value", q, [
    (prop(0, A), [CastVote(PV, 1, 0, A)]),
    (vote(PV, o[0], A), []),
    (vote(PV, o[0], B), "EQUIVOCATION"),
    (vote(PV, o[0], NIL), []),
    (vote(PV, o[0], B), []),
    (vote(PV, o[1], A), []),
    (vote(PV, q, A), [CastVote(PC, 1, 0, A)]),
])
# Only the round's proposer may propose.
case("wrong_proposer_ignored", q, [
    (ProposalReceived(Proposal(1, 0, A, -1, ADDR[q]).signed(KEYS[q], CHAIN), True), []),
])


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_table(name: str) -> None:
    me, table = CASES[name]
    state = EngineState(ADDR[me], T)
    state, _ = step(state, StartHeight(1, VS))
    for n, (event, expected) in enumerate(table):
        state, effects = step(state, event)
        if expected == "EQUIVOCATION":
            assert len(effects) == 1 and isinstance(effects[0], EquivocationDetected), effects
            continue
        got = [(type(e).__name__, e.block_hash, e.round) if isinstance(e, Decide) else e
               for e in effects]
        assert got == expected, f"{name} row {n}: {type(event).__name__}: {effects}"


def test_decide_carries_a_commit_of_the_precommits() -> None:
    me = not_proposer(1, 0)
    state = EngineState(ADDR[me], T)
    state, _ = step(state, StartHeight(1, VS))
    state, _ = step(state, prop(0, A))
    effects = []
    for i in others(me):
        state, effects = step(state, vote(PC, i, A))
    decide = effects[-1]
    assert isinstance(decide, Decide)
    signers = [s.validator for s in decide.commit.signatures]
    assert signers == sorted(ADDR[i] for i in others(me))
    assert state.step == Step.DECIDED and state.decision == A


def test_locked_validator_prevotes_nil_for_another_value() -> None:
    """L23: locked on A in round 0, a fresh proposal of B in round 1 gets nil."""
    me = not_proposer(1, 0, 1)
    o = others(me)
    state = EngineState(ADDR[me], T)
    state, _ = step(state, StartHeight(1, VS))
    state, _ = step(state, prop(0, A))
    for i in [me, *o[:2]]:
        state, fx = step(state, vote(PV, i, A))
    assert state.locked_value == A and state.locked_round == 0
    for i in o:
        state, _ = step(state, vote(PC, i, NIL))
    state, fx = step(state, elapsed(TimeoutKind.PRECOMMIT))
    assert state.round == 1
    state, fx = step(state, prop(1, B))
    assert fx == [CastVote(PV, 1, 1, NIL)]


def test_locked_validator_follows_a_newer_polka() -> None:
    """L28-29: locked on A at round 0; B proposed at round 2 with a polka for B at round 1
    (lockedRound 0 <= vr 1): prevote B."""
    me = not_proposer(1, 0, 2)
    o = others(me)
    state = EngineState(ADDR[me], T)
    state, _ = step(state, StartHeight(1, VS))
    state, _ = step(state, prop(0, A))
    for i in [me, *o[:2]]:
        state, _ = step(state, vote(PV, i, A))
    assert state.locked_round == 0
    for i in o:  # f+1 and more at round 2 pull us there (L55)
        state, _ = step(state, vote(PV, i, B, round_=1))
    for i in o[:2]:
        state, _ = step(state, vote(PV, i, NIL, round_=2))
    assert state.round == 2 and state.step == Step.PROPOSE
    state, fx = step(state, prop(2, B, pol=1))
    assert fx == [CastVote(PV, 1, 2, B)]


def test_quorum_counts_stake_not_validators() -> None:
    """Stakes [70, 10, 10, 10]: one heavy prevote is a polka; three light ones are not."""
    vs = vset([70, 10, 10, 10])
    heavy = 0
    me = next(i for i in range(1, 4) if proposer(1, 0, vs) != i)
    state = EngineState(ADDR[me], T)
    state, _ = step(state, StartHeight(1, vs))
    state, fx = step(state, prop(0, A, vs=vs))
    state, fx = step(state, vote(PV, heavy, A))
    assert CastVote(PC, 1, 0, A) in fx
    # The heavy validator, having prevoted A, sees nil prevotes from the three light ones:
    # 3 of 4 validators but 30 of 100 stake, so no polka for nil and no precommit.
    height = next(h for h in range(1, 50) if proposer(h, 0, vs) != heavy)
    state = EngineState(ADDR[heavy], T)
    state, _ = step(state, StartHeight(height, vs))
    state, fx = step(state, prop(0, A, height=height, vs=vs))
    assert fx == [CastVote(PV, height, 0, A)]
    for i in (1, 2, 3):
        state, fx = step(state, vote(PV, i, NIL, height=height))
        assert fx == []
    assert state.step == Step.PREVOTE


def test_next_height_messages_wait_for_start_height() -> None:
    me = not_proposer(2, 0)
    state = EngineState(ADDR[me], T)
    state, _ = step(state, StartHeight(1, VS))
    state, fx = step(state, prop(0, A, height=2))
    assert fx == []
    state, fx = step(state, StartHeight(2, VS))
    assert fx == [timeout(TimeoutKind.PROPOSE, height=2), CastVote(PV, 2, 0, A)]


def test_timeouts_grow_linearly_with_a_cap() -> None:
    cfg = TimeoutConfig(propose_ms=100, propose_delta_ms=50, cap_ms=400)
    assert [cfg.delay(TimeoutKind.PROPOSE, r) for r in range(8)] == [
        100, 150, 200, 250, 300, 350, 400, 400]


def test_proposer_rotation_is_stake_weighted_and_deterministic() -> None:
    vs = vset([40, 30, 20, 10])
    picks = Counter(vs.proposer(h, 0) for h in range(1000))
    assert [picks[ADDR[i]] for i in range(4)] == [400, 300, 200, 100]
    assert [vs.proposer(h, r) for h in range(5) for r in range(3)] == \
        [vset([40, 30, 20, 10]).proposer(h, r) for h in range(5) for r in range(3)]
    run_lengths = max(len(list(g)) for g in _runs([vs.proposer(h, 0) for h in range(1000)]))
    assert run_lengths <= 2  # interleaved (smooth), not long streaks


def _runs(seq: list[bytes]) -> list[list[bytes]]:
    return [list(g) for _, g in groupby(seq)]


def _reference_round_robin(powers: tuple[int, ...]) -> list[int]:
    """The proposer rule as the module docstring states it, written the plain way: each
    turn every validator gains its power, the highest total proposes (a tie goes to the
    lower index) and pays the sum back."""
    total, priority, order = sum(powers), [0] * len(powers), []
    for _ in range(total):
        priority = [q + p for q, p in zip(priority, powers, strict=True)]
        best = max(range(len(powers)), key=lambda i: (priority[i], -i))
        priority[best] -= total
        order.append(best)
    return order


@pytest.mark.parametrize("stakes", [[40, 30, 20, 10], [1, 1, 1, 1], [7, 7, 3],
                                    [10**15, 1, 1], [5], [999, 1000, 1001, 998]])
def test_proposer_cycle_matches_the_reference_rule(stakes: list[int]) -> None:
    vs = vset(stakes)  # ordered by address
    powers = tuple(max(1, v.stake * 1000 // vs.total) for v in vs.validators)
    expected = [vs.validators[i].address for i in _reference_round_robin(powers)]
    assert [vs.proposer(h, 0) for h in range(2 * len(expected))] == expected * 2
