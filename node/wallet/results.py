"""A job's result, checked by the buyer before it is kept.

    job = client.job(job_id)                      # kernel, dims, seed, status, root
    data, _ = client.job_output(job_id)           # canonical array bytes (kernels.blobs)
    output = check_output(job, data)              # the Merkle root recomputed here
    check_recompute(job, output)                  # optional: the whole job run here
    save_output(path, output)                     # .npy or canonical bytes, atomically

The node serving the download already proved each row against the committed root, but the
wallet does not trust the node: it rebuilds the root from the bytes with
verifier.jobs.commit_output and compares it with the root on chain. numpy and the kernels
are imported only here, so other wallet commands do not pay for them.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consensus.jobs import JobSpec
from node.fsutil import atomic_write
from node.wallet.client import NodeClient
from node.wallet.errors import JobFailed, ProviderUnavailable, WalletError

if TYPE_CHECKING:
    import numpy as np

HAS_RESULT = ("committed", "accepted", "undecided")


def job_spec(job: dict[str, Any]) -> JobSpec:
    return JobSpec(job["kernel"], tuple(job["dims"]), bytes.fromhex(job["seed"]))


def check_has_result(job_id: str, job: dict[str, Any]) -> None:
    """JobFailed (exit 6) unless a root is committed and the committee did not reject it."""
    status = job.get("status")
    if status == "rejected":
        raise JobFailed(f"job is rejected: its committee judged the committed output "
                        f"invalid ({job.get('outcome')}); no result (escrow refunded)")
    if not job.get("root") or status not in HAS_RESULT:
        raise JobFailed(f"job is {status}: no result")


def download_output(client: NodeClient, job_id: str, attempts: int = 3) -> tuple[bytes, str]:
    """The output bytes and the node's root header; a provider the node could not reach is
    retried a few times (a libp2p stream to it can be momentarily unusable)."""
    for attempt in range(attempts):
        try:
            return client.job_output(job_id)
        except ProviderUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(2.0 * (attempt + 1))
    raise AssertionError("unreachable")


def check_output(job: dict[str, Any], data: bytes, header_root: str = "") -> np.ndarray:
    """The downloaded output, if its recomputed Merkle root is the job's committed root;
    JobFailed naming the first disagreement otherwise."""
    from kernels.blobs import decode_array
    from kernels.errors import InvalidBlob
    from verifier.jobs import commit_output

    try:
        output = decode_array(data)
    except InvalidBlob as exc:
        raise JobFailed(f"the node sent an output that is not a canonical array: {exc}") \
            from exc
    try:
        root = commit_output(job_spec(job), output).root.hex()
    except ValueError as exc:
        raise JobFailed(f"the downloaded output does not fit the job: {exc}") from exc
    if root != job["root"]:
        raise JobFailed(f"the downloaded output's Merkle root {root} is not the job's "
                        f"committed root {job['root']}: not saved")
    if header_root and header_root != job["root"]:
        raise JobFailed(f"the node checked the output against root {header_root}, the chain "
                        f"says {job['root']}: not saved")
    return output


def check_recompute(job: dict[str, Any], output: np.ndarray) -> None:
    """Run the whole job here (kernels.jobs.run_job on the CPU) and compare every value."""
    import numpy as np

    from kernels.jobs import run_job

    spec = job_spec(job)
    expected = run_job(spec.kernel, spec.dims, spec.seed)
    if expected.shape != output.shape:
        raise JobFailed(f"local recomputation has shape {expected.shape}, the output "
                        f"{output.shape}")
    bad_rows = np.flatnonzero((expected != output).any(axis=1))
    if bad_rows.size:
        raise JobFailed(f"the output differs from a local recomputation in {bad_rows.size} "
                        f"of {output.shape[0]} rows (first: row {int(bad_rows[0])}): not saved")


def output_format(path: Path) -> str:
    """'npy' for a FILE ending in .npy, else 'jva' (the canonical array bytes)."""
    return "npy" if path.suffix.lower() == ".npy" else "jva"


def save_output(path: Path, output: np.ndarray) -> str:
    """Write the output atomically (temp file beside it, fsync, rename, fsync the dir):
    NumPy's .npy format for *.npy, otherwise the canonical JVA1 bytes
    (kernels.blobs.decode_array reads them back). Returns the format written."""
    import numpy as np

    from kernels.blobs import encode_array

    fmt = output_format(path)
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, output, allow_pickle=False)
        data = buffer.getvalue()
    else:
        data = encode_array(output)
    if not path.parent.is_dir():
        raise WalletError(f"--out {path}: directory {path.parent} does not exist")
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise WalletError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return fmt
