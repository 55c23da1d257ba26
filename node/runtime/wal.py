"""The consensus write-ahead log: every engine input is appended before it is handled.

File: the 8-byte MAGIC, then records. Record: 4-byte big-endian payload length, CRC32 of
the payload, CRC32 of those 8 header bytes, then the payload (canonical msgpack).

The header's own checksum is what lets `replay` tell a crash from corruption. A crash can
leave only a torn tail: a prefix of the last record, or zeros where a power cut extended
the file without its data. `replay` drops that (truncating the file there) as the expected
result of kill -9. Anything else that does not check out (a length or payload that changed
before the end, garbage after a good header) is corruption: the node stops with a message
naming the offset and the way out, rather than guess. (Without the header checksum a flipped
bit in a length made every later record, fsynced ones included, look like a torn tail and
they were silently cut: the node forgot its own votes and so its lock.)

`sync=True` appends are fsynced (used for the node's own signed messages); others are
written to the OS (a process crash loses nothing; a power cut may lose the tail, which peers
re-send). An append that cannot be written whole (disk full, I/O error) is cut back off and
raises WalWriteError: the caller must not act on an input the log does not hold.

Logs written before the header checksum (no MAGIC, 8-byte headers) are still read, and
rewritten in this format when a node opens them.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from node.errors import NodeError
from node.fsutil import fsync_dir

MAGIC = b"JEVWAL2\n"
HEADER = struct.Struct(">III")  # length, crc32(payload), crc32(the first 8 header bytes)
LEGACY_HEADER = struct.Struct(">II")  # length, crc32(payload): logs without MAGIC
MAX_RECORD = 8 * 1024 * 1024


class WalCorrupt(NodeError):
    pass


class WalWriteError(NodeError):
    pass


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(len(MAGIC))


def encode_record(payload: bytes) -> bytes:
    if len(payload) > MAX_RECORD:
        raise ValueError(f"WAL record of {len(payload)} bytes exceeds {MAX_RECORD}")
    head = LEGACY_HEADER.pack(len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


class Wal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and _head(path) != MAGIC:
            self._rewrite(list(replay(path)))  # an older log (or an empty file)
        self._fd = self._open()
        if os.fstat(self._fd).st_size == 0:
            self._write(MAGIC)
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def append(self, payload: bytes, sync: bool = False) -> None:
        self._write(encode_record(payload))
        if sync:
            self.sync()

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise WalWriteError(f"cannot sync the consensus WAL {self.path}: "
                                f"{exc.strerror or exc}") from exc

    def _write(self, data: bytes) -> None:
        """Write all of `data` or nothing: a short write (disk full) is cut back off, so
        the next append does not land after a fragment that would read as corruption."""
        start = os.fstat(self._fd).st_size
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                if written <= 0:
                    raise OSError(0, "the disk took no bytes")
                view = view[written:]
        except OSError as exc:
            with contextlib.suppress(OSError):  # else replay drops it as a torn tail
                os.ftruncate(self._fd, start)
            raise WalWriteError(f"cannot write the consensus WAL {self.path}: "
                                f"{exc.strerror or exc}") from exc

    def rotate(self, keep_from: bytes) -> None:
        """Start a new log holding only `keep_from` (called at a new height)."""
        self._rewrite([keep_from])
        self.close()
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _rewrite(self, payloads: list[bytes]) -> None:
        """Replace the log by one holding `payloads`: written and synced aside, renamed
        over it, and the rename synced (else a power cut could bring the old log back)."""
        tmp = self.path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, MAGIC + b"".join(encode_record(p) for p in payloads))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise WalWriteError(f"cannot write the consensus WAL {self.path}: "
                                f"{exc.strerror or exc}") from exc


def replay(path: Path) -> Iterator[bytes]:
    """Yield every complete record; truncate a torn tail; raise WalCorrupt otherwise."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data.startswith(MAGIC):
        yield from _records(path, data, HEADER, len(MAGIC))
    elif MAGIC.startswith(data) or not any(data):  # a torn or zeroed first write
        if data:
            _truncate(path, 0)
    else:
        yield from _records(path, data, LEGACY_HEADER, 0)


def _records(path: Path, data: bytes, header: struct.Struct, offset: int) -> Iterator[bytes]:
    while offset < len(data):
        if offset + header.size > len(data):
            _truncate(path, offset)  # a torn header
            return
        length, crc, *head_crc = header.unpack_from(data, offset)
        first = data[offset:offset + LEGACY_HEADER.size]  # what the header checksum covers
        bad_head = head_crc[0] != zlib.crc32(first) if head_crc else \
            length == crc == 0  # the old format read zeros as an empty record
        if bad_head and _zeros_from(data, offset):
            _truncate(path, offset)  # a power cut extended the file without its data (the
            return  # node writes no empty record, so zeros are never one)
        if bad_head and head_crc:
            raise _corrupt(path, offset, "record header checksum mismatch")
        if length > MAX_RECORD:
            raise _corrupt(path, offset, f"record length {length} exceeds {MAX_RECORD}")
        end = offset + header.size + length
        if end > len(data):
            _truncate(path, offset)  # torn write at the tail: the crash we plan for
            return
        payload = data[offset + header.size:end]
        if zlib.crc32(payload) != crc:
            if _zeros_from(data, end):  # the last record's data never reached the disk
                _truncate(path, offset)
                return
            raise _corrupt(path, offset, "checksum mismatch before the end of the log")
        yield payload
        offset = end


def _zeros_from(data: bytes, offset: int) -> bool:
    return data.count(0, offset) == len(data) - offset


def _truncate(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(offset)
        f.flush()
        os.fsync(f.fileno())


def unreadable_record(path: Path, index: int, detail: str) -> WalCorrupt:
    """A record whose checksums hold but whose contents the node cannot decode (another
    version's log, or a bug)."""
    return _corrupt(path, None, f"record {index} is unreadable ({detail})")


def _corrupt(path: Path, offset: int | None, detail: str) -> WalCorrupt:
    where = "" if offset is None else f" at byte {offset}"
    return WalCorrupt(
        f"{path} is corrupt{where}: {detail}. The node will not guess. Restore it from a "
        f"backup, or move it aside: the node then rejoins the current height from its "
        f"peers, and its signer state still prevents double-signing, but it forgets its "
        f"own votes at this height and with them its lock on a block.")
