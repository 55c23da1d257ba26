"""Exact int8 matrix product on NumPy or CuPy, bit-identical everywhere.

C = A @ B for int8 A (m x k) and B (k x n), returned as int64. The values are held in
float32 so the product runs as a fast BLAS / cuBLAS GEMM, but the reduction over k is
split into chunks of `CHUNK` = 1024: in one chunk every partial sum, in whatever order
the library adds, is an integer of magnitude at most 1024 * 128 * 128 = 2^24, and every
such integer is exactly representable in float32, so each chunk's result is exact. The
chunk results are accumulated in float64 (exact below 2^53) and converted to int64
once. See docs/kernels.md.

On CUDA the float32 GEMM is forced to full single precision (cuBLAS compute type
CUBLAS_COMPUTE_32F_PEDANTIC: no TF32 or other reduced-precision tensor-core paths) for
the duration of the call, whatever `CUPY_TF32` or another caller has set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from kernels.backend import CPU, Backend
from kernels.errors import BackendUnavailable, ExactnessViolation, InvalidKernelInput

CHUNK = 1024  # CHUNK * INT8_ABS_MAX**2 <= FLOAT32_EXACT_INT_MAX (tested)
INT8_ABS_MAX = 128  # |-128|: the largest magnitude an int8 can hold
FLOAT32_EXACT_INT_MAX = 1 << 24  # every integer of magnitude <= 2^24 is a float32
MAX_REDUCTION = 1 << 40  # |C| <= k * 2^14 stays far below 2^63 for any k up to this
FLOAT64_EXACT_REDUCTION = 1 << 39  # k * 2^14 <= 2^53: the float64 accumulator stays exact


def check_int8_operands(a: Any, b: Any) -> None:
    """Raise `InvalidKernelInput` unless a (m x k) and b (k x n) are int8 matrices."""
    for label, x in (("A", a), ("B", b)):
        if x.dtype != np.int8:
            raise InvalidKernelInput(f"{label} must be int8, got {x.dtype}")
        if x.ndim != 2:
            raise InvalidKernelInput(f"{label} must be a matrix, got shape {tuple(x.shape)}")
    if a.shape[1] != b.shape[0]:
        raise InvalidKernelInput(f"inner dimensions differ: A is {tuple(a.shape)}, "
                                 f"B is {tuple(b.shape)}")
    if a.shape[1] > MAX_REDUCTION:
        raise InvalidKernelInput(f"reduction length {a.shape[1]} exceeds {MAX_REDUCTION}")


@contextlib.contextmanager
def exact_float32_gemm(xp: ModuleType) -> Iterator[None]:
    """Within the block, float32 GEMMs on `xp` run in full IEEE single precision.

    NumPy's BLAS always does. For CuPy, the float32 compute type is set to
    COMPUTE_TYPE_PEDANTIC (cuBLAS CUBLAS_COMPUTE_32F_PEDANTIC) and restored afterwards;
    the setting is process-wide in CuPy, so do not run other float32 GEMMs concurrently
    in other threads that rely on TF32. If this CuPy lacks the setting, TF32 is refused
    when CUPY_TF32 asks for it and the CuPy default (full float32) is relied on.
    """
    if xp is np:
        yield
        return
    core = getattr(xp, "_core", None)
    linalg = getattr(core, "_routines_linalg", None)
    pedantic = getattr(linalg, "COMPUTE_TYPE_PEDANTIC", None)
    getter = getattr(core, "get_compute_type", None)
    setter = getattr(core, "set_compute_type", None)
    if pedantic is None or getter is None or setter is None:
        if int(os.environ.get("CUPY_TF32", "0") or "0") > 0:
            raise BackendUnavailable(
                "CUPY_TF32 enables TF32 matmul, which is not exact, and this CuPy has no "
                "compute-type setting to override it: unset CUPY_TF32")
        yield
        return
    previous = getter(np.float32)
    setter(np.float32, pedantic)
    try:
        yield
    finally:
        setter(np.float32, previous)


def _accumulate_chunks(a: Any, b: Any, xp: ModuleType) -> Any:
    """Sum over k-chunks of exact float32 GEMMs, accumulated exactly in float64.

    The operands are converted to float32 once (chunks are views). Each chunk's result is
    an integer of magnitude <= 2^24; their running sum is an integer of magnitude at most
    k * 2^14, and float64 holds every integer up to 2^53 exactly, so the float64
    accumulator is exact for k <= 2^39 (checked). The last chunk is added and converted to
    int64 in one pass (`add` computing in float64, written to an int64 array: exact, as
    the sums are integers); one chunk is converted directly. Fewer passes over the
    m x n result is what keeps the exact product near plain float32 GEMM speed.
    """
    m, k = a.shape
    n = b.shape[1]
    if k == 0:
        return xp.zeros((m, n), dtype=xp.int64)
    if k > FLOAT64_EXACT_REDUCTION:
        raise InvalidKernelInput(f"reduction length {k} exceeds {FLOAT64_EXACT_REDUCTION}")
    a32 = a.astype(xp.float32)
    b32 = b.astype(xp.float32)
    starts = list(range(0, k, CHUNK))
    with exact_float32_gemm(xp):
        def part(start: int) -> Any:  # exact: |sums| <= 2^24
            return xp.matmul(a32[:, start:start + CHUNK], b32[start:start + CHUNK])

        if len(starts) == 1:
            return part(0).astype(xp.int64)
        acc = part(starts[0])
        if len(starts) > 2:
            acc = acc.astype(xp.float64)
            for start in starts[1:-1]:
                acc += part(start)  # exact: integers below 2^53
        last = part(starts[-1])
        if xp is not np:  # CuPy's ufuncs document no `casting`; the passes are cheap there
            return (acc.astype(xp.float64) + last).astype(xp.int64)
        out = np.empty((m, n), dtype=np.int64)
        np.add(acc, last, out=out, dtype=np.float64, casting="unsafe")
    return out


def int8_matmul(a: Any, b: Any, backend: Backend = CPU) -> Any:
    """C = A @ B exactly, as an int64 array on `backend` (use `backend.to_host`).

    A and B may be host (NumPy) or device arrays; both must be int8. Row i of C depends
    only on row i of A, so a verifier can recompute any rows alone.
    """
    a = backend.from_host(a)
    b = backend.from_host(b)
    check_int8_operands(a, b)
    ensure_exact(backend)
    return _accumulate_chunks(a, b, backend.xp)


def float32_matmul(a: Any, b: Any, backend: Backend = CPU) -> Any:
    """A plain float32 GEMM of the same operands (one call, not chunked, not exact for
    long reductions): the speed reference the exact product is measured against."""
    xp = backend.xp
    af = backend.from_host(a).astype(xp.float32)
    bf = backend.from_host(b).astype(xp.float32)
    with exact_float32_gemm(xp):
        return xp.matmul(af, bf)


def int8_matmul_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The same product in pure integer arithmetic on the host (slow: small sizes only)."""
    check_int8_operands(a, b)
    return np.matmul(a.astype(np.int64), b.astype(np.int64))


