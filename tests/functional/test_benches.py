"""The bench scripts run and print the JSON line their docs promise (tiny runs: what they
measure is not checked here, only that they still measure something). A bench that
broke silently (bench/p2p.py's validators once took the wrong arguments, so every message
was refused and it printed nothing) is found by CI, not by the next person to run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.functional


def run_bench(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


def test_p2p_bench_delivers_every_message() -> None:
    result = run_bench("p2p.py", "--messages", "30", "--size", "200", "--runs", "1")
    assert result["messages"] == 30 and result["msgs_per_s"] > 0
    assert result["send_cpu_us_per_msg"] > 0 and result["recv_cpu_us_per_msg"] > 0


def test_pipeline_bench_times_every_stage() -> None:
    result = run_bench("pipeline.py", "--txs", "60", "--senders", "7", "--runs", "1")
    stages = result["stages_us"]
    assert {"check", "mempool_add", "apply_receiver", "store_commit"} <= set(stages)
    assert all(value > 0 for value in stages.values())
    assert result["total_us"] == pytest.approx(sum(stages.values()), abs=0.1)
    assert result["outside_check_us"] == pytest.approx(result["total_us"] - stages["check"],
                                                       abs=0.1)
