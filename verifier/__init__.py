"""Spot-check verification of providers' work: output commitments (Merkle roots over output
rows), challenge derivation, Freivalds' check for matrix products, opened rows checked
against the root and the challenge, recomputation of sampled rows for row-independent
kernels (batched MLP inference), judgment, and the detection-probability bound each
verdict reaches. See docs/verification.md.

May import consensus and kernels (and numpy); never node, genesis, trio, libp2p or plyvel.
"""

from verifier.challenge import Challenge, challenge_seed, derive_challenge
from verifier.commitment import (
    Opening,
    RowTree,
    commit_rows,
    decode_openings,
    encode_openings,
    matmul_row_format,
    matmul_tree,
    open_rows,
    verify_opening,
)
from verifier.detection import (
    freivalds_bound,
    min_slash,
    p_detect_rows,
    rows_needed,
    spot_check_bound,
)
from verifier.exact import ExactnessBoundError, exact_matmul
from verifier.freivalds import MatmulInputs, freivalds_check, prepare_matmul
from verifier.judge import (
    MatmulAnswer,
    Verdict,
    judge_matmul,
    judge_matmul_full,
    judge_rows,
)

__all__ = [
    "Challenge",
    "ExactnessBoundError",
    "MatmulAnswer",
    "MatmulInputs",
    "Opening",
    "RowTree",
    "Verdict",
    "challenge_seed",
    "commit_rows",
    "decode_openings",
    "derive_challenge",
    "encode_openings",
    "exact_matmul",
    "freivalds_bound",
    "freivalds_check",
    "judge_matmul",
    "judge_matmul_full",
    "judge_rows",
    "matmul_row_format",
    "matmul_tree",
    "min_slash",
    "open_rows",
    "p_detect_rows",
    "prepare_matmul",
    "rows_needed",
    "spot_check_bound",
    "verify_opening",
]
