"""Market jobs end to end without a network: run, commit, challenge, open, judge."""

from __future__ import annotations

import numpy as np
import pytest

from consensus.hashing import sha256
from consensus.jobs import MATMUL, MLP, JobSpec
from kernels.jobs import matmul_operands, run_job
from kernels.matmul import int8_matmul_reference
from verifier.commitment import Opening
from verifier.jobs import check_download, commit_output, job_challenge, judge_job, row_format

SPECS = [JobSpec(MATMUL, (48, 96, 40), b"\x01" * 32), JobSpec(MLP, (48, 32, 24, 16), b"\x02" * 32)]
RANDOMNESS = b"\x09" * 32
JOB_ID = b"\x0a" * 32


def challenge_for(spec: JobSpec, root: bytes, member: bytes = b"m" * 20):
    return job_challenge(spec, JOB_ID, RANDOMNESS, root, member, k_rows=8, k_vectors=2)


def test_matmul_job_is_the_exact_product_of_its_seeded_operands() -> None:
    spec = SPECS[0]
    a, b = matmul_operands(spec.seed, spec.dims)
    assert np.array_equal(run_job(spec.kernel, spec.dims, spec.seed), int8_matmul_reference(a, b))
    assert row_format(spec) == "i4"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kernel)
def test_honest_output_is_judged_valid(spec: JobSpec) -> None:
    output = run_job(spec.kernel, spec.dims, spec.seed)
    tree = commit_output(spec, output)
    challenge = challenge_for(spec, tree.root)
    verdict = judge_job(spec, tree.root, tree.open(challenge.rows), challenge)
    assert verdict.valid, verdict.reason


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kernel)
def test_output_corrupted_in_every_row_is_judged_invalid(spec: JobSpec) -> None:
    bad = run_job(spec.kernel, spec.dims, spec.seed).copy()
    bad[:, 0] ^= 1  # one entry per row, committed honestly to the wrong values
    tree = commit_output(spec, bad)
    challenge = challenge_for(spec, tree.root)
    verdict = judge_job(spec, tree.root, tree.open(challenge.rows), challenge)
    assert not verdict.valid and "row" in verdict.reason


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kernel)
def test_openings_that_do_not_match_the_commitment_are_invalid(spec: JobSpec) -> None:
    output = run_job(spec.kernel, spec.dims, spec.seed)
    tree = commit_output(spec, output)
    challenge = challenge_for(spec, tree.root)
    forged = [Opening(o.index, bytes(x ^ 1 for x in o.row_bytes), o.proof)
              for o in tree.open(challenge.rows)]
    verdict = judge_job(spec, tree.root, forged, challenge)
    assert not verdict.valid and "does not verify" in verdict.reason


def test_members_get_different_rows_and_the_root_changes_them() -> None:
    spec = SPECS[0]
    root = commit_output(spec, run_job(spec.kernel, spec.dims, spec.seed)).root
    a, b = challenge_for(spec, root, b"a" * 20), challenge_for(spec, root, b"b" * 20)
    assert a.rows != b.rows
    assert challenge_for(spec, b"\x00" * 32, b"a" * 20).rows != a.rows
    assert a.k_rows == 8 and a.k_vectors == 2
    assert challenge_for(SPECS[1], root).k_vectors == 0  # MLP rows are recomputed instead


def test_commit_output_refuses_the_wrong_shape() -> None:
    spec = SPECS[0]
    with pytest.raises(ValueError, match="shape"):
        commit_output(spec, np.zeros((spec.dims[0] + 1, spec.dims[2]), dtype=np.int64))


def test_download_check_names_the_first_bad_row() -> None:
    spec = SPECS[1]
    output = run_job(spec.kernel, spec.dims, spec.seed)
    tree = commit_output(spec, output)
    assert np.array_equal(check_download(spec, tree.root, tree.open(range(4, 9)), 4),
                          output[4:9])
    openings = tree.open(range(4, 9))
    openings[2] = Opening(6, bytes(len(openings[2].row_bytes)), openings[2].proof)
    with pytest.raises(ValueError, match="row 6"):
        check_download(spec, tree.root, openings, 4)
    with pytest.raises(ValueError, match="expected row 3"):
        check_download(spec, tree.root, tree.open(range(4, 9)), 3)


