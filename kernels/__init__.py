"""Compute kernels: each with a NumPy reference and a CuPy path, chosen at run time.

Owns: backend selection (`auto`, `cpu`, `cuda`), the exact kernels whose outputs are
bit-identical on CPU and any GPU (int8 matrix product, batched int8-quantized MLP
inference), deterministic input generation from a seed, and content-addressed blobs for
real data. See docs/kernels.md for the exactness argument and the formats.

A leaf package: imports numpy (and cupy when present), never another Jevons package.
"""

from kernels.backend import (
    BACKEND_NAMES,
    CPU,
    Backend,
    cuda_unavailable_reason,
    get_backend,
    is_cuda_available,
)
from kernels.blobs import BlobStore, blob_id, decode_array, encode_array
from kernels.errors import (
    BackendUnavailable,
    BlobCorrupt,
    BlobError,
    BlobNotFound,
    ExactnessViolation,
    InvalidBlob,
    InvalidKernelInput,
    KernelError,
)
from kernels.inputs import derive_seed, gen_int8, gen_int8_rows, gen_mlp
from kernels.matmul import CHUNK, float32_matmul, int8_matmul, int8_matmul_reference
from kernels.mlp import MLPSpec, QuantLayer, QuantMLP, mlp_forward, requantize

__all__ = [
    "BACKEND_NAMES",
    "CHUNK",
    "CPU",
    "Backend",
    "BackendUnavailable",
    "BlobCorrupt",
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "ExactnessViolation",
    "InvalidBlob",
    "InvalidKernelInput",
    "KernelError",
    "MLPSpec",
    "QuantLayer",
    "QuantMLP",
    "blob_id",
    "cuda_unavailable_reason",
    "decode_array",
    "derive_seed",
    "encode_array",
    "float32_matmul",
    "gen_int8",
    "gen_int8_rows",
    "gen_mlp",
    "get_backend",
    "int8_matmul",
    "int8_matmul_reference",
    "is_cuda_available",
    "mlp_forward",
    "requantize",
]
