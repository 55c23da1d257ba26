"""The BFT simulator (tests/sim): every fault scenario over many seeds, the checker catching
deliberately broken engines, and failing seeds replaying exactly.

A failure names its scenario and seed; `tests.sim.runner.replay(seed, scenario)` runs it
again with the same event trace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

import consensus.bft.engine as engine
from consensus.bft.engine import NIL, EngineState, cast
from consensus.bft.messages import Effect, Step
from consensus.bft.validators import ValidatorSet
from consensus.vote import VoteType
from tests.sim.checker import SimFailure
from tests.sim.runner import Result, check, replay, run
from tests.sim.scenarios import SCENARIOS

# Seeds per scenario: about 340 in all, most on 4-7 validators, a few on 8-16.
SEEDS = {name: 16 if s.validators <= 4 else 10 if s.validators <= 7 else 8
         if s.validators <= 8 else 4 for name, s in SCENARIOS.items()}
RESIZED = ["n4_f1_crash_restart@n10", "n4_f0_partition_heal@n13", "n4_f1_garbage@n16"]
LOCK_BUDGET = 300  # seeds searched for a violation by the lock-ignoring engine
STAKE_BUDGET = 60  # ... and by the engine that counts validators instead of stake


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_holds_over_seeds(name: str) -> None:
    for seed in range(SEEDS[name]):
        check(seed, name)


@pytest.mark.parametrize("name", RESIZED)
def test_scenario_on_more_validators(name: str) -> None:
    for seed in range(3):
        check(seed, name)


def test_faults_are_exercised() -> None:
    """The runs above are not vacuous: crashes replay WALs and re-release signatures,
    garbage is dropped, lagging nodes sync, equivocations are reported and slashed, and the
    validator set changes."""
    totals: Counter[str] = Counter()
    for name in ("n4_f1_crash_restart", "n7_f2_mixed", "n4_f0_partition_heal",
                 "n4_f1_equivocation"):
        for seed in range(6):
            result = check(seed, name)
            totals.update(result.stats)
            totals["synced"] += result.synced
            totals["evidence"] += result.evidence
            totals["slashed"] += result.slashed
    for key in ("restarts", "wal_records_replayed", "crashes_in_sign",
                "signatures_re_released", "dropped_malformed", "dropped_unauthenticated",
                "sync_blocks_rejected", "synced", "evidence", "slashed",
                "validator_set_changes"):
        assert totals[key] > 0, f"{key} never happened: {dict(totals)}"


# --- the checker can fail -----------------------------------------------------------------


def prevote_proposal_ignoring_lock(s: EngineState, fx: list[Effect]) -> bool:
    """L22-27 with L23's lock condition dropped: prevote any valid proposal."""
    entry = s.proposals.get(s.round)
    if s.step != Step.PROPOSE or entry is None or entry[0].pol_round != -1:
        return False
    proposal, valid = entry
    cast(s, VoteType.PREVOTE, proposal.block_hash if valid else NIL, fx)
    s.step = Step.PREVOTE
    return True


def prevote_locked_proposal_ignoring_lock(s: EngineState, fx: list[Effect]) -> bool:
    """L28-33 with L29's lock condition dropped."""
    entry = s.proposals.get(s.round)
    if s.step != Step.PROPOSE or entry is None:
        return False
    proposal, valid = entry
    v, vr = proposal.block_hash, proposal.pol_round
    if not (0 <= vr < s.round and engine._vals(s).is_quorum(engine._stake(s.prevotes, vr, v))):
        return False
    cast(s, VoteType.PREVOTE, v if valid else NIL, fx)
    s.step = Step.PREVOTE
    return True


def ignore_locks(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(engine, "rule_prevote_proposal", prevote_proposal_ignoring_lock)
    mp.setattr(engine, "rule_prevote_locked_proposal", prevote_locked_proposal_ignoring_lock)


def count_validators_not_stake(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ValidatorSet, "stake_of", lambda self, a: int(a in self.by_address))
    mp.setattr(ValidatorSet, "is_quorum", lambda self, n: 3 * n > 2 * len(self))
    mp.setattr(ValidatorSet, "is_one_third", lambda self, n: 3 * n > len(self))


def first_violation(scenario: str, seeds: range) -> Result | None:
    return next((r for r in (run(seed, scenario) for seed in seeds) if r.violations), None)


@pytest.fixture(scope="module")
def lockless_failure() -> Iterator[Result]:
    with pytest.MonkeyPatch.context() as mp:
        ignore_locks(mp)
        found = first_violation("n4_f1_split_brain", range(LOCK_BUDGET))
    assert found is not None, f"no violation in {LOCK_BUDGET} seeds of a lock-ignoring engine"
    yield found


def test_checker_catches_an_engine_that_ignores_its_lock(lockless_failure: Result) -> None:
    """One Byzantine validator shows two groups different blocks: an honest node decides
    one, the others, unlocked by the bug, decide another in a later round."""
    assert any("agreement" in v for v in lockless_failure.violations), lockless_failure
    assert not run(lockless_failure.seed, lockless_failure.scenario).failed  # the real engine


def test_checker_catches_an_engine_that_counts_validators_not_stake() -> None:
    """Stakes 1,1,1,1,1,1,1,10 with five colluding small validators (5/17 of the stake,
    but 5 of 8 validators): quorums by count let each group decide its own block."""
    with pytest.MonkeyPatch.context() as mp:
        count_validators_not_stake(mp)
        found = first_violation("n8_stake_skew_split_brain", range(STAKE_BUDGET))
    assert found is not None, f"no violation in {STAKE_BUDGET} seeds of a count-based engine"
    assert any("agreement" in v for v in found.violations), found
    assert not run(found.seed, found.scenario).failed


def test_a_failing_seed_replays_exactly(lockless_failure: Result) -> None:
    with pytest.MonkeyPatch.context() as mp:
        ignore_locks(mp)
        again = replay(lockless_failure.seed, lockless_failure.scenario)
        with pytest.raises(SimFailure, match=f"seed {lockless_failure.seed}: .*agreement"):
            check(lockless_failure.seed, lockless_failure.scenario)
    assert again.trace_hash == lockless_failure.trace_hash
    assert again.violations == lockless_failure.violations
    assert (again.events, again.virtual_ms) == (lockless_failure.events,
                                                lockless_failure.virtual_ms)


def test_a_passing_seed_replays_exactly() -> None:
    first, again = run(3, "n7_f2_mixed"), replay(3, "n7_f2_mixed")
    assert first.trace_hash == again.trace_hash and first.stats == again.stats
    assert run(4, "n7_f2_mixed").trace_hash != first.trace_hash
