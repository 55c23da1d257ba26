"""Batched int8-quantized MLP inference with integer requantization.

Each layer maps int8 activations x (batch x fan_in) to int8 activations:

    acc = x @ W + bias                      exact int64 (`int8_matmul`, int32 bias)
    acc = max(acc, 0)                       when the layer has ReLU
    y   = clip((acc * M + 2^(S-1)) >> S, -128, 127)

with an integer multiplier M and shift S (`>>` is an arithmetic shift, i.e. floor
division by 2^S, so the formula rounds acc * M / 2^S half up). Every step is integer
arithmetic, so NumPy and CuPy give the same bytes; each output row depends only on its
input row, so a verifier can recompute sampled rows alone.

Bounds (checked by `validate_mlp`): fan_in <= 2^16 so |x @ W| <= 2^30, |bias| <= 2^30,
so |acc| <= 2^31; 1 <= M < 2^31 and 1 <= S <= 62, so acc * M + 2^(S-1) < 2^63 fits int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels.backend import CPU, Backend
from kernels.errors import InvalidKernelInput
from kernels.matmul import int8_matmul

MAX_FAN_IN = 1 << 16
MAX_ABS_BIAS = 1 << 30
MAX_MULTIPLIER = (1 << 31) - 1
MAX_SHIFT = 62
INT8_MIN, INT8_MAX = -128, 127
DEFAULT_SHIFT = 24
UNIFORM_INT8_VARIANCE = 5461  # of a uniform int8 value: (256^2 - 1) / 12, rounded


@dataclass(frozen=True)
class MLPSpec:
    """The shape of a quantized MLP: feature widths from input to output."""

    widths: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.widths) < 2:
            raise InvalidKernelInput(f"an MLP needs at least 2 widths, got {self.widths}")
        for width in self.widths:
            if not 1 <= width <= MAX_FAN_IN:
                raise InvalidKernelInput(
                    f"width {width} is outside 1..{MAX_FAN_IN} (in {self.widths})")

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        return list(zip(self.widths[:-1], self.widths[1:], strict=True))


@dataclass(frozen=True)
class QuantLayer:
    """One layer: int8 weight (fan_in x fan_out), int32 bias, requantization M and S."""

    weight: Any
    bias: Any
    multiplier: int
    shift: int
    relu: bool


@dataclass(frozen=True)
class QuantMLP:
    layers: tuple[QuantLayer, ...]

    @property
    def spec(self) -> MLPSpec:
        widths = [self.layers[0].weight.shape[0]] + [lay.weight.shape[1] for lay in self.layers]
        return MLPSpec(tuple(int(w) for w in widths))

    def on(self, backend: Backend) -> QuantMLP:
        """The same model with its arrays on `backend` (reuse it across batches)."""
        return QuantMLP(tuple(
            QuantLayer(backend.from_host(lay.weight), backend.from_host(lay.bias),
                       lay.multiplier, lay.shift, lay.relu)
            for lay in self.layers))


def validate_layer(layer: QuantLayer, index: int) -> None:
    """Raise `InvalidKernelInput` unless the layer keeps every step inside int64."""
    w, b = layer.weight, layer.bias
    where = f"layer {index}"
    if w.dtype != np.int8 or w.ndim != 2:
        raise InvalidKernelInput(f"{where}: weight must be an int8 matrix, "
                                 f"got {w.dtype} {tuple(w.shape)}")
    if not 1 <= w.shape[0] <= MAX_FAN_IN:
        raise InvalidKernelInput(f"{where}: fan-in {w.shape[0]} is outside 1..{MAX_FAN_IN}")
    if b.dtype != np.int32 or tuple(b.shape) != (w.shape[1],):
        raise InvalidKernelInput(f"{where}: bias must be int32 of shape ({w.shape[1]},), "
                                 f"got {b.dtype} {tuple(b.shape)}")
    if b.size and int(abs(b.astype(np.int64)).max()) > MAX_ABS_BIAS:
        raise InvalidKernelInput(f"{where}: a bias exceeds {MAX_ABS_BIAS} in magnitude")
    if not 1 <= layer.multiplier <= MAX_MULTIPLIER:
        raise InvalidKernelInput(f"{where}: multiplier {layer.multiplier} is outside "
                                 f"1..{MAX_MULTIPLIER}")
    if not 1 <= layer.shift <= MAX_SHIFT:
        raise InvalidKernelInput(f"{where}: shift {layer.shift} is outside 1..{MAX_SHIFT}")


def validate_mlp(model: QuantMLP) -> None:
    """Raise `InvalidKernelInput` unless every layer is valid and widths chain up."""
    if not model.layers:
        raise InvalidKernelInput("an MLP needs at least one layer")
    for index, layer in enumerate(model.layers):
        validate_layer(layer, index)
        if index and layer.weight.shape[0] != model.layers[index - 1].weight.shape[1]:
            raise InvalidKernelInput(
                f"layer {index}: fan-in {layer.weight.shape[0]} does not match the previous "
                f"layer's fan-out {model.layers[index - 1].weight.shape[1]}")


def default_requantization(fan_in: int) -> tuple[int, int]:
    """(M, S) mapping three standard deviations of acc for uniform int8 inputs and
    weights, about sqrt(fan_in) * 5461, to 127; pure integer arithmetic."""
    if not 1 <= fan_in <= MAX_FAN_IN:
        raise InvalidKernelInput(f"fan-in {fan_in} is outside 1..{MAX_FAN_IN}")
    spread = 3 * math.isqrt(fan_in) * UNIFORM_INT8_VARIANCE
    return max(1, (INT8_MAX << DEFAULT_SHIFT) // spread), DEFAULT_SHIFT


def requantize(acc: Any, multiplier: int, shift: int, xp: Any) -> Any:
    """clip((acc * M + 2^(S-1)) >> S, -128, 127) as int8, on int64 `acc`."""
    rounded = (acc * multiplier + (1 << (shift - 1))) >> shift
    return xp.clip(rounded, INT8_MIN, INT8_MAX).astype(xp.int8)


def layer_forward(x: Any, layer: QuantLayer, backend: Backend = CPU) -> Any:
    """One layer on int8 activations `x` (batch x fan_in); int8 result on `backend`."""
    xp = backend.xp
    acc = int8_matmul(x, layer.weight, backend)
    acc += backend.from_host(layer.bias).astype(xp.int64)
    if layer.relu:
        xp.maximum(acc, 0, out=acc)
    return requantize(acc, layer.multiplier, layer.shift, xp)


def mlp_forward(x: Any, model: QuantMLP, backend: Backend = CPU) -> Any:
    """Batched inference: int8 inputs (batch x in_features) to int8 outputs
    (batch x out_features), as an array on `backend` (use `backend.to_host`)."""
    validate_mlp(model)
    x = backend.from_host(x)
    if x.dtype != np.int8 or x.ndim != 2:
        raise InvalidKernelInput(f"inputs must be an int8 matrix, got {x.dtype} "
                                 f"{tuple(x.shape)}")
    if x.shape[1] != model.layers[0].weight.shape[0]:
        raise InvalidKernelInput(f"inputs have {x.shape[1]} features, the model expects "
                                 f"{model.layers[0].weight.shape[0]}")
    for layer in model.layers:
        x = layer_forward(x, layer, backend)
    return x
