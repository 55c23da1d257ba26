"""Content-addressed blobs for real input data, and the canonical byte form of an array.

A blob's id is the SHA-256 of its bytes, in lowercase hex. `BlobStore` keeps blobs in a
directory (`<root>/<id[:2]>/<id>`), writes atomically (temporary file, fsync, rename)
and re-hashes on every read, refusing bytes that do not match their id.

Canonical array form (`encode_array` / `decode_array`), all integers little-endian:

    magic b"JVA1" | dtype code (1 byte) | ndim (1 byte) | ndim x dim (8 bytes each)
    | the elements in C order

with dtype codes 1 = int8, 2 = int32, 3 = int64. Decoding is strict: unknown codes, more
than `MAX_NDIM` dimensions and any length mismatch are refused, so one array has exactly
one byte form and one id.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kernels.errors import BlobCorrupt, BlobNotFound, InvalidBlob

ARRAY_MAGIC = b"JVA1"
DTYPE_CODES = {"int8": 1, "int32": 2, "int64": 3}  # by name: any byte order encodes
CODE_DTYPES = {code: np.dtype(name) for name, code in DTYPE_CODES.items()}
MAX_NDIM = 8
_BLOB_ID = re.compile(r"[0-9a-f]{64}")


def blob_id(data: bytes) -> str:
    """The id of a blob: SHA-256 of its bytes, lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def is_blob_id(text: str) -> bool:
    return _BLOB_ID.fullmatch(text) is not None


def encode_array(a: Any) -> bytes:
    """The canonical bytes of an int8/int32/int64 host array of at most MAX_NDIM dims."""
    arr = np.asarray(a)
    if arr.dtype.name not in DTYPE_CODES:
        raise InvalidBlob(f"cannot encode dtype {arr.dtype}: expected int8, int32 or int64")
    if arr.ndim > MAX_NDIM:
        raise InvalidBlob(f"cannot encode {arr.ndim} dimensions: at most {MAX_NDIM}")
    header = ARRAY_MAGIC + bytes([DTYPE_CODES[arr.dtype.name], arr.ndim])
    header += b"".join(int(d).to_bytes(8, "little") for d in arr.shape)
    body = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    return header + body


def decode_array(data: bytes) -> np.ndarray:
    """The array of canonical bytes; `InvalidBlob` for anything else."""
    if len(data) < 6 or data[:4] != ARRAY_MAGIC:
        raise InvalidBlob("not a canonical array: missing the JVA1 header")
    code, ndim = data[4], data[5]
    if code not in CODE_DTYPES:
        raise InvalidBlob(f"unknown dtype code {code}: expected one of {sorted(CODE_DTYPES)}")
    if ndim > MAX_NDIM:
        raise InvalidBlob(f"{ndim} dimensions: at most {MAX_NDIM}")
    body_at = 6 + 8 * ndim
    if len(data) < body_at:
        raise InvalidBlob(f"truncated header: {len(data)} bytes, expected {body_at}+")
    shape = tuple(int.from_bytes(data[6 + 8 * i:14 + 8 * i], "little") for i in range(ndim))
    dtype = CODE_DTYPES[code].newbyteorder("<")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - body_at != expected:
        raise InvalidBlob(f"body is {len(data) - body_at} bytes, shape {shape} of "
                          f"{dtype.name} needs {expected}")
    arr = np.frombuffer(data, dtype=dtype, offset=body_at).reshape(shape)
    return arr.astype(CODE_DTYPES[code], copy=True)


def check_blob(data: bytes, expected_id: str) -> None:
    """Raise `BlobCorrupt` unless `data` hashes to `expected_id`."""
    actual = blob_id(data)
    if actual != expected_id:
        raise BlobCorrupt(f"blob {expected_id}: content hashes to {actual} "
                          f"({len(data)} bytes); fetch it again from another source")


class BlobStore:
    """Blobs on disk under `root`, addressed by their SHA-256."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, bid: str) -> Path:
        if not is_blob_id(bid):
            raise InvalidBlob(f"not a blob id (64 lowercase hex digits): {bid!r}")
        return self.root / bid[:2] / bid

    def has(self, bid: str) -> bool:
        return self.path(bid).is_file()

    def put(self, data: bytes) -> str:
        """Store `data` and return its id; an intact copy already there is kept."""
        bid = blob_id(data)
        target = self.path(bid)
        if target.is_file() and blob_id(target.read_bytes()) == bid:
            return bid
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return bid

    def get(self, bid: str) -> bytes:
        """The blob's bytes, re-hashed: `BlobNotFound` or `BlobCorrupt` otherwise."""
        target = self.path(bid)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {bid} is not stored under {self.root}") from None
        try:
            check_blob(data, bid)
        except BlobCorrupt as exc:
            raise BlobCorrupt(f"{exc}; the stored copy at {target} is damaged: delete "
                              "it and fetch the blob again") from None
        return data

    def put_array(self, a: Any) -> str:
        return self.put(encode_array(a))

    def get_array(self, bid: str) -> np.ndarray:
        return decode_array(self.get(bid))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
