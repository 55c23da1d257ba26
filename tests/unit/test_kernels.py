"""Exact kernels on the CPU backend: backend selection, the chunked int8 product against
pure integer arithmetic, and the quantized MLP against an all-integer reference."""

from __future__ import annotations

import sys
import types
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import backend as backend_module
from kernels.backend import CPU, Backend, get_backend, is_cuda_available
from kernels.errors import BackendUnavailable, ExactnessViolation, InvalidKernelInput
from kernels.inputs import gen_int8, gen_mlp
from kernels.matmul import (
    CHUNK,
    FLOAT32_EXACT_INT_MAX,
    INT8_ABS_MAX,
    ensure_exact,
    exact_float32_gemm,
    float32_matmul,
    int8_matmul,
    int8_matmul_reference,
)
from kernels.mlp import MLPSpec, QuantLayer, QuantMLP, mlp_forward, requantize

no_cuda = pytest.mark.skipif(is_cuda_available(), reason="a CUDA device is usable here")


# --- backend selection -------------------------------------------------------------------

@no_cuda
def test_cuda_backend_is_refused_with_the_reason() -> None:
    with pytest.raises(BackendUnavailable, match="backend 'cuda' is unavailable: cupy"):
        get_backend("cuda")


@no_cuda
def test_auto_falls_back_to_cpu() -> None:
    backend = get_backend("auto")
    assert backend.name == "cpu" and backend.xp is np and not backend.is_cuda
    assert get_backend() is CPU and get_backend("cpu") is CPU


def test_unknown_backend_name_is_refused() -> None:
    with pytest.raises(InvalidKernelInput, match="expected one of auto, cpu, cuda"):
        get_backend("gpu")


