"""The wallet's market side without a network: job spec files (every bad field named),
provider terms, the job watcher and its display, result checking and atomic saving, and
the `jevons wallet job …` commands against a fake node (no network, nothing sent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from consensus.jobs import MAX_DIM, JobSpec
from consensus.tx import RegisterProvider, SubmitJob
from kernels.blobs import decode_array, encode_array
from kernels.jobs import run_job
from node.cli import wallet as cli
from node.wallet import jobspec, results, watch
from node.wallet.errors import ExitCode, JobFailed, TxRejected, WalletError
from node.wallet.jobspec import (
    DEFAULT_DEADLINE_BLOCKS,
    check_job_limits,
    eligible_providers,
    load_job_request,
    parse_job_request,
)
from node.wallet.provider import TermOptions, build_terms, parse_kernels, term_options
from node.wallet.txflow import check_affordable
from tests.unit.test_wallet_keystore import _plan
from verifier.commitment import row_dtype
from verifier.jobs import commit_output, row_format

SEED = "ab" * 32
GOOD = {"kernel": "matmul-int8", "dims": [8, 16, 4], "seed": SEED, "max_price": "20ujev",
        "deadline_blocks": 50, "carbon_max": 300}
PARAMS = {"max_job_units": 4, "max_job_deadline_blocks": 1_000, "min_provider_stake": 100,
          "max_provider_capacity": 64, "job_queue_blocks": 200}


def parse(doc: Any) -> jobspec.JobRequest:
    return parse_job_request(doc, "job spec s.json", new_seed=lambda: b"\x07" * 32)


# --- job spec files ---------------------------------------------------------------------

def test_a_good_spec_becomes_the_submit_job_body() -> None:
    request = parse(GOOD)
    assert request.body() == SubmitJob(JobSpec("matmul-int8", (8, 16, 4), bytes.fromhex(SEED)),
                                       20, 50, 300)
    assert (request.units, request.escrow, request.seed_generated) == (1, 20, False)
    minimal = parse({"kernel": "mlp-int8", "dims": [2, 8, 8, 4], "max_price": 3})
    assert minimal.spec.seed == b"\x07" * 32 and minimal.seed_generated
    assert (minimal.deadline_blocks, minimal.carbon_max) == (DEFAULT_DEADLINE_BLOCKS, 0)
    assert parse({**GOOD, "max_price": "0.00002jev"}).max_price == 20
    assert parse({**GOOD, "seed": SEED.upper()}).spec.seed == bytes.fromhex(SEED)


@pytest.mark.parametrize(("change", "expected"), [
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"kernel": None}, "field 'kernel' is missing"),
    ({"dims": None}, "field 'dims' is missing"),
    ({"max_price": None}, "field 'max_price' is missing"),
    ({"kernel": "conv-int8"}, "field 'kernel': unknown kernel 'conv-int8'"),
    ({"kernel": 7}, "field 'kernel': expected a kernel name, got 7"),
    ({"dims": [8, 16]}, "field 'dims': matmul-int8 takes 3 dimensions [m, k, n], got 2"),
    ({"dims": "8x16x4"}, "field 'dims': expected a list of integers"),
    ({"dims": [8, 16.0, 4]}, "field 'dims': expected a list of integers"),
    ({"dims": [8, True, 4]}, "field 'dims': expected a list of integers"),
    ({"dims": [8, 0, 4]}, f"field 'dims': every dimension must be in 1..{MAX_DIM}, got 0"),
    ({"dims": [8, MAX_DIM + 1, 4]}, "every dimension must be in"),
    ({"kernel": "mlp-int8", "dims": [8, 16]}, "field 'dims': mlp-int8 takes [batch, w0"),
    ({"seed": "abc"}, "field 'seed': expected 64 hex characters"),
    ({"seed": "zz" * 32}, "field 'seed': expected 64 hex characters"),
    ({"seed": 12}, "field 'seed': expected 64 hex characters"),
    ({"max_price": "20"}, "field 'max_price': expected integer ujev per unit (20) or a "
                          "string with a unit"),
    ({"max_price": 0}, "field 'max_price': 0 ujev per unit"),
    ({"max_price": 1.5}, "field 'max_price': expected integer ujev"),
    ({"max_price": "0.0000001jev"}, "field 'max_price': amount '0.0000001jev' is finer"),
    ({"deadline_blocks": 0}, "field 'deadline_blocks': 0 is outside at least 1"),
    ({"deadline_blocks": "50"}, "field 'deadline_blocks': expected an integer, got \"50\""),
    ({"carbon_max": -1}, "field 'carbon_max': -1 is outside 0..100000"),
    ({"carbon_max": 100_001}, "field 'carbon_max': 100001 is outside 0..100000"),
])
def test_every_bad_field_is_named(change: dict[str, Any], expected: str) -> None:
    doc = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(WalletError) as caught:
        parse(doc)
    message = str(caught.value)
    assert message.startswith("job spec s.json: ") and "\n" not in message
    assert expected in message, message
    assert caught.value.exit_code == ExitCode.ERROR


def test_all_problems_in_one_line() -> None:
    with pytest.raises(WalletError) as caught:
        parse({"kernel": "x", "dims": [0], "seed": "", "max_price": -1, "extra": 1})
    message = str(caught.value)
    for name in ("'extra'", "'kernel'", "'dims'", "'seed'", "'max_price'"):
        assert name in message, (name, message)
    with pytest.raises(WalletError, match="expected an object"):
        parse([1, 2, 3])


def test_escrow_overflow_is_refused() -> None:
    with pytest.raises(WalletError, match="field 'max_price': the escrow"):
        parse({**GOOD, "max_price": 2**62, "dims": [4096, 4096, 4096]})


def test_spec_files_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(GOOD))
    assert load_job_request(str(tmp_path / "a.json")).max_price == 20
    (tmp_path / "a.toml").write_text(
        f'kernel = "matmul-int8"\ndims = [8, 16, 4]\nseed = "{SEED}"\nmax_price = 20\n')
    assert load_job_request(str(tmp_path / "a.toml")).spec.dims == (8, 16, 4)
    (tmp_path / "bad.json").write_text('{"kernel": "matmul-int8",}')
    with pytest.raises(WalletError, match=r"bad.json is not valid JSON: .* line 1 column"):
        load_job_request(str(tmp_path / "bad.json"))
    (tmp_path / "bad.toml").write_text("kernel = \n")
    with pytest.raises(WalletError, match=r"bad.toml is not valid TOML"):
        load_job_request(str(tmp_path / "bad.toml"))
    with pytest.raises(WalletError, match=r"cannot read job spec .*absent.json"):
        load_job_request(str(tmp_path / "absent.json"))
    (tmp_path / "big.json").write_text(" " * (jobspec.MAX_SPEC_FILE_BYTES + 1))
    with pytest.raises(WalletError, match="is over"):
        load_job_request(str(tmp_path / "big.json"))


def test_chain_limits_from_params() -> None:
    check_job_limits(parse(GOOD), PARAMS, "job spec s.json")
    big = parse({**GOOD, "dims": [256, 256, 256], "deadline_blocks": 2_000})  # 16 units
    with pytest.raises(WalletError) as caught:
        check_job_limits(big, PARAMS, "job spec s.json")
    message = str(caught.value)
    assert "field 'dims': [256, 256, 256] is 16 units" in message
    assert "max_job_units = 4" in message
    assert "field 'deadline_blocks': 2000 is over the chain's max_job_deadline_blocks" in message


def test_eligible_providers_follow_the_assignment_rule() -> None:
    request = parse(GOOD)  # matmul, max price 20, carbon ceiling 300
    base = {"kernels": ["matmul-int8"], "price": 20, "carbon": 300, "stake": 100}
    assert eligible_providers(request, [base], 100) == [base]
    for change in ({"kernels": ["mlp-int8"]}, {"price": 21}, {"carbon": 301}, {"stake": 99}):
        assert eligible_providers(request, [{**base, **change}], 100) == [], change
    no_ceiling = parse({**GOOD, "carbon_max": 0})
    assert eligible_providers(no_ceiling, [{**base, "carbon": 5_000}], 100)


# --- provider terms ------------------------------------------------------------------------

ENDPOINT = "/ip4/127.0.0.1/tcp/26600/p2p/12D3KooWMrcujA86svnn5cMYNxMK5YR8G8y2KN11KHGj7s2DAqES"
CURRENT = {"address": "jev1x", "stake": 150, "kernels": ["matmul-int8"], "price": 10,
           "capacity": 4, "region": "eu", "carbon": 100, "endpoint": ENDPOINT}


def test_provider_terms_new_and_update() -> None:
    assert parse_kernels("mlp-int8, matmul-int8,mlp-int8") == ("matmul-int8", "mlp-int8")
    with pytest.raises(WalletError, match="unknown: conv"):
        parse_kernels("matmul-int8,conv")
    with pytest.raises(WalletError, match="--endpoint"):
        term_options(None, None, None, None, None, "/ip4/1.2.3.4/tcp/1", None)
    with pytest.raises(WalletError, match="--endpoint"):  # the chain refuses it too
        term_options(None, None, None, None, None, ENDPOINT + "/tcp/5", None)
    with pytest.raises(WalletError, match=r"--price: '1.5' needs a unit"):
        term_options(None, "1.5", None, None, None, None, None)
    new = term_options("mlp-int8", "12", 2, "us", 50, ENDPOINT, 100)
    assert build_terms(new, None, PARAMS) == RegisterProvider(
        100, ("mlp-int8",), 12, 2, "us", 50, ENDPOINT)
    with pytest.raises(WalletError, match="a new provider needs --carbon, --stake"):
        build_terms(TermOptions(("mlp-int8",), 1, 1, "us", None, ENDPOINT, None), None, PARAMS)
    update = build_terms(TermOptions(price=11), CURRENT, PARAMS)  # the rest as registered
    assert update == RegisterProvider(0, ("matmul-int8",), 11, 4, "eu", 100, ENDPOINT)
    assert term_options(None, "0.00001jev", None, None, None, None, None).price == 10


@pytest.mark.parametrize(("options", "expected"), [
    (TermOptions(capacity=65), "--capacity 65: the chain allows 1..64"),
    (TermOptions(capacity=0), "--capacity 0"),
    (TermOptions(carbon=100_001), "--carbon 100001"),
    (TermOptions(region=""), "--region ''"),
    (TermOptions(region="r" * 33), "--region"),
])
def test_provider_terms_checked_like_the_chain(options: TermOptions, expected: str) -> None:
    with pytest.raises(WalletError, match=expected):
        build_terms(options, CURRENT, PARAMS)


def test_a_new_bond_under_the_minimum_is_refused() -> None:
    new = term_options("mlp-int8", "12", 2, "us", 50, ENDPOINT, 99)
    with pytest.raises(WalletError, match=r"--stake: the bond would be .*\(99 ujev\).*min_"):
        build_terms(new, None, PARAMS)


def test_market_transactions_in_the_local_funds_check() -> None:
    job = parse(GOOD).body()
    check_affordable(_plan(job, 120))  # escrow 20 + fee 100
    with pytest.raises(TxRejected, match=r"\(escrow \+ fee\); short by .*\(1 ujev\)"):
        check_affordable(_plan(job, 119))
    terms = RegisterProvider(100, ("mlp-int8",), 1, 1, "r", 0, ENDPOINT)
    with pytest.raises(TxRejected, match=r"\(bond \+ fee\)"):
        check_affordable(_plan(terms, 199))
    plan = _plan(job, 120)
    assert plan.kind == "submit_job" and plan.amount == 20
    assert plan.to_json()["job"]["escrow"] == 20
    assert "escrow 0.00002 JEV (20 ujev)" in plan.describe()
    assert "bond unchanged" in _plan(RegisterProvider(0, ("mlp-int8",), 1, 1, "r", 0,
                                                      ENDPOINT), 500).describe()


# --- watching a job ----------------------------------------------------------------------------

def job_doc(status: str, **fields: Any) -> dict[str, Any]:
    doc = {"id": "cd" * 32, "status": status, "outcome": "", "units": 1, "escrow": 20,
           "submitted_height": 5, "provider": None, "root": None, "committee": [],
           "verdicts": [], "refunded": 0, "paid": 0, "reward": 0, "slashed": 0,
           "settled_height": 0, "price": 0}
    stages = {"assigned": 1, "committed": 2}
    reached = stages.get(status, 3 if status in ("accepted", "rejected", "failed") else 0)
    if reached >= 1:
        doc |= {"provider": "jev1provideraddress", "assigned_height": 6, "price": 10,
                "deadline_height": 56}
    if reached >= 2:
        doc |= {"root": "ef" * 32, "committed_height": 8, "committee": ["a", "b", "c"]}
    return doc | fields


def test_events_show_every_stage_passed_even_between_polls() -> None:
    accepted = job_doc("accepted", settled_height=12, refunded=10, paid=10, reward=10,
                       verdicts=[{"valid": True}] * 3)
    lines = watch.events(accepted)
    assert [line.split()[0] for line in lines] == ["queued", "assigned", "committed",
                                                   "accepted"]
    assert "cost 10 ujev" in lines[-1] and "verdicts 3/3 (3 valid)" in lines[-1]
    failed = job_doc("failed", outcome="missed_deadline", settled_height=57, refunded=20,
                     slashed=50, root=None)
    assert [line.split()[0] for line in watch.events(failed)] == ["queued", "assigned",
                                                                  "failed"]
    expired = job_doc("expired", outcome="no_provider", refunded=20)
    assert watch.events(expired)[-1].startswith("expired (no_provider)")
    assert "slashed" not in watch.events(expired)[-1]


def test_watch_polls_until_final_and_times_out() -> None:
    sequence = [None, job_doc("queued"), job_doc("queued"), job_doc("committed"),
                job_doc("accepted", settled_height=9)]
    shown: list[str] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    final = watch.watch_job(lambda: sequence.pop(0), "cd" * 32,
                            lambda _id, job: shown.append(job["status"]), sleep,
                            lambda: now[0], 1.0, None)
    assert final["status"] == "accepted" and not sequence
    assert shown == ["queued", "committed", "accepted"]  # unchanged documents not redrawn
    assert now[0] == 4.0
    with pytest.raises(WalletError, match="still assigned after 3 s; watch it again"):
        watch.watch_job(lambda: job_doc("assigned"), "cd" * 32, lambda *_: None, sleep,
                        lambda: now[0], 1.0, 3.0)


def test_failure_reasons() -> None:
    assert watch.failure("id", job_doc("accepted")) is None
    rejected = job_doc("rejected", outcome="invalid_result", refunded=20,
                       verdicts=[{"valid": False, "reason": "row 3 mismatch"},
                                 {"valid": True, "reason": ""}])
    error = watch.failure("id", rejected)
    assert isinstance(error, JobFailed) and error.exit_code == ExitCode.JOB_FAILED
    assert str(error) == ("job id rejected: invalid_result, refunded 20 ujev; invalid "
                          "verdicts: row 3 mismatch")


def test_progress_display_off_a_terminal_prints_each_stage_once(
        capfd: pytest.CaptureFixture[str]) -> None:
    with watch.progress_display() as show:
        show("cd" * 32, job_doc("queued"))
        show("cd" * 32, job_doc("committed"))  # assigned happened between the polls
        show("cd" * 32, job_doc("committed", verdicts=[{"valid": True}]))
        show("cd" * 32, job_doc("accepted", settled_height=9, verdicts=[{"valid": True}] * 3))
    lines = capfd.readouterr().err.splitlines()
    stages = [line.split()[2] for line in lines]
    assert stages == ["queued", "assigned", "committed", "committed", "accepted"], lines
    assert "verdicts 1/3 (1 valid)" in lines[3]


# --- results -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def honest() -> tuple[dict[str, Any], np.ndarray]:
    """An accepted job's document and its output as a download carries it (the row dtype
    of its commitment)."""
    spec = JobSpec("matmul-int8", (16, 32, 8), bytes.fromhex(SEED))
    rows = run_job(spec.kernel, spec.dims, spec.seed).astype(row_dtype(row_format(spec)))
    root = commit_output(spec, rows).root.hex()
    doc = job_doc("accepted", kernel=spec.kernel, dims=list(spec.dims), seed=SEED, root=root)
    return doc, rows


def test_an_output_is_kept_only_if_its_root_matches(
        tmp_path: Path, honest: tuple[dict[str, Any], np.ndarray]) -> None:
    doc, rows = honest
    output = results.check_output(doc, encode_array(rows), doc["root"])
    results.check_recompute(doc, output)
    assert results.save_output(tmp_path / "out.npy", output) == "npy"
    assert np.array_equal(np.load(tmp_path / "out.npy"), rows)
    assert results.save_output(tmp_path / "out.jva", output) == "jva"
    assert np.array_equal(decode_array((tmp_path / "out.jva").read_bytes()), rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jva", "out.npy"]  # no temps

    wrong = rows.copy()
    wrong[5, 1] += 1
    with pytest.raises(JobFailed, match=r"Merkle root .* is not the job's committed root"):
        results.check_output(doc, encode_array(wrong))
    with pytest.raises(JobFailed, match="differs from a local recomputation in 1 of 16 rows "
                                        r"\(first: row 5\)"):
        results.check_recompute(doc, wrong)
    with pytest.raises(JobFailed, match="output has shape"):
        results.check_output(doc, encode_array(rows[:4]))
    with pytest.raises(JobFailed, match="not a canonical array"):
        results.check_output(doc, b"nonsense")
    with pytest.raises(JobFailed, match="the node checked the output against root"):
        results.check_output(doc, encode_array(rows), "00" * 32)
    with pytest.raises(WalletError, match="does not exist"):
        results.save_output(tmp_path / "missing" / "out.npy", output)


@pytest.mark.parametrize(("status", "message"), [
    ("queued", "job is queued: no result"), ("assigned", "job is assigned: no result"),
    ("failed", "job is failed: no result"), ("expired", "job is expired: no result"),
    ("rejected", "job is rejected: its committee judged the committed output invalid")])
def test_no_result_without_an_acceptable_commitment(status: str, message: str) -> None:
    doc = job_doc(status, root=("ef" * 32 if status == "rejected" else None))
    with pytest.raises(JobFailed, match=message) as caught:
        results.check_has_result("id", doc)
    assert caught.value.exit_code == ExitCode.JOB_FAILED
    results.check_has_result("id", job_doc("committed"))


# --- the commands against a fake node -----------------------------------------------------------

class FakeNode:
    """Answers the client calls the job commands make; records whether anything was sent."""

    def __init__(self, job: dict[str, Any] | None = None, output: bytes = b"") -> None:
        self.job_doc, self.output, self.broadcasts = job, output, 0
        self.url = "http://fake"

    def __enter__(self) -> FakeNode:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def job(self, job_id: str) -> dict[str, Any] | None:
        return self.job_doc

    def tx(self, tx_hash: str) -> dict[str, Any] | None:
        return None

    def job_output(self, job_id: str) -> tuple[bytes, str]:
        return self.output, ""

    def broadcast(self, raw: bytes, wait: bool) -> dict[str, Any]:
        self.broadcasts += 1
        return {"status": "pending"}


def run_cli(monkeypatch: pytest.MonkeyPatch, node: FakeNode, *args: str) -> Any:
    monkeypatch.setattr(cli.Settings, "client", lambda self: node)
    return CliRunner().invoke(cli.wallet, list(args))


def test_job_result_writes_nothing_on_a_mismatch(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        honest: tuple[dict[str, Any], np.ndarray]) -> None:
    doc, rows = honest
    out = tmp_path / "out.npy"
    wrong = rows.copy()
    wrong[0, 0] ^= 1
    result = run_cli(monkeypatch, FakeNode(doc, encode_array(wrong)), "job", "result",
                     "cd" * 32, "--out", str(out))
    assert result.exit_code == 6 and "is not the job's committed root" in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []
    result = run_cli(monkeypatch, FakeNode(doc, encode_array(rows)), "job", "result",
                     "cd" * 32, "--out", str(out), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["format"] == "npy" and np.array_equal(np.load(out), rows)
    result = run_cli(monkeypatch, FakeNode(None), "job", "result", "cd" * 32, "--out", str(out))
    assert result.exit_code == 1 and "neither on chain nor pending" in result.output
    result = run_cli(monkeypatch, FakeNode(job_doc("failed")), "job", "result", "cd" * 32,
                     "--out", str(out))
    assert result.exit_code == 6 and "job is failed: no result" in result.output


def test_a_bad_spec_never_reaches_the_node(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({**GOOD, "dims": [8, 16]}))
    node = FakeNode()
    result = run_cli(monkeypatch, node, "--wallet-dir", str(tmp_path / "w"), "job", "submit",
                     "--from", "nobody", str(spec), "--yes")
    assert result.exit_code == 1 and "field 'dims'" in result.output
    assert node.broadcasts == 0
    for args in (["job", "status", "xyz"], ["job", "result", "xyz", "--out", "f"]):
        result = run_cli(monkeypatch, node, *args)
        assert result.exit_code == 1 and "job id 'xyz' must be 64 hex" in result.output


class Answers:
    """A client whose /jobs and /txs answers are scripted, one per call."""

    url = "http://fake"

    def __init__(self, jobs: list[dict[str, Any] | None],
                 txs: list[dict[str, Any] | None]) -> None:
        self.jobs, self.txs = jobs, txs

    def job(self, job_id: str) -> dict[str, Any] | None:
        return self.jobs.pop(0)

    def tx(self, tx_hash: str) -> dict[str, Any] | None:
        return self.txs.pop(0)


def test_find_job_tells_pending_from_unknown() -> None:
    submit = {"kind": "submit_job", "status": "pending"}
    assert watch.find_job(Answers([None], [submit]), "id") is None  # type: ignore[arg-type]
    # committed between the two reads: the job is read again
    raced = Answers([None, job_doc("queued")], [{**submit, "status": "committed"}])
    assert watch.find_job(raced, "id")["status"] == "queued"  # type: ignore[arg-type,index]
    with pytest.raises(WalletError, match="no job id on http://fake: neither on chain nor"):
        watch.find_job(Answers([None], [None]), "id")  # type: ignore[arg-type]
    with pytest.raises(WalletError, match="id is a transfer transaction, not a job"):
        watch.find_job(Answers([None], [{"kind": "transfer"}]), "id")  # type: ignore[arg-type]
