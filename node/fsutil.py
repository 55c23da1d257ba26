"""Crash-safe file writes: write a temp file beside the target, fsync, rename, fsync the dir.

A reader (or a crash) sees either the old file or the whole new one, never half of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def atomic_write(path: str | Path, data: bytes, mode: int = 0o644, *,
                 durable: bool = True) -> None:
    """`durable=False` skips both fsyncs: readers still see the old file or the whole new
    one, but after a power cut the old one may be back. For files rewritten often that
    nothing needs after a crash (status.json): on a slow disk each fsync stalls the caller."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_directory(target: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place only when the
    block completes; on any error the partial directory is removed and `target` is untouched.
    `target` must not exist (or be an empty directory)."""
    target = Path(target)
    if target.exists():
        if not target.is_dir() or any(target.iterdir()):
            raise FileExistsError(f"{target} already exists and is not empty")
        target.rmdir()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                    dir=target.parent))
    try:
        yield staging
        os.replace(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
