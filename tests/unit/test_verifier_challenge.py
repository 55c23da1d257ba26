"""Challenge derivation: deterministic, well formed, pinned to a written-out specification,
and sensitive to every input."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from verifier.challenge import challenge_seed, derive_challenge

SEED = hashlib.sha256(b"test challenge").digest()


def test_challenge_is_deterministic_and_well_formed() -> None:
    one = derive_challenge(SEED, 1000, 300, k_vectors=3, k_rows=50, entry_bits=20)
    two = derive_challenge(SEED, 1000, 300, k_vectors=3, k_rows=50, entry_bits=20)
    assert one.rows == two.rows and np.array_equal(one.vectors, two.vectors)
    assert one.vectors.shape == (300, 3) and one.vectors.dtype == np.int64
    assert one.vectors.min() >= -(1 << 19) and one.vectors.max() < 1 << 19
    assert list(one.rows) == sorted(set(one.rows)) and len(one.rows) == 50
    assert one.rows[0] >= 0 and one.rows[-1] < 1000
    assert derive_challenge(SEED, 7, 3, k_rows=9).rows == tuple(range(7))
    bits1 = derive_challenge(SEED, 5, 4000, 1, 0, 1).vectors
    assert set(np.unique(bits1)) == {-1, 0}


def reference_words(seed: bytes, label: bytes, count: int, size: int) -> list[int]:
    """The derivation's byte stream written out from the module docstring."""
    prefix = b"jevons/verifier/challenge/v1" + len(seed).to_bytes(2, "big") + seed + label
    data = b"".join(hashlib.sha256(prefix + j.to_bytes(8, "big")).digest()
                    for j in range(-(-count * size // 32)))
    return [int.from_bytes(data[i:i + size], "little") for i in range(0, count * size, size)]


def test_challenge_test_vector() -> None:
    """Pinned values, and the same values from the written-out specification."""
    ch = derive_challenge(b"jevons", 1000, 4, k_vectors=1, k_rows=3, entry_bits=32)
    assert ch.rows == (0, 741, 834)
    assert ch.vectors[:, 0].tolist() == [489781774, -1544368831, 1733540736, -1067228868]
    params = b"".join(v.to_bytes(8, "big") for v in (1000, 4, 1, 3, 32))
    words = reference_words(b"jevons", b"vectors" + params, 4, 4)
    assert [w - (1 << 31) for w in words] == ch.vectors[:, 0].tolist()
    rows: list[int] = []
    for w in reference_words(b"jevons", b"rows" + params, 32, 8):
        if w < (1 << 64) - (1 << 64) % 1000 and w % 1000 not in rows:
            rows.append(w % 1000)
    assert tuple(sorted(rows[:3])) == ch.rows
    seed = challenge_seed(b"block", b"root", b"verifier", b"job")
    assert seed.hex() == "2d93b515609a1ee9ff23382c52f458d032dad06a185b6c93a7dc58214b071f08"


def test_challenge_is_sensitive_to_every_input() -> None:
    base = (b"block-hash", b"root", b"verifier-address", b"job-1")
    seeds = {challenge_seed(*base)}
    for i in range(4):
        changed = list(base)
        changed[i] = changed[i] + b"x"
        seeds.add(challenge_seed(*changed))
    seeds.add(challenge_seed(b"block-hashr", b"oot", b"verifier-address", b"job-1"))
    assert len(seeds) == 6
    ref = derive_challenge(SEED, 500, 64, k_vectors=2, k_rows=16, entry_bits=20)
    variants = [
        derive_challenge(SEED[:-1] + b"\0", 500, 64, 2, 16, 20),
        derive_challenge(SEED, 501, 64, 2, 16, 20),
        derive_challenge(SEED, 500, 65, 2, 16, 20),
        derive_challenge(SEED, 500, 64, 3, 16, 20),
        derive_challenge(SEED, 500, 64, 2, 17, 20),
        derive_challenge(SEED, 500, 64, 2, 16, 21),
    ]
    for v in variants:
        assert v.rows != ref.rows
        assert not np.array_equal(v.vectors[:8, 0], ref.vectors[:8, 0])
    with pytest.raises(ValueError):
        derive_challenge(SEED, 0, 4)
    with pytest.raises(ValueError):
        derive_challenge(SEED, 4, 4, entry_bits=33)
