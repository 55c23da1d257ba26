"""Judgment: one verifier's verdict on one job, and the false-accept bound it reached.

Matrix products (C = A @ B, int8 operands the verifier holds, output committed by a Merkle
root over C's rows). The provider answers a challenge with the opened rows C[i], i in the
challenge's rows, each with its Merkle proof; optionally also y_j = C r_j for the whole
output (the answer the issue describes). `judge_matmul` checks, one rule at a time:

1. the opened rows are exactly the challenged rows, each the right length (row format
   `matmul_row_format(K)`: int32 for K < 2^17), each proven against the root (the
   provider fixed them before the challenge existed);
2. every opened value is one an int8 product can take (|C| <= K * 2^14);
3. C[i] . r_j == A[i] . (B r_j) for every opened row i and vector j (Freivalds on the
   opened rows; X = B R is one pass over B), or, with `recompute`, C[i] == A[i] @ B exactly;
4. when y is given: y_j == A (B r_j) exactly (one pass over A). With rule 3 this also makes
   y agree with every opened row. It adds nothing to the bound on C: y is a claim about C
   that is tied to the commitment only at the opened rows, and the correct y costs only
   O(n^2) to produce without ever computing C.

Bound: an output wrong in a fraction f of its rows passes with probability at most
(1 - f)^k_rows + |R|^-k_vectors (the second term vanishes with `recompute`).
`judge_matmul_full` is the check for a party that downloads all of C (the buyer): root
recomputed from C, then A (B R) == C R; any wrong entry passes with <= |R|^-k_vectors.
`judge_rows` judges row-independent kernels (batched MLP inference) by recomputing the
opened rows with an injected function; bound (1 - f)^k_rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from verifier.challenge import Challenge
from verifier.commitment import (
    Opening,
    RowTree,
    decode_rows,
    matmul_row_format,
    row_dtype,
    verify_opening,
)
from verifier.detection import freivalds_bound, p_pass_sample, spot_check_bound
from verifier.freivalds import (
    MatmulInputs,
    challenge_products,
    freivalds_check,
    full_products,
    in_product_range,
    recompute_rows,
    row_checks,
)

DEFAULT_FRACTION = 0.01  # the corrupted-row fraction a verdict's bound is quoted for

RowRecompute = Callable[[tuple[int, ...]], np.ndarray]


@dataclass(frozen=True)
class Verdict:
    """valid or not, why, and the probability that an output wrong in at least a
    `fraction` of its rows gets a valid verdict from this check."""

    valid: bool
    reason: str
    false_accept_bound: float
    fraction: float


@dataclass(frozen=True)
class MatmulAnswer:
    """A provider's answer to a matrix-product challenge."""

    openings: tuple[Opening, ...]
    y: np.ndarray | None = None  # (m x k_vectors) claimed C @ R, optional


def opened_rows(root: bytes, n_rows: int, n_cols: int, openings: Sequence[Opening],
                challenge: Challenge, row_format: str) -> tuple[np.ndarray | None, str]:
    """(rows as a k x n int64 matrix, "") if the openings answer the challenge and verify
    against the root; (None, the reason) otherwise."""
    indices = tuple(o.index for o in openings)
    if indices != challenge.rows:
        return None, (f"opened rows {list(indices[:8])} (of {len(indices)}) differ from the "
                      f"challenged rows {list(challenge.rows[:8])} (of {challenge.k_rows})")
    width = n_cols * row_dtype(row_format).itemsize
    for o in openings:
        if len(o.row_bytes) != width:
            return None, f"row {o.index} is {len(o.row_bytes)} bytes, expected {width}"
        if not verify_opening(root, n_rows, o.index, o.row_bytes, o.proof):
            return None, f"row {o.index}: opening does not verify against the commitment"
    return decode_rows([o.row_bytes for o in openings], n_cols, row_format), ""


def _check_shapes(inputs: MatmulInputs, challenge: Challenge) -> None:
    m, _, n = inputs.shape
    if (challenge.n_rows, challenge.n_cols) != (m, n):
        raise ValueError(f"challenge is for a {challenge.n_rows} x {challenge.n_cols} output,"
                         f" the job's output is {m} x {n}")


def _first_false(ok: np.ndarray) -> tuple[int, int]:
    i, j = np.argwhere(~ok)[0]
    return int(i), int(j)


def _y_problem(inputs: MatmulInputs, y: np.ndarray, x: np.ndarray) -> str:
    m = inputs.shape[0]
    if y.shape != (m, x.shape[1]) or y.dtype.kind not in "iuO":
        return f"y has shape {y.shape} and dtype {y.dtype}, expected integers {m} x {x.shape[1]}"
    ok = np.asarray(y == full_products(inputs, x), dtype=bool)
    if not ok.all():
        i, j = _first_false(ok)
        return f"y_{j}[{i}] != A[{i}] . (B r_{j}): the answer is not C r for C = A B"
    return ""


