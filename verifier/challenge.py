"""Challenge derivation: random vectors and rows fixed only after the output commitment.

The seed mixes randomness that did not exist when the provider committed (a later block's
hash) with the commitment root, the job and the verifier's address, so each committee
member gets its own challenge and the provider could not have known any of them. From the
seed everything is derived by SHA-256 in counter mode, no global randomness:

    block j of stream L = SHA-256(DOMAIN || len(seed) (2 bytes BE) || seed || L || P
                                  || j (8 bytes BE))

where P is the challenge's parameters (n_rows, n_cols, k_vectors, k_rows, entry_bits, each
8 bytes BE), so changing any input changes every value.

- vectors (stream b"vectors"): k_vectors * n_cols little-endian uint32 words, in order
  vector 0 then vector 1 ...; each word keeps its low t = entry_bits bits, minus 2^(t-1),
  so every entry is uniform on R = [-2^(t-1), 2^(t-1)), |R| = 2^t.
- rows (stream b"rows"): little-endian uint64 words; a word w below 2^64 - (2^64 mod m) gives
  row w mod m (rejection sampling: uniform), repeats are skipped until k_rows distinct rows;
  k_rows >= m opens every row. Rows are returned sorted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DOMAIN = b"jevons/verifier/challenge/v1"
SEED_DOMAIN = b"jevons/verifier/challenge-seed/v1"
DEFAULT_ENTRY_BITS = 32
DEFAULT_VECTORS = 1
DEFAULT_ROWS = 64
MAX_ENTRY_BITS = 32
MAX_SEED_BYTES = 1024


@dataclass(frozen=True)
class Challenge:
    """What one verifier asks of one job's output (m rows x n columns)."""

    seed: bytes
    n_rows: int
    n_cols: int
    entry_bits: int
    vectors: np.ndarray  # (n_cols x k_vectors) int64, entries uniform on R
    rows: tuple[int, ...]  # sorted, distinct, each in 0..n_rows-1

    @property
    def k_vectors(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def k_rows(self) -> int:
        return len(self.rows)

    @property
    def set_size(self) -> int:
        """|R|: a nonzero row of C - AB survives one vector with probability <= 1/|R|."""
        return 1 << self.entry_bits


def challenge_seed(randomness: bytes, commitment_root: bytes, verifier: bytes,
                   job_id: bytes = b"") -> bytes:
    """The 32-byte seed of one verifier's challenge: randomness fixed after the commitment
    (a later block hash), the commitment root, the job id and the verifier's address, each
    length-prefixed so no two different inputs share an encoding."""
    h = hashlib.sha256(SEED_DOMAIN)
    for part in (randomness, commitment_root, job_id, verifier):
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def challenge_params(n_rows: int, n_cols: int, k_vectors: int, k_rows: int,
                     entry_bits: int) -> bytes:
    """P: the parameters every stream of a challenge is bound to."""
    return b"".join(v.to_bytes(8, "big") for v in (n_rows, n_cols, k_vectors, k_rows,
                                                     entry_bits))


def _blocks(seed: bytes, label: bytes) -> Iterator[bytes]:
    base = hashlib.sha256(DOMAIN + len(seed).to_bytes(2, "big") + seed + label)
    counter = 0
    while True:
        h = base.copy()
        h.update(counter.to_bytes(8, "big"))
        yield h.digest()
        counter += 1


def _stream(seed: bytes, label: bytes, n_bytes: int) -> bytes:
    blocks = _blocks(seed, label)
    return b"".join(next(blocks) for _ in range(-(-n_bytes // 32)))[:n_bytes]


def derive_vectors(seed: bytes, n_cols: int, k_vectors: int, entry_bits: int,
                   params: bytes = b"") -> np.ndarray:
    """(n_cols x k_vectors) int64 challenge vectors with entries uniform on
    [-2^(entry_bits-1), 2^(entry_bits-1))."""
    raw = _stream(seed, b"vectors" + params, 4 * n_cols * k_vectors)
    words = np.frombuffer(raw, dtype="<u4").astype(np.int64)
    entries = (words & ((1 << entry_bits) - 1)) - (1 << (entry_bits - 1))
    return np.ascontiguousarray(entries.reshape(k_vectors, n_cols).T)


def derive_rows(seed: bytes, n_rows: int, k_rows: int, params: bytes = b"") -> tuple[int, ...]:
    """k_rows distinct rows uniform on 0..n_rows-1, sorted (all rows if k_rows >= n_rows)."""
    if k_rows >= n_rows:
        return tuple(range(n_rows))
    if k_rows <= 0:
        return ()
    limit = (1 << 64) - (1 << 64) % n_rows
    chosen: set[int] = set()
    for block in _blocks(seed, b"rows" + params):
        for start in range(0, 32, 8):
            word = int.from_bytes(block[start:start + 8], "little")
            if word < limit:
                chosen.add(word % n_rows)
                if len(chosen) == k_rows:
                    return tuple(sorted(chosen))
    raise AssertionError("unreachable: the block stream is infinite")


def derive_challenge(seed: bytes, n_rows: int, n_cols: int,
                     k_vectors: int = DEFAULT_VECTORS, k_rows: int = DEFAULT_ROWS,
                     entry_bits: int = DEFAULT_ENTRY_BITS) -> Challenge:
    """The challenge of `seed` for an output of n_rows x n_cols; ValueError on bad sizes."""
    if not isinstance(seed, bytes) or not 1 <= len(seed) <= MAX_SEED_BYTES:
        raise ValueError(f"seed must be 1..{MAX_SEED_BYTES} bytes")
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"output shape must be positive, got {n_rows} x {n_cols}")
    if k_vectors < 0 or k_rows < 0:
        raise ValueError(f"k_vectors and k_rows must be >= 0, got {k_vectors}, {k_rows}")
    if not 1 <= entry_bits <= MAX_ENTRY_BITS:
        raise ValueError(f"entry_bits must be in 1..{MAX_ENTRY_BITS}, got {entry_bits}")
    params = challenge_params(n_rows, n_cols, k_vectors, k_rows, entry_bits)
    return Challenge(seed, n_rows, n_cols, entry_bits,
                     derive_vectors(seed, n_cols, k_vectors, entry_bits, params),
                     derive_rows(seed, n_rows, k_rows, params))
