"""Repository-wide checks run with the suite: lint and the package dependency rule."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert exe, f"{name} is not installed: pip install -e '.[test]'"
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_ruff_lint_is_clean() -> None:
    result = run_tool("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_boundaries_hold() -> None:
    """consensus stays pure (no IO, clock, randomness, numpy, libp2p…), kernels is a leaf;
    the contracts live in pyproject.toml [tool.importlinter]."""
    result = run_tool("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_linter_catches_a_violation(tmp_path: Path) -> None:
    """The boundary check can fail: a copy of the tree where consensus reads the clock."""
    for package in ("consensus", "kernels", "verifier", "genesis", "node"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "consensus" / "hashing.py", "a") as f:
        f.write("\nimport time  # forbidden: the core never reads the wall clock\n")
    exe = BIN / "lint-imports"
    result = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={"PYTHONPATH": str(tmp_path), "PATH": str(BIN)})
    assert result.returncode != 0
    assert "consensus.hashing -> time" in result.stdout
