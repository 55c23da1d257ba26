"""Output commitments: a Merkle root over the rows of a job's output, and row openings.

Leaf i of an output with rows C[0..m-1] is the bytes

    i as 8 bytes little-endian || C[i] as `row_format` little-endian integers

(`row_format` "i4" = int32 or "i8" = int64 for matrix products, fixed by the job's shape
by `matmul_row_format`; "i1" = int8 for MLP outputs), hashed as
leaf_hash(data) = SHA-256(0x00 || data); the root is consensus.hashing's Merkle root over
the m leaf hashes. The row count m comes from the job, so an opening proves "row i of the
committed output is these values" and nothing can be swapped, shifted or re-sized.
Openings travel as canonical msgpack
(consensus.codec): [[index, row bytes, [sibling hashes...]], ...].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from consensus import codec
from consensus.hashing import EMPTY_ROOT, HASH_LEN, leaf_hash, node_hash, verify_merkle_proof

ROW_FORMATS = {"i8": np.dtype("<i8"), "i4": np.dtype("<i4"), "i1": np.dtype("<i1")}
MATMUL_ROW_FORMAT = "i8"  # the default: holds any integer output
INDEX_BYTES = 8
MAX_PROOF_LEN = 64


@dataclass(frozen=True)
class Opening:
    """Row `index` of a committed output: its canonical bytes and Merkle audit path."""

    index: int
    row_bytes: bytes
    proof: tuple[bytes, ...]


def row_dtype(row_format: str) -> np.dtype:
    if row_format not in ROW_FORMATS:
        raise ValueError(f"unknown row format {row_format!r}: expected one of "
                         f"{', '.join(ROW_FORMATS)}")
    return ROW_FORMATS[row_format]


def matmul_row_format(reduction: int) -> str:
    """"i4" when every entry of an int8 product with this reduction length fits int32
    (|C| <= K * 2^14 < 2^31, i.e. K < 2^17), else "i8"."""
    return "i4" if reduction * (1 << 14) < 1 << 31 else "i8"


def encode_row(row: np.ndarray, row_format: str = MATMUL_ROW_FORMAT) -> bytes:
    """A row's canonical bytes; raises ValueError if a value does not fit the format."""
    dtype = row_dtype(row_format)
    values = np.asarray(row)
    info = np.iinfo(dtype)
    if values.size and (int(values.min()) < info.min or int(values.max()) > info.max):
        raise ValueError(f"row values outside {dtype.name} cannot use row format "
                         f"{row_format!r}")
    return values.astype(dtype, copy=False).tobytes()


def decode_row(row_bytes: bytes, n_cols: int, row_format: str = MATMUL_ROW_FORMAT
               ) -> np.ndarray:
    """The int64 values of a row's canonical bytes; ValueError on a wrong length."""
    dtype = row_dtype(row_format)
    if len(row_bytes) != n_cols * dtype.itemsize:
        raise ValueError(f"row is {len(row_bytes)} bytes, expected {n_cols} values of "
                         f"{dtype.itemsize} bytes = {n_cols * dtype.itemsize}")
    return np.frombuffer(row_bytes, dtype=dtype).astype(np.int64)


def decode_rows(rows: Sequence[bytes], n_cols: int, row_format: str = MATMUL_ROW_FORMAT
                ) -> np.ndarray:
    """(len(rows) x n_cols) int64 from rows of canonical bytes, decoded in one pass."""
    dtype = row_dtype(row_format)
    if any(len(row) != n_cols * dtype.itemsize for row in rows):
        raise ValueError(f"every row must be {n_cols * dtype.itemsize} bytes")
    flat = np.frombuffer(b"".join(rows), dtype=dtype)
    return flat.astype(np.int64).reshape(len(rows), n_cols)


def leaf_data(index: int, row_bytes: bytes) -> bytes:
    return index.to_bytes(INDEX_BYTES, "little") + row_bytes


