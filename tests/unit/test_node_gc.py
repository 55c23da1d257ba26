"""A running node tunes CPython's garbage collector once it is up (node.runtime.node.tune_gc).
Checked in a child interpreter: the collector's settings are process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from node.runtime.node import GC_THRESHOLDS

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import gc, json
from node.runtime.node import tune_gc
before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
tune_gc()
print(json.dumps([before, {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}]))
"""


def test_tune_gc_freezes_what_startup_allocated_and_raises_the_thresholds() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    before, after = json.loads(out)
    assert before == {"threshold": [700, 10, 10], "frozen": 0}
    assert tuple(after["threshold"]) == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700
    assert after["frozen"] > 10_000  # the modules and objects the imports made
