"""Bench: the deterministic BFT simulator (tests/sim) over many seeds and fault scenarios.

Seed i runs scenario i mod (number of scenarios) unless --scenario names one; --validators
re-runs the scenarios on that many equal-stake validators (Byzantine ones cut to f).
Prints one JSON line:
    {"seeds", "validators", "byzantine", "heights_decided", "safety_violations",
     "liveness_failures", "seconds", ...}
A violation or failure never stops the bench: it is counted, and the failing seeds are
printed to stderr with the call that replays them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.sim.runner import Result, get_scenario, run  # noqa: E402
from tests.sim.scenarios import SCENARIOS, Scenario  # noqa: E402


def pick_scenarios(name: str | None, validators: int | None) -> list[Scenario]:
    chosen = [get_scenario(name)] if name else list(SCENARIOS.values())
    return [s.with_validators(validators) for s in chosen] if validators else chosen


def one_or_all(values: set[int]) -> int | list[int]:
    return next(iter(values)) if len(values) == 1 else sorted(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--validators", type=int, default=None)
    args = parser.parse_args()
    if args.validators is not None and not 4 <= args.validators <= 100:
        parser.error(f"--validators {args.validators}: expected 4 to 100")
    scenarios = pick_scenarios(args.scenario, args.validators)
    totals: Counter[str] = Counter()
    validators: set[int] = set()
    byzantine: set[int] = set()
    safety = liveness = errors = heights = max_round = 0
    started = time.perf_counter()
    for i in range(args.seeds):
        seed, scenario = args.first_seed + i, scenarios[i % len(scenarios)]
        try:
            result: Result = run(seed, scenario)
        except Exception:  # a crash of the simulated code itself: count it, keep going
            errors += 1
            print(f"ERROR {scenario.name} seed {seed}:\n{traceback.format_exc()}",
                  file=sys.stderr)
            continue
        validators.add(result.validators)
        byzantine.add(result.byzantine)
        heights += result.decided
        max_round = max(max_round, result.max_round)
        totals.update(result.stats)
        totals["synced_blocks"] += result.synced
        totals["validators_slashed"] += result.slashed
        totals["events"] += result.events
        safety += bool(result.violations)
        liveness += bool(result.liveness) and not result.violations
        if result.failed:
            print(f"FAIL {scenario.name} seed {seed}: {'; '.join(result.problems)} "
                  f"(replay: tests.sim.runner.replay({seed}, {scenario.name!r}))",
                  file=sys.stderr)
    print(json.dumps({
        "seeds": args.seeds,
        "validators": one_or_all(validators),
        "byzantine": one_or_all(byzantine),
        "heights_decided": heights,
        "safety_violations": safety,
        "liveness_failures": liveness,
        "errors": errors,
        "seconds": round(time.perf_counter() - started, 2),
        "scenarios": len(scenarios),
        "max_round": max_round,
        **dict(sorted(totals.items())),
    }))


if __name__ == "__main__":
    main()
