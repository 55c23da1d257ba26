"""A job's operands and output, from its kernel name, dimensions and 32-byte seed.

The same conventions everywhere (provider, verifier, buyer), so nobody ships inputs:

- ``matmul-int8``, dims (m, k, n): A = gen_int8(derive_seed(seed, "a"), (m, k)),
  B = gen_int8(derive_seed(seed, "b"), (k, n)); output A @ B (int64 on the host).
- ``mlp-int8``, dims (batch, w0, ..., wL): model = gen_mlp(derive_seed(seed, "model"),
  MLPSpec((w0, ..., wL))), x = gen_int8(derive_seed(seed, "x"), (batch, w0)); output
  mlp_forward(x, model) (int8).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kernels.backend import CPU, Backend
from kernels.errors import InvalidKernelInput
from kernels.inputs import derive_seed, gen_int8, gen_mlp
from kernels.matmul import int8_matmul
from kernels.mlp import MLPSpec, QuantMLP, mlp_forward

MATMUL = "matmul-int8"
MLP = "mlp-int8"


def matmul_operands(seed: bytes, dims: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    m, k, n = _dims(dims, 3, MATMUL)
    return gen_int8(derive_seed(seed, "a"), (m, k)), gen_int8(derive_seed(seed, "b"), (k, n))


def mlp_operands(seed: bytes, dims: Sequence[int]) -> tuple[QuantMLP, np.ndarray]:
    if len(dims) < 3:
        raise InvalidKernelInput(f"{MLP} takes dims (batch, w0, ..., wL), got {list(dims)}")
    batch, widths = int(dims[0]), tuple(int(w) for w in dims[1:])
    model = gen_mlp(derive_seed(seed, "model"), MLPSpec(widths))
    return model, gen_int8(derive_seed(seed, "x"), (batch, widths[0]))


def run_job(kernel: str, dims: Sequence[int], seed: bytes,
            backend: Backend = CPU) -> np.ndarray:
    """The job's exact output on the host (bit-identical on every backend)."""
    if kernel == MATMUL:
        a, b = matmul_operands(seed, dims)
        return backend.to_host(int8_matmul(backend.from_host(a), backend.from_host(b),
                                           backend))
    if kernel == MLP:
        model, x = mlp_operands(seed, dims)
        return backend.to_host(mlp_forward(backend.from_host(x), model, backend))
    raise InvalidKernelInput(f"unknown kernel {kernel!r} (known: {MATMUL}, {MLP})")


def _dims(dims: Sequence[int], count: int, kernel: str) -> tuple[int, ...]:
    if len(dims) != count:
        raise InvalidKernelInput(f"{kernel} takes {count} dims, got {list(dims)}")
    return tuple(int(d) for d in dims)
