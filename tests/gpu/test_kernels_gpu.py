"""The CuPy path of every exact kernel is bit-identical to the NumPy path."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.backend import Backend, get_backend
from kernels.inputs import gen_int8, gen_mlp
from kernels.matmul import ensure_exact, float32_matmul, int8_matmul, int8_matmul_reference
from kernels.mlp import MLPSpec, mlp_forward, requantize

pytestmark = pytest.mark.gpu


def extremes(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-128, 127], dtype=np.int8), size=shape)


def test_auto_picks_cuda(cuda: Backend) -> None:
    assert get_backend("auto").name == "cuda"
    assert cuda.is_cuda and "cuda" in cuda.describe()
    ensure_exact(cuda)


def test_transfers_round_trip(cuda: Backend) -> None:
    x = gen_int8(1, (33, 65))
    device = cuda.from_host(x)
    assert not isinstance(device, np.ndarray)
    assert np.array_equal(cuda.to_host(device), x)


@pytest.mark.parametrize(("m", "k", "n"), [
    (1, 1, 1), (3, 0, 4), (64, 1023, 48), (128, 1024, 128), (100, 1025, 70),
    (256, 2048, 256), (65, 5000, 33), (512, 4096, 512),
])
def test_int8_matmul_matches_numpy(cuda: Backend, cpu: Backend, m: int, k: int, n: int) -> None:
    a, b = gen_int8(b"ga", (m, k)), gen_int8(b"gb", (k, n))
    got = cuda.to_host(int8_matmul(a, b, cuda))
    assert got.dtype == np.int64
    assert np.array_equal(got, cpu.to_host(int8_matmul(a, b, cpu)))


@pytest.mark.parametrize("k", [1024, 2048, 4099, 16384])
def test_worst_case_extremes_match(cuda: Backend, k: int) -> None:
    a, b = extremes((64, k), k), extremes((k, 64), k + 1)
    a[0], b[:, 0] = -128, -128
    a[1], b[:, 1] = 127, 127
    want = int8_matmul_reference(a, b)
    assert np.array_equal(cuda.to_host(int8_matmul(a, b, cuda)), want)


def test_exact_even_when_cupy_was_switched_to_tf32(cuda: Backend) -> None:
    """Someone else enabled TF32 for float32 matmul: our product forces full FP32 for
    its own GEMMs, stays exact, and leaves the caller's setting as it was."""
    core = cuda.xp._core
    tf32 = core._routines_linalg.COMPUTE_TYPE_TF32
    before = core.get_compute_type(np.float32)
    core.set_compute_type(np.float32, tf32)
    try:
        k = 2048
        a = np.full((8, k), 127, dtype=np.int8)
        b = np.full((k, 8), 127, dtype=np.int8)
        b[0, :] = 126
        total = 127 * 127 * (k - 1) + 127 * 126
        assert (cuda.to_host(int8_matmul(a, b, cuda)) == total).all()
        a, b = extremes((128, 3000), 5), extremes((3000, 128), 6)
        assert np.array_equal(cuda.to_host(int8_matmul(a, b, cuda)),
                              int8_matmul_reference(a, b))
        assert core.get_compute_type(np.float32) == tf32
    finally:
        core.set_compute_type(np.float32, before)


def test_single_float32_gemm_is_inexact_on_the_gpu_too(cuda: Backend) -> None:
    """The reason for chunking: a total that float32 cannot hold."""
    k = 2048
    a = np.full((4, k), 127, dtype=np.int8)
    b = np.full((k, 4), 127, dtype=np.int8)
    b[0, :] = 126
    total = 127 * 127 * (k - 1) + 127 * 126
    naive = cuda.to_host(float32_matmul(a, b, cuda))
    assert (naive.astype(np.int64) != total).all()


def test_requantize_matches_numpy(cuda: Backend) -> None:
    rng = np.random.default_rng(3)
    acc = rng.integers(-(2 ** 31), 2 ** 31, size=4096, dtype=np.int64)
    acc[:6] = [-(2 ** 31), 2 ** 31, -1, 0, 1, -2]
    for multiplier, shift in [(1, 1), (2 ** 31 - 1, 62), (12345, 24), (3, 2), (2 ** 20, 40)]:
        want = requantize(acc, multiplier, shift, np)
        got = cuda.to_host(requantize(cuda.from_host(acc), multiplier, shift, cuda.xp))
        assert got.dtype == np.int8
        assert np.array_equal(got, want), (multiplier, shift)


@pytest.mark.parametrize("widths", [(64, 32, 10), (1500, 256, 256, 16), (3000, 64)])
def test_mlp_matches_numpy(cuda: Backend, cpu: Backend, widths: tuple[int, ...]) -> None:
    model = gen_mlp(str(widths).encode(), MLPSpec(widths))
    x = gen_int8(b"x", (200, widths[0]))
    want = cpu.to_host(mlp_forward(x, model, cpu))
    assert np.array_equal(cuda.to_host(mlp_forward(x, model, cuda)), want)
    assert np.array_equal(cuda.to_host(mlp_forward(x, model.on(cuda), cuda)), want)
