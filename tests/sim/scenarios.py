"""Named fault scenarios (`n4_f1_equivocation` style: validators, Byzantine count, fault).

A scenario is data; the seed draws its details (which validators are Byzantine, the loss
rate, when a partition starts and heals, who crashes when). Byzantine validators always hold
less than 1/3 of the stake (with unequal stakes their count may exceed (n-1)//3: that is
the case stake weighting exists for). Equivocators are slashed by the evidence honest
proposers put in blocks, so the validator set changes mid-run (from H+2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SKEWED_STAKES = (1, 1, 1, 1, 1, 1, 1, 10)


@dataclass(frozen=True)
class Scenario:
    name: str
    validators: int = 4
    stakes: tuple[int, ...] | None = None  # equal stakes when None
    heights: int = 4  # every honest node must commit this many blocks
    byzantine: tuple[str, ...] = ()  # behaviour names (byzantine.BEHAVIOURS, or "twin")
    drop: tuple[float, float] = (0.0, 0.0)  # loss rate drawn from this range
    delay_ms: tuple[int, int] = (1, 20)
    duplicate: float = 0.0
    partitions: int = 0  # partition windows (random split and times); each heals
    crashes: int = 0  # crash-and-restart events of honest nodes
    crash_in_sign: float = 0.0  # chance to crash after persisting a signature, before sending
    expect_evidence: bool = False  # an honest node must report a Byzantine equivocation

    def stake_list(self) -> tuple[int, ...]:
        return self.stakes if self.stakes is not None else (1,) * self.validators

    def with_validators(self, count: int) -> Scenario:
        """The same faults on `count` equal-stake validators (Byzantine ones cut to f)."""
        f = (count - 1) // 3
        return replace(self, validators=count, stakes=None, byzantine=self.byzantine[:f],
                       name=f"{self.name}@n{count}")


def _scenarios(*items: Scenario) -> dict[str, Scenario]:
    return {s.name: s for s in items}


SCENARIOS = _scenarios(
    Scenario("n4_f0_clean"),
    Scenario("n4_f0_delay_reorder", delay_ms=(1, 700), duplicate=0.1),
    Scenario("n4_f0_loss", drop=(0.05, 0.3)),
    Scenario("n7_f0_loss_reorder", validators=7, drop=(0.05, 0.2), delay_ms=(1, 300)),
    Scenario("n4_f0_partition_heal", partitions=1, delay_ms=(1, 60)),
    Scenario("n7_f0_partition_heal_loss", validators=7, partitions=2, drop=(0.0, 0.1)),
    Scenario("n4_f1_crash_restart", crashes=2, crash_in_sign=0.03, drop=(0.0, 0.1)),
    Scenario("n7_f2_crash_restart", validators=7, crashes=3, crash_in_sign=0.02),
    Scenario("n4_f1_equivocating_proposer", byzantine=("equivocating_proposer",),
             drop=(0.0, 0.1)),
    Scenario("n4_f1_equivocation", heights=6, byzantine=("equivocating_voter",),
             expect_evidence=True),
    Scenario("n4_f1_twins", heights=6, byzantine=("twin",), delay_ms=(1, 80)),
    Scenario("n4_f1_silent", byzantine=("silent",), drop=(0.0, 0.1)),
    Scenario("n4_f1_unknown_block_votes", byzantine=("unknown_block_votes",)),
    Scenario("n4_f1_garbage", byzantine=("garbage",), drop=(0.0, 0.1)),
    Scenario("n4_f1_invalid_block", byzantine=("invalid_block",)),
    Scenario("n4_f1_amnesia", byzantine=("amnesia",), drop=(0.0, 0.2), delay_ms=(1, 200)),
    Scenario("n4_f1_split_brain", byzantine=("split_brain",), delay_ms=(1, 100)),
    Scenario("n7_f2_split_brain", validators=7, byzantine=("split_brain", "split_brain"),
             delay_ms=(1, 100), drop=(0.0, 0.1)),
    Scenario("n7_f2_twins_partition", validators=7, byzantine=("twin", "equivocating_voter"),
             partitions=1),
    Scenario("n7_f2_mixed", validators=7, byzantine=("garbage", "equivocating_proposer"),
             drop=(0.0, 0.15), crashes=1, crash_in_sign=0.02),
    Scenario("n8_stake_skew_split_brain", validators=8, stakes=SKEWED_STAKES, heights=3,
             byzantine=("split_brain",) * 5, delay_ms=(1, 100)),
    Scenario("n8_stake_skew_loss", validators=8, stakes=SKEWED_STAKES,
             byzantine=("silent", "equivocating_voter"), drop=(0.0, 0.2)),
    Scenario("n10_f3_mixed", validators=10, heights=3,
             byzantine=("split_brain", "split_brain", "garbage"), drop=(0.0, 0.1)),
    Scenario("n13_f4_silent_loss", validators=13, heights=3,
             byzantine=("silent", "silent", "unknown_block_votes", "equivocating_voter"),
             drop=(0.0, 0.1)),
    Scenario("n16_f5_split_brain", validators=16, heights=3,
             byzantine=("split_brain",) * 3 + ("equivocating_proposer", "silent")),
)