def _self_test_operands() -> tuple[np.ndarray, np.ndarray]:
    """Operands at the exactness bound: full chunks of -128 * -128 and 127 * 127 partial
    sums, a ragged last chunk, and totals that float32 cannot hold; plus random values."""
    k = 2 * CHUNK + 3
    rng = np.random.default_rng(20240611)
    a = rng.integers(-128, 128, size=(8, k), dtype=np.int8)
    b = rng.integers(-128, 128, size=(k, 8), dtype=np.int8)
    a[0], b[:, 0] = -128, -128
    a[1], b[:, 1] = 127, 127
    a[2], b[:, 2] = 127, -128
    return a, b


_EXACT_BACKENDS: set[str] = set()


def ensure_exact(backend: Backend) -> None:
    """Run the self-test once per process and backend; raise `ExactnessViolation` if the
    backend's GEMM gives any wrong integer at the bounds the kernel relies on."""
    if backend.name in _EXACT_BACKENDS:
        return
    a, b = _self_test_operands()
    got = backend.to_host(_accumulate_chunks(backend.from_host(a), backend.from_host(b),
                                             backend.xp))
    want = int8_matmul_reference(a, b)
    if not np.array_equal(got, want):
        bad = int(np.count_nonzero(got != want))
        raise ExactnessViolation(
            f"backend {backend.describe()} computed {bad} of {want.size} entries of the "
            "exactness self-test wrongly: its float32 GEMM is not IEEE single precision "
            "(TF32 or another reduced-precision mode?); use backend 'cpu'")
    _EXACT_BACKENDS.add(backend.name)
