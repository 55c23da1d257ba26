"""The compute market on real processes: 4 validators and 4 providers over libp2p.

One provider is honest; one commits a corrupted output, one answers challenges with rows
that do not match its commitment, one never computes. Each job is routed to one of them by
the chain's own assignment rule (cheapest provider under the job's carbon ceiling), the
validators on its committee check it, and the chain pays or slashes. The supply invariant
is checked on every node while it happens, and the honest output is downloaded through a
validator's API and checked against the committed root.
"""

from __future__ import annotations

import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from consensus.address import address_from_pubkey, to_bech32
from consensus.crypto import PrivateKey
from consensus.jobs import JobSpec
from consensus.market import JobStatus
from consensus.tx import SubmitJob, make_tx
from kernels.blobs import decode_array
from kernels.jobs import run_job
from tests.functional.framework import TestNetwork, wait_until
from verifier.jobs import commit_output

pytestmark = [pytest.mark.functional, pytest.mark.slow]
CHAIN = "jevons-ft"
STAKE = 200_000_000
SLASH_BPS = 5_000
FEE = 100
# provider: (price per unit, declared carbon, fault); a job with carbon ceiling c goes to
# the cheapest provider at or under c, so ceilings 100/200/300/0 pick them one by one.
PROVIDERS = {"honest": (40, 100, "none"), "corrupt": (30, 200, "corrupt"),
             "wrong": (20, 300, "wrong-answer"), "silent": (10, 400, "silent")}
CEILINGS = {"honest": 100, "corrupt": 200, "wrong": 300, "silent": 0}
FINAL = {s.name.lower() for s in JobStatus if s.is_final}


@pytest.fixture
def market_net(tmp_path: Path, request: pytest.FixtureRequest):
    net = TestNetwork(tmp_path, validators=4, full_nodes=len(PROVIDERS), accounts=2)
    for node, (price, carbon, fault) in zip(net.nodes[4:], PROVIDERS.values(), strict=True):
        path = node.home / "config.toml"
        config = tomllib.loads(path.read_text())
        config["provider"] |= {"price": price, "carbon": carbon, "fault": fault,
                               "stake": STAKE, "backend": "cpu"}
        path.write_text(tomli_w.dumps(config))
    yield net
    net.stop_all()
    call = getattr(request.node, "rep_call", None)
    if call is not None and call.failed:
        print(net.dump_logs())


def supply_holds(net: TestNetwork) -> None:
    for node in net.live():
        supply = node.get("/supply")
        assert supply["holds"], (node.name, supply)


def test_honest_paid_cheaters_slashed_supply_holds(market_net: TestNetwork) -> None:
    net = market_net
    net.start_all()
    net.wait_for_height(2)
    api = net.nodes[0]
    providers = {name: to_bech32(address_from_pubkey(_key(node).public))
                 for name, node in zip(PROVIDERS, net.nodes[4:], strict=True)}
    wait_until(lambda: len(api.get("/providers")["providers"]) == len(PROVIDERS), 90,
               "every provider registered")

    buyer_key = PrivateKey.from_seed(bytes.fromhex(net.accounts[0]["seed"]))
    buyer = to_bech32(address_from_pubkey(buyer_key.public))
    before = api.get(f"/accounts/{buyer}")
    specs, jobs = {}, {}
    for i, name in enumerate(PROVIDERS):
        spec = JobSpec("matmul-int8", (96, 256, 64), bytes([i + 1]) * 32)
        body = SubmitJob(spec, max_price=50, deadline_blocks=12, carbon_max=CEILINGS[name])
        tx = make_tx(buyer_key, CHAIN, body, before["nonce"] + i, FEE)
        status, reply = api.post("/txs", {"tx": tx.encode().hex()})
        assert status == 202, reply
        specs[name], jobs[name] = spec, tx.hash().hex()

    def settled() -> bool:
        supply_holds(net)
        return all(job_status(api, j) in FINAL for j in jobs.values())

    wait_until(settled, 180, "every job settled", interval=1.0)
    got = {name: api.get(f"/jobs/{job_id}") for name, job_id in jobs.items()}
    for name, job in got.items():
        assert job["provider"] == providers[name], (name, job)

    honest = got["honest"]
    units = specs["honest"].units
    payment = PROVIDERS["honest"][0] * units
    assert honest["status"] == "accepted", honest
    assert len(honest["verdicts"]) >= 3 and all(v["valid"] for v in honest["verdicts"])
    assert honest["refunded"] == honest["escrow"] - payment
    assert honest["reward"] > 0
    fees_to_voters = payment - honest["paid"]
    assert 0 <= fees_to_voters <= payment * 500 // 10_000 + len(honest["verdicts"])
    honest_provider = api.get(f"/providers/{providers['honest']}")
    assert honest_provider["jobs_accepted"] == 1 and honest_provider["stake"] == STAKE

    for name, status, outcome in (("corrupt", "rejected", "invalid_result"),
                                  ("wrong", "rejected", "invalid_result"),
                                  ("silent", "failed", "missed_deadline")):
        job = got[name]
        assert (job["status"], job["outcome"]) == (status, outcome), (name, job)
        assert job["refunded"] == job["escrow"] and job["paid"] == 0 and job["reward"] == 0
        assert job["slashed"] == STAKE * SLASH_BPS // 10_000
        provider = api.get(f"/providers/{providers[name]}")
        assert provider["stake"] == STAKE - job["slashed"], (name, provider)
        assert provider["jobs_accepted"] == 0
    assert any(not v["valid"] for v in got["corrupt"]["verdicts"])
    assert any("row" in v["reason"] for v in got["wrong"]["verdicts"] if not v["valid"])
    assert got["silent"]["root"] is None

    # The buyer paid exactly the honest job's price and four fees; the rest came back.
    after = api.get(f"/accounts/{buyer}")
    assert after["balance"] == before["balance"] - payment - len(jobs) * FEE

    market = {k["kernel"]: k for k in api.get("/market")["kernels"]}["matmul-int8"]
    assert (market["accepted"], market["rejected"], market["failed"]) == (1, 2, 1)
    assert market["price_index"] == PROVIDERS["honest"][0]
    assert market["acceptance_rate"] == 0.25

    # The honest output, fetched from the provider by a validator's node, proven row by
    # row, is the exact product; the root is recomputed here from the bytes.
    (output,) = wait_until(lambda: download(api, jobs["honest"]), 90, "the honest output",
                           interval=1.0)
    expected = run_job("matmul-int8", specs["honest"].dims, specs["honest"].seed)
    assert np.array_equal(output, expected)
    assert commit_output(specs["honest"], output).root.hex() == honest["root"]

    supply_holds(net)
    net.assert_same_chain(net.nodes[:4])


def download(node, job_id: str) -> tuple[np.ndarray] | None:
    """The job's output through `node`'s API; None on 502 (the provider's connection can
    be momentarily unusable under py-libp2p: the node answers 502 and a retry works)."""
    try:
        with urllib.request.urlopen(f"http://{node.api}/jobs/{job_id}/output",
                                    timeout=90) as resp:
            return (decode_array(resp.read()),)
    except urllib.error.HTTPError as exc:
        if exc.code == 502:
            return None
        raise


def job_status(node, job_id: str) -> str | None:
    """The job's status, or None while it is not on chain yet."""
    try:
        return node.get(f"/jobs/{job_id}")["status"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _key(node) -> PrivateKey:
    from node.keys import read_validator_key

    return read_validator_key(node.home / "keys" / "validator.json")
