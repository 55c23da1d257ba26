"""Detection-probability math: what a spot check catches, and how large a slash must be.

- Row sampling: a provider whose committed output is wrong in a fraction f of its rows
  passes k uniformly sampled distinct rows with probability at most (1 - f)^k (exactly the
  hypergeometric product below, which is never larger).
- Freivalds: a nonzero integer row d survives one challenge vector r with entries uniform
  on a set R with probability <= 1/|R| (given all other entries of r, at most one value of
  r_j makes d . r = 0 for a j with d_j != 0), so k independent vectors leave <= |R|^-k.
- Deterrence: cheating does not pay when the expected slash exceeds what cheating can
  gain, at most the reward: slash * p_detect > reward, i.e. slash > reward / p_detect.
"""

from __future__ import annotations

import math


def _check_fraction(f: float) -> None:
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"fraction of corrupted rows must be in [0, 1], got {f}")


def p_pass_rows(f: float, k: int) -> float:
    """(1 - f)^k: bounds the chance that a fraction f of bad rows escapes k sampled rows."""
    _check_fraction(f)
    return (1.0 - f) ** k


def p_detect_rows(f: float, k: int) -> float:
    """1 - (1 - f)^k: at least one of k sampled rows is one of the bad fraction f."""
    return 1.0 - p_pass_rows(f, k)


def p_pass_rows_exact(bad: int, n_rows: int, k: int) -> float:
    """C(m - w, k) / C(m, k): w bad rows of m all escape k distinct sampled rows."""
    if not 0 <= bad <= n_rows:
        raise ValueError(f"bad rows {bad} outside 0..{n_rows}")
    p = 1.0
    for i in range(min(k, n_rows)):
        p *= max(0, n_rows - bad - i) / (n_rows - i)
    return p


def rows_needed(f: float, target_detect: float) -> int:
    """The fewest sampled rows k with 1 - (1 - f)^k >= target_detect."""
    _check_fraction(f)
    if not 0.0 <= target_detect < 1.0:
        raise ValueError(f"target detection probability must be in [0, 1), got {target_detect}")
    if target_detect == 0.0:
        return 0
    if f == 0.0:
        raise ValueError("nothing to detect when no row is corrupted (f = 0)")
    if f == 1.0:
        return 1
    k = math.ceil(math.log1p(-target_detect) / math.log1p(-f))
    while k > 0 and p_detect_rows(f, k - 1) >= target_detect:
        k -= 1
    while p_detect_rows(f, k) < target_detect:
        k += 1
    return k


def freivalds_bound(entry_bits: int, k_vectors: int) -> float:
    """|R|^-k with |R| = 2^entry_bits: a wrong product passes all k vectors."""
    return 2.0 ** (-entry_bits * k_vectors)


def bad_rows(f: float, n_rows: int) -> int:
    """Rows an output wrong in at least a fraction f > 0 of its n_rows rows has at least
    (rounded down near an integer, which only makes bounds larger)."""
    _check_fraction(f)
    return min(n_rows, max(1, math.ceil(f * n_rows - 1e-9)))


def p_pass_sample(f: float, k_rows: int, n_rows: int | None = None) -> float:
    """No bad row among k sampled: exact for a known row count, else (1 - f)^k."""
    if n_rows is None or f == 0.0:
        return p_pass_rows(f, k_rows)
    return p_pass_rows_exact(bad_rows(f, n_rows), n_rows, k_rows)


def spot_check_bound(f: float, k_rows: int, entry_bits: int, k_vectors: int,
                     recompute: bool = False, n_rows: int | None = None) -> float:
    """False-accept bound of the sampled matrix-product check for an output wrong in a
    fraction f of its rows: no wrong row sampled, or every sampled wrong row passes the
    Freivalds consistency test (skipped when sampled rows are recomputed exactly)."""
    freivalds = 0.0 if recompute else freivalds_bound(entry_bits, k_vectors)
    return min(1.0, p_pass_sample(f, k_rows, n_rows) + freivalds)


def min_slash(reward: float, p_detect: float) -> float:
    """reward / p_detect: a slash must be strictly larger for cheating never to pay."""
    if not 0.0 < p_detect <= 1.0:
        raise ValueError(f"detection probability must be in (0, 1], got {p_detect}")
    return reward / p_detect


def min_slash_units(reward: int, p_detect: float) -> int:
    """The smallest whole-unit slash s with s * p_detect > reward."""
    s = math.floor(min_slash(reward, p_detect)) + 1
    while s > 1 and (s - 1) * p_detect > reward:
        s -= 1
    return s


def is_deterrent(slash: float, reward: float, p_detect: float) -> bool:
    """Does the expected slash exceed the reward a cheat could collect?"""
    return slash * p_detect > reward