def test_output_store_saves_atomically_rebuilds_trees_and_prunes(tmp_path) -> None:
    from node.runtime.market import OutputStore

    spec = SPECS[0]
    output = run_job(spec.kernel, spec.dims, spec.seed)
    tree = commit_output(spec, output)
    store = OutputStore(tmp_path / "outputs")
    store.write(JOB_ID, output)
    store.remember(JOB_ID, tree)
    assert store.cached_tree(JOB_ID) is tree
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == [f"{JOB_ID.hex()}.jva"]
    fresh = OutputStore(tmp_path / "outputs")  # after a restart: rebuilt from the file
    assert fresh.cached_tree(JOB_ID) is None
    assert fresh.load_tree(JOB_ID, spec).root == tree.root
    assert fresh.load_tree(b"\x0b" * 32, spec) is None
    assert fresh.prune(lambda job_id: job_id != JOB_ID) == 1
    assert fresh.load_tree(JOB_ID, spec) is None and not list((tmp_path / "outputs").iterdir())


def test_a_provider_rebuilds_a_tree_off_the_loop_once_for_concurrent_requests(tmp_path) -> None:
    """After a restart (or for a job out of the 16 cached), the openings server rebuilds
    the tree from disk: on a worker thread, so the loop goes on, and once however many
    peers ask for that job at the same time."""
    import threading

    import trio

    from node.runtime.market import OutputStore, ProviderWorker

    spec = SPECS[0]
    output = run_job(spec.kernel, spec.dims, spec.seed)
    OutputStore(tmp_path / "outputs").write(JOB_ID, output)
    loads: list[int] = []

    class CountingStore(OutputStore):
        def load_tree(self, job_id, spec):
            loads.append(threading.get_ident())
            return super().load_tree(job_id, spec)

    store = CountingStore(tmp_path / "outputs")
    worker = ProviderWorker(None, None, None, None, store, "")
    roots = []

    async def ask() -> None:
        roots.append((await worker.tree(JOB_ID, spec, pinned=False)).root)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(ask)
        assert await worker.tree(b"\x0b" * 32, spec, pinned=False) is None

    trio.run(main)
    assert roots == [commit_output(spec, output).root] * 3
    assert len(loads) == 2  # the job once, the missing one once
    assert threading.get_ident() not in loads


@pytest.mark.parametrize("spec, name", [
    (JobSpec(MATMUL, (1, 65536, 65536), b"\x01" * 32), "B"),
    (JobSpec(MATMUL, (65536, 4096, 1), b"\x01" * 32), "A"),
    (JobSpec(MATMUL, (65536, 1, 2048), b"\x01" * 32), "the output"),
    (JobSpec(MLP, (1, 16, 65536, 65536, 8), b"\x02" * 32), "layer 1 weights"),
], ids=["B", "A", "output", "mlp-weights"])
def test_jobs_too_big_to_hold_in_memory_are_invalid(spec: JobSpec, name: str) -> None:
    """Consensus refuses jobs whose operands or output no provider or verifier could hold
    (they would otherwise crash nodes that tried)."""
    assert spec.problem().startswith(f"{name} would be")
    assert JobSpec(MATMUL, (8192, 8192, 8192), b"\x01" * 32).problem() == ""


def test_trees_of_open_jobs_stay_cached_whatever_peers_ask_for(tmp_path) -> None:
    """Peers may ask for the rows of every job the provider still keeps; the trees of jobs
    not settled yet (which verifiers need within their deadline) are pinned, not pushed
    out, until the job settles."""
    from node.runtime.market import TREE_CACHE, OutputStore

    spec = SPECS[0]
    tree = commit_output(spec, run_job(spec.kernel, spec.dims, spec.seed))
    store = OutputStore(tmp_path / "outputs")
    store.remember(JOB_ID, tree, pinned=True)
    for i in range(TREE_CACHE + 4):
        store.remember(sha256(b"old %d" % i), tree)
    assert store.cached_tree(JOB_ID) is tree
    store.unpin(lambda job_id: False)  # the job settled
    for i in range(TREE_CACHE):
        store.remember(sha256(b"older %d" % i), tree)
    assert store.cached_tree(JOB_ID) is None