def judge_matmul(inputs: MatmulInputs, root: bytes, answer: MatmulAnswer,
                 challenge: Challenge, fraction: float = DEFAULT_FRACTION,
                 recompute: bool = False) -> Verdict:
    """The sampled check of a committed matrix product (rules 1-4 above)."""
    _check_shapes(inputs, challenge)
    m, k, n = inputs.shape
    bound = spot_check_bound(fraction, challenge.k_rows, challenge.entry_bits,
                             challenge.k_vectors, recompute, n_rows=m)
    c_rows, problem = opened_rows(root, m, n, answer.openings, challenge,
                                  matmul_row_format(k))
    if c_rows is None:
        return Verdict(False, problem, bound, fraction)
    if not in_product_range(c_rows, inputs):
        return Verdict(False, f"an opened value exceeds {inputs.c_abs_max}, the largest an "
                              "int8 product of this shape can hold", bound, fraction)
    x = challenge_products(inputs, challenge.vectors)
    ok = row_checks(inputs, challenge.rows, c_rows, challenge.vectors, x)
    if not ok.all():
        i, j = _first_false(ok)
        row = challenge.rows[i]
        return Verdict(False, f"opened row {row}: C[{row}] . r_{j} != A[{row}] . (B r_{j})",
                       bound, fraction)
    if recompute:
        exact = recompute_rows(inputs, challenge.rows)
        bad = [row for row, same in zip(challenge.rows, (exact == c_rows).all(axis=1),
                                        strict=True) if not same]
        if bad:
            return Verdict(False, f"opened row {bad[0]} differs from A[{bad[0]}] @ B",
                           bound, fraction)
    if answer.y is not None:
        problem = _y_problem(inputs, answer.y, x)
        if problem:
            return Verdict(False, problem, bound, fraction)
    return Verdict(True, "ok", bound, fraction)


def judge_matmul_full(inputs: MatmulInputs, root: bytes, c: np.ndarray,
                      challenge: Challenge) -> Verdict:
    """The check of a party holding all of C: it must hash to the root, and pass
    Freivalds with every vector. Any wrong entry passes with <= |R|^-k_vectors."""
    _check_shapes(inputs, challenge)
    m = inputs.shape[0]
    bound = freivalds_bound(challenge.entry_bits, challenge.k_vectors)
    if c.shape != (m, inputs.shape[2]):
        return Verdict(False, f"output has shape {c.shape}, expected {(m, inputs.shape[2])}",
                       bound, 1 / m)
    if not in_product_range(c, inputs):
        return Verdict(False, f"a value exceeds {inputs.c_abs_max}, the largest an int8 "
                              "product of this shape can hold", bound, 1 / m)
    if RowTree(c, matmul_row_format(inputs.shape[1])).root != root:
        return Verdict(False, "output does not match the committed root", bound, 1 / m)
    passed = freivalds_check(inputs, c, challenge.vectors)
    if not passed.all():
        j = int(np.argmin(passed))
        return Verdict(False, f"A (B r_{j}) != C r_{j}: the output is not A B", bound, 1 / m)
    return Verdict(True, "ok", bound, 1 / m)


def judge_rows(root: bytes, n_rows: int, n_cols: int, openings: Sequence[Opening],
               challenge: Challenge, recompute: RowRecompute, row_format: str = "i1",
               fraction: float = DEFAULT_FRACTION) -> Verdict:
    """A row-independent job (batched MLP inference): every opened row must verify and
    equal the verifier's own recomputation of that row."""
    if challenge.n_rows != n_rows:
        raise ValueError(f"challenge is for {challenge.n_rows} rows, the output has {n_rows}")
    bound = p_pass_sample(fraction, challenge.k_rows, n_rows)
    rows, problem = opened_rows(root, n_rows, n_cols, openings, challenge, row_format)
    if rows is None:
        return Verdict(False, problem, bound, fraction)
    expected = np.asarray(recompute(challenge.rows), dtype=np.int64)
    if expected.shape != rows.shape:
        raise ValueError(f"recompute returned shape {expected.shape}, expected {rows.shape}")
    for row, got, want in zip(challenge.rows, rows, expected, strict=True):
        if not np.array_equal(got, want):
            return Verdict(False, f"opened row {row} differs from its recomputation", bound,
                           fraction)
    return Verdict(True, "ok", bound, fraction)
