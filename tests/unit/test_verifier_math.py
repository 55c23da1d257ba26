"""The verifier's arithmetic: exact products through float GEMMs at their bounds, balanced
digits, and the detection-probability formulas against direct computation."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.detection import (
    freivalds_bound,
    is_deterrent,
    min_slash,
    min_slash_units,
    p_detect_rows,
    p_pass_rows,
    p_pass_rows_exact,
    rows_needed,
    spot_check_bound,
)
from verifier.exact import (
    ExactnessBoundError,
    balanced_digits,
    digit_bits,
    exact_matmul,
)
from verifier.freivalds import in_product_range, prepare_matmul, recompute_rows


def python_matmul(m: np.ndarray, x: np.ndarray) -> list[list[int]]:
    rows = [[int(v) for v in row] for row in m]
    cols = [[int(v) for v in col] for col in x.T]
    return [[sum(a * b for a, b in zip(row, col, strict=True)) for col in cols] for row in rows]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("reduction", [1, 1000, 4099])
def test_exact_matmul_at_the_worst_case(dtype: type, reduction: int) -> None:
    """All-(-128) rows against the largest digits: every partial sum at its bound."""
    rng = np.random.default_rng(reduction)
    m = rng.integers(-128, 128, size=(3, reduction)).astype(dtype)
    m[0] = -128
    x = rng.integers(-(1 << 40), 1 << 40, size=(reduction, 2))
    x[:, 0] = -(1 << 40)
    got = exact_matmul(m, x, 128)
    assert got.tolist() == python_matmul(m.astype(np.int64), x)


def test_exact_matmul_beyond_int64_returns_python_integers() -> None:
    m = np.full((2, 300), 2**26, dtype=np.float64)
    x = np.full((300, 1), 2**40, dtype=np.int64)
    got = exact_matmul(m, x, 2**26)
    assert got.dtype == object and got[0, 0] == 300 * 2**66


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 62), st.integers(0, 2**32))
def test_exact_matmul_matches_integers(k: int, cols: int, bits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.integers(-128, 128, size=(4, k)).astype(np.float32)
    x = rng.integers(-(1 << bits), 1 << bits, size=(k, cols), endpoint=True)
    assert exact_matmul(m, x, 128).tolist() == python_matmul(m.astype(np.int64), x)


def test_balanced_digits_rebuild_the_value() -> None:
    x = np.array([[0, 1, -1, 2**62, -(2**62), 12345, -54321]], dtype=np.int64)
    for bits in (2, 5, 14, 33):
        digits = balanced_digits(x, bits)
        half = 1 << (bits - 1)
        assert all(d.min() >= -half and d.max() < half for d in digits)
        total = [sum(int(d[0, j]) << (bits * level) for level, d in enumerate(digits))
                 for j in range(x.shape[1])]
        assert total == x[0].tolist()


def test_digit_bits_keep_partial_sums_representable() -> None:
    assert digit_bits(8192, 128, np.dtype(np.float32)) == 5  # 8192 * 128 * 16 = 2^24
    assert digit_bits(8192, 128, np.dtype(np.float64)) == 34
    assert digit_bits(1, 1, np.dtype(np.int64)) == 63
    with pytest.raises(ExactnessBoundError):
        digit_bits(1 << 17, 128, np.dtype(np.float32))


def test_recompute_rows_is_exact() -> None:
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, size=(20, 2500), dtype=np.int8)
    b = rng.integers(-128, 128, size=(2500, 9), dtype=np.int8)
    a[3], b[:, 4] = -128, -128
    c = a.astype(np.int64) @ b.astype(np.int64)
    for dtype in (np.float32, np.float64):
        inputs = prepare_matmul(a, b, dtype=dtype)
        assert np.array_equal(recompute_rows(inputs, [0, 3, 19]), c[[0, 3, 19]])


def test_product_range_has_no_overflow_hole() -> None:
    inputs = prepare_matmul(np.zeros((2, 3), np.int8), np.zeros((3, 2), np.int8))
    assert in_product_range(np.array([3 * 2**14, -3 * 2**14]), inputs)
    assert not in_product_range(np.array([3 * 2**14 + 1]), inputs)
    assert not in_product_range(np.array([-(2**63)], dtype=np.int64), inputs)


def test_prepare_refuses_non_int8_operands() -> None:
    with pytest.raises(ValueError, match="int8"):
        prepare_matmul(np.zeros((2, 2), np.int16), np.zeros((2, 2), np.int8))
    with pytest.raises(ValueError, match="inner"):
        prepare_matmul(np.zeros((2, 3), np.int8), np.zeros((2, 2), np.int8))


def test_detection_formulas() -> None:
    assert p_detect_rows(0.01, 0) == 0.0
    assert p_detect_rows(1.0, 1) == 1.0
    assert p_detect_rows(0.1, 10) == pytest.approx(1 - 0.9**10)
    assert p_pass_rows(0.5, 3) == 0.125
    exact = Fraction(90 * 89 * 88, 100 * 99 * 98)
    assert p_pass_rows_exact(10, 100, 3) == pytest.approx(float(exact))
    assert p_pass_rows_exact(10, 100, 3) <= p_pass_rows(0.1, 3)
    assert p_pass_rows_exact(1, 10, 10) == 0.0
    with pytest.raises(ValueError):
        p_pass_rows(1.5, 3)


@pytest.mark.parametrize(("f", "target"), [(0.01, 0.99), (0.05, 0.999), (0.3, 0.5),
                                           (0.001, 1 - 1e-9), (1.0, 0.9)])
def test_rows_needed_is_the_smallest_k(f: float, target: float) -> None:
    k = rows_needed(f, target)
    assert p_detect_rows(f, k) >= target
    assert k == 0 or p_detect_rows(f, k - 1) < target
    assert rows_needed(0.01, 0.99) == 459


def test_freivalds_and_spot_check_bounds() -> None:
    assert freivalds_bound(32, 1) == 2.0**-32 <= 1e-9
    assert freivalds_bound(20, 2) == 2.0**-40
    assert spot_check_bound(1.0, 64, 32, 1) == 2.0**-32
    assert spot_check_bound(0.05, 64, 32, 1, recompute=True) == pytest.approx(0.95**64)
    assert spot_check_bound(0.0, 64, 32, 1) == 1.0
    assert spot_check_bound(0.5, 4, 32, 1, n_rows=4) == 2.0**-32


def test_slash_rule() -> None:
    p = p_detect_rows(0.01, 64)
    assert min_slash(100.0, p) == pytest.approx(100.0 / p)
    s = min_slash_units(100, p)
    assert s * p > 100 and (s - 1) * p <= 100
    assert min_slash_units(100, 1.0) == 101
    assert is_deterrent(s, 100, p) and not is_deterrent(s - 1, 100, p)
    with pytest.raises(ValueError):
        min_slash(1.0, 0.0)
    assert math.isclose(min_slash(1.0, 0.5), 2.0)
