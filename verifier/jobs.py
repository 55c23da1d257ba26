"""Checking a market job: its commitment format, each committee member's challenge, and
the verdict on a provider's answer. Glue between consensus.jobs (what a job is),
kernels.jobs (its operands) and the checks in verifier.judge.

A matrix-product job is checked with Freivalds on the opened rows
(`challenge_vectors` 32-bit vectors) plus the row openings; an MLP job by recomputing the
opened rows. Each member's challenge comes from `challenge_seed(randomness, root, member,
job id)`, so members check different rows and the provider learned none of them before
committing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from consensus.jobs import MATMUL, MLP, JobSpec
from kernels.jobs import matmul_operands, mlp_operands
from verifier.challenge import Challenge, challenge_seed, derive_challenge
from verifier.commitment import (
    Opening,
    RowTree,
    matmul_row_format,
    row_dtype,
    verify_opening,
)
from verifier.freivalds import prepare_matmul
from verifier.judge import MatmulAnswer, Verdict, judge_matmul, judge_rows
from verifier.recompute import mlp_rows


def row_format(spec: JobSpec) -> str:
    """How the job's output rows are encoded in its commitment."""
    if spec.kernel == MATMUL:
        return matmul_row_format(spec.dims[1])
    if spec.kernel == MLP:
        return "i1"
    raise ValueError(f"unknown kernel {spec.kernel!r}")


def row_bytes(spec: JobSpec) -> int:
    return spec.output_cols * row_dtype(row_format(spec)).itemsize


def commit_output(spec: JobSpec, output: np.ndarray) -> RowTree:
    """The provider's commitment tree over its output (checks the shape first)."""
    expected = (spec.output_rows, spec.output_cols)
    if tuple(output.shape) != expected:
        raise ValueError(f"output has shape {tuple(output.shape)}, the job's is {expected}")
    return RowTree(output, row_format(spec))


def job_challenge(spec: JobSpec, job_id: bytes, randomness: bytes, root: bytes,
                  member: bytes, k_rows: int, k_vectors: int) -> Challenge:
    """Committee member `member`'s challenge for the job (vectors only for products)."""
    seed = challenge_seed(randomness, root, member, job_id)
    vectors = k_vectors if spec.kernel == MATMUL else 0
    return derive_challenge(seed, spec.output_rows, spec.output_cols, vectors, k_rows)


def judge_job(spec: JobSpec, root: bytes, openings: Sequence[Opening],
              challenge: Challenge) -> Verdict:
    """The member's verdict on the provider's openings (inputs rebuilt from the seed)."""
    if spec.kernel == MATMUL:
        a, b = matmul_operands(spec.seed, spec.dims)
        return judge_matmul(prepare_matmul(a, b), root, MatmulAnswer(tuple(openings)),
                            challenge)
    model, x = mlp_operands(spec.seed, spec.dims)
    return judge_rows(root, spec.output_rows, spec.output_cols, openings, challenge,
                      mlp_rows(model, x), row_format(spec))


def check_download(spec: JobSpec, root: bytes, openings: Sequence[Opening],
                   start: int) -> np.ndarray:
    """Rows start.. of the committed output from openings, each proven against the root;
    ValueError naming the first bad one."""
    width = row_bytes(spec)
    dtype = row_dtype(row_format(spec))
    rows = []
    for offset, opening in enumerate(openings):
        if opening.index != start + offset:
            raise ValueError(f"expected row {start + offset}, got row {opening.index}")
        if len(opening.row_bytes) != width or not verify_opening(
                root, spec.output_rows, opening.index, opening.row_bytes, opening.proof):
            raise ValueError(f"row {opening.index} does not match the committed root")
        rows.append(np.frombuffer(opening.row_bytes, dtype=dtype))
    return np.stack(rows) if rows else np.empty((0, spec.output_cols), dtype=dtype)
