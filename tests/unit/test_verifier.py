"""The spot-check protocol: Freivalds against single-entry corruptions, lazy providers'
detection rate against 1 - (1 - f)^k, openings against tampering, judgments of honest and
cheating providers. Challenge derivation: test_verifier_challenge.py."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from consensus.errors import DecodeError
from consensus.hashing import merkle_proof, merkle_root_of_hashes
from verifier.challenge import derive_challenge, derive_rows
from verifier.commitment import (
    RowTree,
    commit_rows,
    decode_openings,
    encode_openings,
    matmul_tree,
    open_rows,
    verify_opening,
)
from verifier.detection import p_detect_rows, p_pass_rows_exact
from verifier.exact import exact_matmul
from verifier.freivalds import freivalds_check, prepare_matmul
from verifier.judge import MatmulAnswer, judge_matmul, judge_matmul_full, judge_rows

SEED = hashlib.sha256(b"test challenge").digest()


def product(m: int, k: int, n: int, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = rng.integers(-128, 128, size=(m, k), dtype=np.int8)
    b = rng.integers(-128, 128, size=(k, n), dtype=np.int8)
    return a, b, a.astype(np.int64) @ b.astype(np.int64)


# --- (1) Freivalds' check ---------------------------------------------------------------


def test_freivalds_rejects_every_single_entry_corruption() -> None:
    rng = np.random.default_rng(1)
    deltas = [1, -1, 2, 1 << 13, -(1 << 20), 1 << 40]
    for trial in range(1000):
        m, k, n = (int(d) for d in rng.integers(1, 24, size=3))
        a, b, c = product(m, k, n, rng)
        inputs = prepare_matmul(a, b, with_a=True)
        i, j = int(rng.integers(m)), int(rng.integers(n))
        c[i, j] += deltas[trial % len(deltas)] * int(rng.integers(1, 5))
        challenge = derive_challenge(trial.to_bytes(4, "big"), m, n, k_vectors=1, k_rows=1)
        assert not freivalds_check(inputs, c, challenge.vectors).any(), (trial, i, j)


def test_freivalds_accepts_exact_products_at_the_bounds() -> None:
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        for k in (1, 1025, 3000):
            a, b, c = product(7, k, 5, rng)
            a[0], b[:, 0] = -128, -128  # the largest |C|: k * 2^14
            c = a.astype(np.int64) @ b.astype(np.int64)
            inputs = prepare_matmul(a, b, dtype=dtype, with_a=True)
            for bits, vectors in ((1, 3), (20, 2), (32, 1)):
                r = derive_challenge(SEED, 7, 5, vectors, 0, bits).vectors
                assert freivalds_check(inputs, c, r).all(), (dtype, k, bits)


@pytest.mark.parametrize("vectors", [1, 2])
def test_freivalds_pass_rate_is_one_over_set_size(vectors: int) -> None:
    """With R = {-2, -1, 0, 1} a single wrong entry C[i, j] survives a vector exactly when
    r_j = 0: the bound |R|^-k is reached, so it is the right bound."""
    rng = np.random.default_rng(3)
    a, b, c = product(6, 9, 8, rng)
    inputs = prepare_matmul(a, b, with_a=True)
    trials, passed = 4000, 0
    for trial in range(trials):
        bad = c.copy()
        bad[trial % 6, trial % 8] += 1
        r = derive_challenge(trial.to_bytes(4, "big"), 6, 8, vectors, 0, 2).vectors
        passed += bool(freivalds_check(inputs, bad, r).all())
    p = 4.0 ** -vectors
    assert abs(passed / trials - p) <= 4 * math.sqrt(p * (1 - p) / trials)


# --- (2) lazy providers against row sampling --------------------------------------------


@pytest.mark.parametrize("f", [0.01, 0.05, 0.1])
def test_lazy_provider_detection_rate_matches_formula(f: float) -> None:
    """10,000 providers each skip a fraction f of the rows (a random set, a block or a
    stride); a challenge from a fresh seed opens k rows; caught = a skipped row opened."""
    rng = np.random.default_rng(int(f * 1000))
    m, k, trials = 10_000, 32, 10_000
    bad_count = int(f * m)
    caught = 0
    for trial in range(trials):
        style = trial % 3
        if style == 0:
            bad = rng.choice(m, bad_count, replace=False)
        elif style == 1:
            bad = (int(rng.integers(m)) + np.arange(bad_count)) % m
        else:
            bad = np.arange(int(rng.integers(m // bad_count)), m, m // bad_count)[:bad_count]
        mask = np.zeros(m, dtype=bool)
        mask[bad] = True
        rows = derive_rows(rng.bytes(32), m, k)
        caught += bool(mask[list(rows)].any())
    rate = caught / trials
    p = p_detect_rows(f, k)
    sigma = math.sqrt(p * (1 - p) / trials)
    assert abs(rate - p) <= 4 * sigma, (rate, p)
    exact = 1 - p_pass_rows_exact(bad_count, m, k)
    assert exact >= p and abs(rate - exact) <= 4 * sigma


# --- (3) openings -----------------------------------------------------------------------


def test_row_tree_matches_consensus_merkle_tree() -> None:
    rng = np.random.default_rng(4)
    for m in (1, 2, 3, 5, 8, 13):
        c = rng.integers(-1000, 1000, size=(m, 4))
        tree = RowTree(c)
        root, leaves = commit_rows(c)
        assert root == tree.root == merkle_root_of_hashes(leaves)
        for i in range(m):
            assert list(tree.proof(i)) == merkle_proof(leaves, i)


def test_openings_verify_and_any_tampering_fails() -> None:
    rng = np.random.default_rng(5)
    c = rng.integers(-(1 << 30), 1 << 30, size=(13, 6))
    root, _ = commit_rows(c)
    for o in open_rows(c, range(13)):
        assert verify_opening(root, 13, o.index, o.row_bytes, o.proof)
        row = bytearray(o.row_bytes)
        row[int(rng.integers(len(row)))] ^= 1 << int(rng.integers(8))
        assert not verify_opening(root, 13, o.index, bytes(row), o.proof)
        assert not verify_opening(root, 13, (o.index + 1) % 13, o.row_bytes, o.proof)
        assert not verify_opening(root, 8, o.index, o.row_bytes, o.proof)  # wrong count
        assert not verify_opening(root, o.index, o.index, o.row_bytes, o.proof)
        assert not verify_opening(root, 13, o.index, o.row_bytes + b"\0", o.proof)
        for level in range(len(o.proof)):
            node = bytearray(o.proof[level])
            node[0] ^= 1
            proof = (*o.proof[:level], bytes(node), *o.proof[level + 1:])
            assert not verify_opening(root, 13, o.index, o.row_bytes, proof)
        assert not verify_opening(root, 13, o.index, o.row_bytes, o.proof[:-1])
        assert not verify_opening(root, 13, o.index, o.row_bytes, (*o.proof, root))
    assert not verify_opening(root, 13, 13, b"", ())
    assert not verify_opening(root, 13, -1, b"", ())


def test_openings_round_trip_through_canonical_bytes() -> None:
    c = np.arange(40, dtype=np.int64).reshape(8, 5) - 20
    openings = open_rows(c, [0, 3, 7])
    data = encode_openings(openings)
    assert decode_openings(data, max_rows=3, max_row_bytes=40) == openings
    with pytest.raises(DecodeError, match="limit is 2"):
        decode_openings(data, max_rows=2, max_row_bytes=40)
    with pytest.raises(ValueError, match="outside"):
        RowTree(np.array([[1 << 40]]), "i4")


# --- (4) judgments ----------------------------------------------------------------------


@pytest.fixture
def job() -> dict:
    rng = np.random.default_rng(6)
    a, b, c = product(40, 30, 24, rng)
    inputs = prepare_matmul(a, b, with_a=True)
    challenge = derive_challenge(SEED, 40, 24, k_rows=8)
    return {"inputs": inputs, "c": c, "challenge": challenge, "tree": matmul_tree(c, 30)}


def answer(tree: RowTree, rows: tuple[int, ...], y: np.ndarray | None = None) -> MatmulAnswer:
    return MatmulAnswer(tuple(tree.open(rows)), y)


def test_honest_provider_is_accepted(job: dict) -> None:
    ch, tree = job["challenge"], job["tree"]
    for y in (None, job["c"] @ ch.vectors):
        for recompute in (False, True):
            verdict = judge_matmul(job["inputs"], tree.root, answer(tree, ch.rows, y), ch,
                                   recompute=recompute)
            assert verdict.valid, verdict.reason
    assert judge_matmul_full(job["inputs"], tree.root, job["c"], ch).valid


def test_wrong_y_is_rejected(job: dict) -> None:
    ch, tree = job["challenge"], job["tree"]
    y = job["c"] @ ch.vectors
    y[17, 0] += 1
    verdict = judge_matmul(job["inputs"], tree.root, answer(tree, ch.rows, y), ch)
    assert not verdict.valid and "y_0[17]" in verdict.reason
    short = judge_matmul(job["inputs"], tree.root, answer(tree, ch.rows, y[:5]), ch)
    assert not short.valid and "shape" in short.reason


def test_corrupt_committed_rows_are_caught_when_sampled(job: dict) -> None:
    ch, c = job["challenge"], job["c"].copy()
    sampled, unsampled = ch.rows[3], next(i for i in range(40) if i not in ch.rows)
    for row, caught in ((sampled, True), (unsampled, False)):
        bad = c.copy()
        bad[row, 5] -= 1
        tree = RowTree(bad, "i4")
        y = c @ ch.vectors  # the lazy provider answers with the correct C R
        for recompute in (False, True):
            verdict = judge_matmul(job["inputs"], tree.root, answer(tree, ch.rows, y), ch,
                                   recompute=recompute)
            assert verdict.valid is not caught, verdict.reason
            if caught:
                assert f"row {row}" in verdict.reason
        full = judge_matmul_full(job["inputs"], tree.root, bad, ch)
        assert not full.valid and "not A B" in full.reason


def test_openings_must_answer_the_challenge(job: dict) -> None:
    ch, tree, inputs = job["challenge"], job["tree"], job["inputs"]
    other = tuple(i for i in range(8))
    assert other != ch.rows
    wrong_rows = judge_matmul(inputs, tree.root, answer(tree, other), ch)
    assert not wrong_rows.valid and "differ from the challenged rows" in wrong_rows.reason
    opened = list(tree.open(ch.rows))
    forged = RowTree(job["c"] + 1, "i4").open([ch.rows[0]])[0]
    opened[0] = forged
    verdict = judge_matmul(inputs, tree.root, MatmulAnswer(tuple(opened)), ch)
    assert not verdict.valid and "does not verify" in verdict.reason
    huge = job["c"].copy()
    huge[ch.rows[0], 0] = 1 << 30
    big_tree = RowTree(huge, "i4")
    verdict = judge_matmul(inputs, big_tree.root, answer(big_tree, ch.rows), ch)
    assert not verdict.valid and "exceeds" in verdict.reason
    assert not judge_matmul_full(inputs, b"\0" * 32, job["c"], ch).valid


def test_worst_case_values_stay_exact() -> None:
    """All -128 operands: |C| = K * 2^14, so C r may exceed int64 (bound 2^73 here)."""
    a = np.full((4, 1024), -128, dtype=np.int8)
    b = np.full((1024, 512), -128, dtype=np.int8)
    c = np.full((4, 512), 1024 << 14, dtype=np.int64)
    inputs, tree = prepare_matmul(a, b, with_a=True), RowTree(c, "i4")
    ch = derive_challenge(SEED, 4, 512, k_vectors=2, k_rows=4, entry_bits=32)
    y = exact_matmul(c.astype(np.float64), ch.vectors, 1024 << 14)
    assert y.dtype == object
    assert y[0, 1] == sum((1024 << 14) * int(r) for r in ch.vectors[:, 1])
    assert judge_matmul(inputs, tree.root, answer(tree, ch.rows, y), ch).valid
    assert judge_matmul_full(inputs, tree.root, c, ch).valid
    y[2, 1] += 1
    assert not judge_matmul(inputs, tree.root, answer(tree, ch.rows, y), ch).valid


def test_verdict_bounds() -> None:
    rng = np.random.default_rng(7)
    a, b, c = product(100, 8, 8, rng)
    inputs, tree = prepare_matmul(a, b), RowTree(c, "i4")
    ch = derive_challenge(SEED, 100, 8, k_vectors=1, k_rows=10, entry_bits=32)
    verdict = judge_matmul(inputs, tree.root, answer(tree, ch.rows), ch, fraction=0.1)
    assert verdict.valid
    assert verdict.false_accept_bound == pytest.approx(
        p_pass_rows_exact(10, 100, 10) + 2.0 ** -32)
    assert verdict.false_accept_bound <= 0.9 ** 10 + 2.0 ** -32
    every = derive_challenge(SEED, 100, 8, k_vectors=1, k_rows=100, entry_bits=32)
    full = judge_matmul(inputs, tree.root, answer(tree, every.rows), every, fraction=0.01)
    assert full.valid and full.false_accept_bound == 2.0 ** -32


def test_mlp_rows_are_recomputed() -> None:
    from kernels.inputs import gen_int8, gen_mlp
    from kernels.mlp import MLPSpec, mlp_forward
    from verifier.recompute import mlp_rows

    model = gen_mlp(b"verifier-mlp", MLPSpec((16, 12, 5)))
    x = gen_int8(b"verifier-mlp-x", (50, 16))
    out = np.asarray(mlp_forward(x, model)).astype(np.int64)
    ch = derive_challenge(SEED, 50, 5, k_vectors=0, k_rows=6)
    tree = RowTree(out, "i1")
    verdict = judge_rows(tree.root, 50, 5, tree.open(ch.rows), ch, mlp_rows(model, x))
    assert verdict.valid and verdict.false_accept_bound == pytest.approx(
        p_pass_rows_exact(1, 50, 6))
    bad = out.copy()
    bad[ch.rows[2], 1] ^= 1
    bad_tree = RowTree(bad, "i1")
    verdict = judge_rows(bad_tree.root, 50, 5, bad_tree.open(ch.rows), ch, mlp_rows(model, x))
    assert not verdict.valid and f"row {ch.rows[2]}" in verdict.reason
