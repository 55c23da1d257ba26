"""Deterministic kernel inputs from a seed: the same bytes on every machine and backend.

Values are generated on the host from SHAKE128, a standard extendable-output function,
and only then copied to a device, so they never depend on the backend, NumPy's random
module or its version. The byte stream of a seed is cut into 64 KiB blocks,

    block j = SHAKE128(b"jevons/kernels/stream/v1" || len(seed) as 1 byte || seed
                       || j as 8 bytes big-endian), first 65,536 bytes

so any byte range (any row of a matrix) can be produced without the rest. An int8 array
of a given shape takes the stream's first bytes in C order, each byte read as two's
complement. Seeds are bytes (1..255 long) or integers 0..2^64-1 (which stand for their
8-byte big-endian form); `derive_seed` makes independent labelled sub-seeds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from kernels.errors import InvalidKernelInput
from kernels.mlp import MLPSpec, QuantLayer, QuantMLP, default_requantization

Seed = bytes | int

STREAM_DOMAIN = b"jevons/kernels/stream/v1"
SEED_DOMAIN = b"jevons/kernels/seed/v1"
BLOCK_BYTES = 1 << 16
MAX_SEED_BYTES = 255
MAX_GENERATED_BYTES = 1 << 34
BIAS_SCALE = 256  # generated biases are int8 stream values times this


def normalize_seed(seed: Seed) -> bytes:
    """The seed's byte form: bytes as given, an integer as 8 bytes big-endian."""
    if isinstance(seed, bool):
        raise InvalidKernelInput("a seed must be bytes or an int, not a bool")
    if isinstance(seed, int):
        if not 0 <= seed < 1 << 64:
            raise InvalidKernelInput(f"an integer seed must be in 0..2^64-1, got {seed}")
        return seed.to_bytes(8, "big")
    if isinstance(seed, bytes | bytearray | memoryview):
        data = bytes(seed)
        if not 1 <= len(data) <= MAX_SEED_BYTES:
            raise InvalidKernelInput(f"a seed must be 1..{MAX_SEED_BYTES} bytes, "
                                     f"got {len(data)}")
        return data
    raise InvalidKernelInput(f"a seed must be bytes or an int, got {type(seed).__name__}")


def derive_seed(seed: Seed, *labels: str | int) -> bytes:
    """An independent 32-byte sub-seed: SHA-256 over the seed and labels, each
    length-prefixed, so ("a", "bc") and ("ab", "c") differ."""
    h = hashlib.sha256(SEED_DOMAIN)
    for part in (normalize_seed(seed), *labels):
        if isinstance(part, int):
            part = str(part).encode()
        elif isinstance(part, str):
            part = part.encode()
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def _block(seed: bytes, index: int) -> bytes:
    prefix = STREAM_DOMAIN + bytes([len(seed)]) + seed
    return hashlib.shake_128(prefix + index.to_bytes(8, "big")).digest(BLOCK_BYTES)


def stream_bytes(seed: Seed, offset: int, length: int) -> bytearray:
    """Bytes [offset, offset + length) of the seed's stream."""
    if offset < 0 or length < 0 or offset + length > MAX_GENERATED_BYTES:
        raise InvalidKernelInput(f"stream range [{offset}, {offset + length}) is outside "
                                 f"0..{MAX_GENERATED_BYTES}")
    data = normalize_seed(seed)
    if length == 0:
        return bytearray()
    first, last = offset // BLOCK_BYTES, (offset + length - 1) // BLOCK_BYTES
    out = bytearray()
    for index in range(first, last + 1):
        out += _block(data, index)
    lead = offset - first * BLOCK_BYTES
    del out[lead + length:]
    del out[:lead]
    return out


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise InvalidKernelInput(f"shape {dims} has a negative dimension")
    if math.prod(dims) > MAX_GENERATED_BYTES:
        raise InvalidKernelInput(f"shape {dims} needs more than {MAX_GENERATED_BYTES} bytes")
    return dims


def gen_int8(seed: Seed, shape: Sequence[int]) -> np.ndarray:
    """An int8 array of `shape` (C order) from the seed's stream, on the host."""
    dims = _check_shape(shape)
    raw = stream_bytes(seed, 0, math.prod(dims))
    return np.frombuffer(raw, dtype=np.int8).reshape(dims)


def gen_int8_rows(seed: Seed, shape: tuple[int, int], rows: Sequence[int]) -> np.ndarray:
    """Rows `rows` of `gen_int8(seed, shape)` (a matrix), generating only those rows."""
    n_rows, n_cols = _check_shape(shape)
    out = np.empty((len(rows), n_cols), dtype=np.int8)
    for i, row in enumerate(rows):
        if not 0 <= row < n_rows:
            raise InvalidKernelInput(f"row {row} is outside 0..{n_rows - 1}")
        out[i] = np.frombuffer(stream_bytes(seed, row * n_cols, n_cols), dtype=np.int8)
    return out


def gen_mlp(seed: Seed, spec: MLPSpec) -> QuantMLP:
    """A quantized MLP of `spec` from the seed: int8 weights, int32 biases (int8 stream
    values times 256), the default requantization for each fan-in, ReLU on every layer
    but the last."""
    layers = []
    last = len(spec.layer_shapes) - 1
    for i, (fan_in, fan_out) in enumerate(spec.layer_shapes):
        weight = gen_int8(derive_seed(seed, "mlp", i, "weight"), (fan_in, fan_out))
        bias = gen_int8(derive_seed(seed, "mlp", i, "bias"), (fan_out,)).astype(np.int32)
        multiplier, shift = default_requantization(fan_in)
        layers.append(QuantLayer(weight, bias * BIAS_SCALE, multiplier, shift, i < last))
    return QuantMLP(tuple(layers))