def test_cupy_without_a_driver_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import cupy` succeeds on a machine with no driver; the device probe raises."""
    def no_driver() -> int:
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_driver))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    backend_module._probe_cuda.cache_clear()
    try:
        assert get_backend("auto") is CPU
        with pytest.raises(BackendUnavailable, match="cudaErrorInsufficientDriver"):
            get_backend("cuda")
    finally:
        backend_module._probe_cuda.cache_clear()


def test_cpu_transfers_are_identity() -> None:
    a = np.arange(6, dtype=np.int8).reshape(2, 3)
    assert CPU.from_host(a) is a and CPU.to_host(a) is a
    CPU.synchronize()
    assert CPU.describe().startswith("cpu")


# --- int8 matrix product -----------------------------------------------------------------

def test_chunk_keeps_every_partial_sum_exact_in_float32() -> None:
    assert CHUNK * INT8_ABS_MAX * INT8_ABS_MAX <= FLOAT32_EXACT_INT_MAX == 2 ** 24
    assert float(np.float32(FLOAT32_EXACT_INT_MAX)) == 2 ** 24
    assert float(np.float32(FLOAT32_EXACT_INT_MAX + 1)) != 2 ** 24 + 1


@pytest.mark.parametrize(("m", "k", "n"), [
    (1, 1, 1), (3, 0, 4), (7, 1023, 5), (9, 1024, 9), (5, 1025, 8), (16, 2048, 12),
    (4, 3001, 33),
])
def test_int8_matmul_equals_integer_reference(m: int, k: int, n: int) -> None:
    a = gen_int8(b"A" + bytes([m, n]), (m, k))
    b = gen_int8(b"B" + bytes([m, n]), (k, n))
    got = int8_matmul(a, b, CPU)
    assert got.dtype == np.int64 and got.shape == (m, n)
    assert np.array_equal(got, int8_matmul_reference(a, b))


@pytest.mark.parametrize("k", [1024, 2048, 4099])
def test_worst_case_extremes_are_exact(k: int) -> None:
    rng = np.random.default_rng(k)
    a = rng.choice(np.array([-128, 127], dtype=np.int8), size=(6, k))
    b = rng.choice(np.array([-128, 127], dtype=np.int8), size=(k, 6))
    a[0], b[:, 0] = -128, -128
    a[1], b[:, 1] = 127, 127
    want = int8_matmul_reference(a, b)
    assert want[0, 0] == k * 128 * 128
    assert np.array_equal(int8_matmul(a, b), want)


def test_one_float32_gemm_over_2048_is_wrong_where_ours_is_exact() -> None:
    """A total that float32 cannot hold (odd, between 2^24 and 2^25) is wrong in any
    single float32 GEMM whatever its summation order; the chunked product is exact."""
    k = 2048
    a = np.full((4, k), 127, dtype=np.int8)
    b = np.full((k, 4), 127, dtype=np.int8)
    b[0, :] = 126
    total = 127 * 127 * (k - 1) + 127 * 126
    assert total % 2 == 1 and 2 ** 24 < total < 2 ** 25
    naive = float32_matmul(a, b)
    assert naive.dtype == np.float32
    assert (naive.astype(np.int64) != total).all()
    assert (int8_matmul(a, b) == total).all()


def test_rows_of_the_product_depend_only_on_rows_of_a() -> None:
    a, b = gen_int8(1, (40, 1500)), gen_int8(2, (1500, 30))
    rows = [3, 17, 39]
    assert np.array_equal(int8_matmul(a[rows], b), int8_matmul(a, b)[rows])


@pytest.mark.parametrize(("a", "b", "reason"), [
    (np.zeros((2, 3), np.int16), np.zeros((3, 2), np.int8), "A must be int8"),
    (np.zeros((2, 3), np.int8), np.zeros((3, 2), np.float32), "B must be int8"),
    (np.zeros(3, np.int8), np.zeros((3, 2), np.int8), "A must be a matrix"),
    (np.zeros((2, 3), np.int8), np.zeros((4, 2), np.int8), "inner dimensions differ"),
])
def test_bad_operands_are_refused(a: np.ndarray, b: np.ndarray, reason: str) -> None:
    with pytest.raises(InvalidKernelInput, match=reason):
        int8_matmul(a, b)


def test_a_backend_with_inexact_gemm_is_refused() -> None:
    """The self-test catches a GEMM that is off by one (as TF32 or a bad BLAS could be)."""
    def off_by_one(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.matmul(x, y)
        out[0, 0] += 1
        return out
    broken = types.SimpleNamespace(**{name: getattr(np, name) for name in
                                      ("asarray", "float32", "float64", "int64", "zeros")},
                                   matmul=off_by_one)
    backend = Backend("broken-cpu", broken)  # type: ignore[arg-type]
    with pytest.raises(ExactnessViolation, match="1 of 64 entries"):
        ensure_exact(backend)


def test_exact_gemm_mode_forces_pedantic_fp32_on_cupy_and_restores() -> None:
    """The CuPy branch, with a stand-in for cupy's compute-type setting."""
    state = {"f": 7}  # 7 = COMPUTE_TYPE_TF32 set by someone else
    linalg = types.SimpleNamespace(COMPUTE_TYPE_PEDANTIC=2)
    core = types.SimpleNamespace(
        _routines_linalg=linalg,
        get_compute_type=lambda dtype: state["f"],
        set_compute_type=lambda dtype, value: state.__setitem__("f", value))
    fake_cupy = types.SimpleNamespace(_core=core)
    with exact_float32_gemm(fake_cupy):  # type: ignore[arg-type]
        assert state["f"] == 2
    assert state["f"] == 7


def test_exact_gemm_mode_refuses_tf32_when_it_cannot_override(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUPY_TF32", "1")
    with pytest.raises(BackendUnavailable, match="unset CUPY_TF32"), \
            exact_float32_gemm(types.SimpleNamespace()):  # type: ignore[arg-type]
        pass


# --- quantized MLP -----------------------------------------------------------------------

def reference_requantize(acc: int, multiplier: int, shift: int) -> int:
    """Round acc * M / 2^S half up with exact rationals, then saturate to int8."""
    value = Fraction(acc * multiplier, 2 ** shift) + Fraction(1, 2)
    return max(-128, min(127, value.__floor__()))


def reference_mlp(x: np.ndarray, model: QuantMLP) -> np.ndarray:
    """The MLP in Python integers, one output at a time."""
    rows = [[int(v) for v in row] for row in x]
    for layer in model.layers:
        w = [[int(v) for v in row] for row in layer.weight]
        bias = [int(v) for v in layer.bias]
        fan_out = len(bias)
        next_rows = []
        for row in rows:
            out = []
            for j in range(fan_out):
                acc = sum(row[i] * w[i][j] for i in range(len(row))) + bias[j]
                if layer.relu:
                    acc = max(acc, 0)
                out.append(reference_requantize(acc, layer.multiplier, layer.shift))
            next_rows.append(out)
        rows = next_rows
    return np.array(rows, dtype=np.int8)


@settings(max_examples=300, deadline=None)
@given(acc=st.integers(-(2 ** 31), 2 ** 31), multiplier=st.integers(1, 2 ** 31 - 1),
       shift=st.integers(1, 62))
def test_requantize_rounds_half_up_and_saturates(acc: int, multiplier: int, shift: int) -> None:
    got = requantize(np.array([acc], dtype=np.int64), multiplier, shift, np)
    assert got.dtype == np.int8
    assert int(got[0]) == reference_requantize(acc, multiplier, shift)


def test_requantize_ties_and_negatives() -> None:
    """acc / 2: -1.5 -> -1, -1 -> -1, -0.5 -> 0, 0.5 -> 1, 1.5 -> 2; then saturation."""
    acc = np.array([-3, -2, -1, 0, 1, 2, 3, 1000, -1000], dtype=np.int64)
    assert requantize(acc, 1, 1, np).tolist() == [-1, -1, 0, 0, 1, 1, 2, 127, -128]


@pytest.mark.parametrize("widths", [(16, 8), (40, 64, 32, 10), (1100, 24, 6)])
def test_mlp_equals_integer_reference(widths: tuple[int, ...]) -> None:
    model = gen_mlp(str(widths).encode(), MLPSpec(widths))
    x = gen_int8(b"batch", (5, widths[0]))
    got = mlp_forward(x, model, CPU)
    assert got.dtype == np.int8 and got.shape == (5, widths[-1])
    assert np.array_equal(got, reference_mlp(x, model))
    assert len(np.unique(got)) > 3  # the default scaling does not collapse the outputs


def test_mlp_rows_are_independent() -> None:
    model = gen_mlp(9, MLPSpec((64, 48, 12)))
    x = gen_int8(10, (30, 64))
    rows = [0, 11, 29]
    assert np.array_equal(mlp_forward(x[rows], model), mlp_forward(x, model)[rows])


def test_mlp_is_refused_when_a_bound_is_broken() -> None:
    model = gen_mlp(1, MLPSpec((8, 4)))
    layer = model.layers[0]
    cases = [
        (QuantLayer(layer.weight, layer.bias, 0, layer.shift, True), "multiplier 0"),
        (QuantLayer(layer.weight, layer.bias, layer.multiplier, 63, True), "shift 63"),
        (QuantLayer(layer.weight, layer.bias.astype(np.int64), 1, 8, True), "bias must be"),
        (QuantLayer(layer.weight, np.full(4, 2 ** 30 + 1, np.int32), 1, 8, True),
         "exceeds"),
    ]
    x = np.zeros((1, 8), np.int8)
    for bad, reason in cases:
        with pytest.raises(InvalidKernelInput, match=reason):
            mlp_forward(x, QuantMLP((bad,)))
    with pytest.raises(InvalidKernelInput, match="inputs have 7 features"):
        mlp_forward(np.zeros((1, 7), np.int8), model)
    with pytest.raises(InvalidKernelInput, match="width 0"):
        MLPSpec((8, 0))
