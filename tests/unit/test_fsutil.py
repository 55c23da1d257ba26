"""Crash-safe file writes (node/fsutil.py): whole-or-nothing replacement, with or without
the fsyncs that make it survive a power cut."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.fsutil import atomic_write


def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


@pytest.mark.parametrize(("durable", "fsyncs"), [(True, 2), (False, 0)])
def test_atomic_write_replaces_the_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              durable: bool, fsyncs: int) -> None:
    calls = count_fsyncs(monkeypatch)
    path = tmp_path / "f.json"
    atomic_write(path, b"old", durable=durable)
    atomic_write(path, b"new", mode=0o600, durable=durable)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left
    assert len(calls) == 2 * fsyncs  # the file and its directory, per write (or none)


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    atomic_write(path, b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
