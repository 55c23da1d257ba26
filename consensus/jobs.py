"""Job specs: which kernel, what shape, which inputs, and how much work that is.

A job names an exact kernel and its dimensions; its inputs are generated from a 32-byte
seed by kernels.inputs (SHAKE128 streams), so every provider and verifier rebuilds the
same operands without the chain carrying them:

- ``matmul-int8``, dims ``(m, k, n)``: C = A @ B with A (m x k) and B (k x n) int8; the
  output's rows are C's m rows (int32 or int64 by k, see verifier.commitment).
- ``mlp-int8``, dims ``(batch, w0, w1, ..., wL)``: a quantized MLP with widths w0..wL run
  on a batch x w0 int8 input; the output's rows are the batch's int8 output rows.

Work is counted in multiply-accumulates (MACs) and priced in units of ``WORK_UNIT`` MACs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from consensus.codec import expect_array, expect_bytes, expect_int, expect_list, expect_str

MATMUL = "matmul-int8"
MLP = "mlp-int8"
KERNELS = (MATMUL, MLP)
WORK_UNIT = 1 << 20  # MACs per priced unit of work
SEED_LEN = 32
MAX_DIM = 1 << 16
MAX_MLP_LAYERS = 16
MAX_MATRIX_ELEMENTS = 1 << 26  # any operand or output: 8192 x 8192 (512 MiB as int64)
ENDPOINT_RE = re.compile(r"/(ip4|ip6|dns4|dns6|dns)/[0-9A-Za-z.:-]{1,253}/tcp/[0-9]{1,5}"
                         r"/p2p/[1-9A-HJ-NP-Za-km-z]{40,60}")


@dataclass(frozen=True, slots=True)
class JobSpec:
    kernel: str
    dims: tuple[int, ...]
    seed: bytes

    def to_fields(self) -> list:
        return [self.kernel, list(self.dims), self.seed]

    @classmethod
    def from_fields(cls, value: object) -> JobSpec:
        kernel, dims, seed = expect_list(value, 3, "job spec")
        return cls(expect_str(kernel, "job.kernel", 32),
                   tuple(expect_int(d, "job.dims", 0, 2**32)
                         for d in expect_array(dims, "job.dims", MAX_MLP_LAYERS + 2)),
                   expect_bytes(seed, "job.seed", SEED_LEN))

    def problem(self) -> str:
        """Why this spec is not a runnable job ("" if it is)."""
        if self.kernel not in KERNELS:
            return f"unknown kernel {self.kernel!r} (known: {', '.join(KERNELS)})"
        if any(not 1 <= d <= MAX_DIM for d in self.dims):
            return f"every dimension must be in 1..{MAX_DIM}, got {list(self.dims)}"
        if self.kernel == MATMUL and len(self.dims) != 3:
            return f"{MATMUL} takes dims (m, k, n), got {len(self.dims)} values"
        if self.kernel == MLP and not 3 <= len(self.dims) <= MAX_MLP_LAYERS + 2:
            return (f"{MLP} takes dims (batch, w0, ..., wL) with 1..{MAX_MLP_LAYERS} layers, "
                    f"got {len(self.dims)} values")
        for name, rows, cols in self.matrices():
            if rows * cols > MAX_MATRIX_ELEMENTS:
                return (f"{name} would be {rows} x {cols}: more than {MAX_MATRIX_ELEMENTS} "
                        "elements (providers and verifiers hold it in memory)")
        return ""

    def matrices(self) -> list[tuple[str, int, int]]:
        """(name, rows, cols) of every operand and of the output."""
        if self.kernel == MATMUL:
            m, k, n = self.dims
            return [("A", m, k), ("B", k, n), ("the output", m, n)]
        batch, widths = self.dims[0], self.dims[1:]
        return [("the input", batch, widths[0]),
                *((f"layer {i} weights", a, b) for i, (a, b) in enumerate(pairwise(widths))),
                ("the output", batch, widths[-1])]

    @property
    def macs(self) -> int:
        if self.kernel == MATMUL:
            m, k, n = self.dims
            return m * k * n
        batch, widths = self.dims[0], self.dims[1:]
        return batch * sum(a * b for a, b in pairwise(widths))

    @property
    def units(self) -> int:
        """Priced units of work, rounded up (at least 1)."""
        return max(1, -(-self.macs // WORK_UNIT))

    @property
    def output_rows(self) -> int:
        return self.dims[0]

    @property
    def output_cols(self) -> int:
        return self.dims[2] if self.kernel == MATMUL else self.dims[-1]


def endpoint_problem(endpoint: str) -> str:
    """Why a provider endpoint is not a dialable /ip4|ip6|dns*/HOST/tcp/PORT/p2p/ID
    multiaddr ("" if it is); checked on chain so no validator is handed a bad address."""
    if ENDPOINT_RE.fullmatch(endpoint) is None:
        return (f"endpoint {endpoint!r} must be /ip4/HOST/tcp/PORT/p2p/PEER_ID (or ip6, dns4, "
                "dns6, dns)")
    if not 1 <= int(endpoint.split("/tcp/")[1].split("/")[0]) <= 65535:
        return f"endpoint {endpoint!r}: port outside 1..65535"
    return ""


def kernel_list_problem(names: tuple[str, ...]) -> str:
    """Why a provider's kernel list is not canonical ("" if it is): at least one, sorted,
    distinct, every one known."""
    if not names:
        return "at least one kernel is required"
    if list(names) != sorted(set(names)):
        return f"kernels must be sorted and distinct, got {list(names)}"
    unknown = [n for n in names if n not in KERNELS]
    if unknown:
        return f"unknown kernel(s) {unknown} (known: {', '.join(KERNELS)})"
    return ""
