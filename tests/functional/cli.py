"""Run the real `jevons` console script in a subprocess, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

JEVONS = str(Path(sys.executable).parent / "jevons")


def jevons(*args: str | Path, timeout: float = 60, check: bool | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([JEVONS, *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=cwd)
    if check is True:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command prints on stderr (no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]
