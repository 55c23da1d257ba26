"""The consensus write-ahead log: every engine input is appended before it is handled.

Record: 4-byte big-endian length, 4-byte CRC32 of the payload, payload (canonical msgpack).
A crash can leave a torn last record; `replay` drops it (and truncates the file there) as
the expected result of kill -9. A bad record followed by good data is corruption: the node
stops with a message naming the offset and the way out, rather than guess.

`sync=True` appends are fsynced (used for the node's own signed messages); others are
flushed to the OS (a process crash loses nothing; a power cut may lose the tail, which peers
re-send).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from node.errors import NodeError

HEADER = struct.Struct(">II")
MAX_RECORD = 8 * 1024 * 1024


class WalCorrupt(NodeError):
    pass


class Wal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def append(self, payload: bytes, sync: bool = False) -> None:
        if len(payload) > MAX_RECORD:
            raise ValueError(f"WAL record of {len(payload)} bytes exceeds {MAX_RECORD}")
        os.write(self._fd, HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        if sync:
            os.fsync(self._fd)

    def sync(self) -> None:
        os.fsync(self._fd)

    def rotate(self, keep_from: bytes) -> None:
        """Start a new log holding only `keep_from` (called at a new height)."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(HEADER.pack(len(keep_from), zlib.crc32(keep_from)) + keep_from)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.close()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def replay(path: Path) -> Iterator[bytes]:
    """Yield every complete record; truncate a torn tail; raise WalCorrupt otherwise."""
    if not path.exists():
        return
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        if offset + HEADER.size > len(data):
            _truncate(path, offset)
            return
        length, crc = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if length > MAX_RECORD:
            raise _corrupt(path, offset, f"record length {length} exceeds {MAX_RECORD}")
        if end > len(data):
            _truncate(path, offset)  # torn write at the tail: the crash we plan for
            return
        payload = data[offset + HEADER.size:end]
        if zlib.crc32(payload) != crc:
            if end == len(data):
                _truncate(path, offset)
                return
            raise _corrupt(path, offset, "checksum mismatch before the end of the log")
        yield payload
        offset = end


def _truncate(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(offset)
        f.flush()
        os.fsync(f.fileno())


def unreadable_record(path: Path, index: int, detail: str) -> WalCorrupt:
    """A record whose checksum holds but whose contents the node cannot decode (a region
    zeroed by a crash passes as an empty record, CRC 0; or another version's log)."""
    return _corrupt(path, None, f"record {index} is unreadable ({detail})")


def _corrupt(path: Path, offset: int | None, detail: str) -> WalCorrupt:
    where = "" if offset is None else f" at byte {offset}"
    return WalCorrupt(
        f"{path} is corrupt{where}: {detail}. The node will not guess. Move the "
        f"file aside (the node then rejoins the current height from its peers; its signer "
        f"state still prevents double-signing) or restore it from a backup.")
