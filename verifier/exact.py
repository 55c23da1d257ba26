"""Exact integer matrix products computed with floating-point GEMMs.

`exact_matmul(m, x, m_abs_max)` returns M @ X as integers, where M holds integers of
magnitude <= m_abs_max in float32, float64 or int64 (the form the caller keeps it in, read
once) and X is an int64 matrix with few columns (challenge vectors, B @ R, ...).

Why it is exact. X is split into balanced base-2^b digits, X = sum_l D_l * 2^(b*l) with
every digit in [-2^(b-1), 2^(b-1)), and all digit matrices go through one GEMM as extra
columns. In M @ D_l every partial sum that any summation order (blocking, FMA, threads)
can form is the sum of a subset of the K products of one row, so its magnitude is at most
K * m_abs_max * 2^(b-1). b is chosen so that this is <= 2^p, p = 24 for float32, 53 for
float64 (every integer of magnitude <= 2^p is representable, so every rounding is a no-op
and each GEMM entry is the exact integer), or < 2^63 for int64 (no overflow). The digit
products are then combined in int64, or in Python integers when K * m_abs_max * max|X|
reaches 2^63. GEMMs that are not IEEE (TF32 tensor cores) are switched off on CUDA.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from consensus.errors import JevonsError

INT64_LIMIT = (1 << 63) - 1
EXACT_LIMIT = {np.dtype(np.float32): 1 << 24, np.dtype(np.float64): 1 << 53,
               np.dtype(np.int64): INT64_LIMIT}
GEMV_MAX_COLUMNS = 3  # CPU: up to this many columns, one GEMV each beats one GEMM


class ExactnessBoundError(JevonsError):
    """A product cannot be computed exactly in the requested number format."""


def digit_bits(reduction: int, m_abs_max: int, dtype: np.dtype) -> int:
    """The widest balanced digit (bits b >= 2) with reduction * m_abs_max * 2^(b-1) within
    the exact range of `dtype`."""
    limit = EXACT_LIMIT[np.dtype(dtype)]
    per_unit = max(1, reduction * m_abs_max)
    half = limit // per_unit  # largest digit magnitude allowed
    if half < 2:
        raise ExactnessBoundError(
            f"a reduction of {reduction} terms of magnitude {m_abs_max} leaves no room for "
            f"digits in {np.dtype(dtype).name}: use a wider format or shorter reductions")
    return half.bit_length()  # 2^(b-1) <= half


def balanced_digits(x: np.ndarray, bits: int) -> list[np.ndarray]:
    """Digits D_l in [-2^(bits-1), 2^(bits-1)) with x = sum_l D_l * 2^(bits*l) (int64)."""
    half, mask = 1 << (bits - 1), (1 << bits) - 1
    rest = np.array(x, dtype=np.int64)
    digits = []
    while True:
        digit = ((rest + half) & mask) - half
        digits.append(digit)
        rest = (rest - digit) >> bits
        if not rest.any():
            return digits


def _gemm(m: Any, d: Any, xp: ModuleType) -> Any:
    """M @ D in one library call per column block. On the CPU a few columns go through
    GEMV, which streams M at memory speed where OpenBLAS's skinny GEMM does not."""
    if xp is not np:
        from kernels.matmul import exact_float32_gemm  # IEEE float32 on cuBLAS, no TF32
        with exact_float32_gemm(xp):
            return xp.matmul(m, d)
    if m.dtype == np.int64 or d.shape[1] > GEMV_MAX_COLUMNS:
        return np.matmul(m, d)
    columns = [np.matmul(m, np.ascontiguousarray(d[:, j])) for j in range(d.shape[1])]
    return np.stack(columns, axis=1) if columns else np.zeros((m.shape[0], 0), m.dtype)


def _to_host(a: Any, xp: ModuleType) -> np.ndarray:
    return np.asarray(a) if xp is np else xp.asnumpy(a)


def exact_matmul(m: Any, x: np.ndarray, m_abs_max: int, xp: ModuleType = np) -> np.ndarray:
    """M @ X exactly: int64 (object, Python ints, when the result may reach 2^63).

    m: (rows x K) integers of magnitude <= m_abs_max held as float32/float64/int64 on
    `xp`'s device; x: (K x v) int64 on the host. The result is on the host.
    """
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or m.shape[1] != x.shape[0]:
        raise ExactnessBoundError(f"shapes {tuple(m.shape)} and {x.shape} do not multiply")
    dtype = np.dtype(m.dtype)
    if dtype not in EXACT_LIMIT:
        raise ExactnessBoundError(f"matrix dtype {dtype} is not float32, float64 or int64")
    reduction, cols = int(m.shape[1]), int(x.shape[1])
    x_abs_max = max(-int(x.min()), int(x.max())) if x.size else 0
    bound = reduction * m_abs_max * x_abs_max
    if bound <= EXACT_LIMIT[dtype]:
        digits, bits = [x], 0
    else:
        bits = digit_bits(reduction, m_abs_max, dtype)
        digits = balanced_digits(x, bits)
    stacked = xp.asarray(np.concatenate(digits, axis=1).astype(dtype))
    parts = _to_host(_gemm(m, stacked, xp), xp).astype(np.int64)
    if len(digits) == 1:
        return parts
    exact_in_int64 = bound <= INT64_LIMIT
    total = np.zeros((parts.shape[0], cols), dtype=np.int64 if exact_in_int64 else object)
    for level in range(len(digits) - 1, -1, -1):
        part = parts[:, level * cols:(level + 1) * cols]
        if exact_in_int64:
            total = (total << bits) + part
        else:
            total = total * (1 << bits) + part.astype(object)
    return total
