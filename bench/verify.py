"""Bench: a provider's exact int8 matrix product against one verifier's spot check of it.

For each size n (A, B: n x n int8), times, as medians over several runs on one device:
- compute_s: the provider's exact product (kernels.matmul.int8_matmul; a local chunked
  float32 product if kernels is missing), and a plain float32 GEMM of the same size;
- prepare_s: the verifier converting B from int8 to the float form its pass reads (float64
  by default, --dtype), once per job (or once per B, when jobs share B such as weights);
- verify_s: everything one verifier does for the job once it holds A and B (B in that
  form): derive the challenge from the seed, decode the provider's answer bytes (k_rows
  opened rows with Merkle proofs), check the proofs, one exact pass over B for the batched
  challenge vectors, the opened-row Freivalds checks;
- verify_y_s: the same plus y = C R for every row checked against A (B R) (one pass over A).
Prints one JSON line per size with n, device, compute_s, verify_s, ratio (verify_s /
compute_s), false_accept_bound (an output wrong in every row, or any wrong opened row:
|R|^-k_vectors), false_accept_bound_at_f (an output wrong in a fraction f of its rows:
(1 - f)^k_rows + |R|^-k_vectors), exact_gflops, float32_gflops and the parameters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from verifier import (  # noqa: E402
    MatmulAnswer,
    challenge_seed,
    decode_openings,
    derive_challenge,
    encode_openings,
    exact_matmul,
    judge_matmul,
    matmul_tree,
    prepare_matmul,
    spot_check_bound,
)


class Device:
    """The array module to run on, and how to wait for it (kernels' Backend if present)."""

    def __init__(self, name: str) -> None:
        try:
            from kernels.backend import get_backend
        except ImportError:
            if name == "cuda":
                raise SystemExit("--device cuda needs the kernels package") from None
            self.backend, self.xp, self.label = None, np, "cpu (numpy, no kernels)"
            return
        self.backend = get_backend(name)
        self.xp, self.label = self.backend.xp, self.backend.describe()

    def sync(self) -> None:
        if self.backend is not None:
            self.backend.synchronize()

    def to_host(self, a: Any) -> np.ndarray:
        return np.asarray(a) if self.xp is np else self.xp.asnumpy(a)


def local_int8_matmul(a: Any, b: Any, xp: ModuleType) -> Any:
    """Exact C = A @ B: float32 GEMMs over reduction chunks of 1024 (every partial sum
    <= 1024 * 2^14 = 2^24), chunk results accumulated in int64."""
    acc = xp.zeros((a.shape[0], b.shape[1]), dtype=xp.int64)
    for start in range(0, a.shape[1], 1024):
        stop = start + 1024
        acc += xp.matmul(a[:, start:stop].astype(xp.float32),
                         b[start:stop].astype(xp.float32)).astype(xp.int64)
    return acc


def exact_product(device: Device) -> Callable[[Any, Any], Any]:
    try:
        from kernels.matmul import int8_matmul
    except ImportError:
        return lambda a, b: local_int8_matmul(a, b, device.xp)
    return lambda a, b: int8_matmul(a, b, device.backend)


def timed(fn: Callable[[], Any], device: Device, runs: int) -> tuple[float, Any]:
    """(median seconds, last result) of `runs` calls, each waited for."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        device.sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def float32_gemm(af: Any, bf: Any, device: Device) -> Any:
    if device.xp is np:
        return np.matmul(af, bf)
    from kernels.matmul import exact_float32_gemm  # full IEEE float32, no TF32
    with exact_float32_gemm(device.xp):
        return device.xp.matmul(af, bf)


def time_provider(a: np.ndarray, b: np.ndarray, device: Device, runs: int
                  ) -> tuple[float, float, np.ndarray]:
    """(exact product seconds, float32 GEMM seconds, C on the host)."""
    xp = device.xp
    a_dev, b_dev = xp.asarray(a), xp.asarray(b)
    product = exact_product(device)
    compute_s, c_dev = timed(lambda: product(a_dev, b_dev), device, runs)
    af, bf = a_dev.astype(xp.float32), b_dev.astype(xp.float32)
    float32_s, _ = timed(lambda: float32_gemm(af, bf, device), device, runs)
    return compute_s, float32_s, device.to_host(c_dev)


def bench_size(n: int, device: Device, args: argparse.Namespace) -> dict[str, Any]:
    xp = device.xp
    rng = np.random.default_rng(n)
    a = rng.integers(-128, 128, size=(n, n), dtype=np.int8)
    b = rng.integers(-128, 128, size=(n, n), dtype=np.int8)
    runs = args.runs if n < 8192 or xp is not np else max(1, args.runs_8192)
    compute_s, float32_s, c = time_provider(a, b, device, runs)
    tree = matmul_tree(c, n)  # the provider's commitment, kept to open rows
    root = tree.root
    seed = challenge_seed(hashlib.sha256(b"a later block").digest(), root, b"verifier-0")
    params = (n, n, args.vectors, args.rows, args.entry_bits)
    challenge = derive_challenge(seed, *params)
    answer = encode_openings(tree.open(challenge.rows))
    y = exact_matmul(c.astype(np.float64), challenge.vectors, n << 14)  # C R, exact
    dtype = np.dtype(args.dtype)
    prepare_s, inputs = timed(lambda: prepare_matmul(a, b, dtype, xp), device, 1)
    with_a = prepare_matmul(a, b, dtype, xp, with_a=True)

    def verify(with_y: bool) -> bool:
        ch = derive_challenge(seed, *params)
        openings = decode_openings(answer, ch.k_rows, n * 8)
        verdict = judge_matmul(with_a if with_y else inputs, root,
                               MatmulAnswer(tuple(openings), y if with_y else None), ch)
        return verdict.valid

    verify_s, ok = timed(lambda: verify(False), device, args.verify_runs)
    verify_y_s, ok_y = timed(lambda: verify(True), device, args.verify_runs)
    if not (ok and ok_y):
        raise SystemExit(f"n={n}: the honest provider was rejected")
    flops = 2.0 * n ** 3
    return {
        "n": n, "device": device.label,
        "compute_s": round(compute_s, 4), "verify_s": round(verify_s, 5),
        "ratio": round(verify_s / compute_s, 5),
        "false_accept_bound": spot_check_bound(1.0, args.rows, args.entry_bits, args.vectors),
        "false_accept_bound_at_f": spot_check_bound(args.fraction, args.rows, args.entry_bits,
                                                    args.vectors, n_rows=n),
        "f": args.fraction,
        "exact_gflops": round(flops / compute_s / 1e9, 1),
        "float32_gflops": round(flops / float32_s / 1e9, 1),
        "float32_s": round(float32_s, 4), "prepare_s": round(prepare_s, 4),
        "ratio_with_prepare": round((prepare_s + verify_s) / compute_s, 5),
        "verify_y_s": round(verify_y_s, 5), "ratio_y": round(verify_y_s / compute_s, 5),
        "answer_bytes": len(answer), "k_vectors": args.vectors, "entry_bits": args.entry_bits,
        "k_rows": args.rows, "verifier_dtype": dtype.name, "runs": runs,
        "verify_runs": args.verify_runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[2048, 4096, 8192], help="comma-separated, e.g. 2048,4096")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--runs", type=int, default=3, help="product runs per size")
    parser.add_argument("--runs-8192", type=int, default=3,
                        help="product runs for n >= 8192 on the CPU (each takes seconds)")
    parser.add_argument("--verify-runs", type=int, default=7)
    parser.add_argument("--vectors", type=int, default=1, help="challenge vectors k")
    parser.add_argument("--entry-bits", type=int, default=32, help="|R| = 2^entry_bits")
    parser.add_argument("--rows", type=int, default=64, help="opened rows per verifier")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="the form the verifier keeps B in (float32: more digit columns)")
    parser.add_argument("--fraction", type=float, default=0.01,
                        help="corrupted-row fraction quoted in false_accept_bound_at_f")
    args = parser.parse_args()
    device = Device(args.device)
    for n in args.sizes:
        print(json.dumps(bench_size(n, device, args)), flush=True)


if __name__ == "__main__":
    main()