class RowTree:
    """The Merkle tree over an output's rows, with every level kept for fast openings.

    Same shape as consensus.hashing.merkle_root_of_hashes: pair neighbours, carry an odd
    last node up unchanged.
    """

    def __init__(self, rows: np.ndarray, row_format: str = MATMUL_ROW_FORMAT) -> None:
        if rows.ndim != 2:
            raise ValueError(f"an output to commit must be a matrix, got shape {rows.shape}")
        self.row_format = row_format
        self.rows = [encode_row(row, row_format) for row in rows]
        self.levels = [[leaf_hash(leaf_data(i, data)) for i, data in enumerate(self.rows)]]
        while len(self.levels[-1]) > 1:
            level = self.levels[-1]
            upper = [node_hash(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                upper.append(level[-1])
            self.levels.append(upper)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.levels[0] else EMPTY_ROOT

    @property
    def leaves(self) -> list[bytes]:
        return self.levels[0]

    def proof(self, index: int) -> tuple[bytes, ...]:
        """Audit path of leaf `index`, identical to consensus.hashing.merkle_proof."""
        if not 0 <= index < len(self.rows):
            raise IndexError(f"row {index} outside 0..{len(self.rows) - 1}")
        path, i = [], index
        for level in self.levels[:-1]:
            if (i ^ 1) < len(level):
                path.append(level[i ^ 1])
            i //= 2
        return tuple(path)

    def open(self, indices: Sequence[int]) -> list[Opening]:
        return [Opening(i, self.rows[i], self.proof(i)) for i in indices]


def matmul_tree(c: np.ndarray, reduction: int) -> RowTree:
    """The commitment tree of an int8 product's output, in the job's row format."""
    return RowTree(c, matmul_row_format(reduction))


def commit_rows(c: np.ndarray, row_format: str = MATMUL_ROW_FORMAT
                ) -> tuple[bytes, list[bytes]]:
    """(root, leaf hashes) of the output `c` (one leaf per row). A matrix product's
    commitment uses `matmul_row_format(K)` (see `matmul_tree`), as `judge_matmul` does."""
    tree = RowTree(c, row_format)
    return tree.root, tree.leaves


def open_rows(c: np.ndarray, indices: Sequence[int], row_format: str = MATMUL_ROW_FORMAT
              ) -> list[Opening]:
    """Openings of rows `indices` of `c` (a provider keeps a RowTree to open many times)."""
    return RowTree(c, row_format).open(indices)


def verify_opening(root: bytes, n_rows: int, index: int, row_bytes: bytes,
                   proof: Sequence[bytes]) -> bool:
    """Is `row_bytes` row `index` of the n_rows-row output committed by `root`?"""
    if not 0 <= index < n_rows or len(proof) > MAX_PROOF_LEN:
        return False
    if any(len(node) != HASH_LEN for node in proof):
        return False
    return verify_merkle_proof(leaf_hash(leaf_data(index, row_bytes)), index, n_rows,
                               list(proof), root)


def encode_openings(openings: Sequence[Opening]) -> bytes:
    """Canonical bytes of a provider's openings (the answer a verifier downloads)."""
    return codec.encode([[o.index, o.row_bytes, list(o.proof)] for o in openings])


def decode_openings(data: bytes, max_rows: int, max_row_bytes: int) -> list[Opening]:
    """Openings from canonical bytes; DecodeError on anything malformed or too large."""
    limit = max_rows * (max_row_bytes + (MAX_PROOF_LEN + 1) * (HASH_LEN + 2) + 16) + 16
    items = codec.expect_array(codec.decode(data, max_bytes=limit), "openings", max_rows)
    out = []
    for item in items:
        index, row, proof = codec.expect_list(item, 3, "opening")
        nodes = codec.expect_array(proof, "proof", MAX_PROOF_LEN)
        out.append(Opening(
            codec.expect_int(index, "row index"),
            codec.expect_bytes(row, "row bytes", max_len=max_row_bytes),
            tuple(codec.expect_bytes(h, "proof node", length=HASH_LEN) for h in nodes)))
    return out
