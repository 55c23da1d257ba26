"""Bench: heights decided per second by 4 simulated validators with no faults.

The simulator (tests/sim) with zero network delay and no loss, so the time is the engine,
the hosts around it (decoding, signing through the guard, signature checks) and the real
state transition (each proposal applied once per node; blocks carry 0-3 signed transfers).
Prints one JSON line: {"heights_per_s": median over the repeats, "heights", ...}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.sim.runner import run  # noqa: E402
from tests.sim.scenarios import Scenario  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scenario = Scenario("bench_n4_no_faults", validators=4, heights=args.heights,
                        delay_ms=(0, 0))
    rates, events = [], 0
    for seed in range(args.repeats):
        started = time.perf_counter()
        result = run(seed, scenario)
        seconds = time.perf_counter() - started
        if result.failed:
            raise SystemExit(f"bench run failed: {result.problems}")
        rates.append(result.heights / seconds)
        events = result.events
    print(json.dumps({
        "heights_per_s": round(statistics.median(rates), 1),
        "heights": args.heights,
        "validators": 4,
        "repeats": args.repeats,
        "deliveries_per_height": round(events / args.heights, 1),
    }))


if __name__ == "__main__":
    main()
