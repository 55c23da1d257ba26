"""Row recomputation for row-independent jobs, injected into `judge_rows`.

Row i of a batched MLP's output depends only on row i of its input, so a verifier
recomputes the opened rows alone with the same exact kernel the provider ran. kernels is
imported when a recompute function is first called, so the rest of the verifier does not
depend on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verifier.freivalds import MatmulInputs, recompute_rows
from verifier.judge import RowRecompute


def mlp_rows(model: Any, inputs: np.ndarray) -> RowRecompute:
    """Recompute rows of mlp_forward(inputs, model) (kernels.mlp) on the CPU."""

    def recompute(rows: tuple[int, ...]) -> np.ndarray:
        from kernels.mlp import mlp_forward

        batch = inputs[np.asarray(rows, dtype=np.int64)]
        return np.asarray(mlp_forward(batch, model)).astype(np.int64)

    return recompute


def matmul_rows(inputs: MatmulInputs) -> RowRecompute:
    """Recompute rows of A @ B exactly through the verifier's cached B."""

    def recompute(rows: tuple[int, ...]) -> np.ndarray:
        return recompute_rows(inputs, rows)

    return recompute
