"""Freivalds' check for int8 matrix products C = A @ B, done exactly.

For a batch R = [r_1 .. r_v] of challenge vectors (n x v), the verifier computes
X = B @ R (one pass over B for all v vectors, see verifier.exact) and then either

- the full check, A @ X == C @ R (one pass over A and one over C), when it holds all of C;
- the sampled check, A[i] . X == C[i] . R for the opened rows i only (a few dot products),
  when it holds only opened rows: this replaces recomputing those rows (a pass over B
  with one column per row) at the price of a |R|^-v chance of missing a wrong row.

Every number is an exact integer: |C| <= K * 2^14 for int8 operands (K the reduction
length), so a claimed value outside that range is wrong without further work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from verifier.exact import exact_matmul

INT8_ABS_MAX = 128  # |-128|


@dataclass(frozen=True)
class MatmulInputs:
    """A job's operands as the verifier keeps them: int8 on the host, plus B (and A, for
    full checks) converted once to the float format and device its GEMMs read fastest."""

    a: np.ndarray  # int8, m x K
    b: np.ndarray  # int8, K x n
    b_fast: Any
    a_fast: Any | None
    xp: ModuleType

    @property
    def shape(self) -> tuple[int, int, int]:
        """(m, K, n)."""
        return int(self.a.shape[0]), int(self.a.shape[1]), int(self.b.shape[1])

    @property
    def c_abs_max(self) -> int:
        """The largest |C[i, j]| an int8 product can have: K * 128 * 128."""
        return self.shape[1] * INT8_ABS_MAX * INT8_ABS_MAX


def prepare_matmul(a: np.ndarray, b: np.ndarray, dtype: Any = np.float64,
                   xp: ModuleType = np, with_a: bool = False) -> MatmulInputs:
    """Check the operands and cache B (and A when `with_a`) as `dtype` on `xp`'s device."""
    for label, x in (("A", a), ("B", b)):
        if x.dtype != np.int8 or x.ndim != 2:
            raise ValueError(f"{label} must be an int8 matrix, got {x.dtype} {x.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: A is {a.shape}, B is {b.shape}")
    b_fast = xp.asarray(b).astype(dtype)
    a_fast = xp.asarray(a).astype(dtype) if with_a else None
    return MatmulInputs(a, b, b_fast, a_fast, xp)


def challenge_products(inputs: MatmulInputs, r: np.ndarray) -> np.ndarray:
    """X = B @ R exactly (K x v, int64): the only pass over B a check needs."""
    return exact_matmul(inputs.b_fast, r, INT8_ABS_MAX, inputs.xp)


def in_product_range(values: np.ndarray, inputs: MatmulInputs) -> bool:
    """Could these be entries of A @ B (|value| <= K * 2^14)?"""
    if not values.size:
        return True
    limit = inputs.c_abs_max  # min/max, not abs: abs(-2^63) overflows int64
    return -limit <= int(values.min()) and int(values.max()) <= limit


def row_checks(inputs: MatmulInputs, rows: Sequence[int], c_rows: np.ndarray,
               r: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(len(rows) x v) booleans: C[i] . r_j == A[i] . (B r_j) for each opened row i.

    c_rows must already be in product range (so float64 digits stay exact)."""
    left = exact_matmul(c_rows.astype(np.float64), r, inputs.c_abs_max)
    a_rows = inputs.a[np.asarray(rows, dtype=np.int64)].astype(np.float64)
    right = exact_matmul(a_rows, x, INT8_ABS_MAX)
    return np.asarray(left == right, dtype=bool)


def full_products(inputs: MatmulInputs, x: np.ndarray) -> np.ndarray:
    """A @ X exactly (m x v): one pass over A (needs `with_a` in prepare_matmul)."""
    if inputs.a_fast is None:
        raise ValueError("A was not cached: call prepare_matmul(..., with_a=True)")
    return exact_matmul(inputs.a_fast, x, INT8_ABS_MAX, inputs.xp)


def freivalds_check(inputs: MatmulInputs, c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per vector r_j: does A (B r_j) == C r_j hold? (v booleans; all False when C has the
    wrong shape or a value no int8 product can take.)"""
    m, _, n = inputs.shape
    v = int(r.shape[1])
    if c.shape != (m, n) or not in_product_range(c, inputs):
        return np.zeros(v, dtype=bool)
    x = challenge_products(inputs, r)
    left = full_products(inputs, x)
    right = exact_matmul(inputs.xp.asarray(c).astype(np.float64), r, inputs.c_abs_max,
                         inputs.xp)
    return np.asarray(left == right, dtype=bool).all(axis=0)


def recompute_rows(inputs: MatmulInputs, rows: Sequence[int]) -> np.ndarray:
    """Rows `rows` of A @ B exactly (len(rows) x n, int64): (B^T A[rows]^T)^T through the
    cached B, one pass over B with one column (per digit) per row."""
    a_rows = inputs.a[np.asarray(rows, dtype=np.int64)].astype(np.int64)
    return exact_matmul(inputs.b_fast.T, a_rows.T, INT8_ABS_MAX, inputs.xp).T
