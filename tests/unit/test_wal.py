from __future__ import annotations

from pathlib import Path

import pytest

from node.runtime.wal import HEADER, Wal, WalCorrupt, replay


def write(path: Path, records: list[bytes]) -> None:
    wal = Wal(path)
    for r in records:
        wal.append(r, sync=True)
    wal.close()


def test_round_trip_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    write(path, [b"a", b"bb", b""])
    assert list(replay(path)) == [b"a", b"bb", b""]
    wal = Wal(path)
    wal.rotate(b"start-9")
    wal.append(b"x")
    wal.close()
    assert list(replay(path)) == [b"start-9", b"x"]


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size, HEADER.size + 2])
def test_torn_tail_is_dropped_and_truncated(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "wal"
    write(path, [b"first", b"second-record"])
    full = path.read_bytes()
    last_len = HEADER.size + len(b"second-record")
    path.write_bytes(full[: len(full) - last_len + cut])
    assert list(replay(path)) == [b"first"]
    assert path.stat().st_size == len(full) - last_len  # truncated at the torn record
    wal = Wal(path)
    wal.append(b"after")
    wal.close()
    assert list(replay(path)) == [b"first", b"after"]


def test_corruption_before_the_end_stops_loudly(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    write(path, [b"first", b"second", b"third"])
    data = bytearray(path.read_bytes())
    data[HEADER.size + 1] ^= 0xFF  # inside the first payload
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt, match="corrupt at byte 0: checksum mismatch"):
        list(replay(path))


def test_missing_log_is_empty(tmp_path: Path) -> None:
    assert list(replay(tmp_path / "none")) == []
