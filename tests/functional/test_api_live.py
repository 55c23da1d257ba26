"""The HTTP API of real node processes: a 4-validator network on loopback (real libp2p,
real LevelDB, `jevons node start`), driven over sockets.

- a wallet's round trip: read status and the account, sign, submit with wait, read it back;
- /metrics follows the chain;
- schemathesis fuzzes node0's live API from the node's own /openapi.json (positive and
  negative data, a bounded number of examples per operation): no 5xx, every status code
  and body as documented, no crash (the node stays up and keeps finalizing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from consensus.address import address_from_pubkey, to_bech32
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.tx import make_transfer
from node.api.app import openapi
from tests.functional.framework import TestNetwork, wait_until

pytestmark = [pytest.mark.functional, pytest.mark.slow]
CHAIN = "jevons-ft"
FUZZ_EXAMPLES = int(os.environ.get("JEVONS_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNetwork]:
    net = TestNetwork(tmp_path_factory.mktemp("api"), validators=4)
    net.start_all()
    try:
        net.wait_for_height(2)
        yield net
    finally:
        net.stop_all()


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest, network: TestNetwork) -> Iterator[None]:
    yield
    call = getattr(request.node, "rep_call", None)  # set by tests/functional/conftest.py
    if call is not None and call.failed:
        print(network.dump_logs())


def test_a_wallet_round_trip_over_the_live_api(network: TestNetwork) -> None:
    node = network.nodes[1]
    status = node.get("/status")
    assert status["chain_id"] == CHAIN and status["peers"] == 3 and status["validator"]
    assert node.get("/params")["params"]["min_fee"] == status["min_fee"]
    validators = node.get("/validators")["validators"]
    assert len(validators) == 4 and sum(v["voting_share"] for v in validators) == 1

    key = PrivateKey.from_seed(bytes.fromhex(network.accounts[0]["seed"]))
    sender = to_bech32(address_from_pubkey(key.public))
    recipient = address_from_pubkey(sha256(b"api-live-recipient"))
    nonce = node.get(f"/accounts/{sender}")["nonce"]
    tx = make_transfer(key, CHAIN, recipient, 4_321, nonce, status["min_fee"])
    code, body = node.post("/txs", {"tx": tx.encode().hex(), "wait": True})
    assert code == 200 and body["status"] == "committed", body
    assert (body["to"], body["amount"], body["sender"]) == (to_bech32(recipient), 4_321, sender)

    other = network.nodes[2]
    wait_until(lambda: other.height() >= body["height"], 30, "the block on node2")
    assert other.get(f"/txs/{tx.hash().hex()}") == body
    assert tx.hash().hex() in other.get(f"/blocks/{body['height']}")["txs"]
    assert other.get(f"/accounts/{to_bech32(recipient)}")["balance"] == 4_321

    code, error = node.post("/txs", {"tx": tx.encode().hex()})
    assert code == 422 and error["error"] in {"nonce_reused", "duplicate"}, error
    code, error = node.post("/txs", ["not", "an", "object"])  # type: ignore[arg-type]
    assert code == 400 and error["error"] == "bad_request", error


def metrics_of(text: str) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels}


def test_metrics_follow_the_live_chain(network: TestNetwork) -> None:
    import urllib.request

    node = network.nodes[0]

    def scrape() -> dict[str, float]:
        with urllib.request.urlopen(f"http://{node.api}/metrics", timeout=5) as resp:
            assert resp.headers["content-type"].startswith("text/plain")
            return metrics_of(resp.read().decode())

    first = scrape()
    assert first["jevons_peers"] == 3 and first["jevons_validators"] == 4
    assert first["jevons_height"] >= 2
    wait_until(lambda: scrape()["jevons_height"] >= first["jevons_height"] + 2, 30,
               "two more blocks in /metrics")
    later = scrape()
    assert later["jevons_block_interval_seconds_count"] >= 1
    assert 0 < later["jevons_last_block_interval_seconds"] < 30


@pytest.fixture(scope="module")
def live_schema(network: TestNetwork) -> schemathesis.BaseSchema:
    """The document node0 serves (not the in-process one): what a client would read."""
    return schemathesis.openapi.from_url(f"http://{network.nodes[0].api}/openapi.json")


# Parametrized from the in-process document (the network does not run at collection time);
# each test then finds its operation in the served one. schemathesis' own pytest loader
# (`schemathesis.pytest.from_fixture`) fails under pytest 9 (it reads Function._nodeid), so
# each operation gets a plain Hypothesis test over `operation.as_strategy()`. Negative data
# only where there is something to make invalid (parameters or a body).
FUZZ_CASES = [
    pytest.param(f"{method.upper()} {path}", mode, id=f"{method.upper()} {path}-{mode.value}")
    for path, ops in sorted(openapi()["paths"].items()) for method, op in ops.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "parameters" in op or "requestBody" in op
]


@pytest.mark.parametrize(("label", "mode"), FUZZ_CASES)
def test_fuzz_the_live_api_from_its_own_openapi(live_schema: schemathesis.BaseSchema,
                                               label: str, mode: GenerationMode) -> None:
    operation = live_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served /openapi.json"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=10)

    fuzz()  # a failure prints its seed: replay with pytest --hypothesis-seed=N


def test_the_fuzzed_node_is_still_up_and_finalizing(network: TestNetwork) -> None:
    node = network.nodes[0]
    assert node.running()
    height = node.height()
    network.wait_for_height(height + 2, [node], timeout=30)
    assert "Traceback" not in node.log_text()
