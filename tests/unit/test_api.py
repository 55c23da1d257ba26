"""The HTTP API over a real node core: a ConsensusHost on a real LevelDB store, its services
on a real (peerless) libp2p node on loopback, blocks fed through the host's sync path; the
Starlette app is called over ASGI (the live-socket side is tests/functional/test_api_live).

Checks: the OpenAPI document matches the routes; every bad input gets its specific 4xx in
the error shape; submit -> pending -> committed round trips; batches; /metrics.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from consensus.address import to_bech32
from consensus.bft.engine import TimeoutConfig
from consensus.hashing import sha256
from node.api.app import build_app, openapi, routes_of
from node.api.txs import MAX_BODY_BYTES
from node.config import MempoolConfig
from node.p2p import P2PNode
from node.runtime.host import ConsensusHost, SyncedBlock
from node.runtime.services import NodeServices
from node.store.blockstore import BlockStore
from tests.unit.helpers import DEV_STAKE, USER_BALANCE, Chain, addr, make_net

DEV_VALIDATORS = (DEV_STAKE,) * 4


@dataclass
class ApiNode:
    client: httpx.AsyncClient
    host: ConsensusHost
    chain: Chain  # the same chain, built beside the node: blocks to feed it
    app: Any

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, body: Any = None, content: bytes | None = None
                   ) -> httpx.Response:
        if content is not None:
            return await self.client.post(path, content=content)
        return await self.client.post(path, json=body)

    async def commit_block(self, txs: list[bytes] = ()) -> None:
        """Build the next block beside the node, certify it with every validator's
        precommit and hand it to the host's sync path; wait until it is committed."""
        block = self.chain.build(list(txs))
        self.chain.accept(block)
        await self.host.submit(SyncedBlock(block, self.chain.last_commit))
        with trio.fail_after(10):
            while self.host.height < block.height:
                await self.host.progress.wait()


@contextlib.asynccontextmanager
async def api_node(tmp: Path, label: str = "api", mempool: MempoolConfig | None = None,
                   chain: Chain | None = None) -> AsyncIterator[ApiNode]:
    chain = chain or Chain(make_net(DEV_VALIDATORS, label=label))
    net = chain.net
    with BlockStore.open(tmp / f"{label}-chain") as store:
        store.init_genesis(net.genesis.hash(), net.genesis.initial_state())
        p2p = P2PNode(sha256(label.encode()), "/ip4/127.0.0.1/tcp/0")
        host = ConsensusHost(store, p2p, net.validator_keys[0], None, tmp / f"{label}.wal",
                             TimeoutConfig(), mempool=mempool)
        services = NodeServices(host, p2p)
        services.install()
        try:
            async with p2p.running(), trio.open_nursery() as nursery:
                await nursery.start(host.run)
                app = build_app(services, {"moniker": label, "role": "full",
                                           "peer_id": p2p.peer_id})
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                    yield ApiNode(c, host, chain, app)
                nursery.cancel_scope.cancel()
        finally:
            host.close()


def run_with_node(tmp: Path, test: Callable[[ApiNode], Awaitable[None]]) -> None:
    async def main() -> None:
        async with api_node(tmp) as node:
            await test(node)

    trio.run(main)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, (status, response.status_code, body)
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


# --- the document ---------------------------------------------------------------------------


def test_openapi_document_names_every_route_and_documents_every_refusal(tmp_path: Path) -> None:
    async def check(node: ApiNode) -> None:
        served = (await node.get("/openapi.json")).json()
        assert served == json.loads(json.dumps(openapi()))
        documented = {(m.upper(), p) for p, ops in served["paths"].items() for m in ops}
        assert documented == set(routes_of(node.app))
        for path, ops in served["paths"].items():
            for method, op in ops.items():
                names = re.findall(r"{(\w+)}", path)
                assert [p["name"] for p in op.get("parameters", [])] == names, (path, method)
                codes = set(op["responses"])
                if names or "requestBody" in op:
                    assert "400" in codes, (path, method)
                assert "500" in codes
                for code, reply in op["responses"].items():
                    if code.startswith(("4", "5")):
                        schema = reply["content"]["application/json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/Error"}, (path, code)
        refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(served)))
        assert refs <= set(served["components"]["schemas"])

    run_with_node(tmp_path, check)


def test_the_document_loads_in_schemathesis() -> None:
    schemathesis = pytest.importorskip("schemathesis")
    schema = schemathesis.openapi.from_dict(openapi())
    labels = [result.ok().label for result in schema.get_all_operations()]
    assert "POST /txs" in labels and "GET /blocks/{height}" in labels


# --- reads ----------------------------------------------------------------------------------


def test_status_params_validators_and_accounts_read_the_node(tmp_path: Path) -> None:
    async def check(node: ApiNode) -> None:
        genesis = node.chain.net.genesis
        status = (await node.get("/status")).json()
        assert status["chain_id"] == genesis.chain_id and status["height"] == 0
        assert status["min_fee"] == genesis.params.min_fee
        assert status["genesis_hash"] == genesis.hash().hex() == status["tip"]
        assert status["validator"] is True and status["peers"] == 0
        assert status["moniker"] == "api" and status["catching_up"] is False

        params = (await node.get("/params")).json()
        assert params["params"] == genesis.params.to_dict()
        assert (params["denom"], params["decimals"]) == ("ujev", 6)

        validators = (await node.get("/validators")).json()
        assert validators["height"] == 1 and validators["total_stake"] == 4 * DEV_STAKE
        assert [v["voting_share"] for v in validators["validators"]] == [0.25] * 4
        keys = {k.public.hex() for k in node.chain.net.validator_keys}
        assert {v["pubkey"] for v in validators["validators"]} == keys

        user = node.chain.net.user_keys[0]
        account = (await node.get(f"/accounts/{to_bech32(addr(user))}")).json()
        assert account["balance"] == USER_BALANCE
        assert account["nonce"] == 0 and account["stake"] == 0
        validator = to_bech32(addr(node.chain.net.validator_keys[1]))
        assert (await node.get(f"/accounts/{validator.upper()}")).json()["stake"] == DEV_STAKE
        nobody = (await node.get(f"/accounts/{to_bech32(bytes(20))}")).json()
        assert (nobody["balance"], nobody["nonce"], nobody["unbonding"]) == (0, 0, [])

    run_with_node(tmp_path, check)


BAD_GETS = [
    ("/blocks/abc", 400, "bad_height"),
    ("/blocks/0", 400, "bad_height"),
    ("/blocks/-1", 400, "bad_height"),
    ("/blocks/1.5", 400, "bad_height"),
    ("/blocks/" + "9" * 40, 400, "bad_height"),
    ("/blocks/9223372036854775808", 400, "bad_height"),
    ("/blocks/9223372036854775807", 404, "not_found"),
    ("/blocks/1", 404, "not_found"),
    ("/blocks/latest", 404, "not_found"),
    ("/accounts/xyz", 400, "bad_address"),
    ("/accounts/" + "a" * 91, 400, "bad_address"),
    ("/accounts/jev1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", 400, "bad_address"),
    ("/accounts/cosmos1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", 400, "bad_address"),
    ("/txs/zz", 400, "bad_hash"),
    ("/txs/abcd", 400, "bad_hash"),
    ("/txs/" + "0" * 64 + "%0A", 400, "bad_hash"),
    ("/txs/" + "0" * 65, 400, "bad_hash"),
    ("/txs/" + "0" * 64, 404, "not_found"),
    ("/nothing", 404, "not_found"),
    ("/accounts/", 404, "not_found"),
    ("/status/", 404, "not_found"),
]


def test_every_bad_path_parameter_is_a_specific_4xx(tmp_path: Path) -> None:
    async def check(node: ApiNode) -> None:
        for path, status, code in BAD_GETS:
            assert_error(await node.get(path), status, code)
        assert_error(await node.client.delete("/status"), 405, "method_not_allowed")
        assert_error(await node.client.put("/txs"), 405, "method_not_allowed")

    run_with_node(tmp_path, check)


BAD_POSTS: list[tuple[bytes, int, str]] = [
    (b"", 400, "bad_json"),
    (b"not json", 400, "bad_json"),
    (b"\xff\xfe", 400, "bad_json"),
    (b"[" * 100_000, 400, "bad_json"),
    (b'{"tx": 1' + b"0" * 5000 + b"}", 400, "bad_json"),
    (b"[1, 2]", 400, "bad_request"),
    (b'["txs"]', 400, "bad_request"),
    (b'"txs"', 400, "bad_request"),
    (b"null", 400, "bad_request"),
    (b"{}", 400, "bad_request"),
    (b'{"tx": 5}', 400, "bad_request"),
    (b'{"tx": null}', 400, "bad_request"),
    (b'{"tx": ["00"]}', 400, "bad_request"),
    (b'{"tx": "00", "wait": 1}', 400, "bad_request"),
    (b'{"tx": "00", "wait": "yes"}', 400, "bad_request"),
    (b'{"tx": "00", "extra": 1}', 400, "bad_request"),
    (b'{"tx": "00", "txs": ["00"]}', 400, "bad_request"),
    (b'{"txs": "00"}', 400, "bad_request"),
    (b'{"txs": []}', 400, "bad_request"),
    (b'{"txs": {"0": "00"}}', 400, "bad_request"),
    (b'{"txs": [1]}', 400, "bad_request"),
    (json.dumps({"txs": ["00"] * 2001}).encode(), 400, "bad_request"),
    (b'{"tx": "zz"}', 400, "bad_tx"),
    (b'{"tx": "abc"}', 400, "bad_tx"),
    (b'{"tx": " 00"}', 400, "bad_tx"),
    (b'{"tx": "\\u0660\\u0660"}', 400, "bad_tx"),
    (json.dumps({"tx": "00" * 70_000}).encode(), 400, "bad_tx"),
    (b'{"txs": ["00", "0"]}', 400, "bad_tx"),
    (b'{"tx": ""}', 422, "malformed"),
    (b'{"tx": "00"}', 422, "malformed"),
    (b'{"txs": ["00", "c0"]}', 422, "all_rejected"),
    (b" " * (MAX_BODY_BYTES + 1), 413, "too_large"),
]


def test_every_bad_submission_is_a_specific_4xx(tmp_path: Path) -> None:
    async def check(node: ApiNode) -> None:
        for content, status, code in BAD_POSTS:
            body = assert_error(await node.post("/txs", content=content), status, code)
            if code == "all_rejected":
                assert body["accepted"] == 0
                assert [r["error"] for r in body["rejected"]] == ["malformed", "malformed"]
        assert len(node.host.mempool) == 0

    run_with_node(tmp_path, check)


# --- writes ---------------------------------------------------------------------------------


def test_a_transfer_goes_pending_then_committed(tmp_path: Path) -> None:
    async def check(node: ApiNode) -> None:
        chain = node.chain
        alice, bob = chain.net.user_keys[:2]
        raw = chain.transfer(alice, addr(bob), 1_234).encode()
        tx_hash = sha256(raw).hex()

        reply = await node.post("/txs", {"tx": raw.hex()})
        assert reply.status_code == 202 and reply.json() == {"hash": tx_hash,
                                                             "status": "pending"}
        pending = (await node.get(f"/txs/{tx_hash.upper()}")).json()
        assert pending["status"] == "pending" and pending["kind"] == "transfer"
        assert (pending["to"], pending["amount"]) == (to_bech32(addr(bob)), 1_234)
        assert pending["sender"] == to_bech32(addr(alice))
        assert_error(await node.post("/txs", {"tx": raw.hex()}), 422, "duplicate")
        other_chain = chain.transfer(alice, addr(bob), 1, nonce=1, chain_id="elsewhere")
        assert_error(await node.post("/txs", {"tx": other_chain.encode().hex()}), 422,
                     "wrong_chain_id")

        await node.commit_block([raw])
        committed = (await node.get(f"/txs/{tx_hash}")).json()
        assert committed == {**pending, "status": "committed", "height": 1, "index": 0}
        block = (await node.get("/blocks/1")).json()
        assert block["txs"] == [tx_hash] and block["tx_count"] == 1
        assert (await node.get("/blocks/latest")).json() == block
        assert block["hash"] == (await node.get("/status")).json()["tip"]
        account = (await node.get(f"/accounts/{to_bech32(addr(bob))}")).json()
        assert account["balance"] == chain.balance_of(addr(bob))
        assert (await node.get(f"/accounts/{to_bech32(addr(alice))}")).json()["nonce"] == 1

    run_with_node(tmp_path, check)


def test_wait_answers_when_the_transfer_is_committed(tmp_path: Path) -> None:
    async def check(node: ApiNode) -> None:
        alice, bob = node.chain.net.user_keys[:2]
        raw = node.chain.transfer(alice, addr(bob), 77).encode()
        replies: list[httpx.Response] = []

        async def submit() -> None:
            replies.append(await node.post("/txs", {"tx": raw.hex(), "wait": True}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit)
            with trio.fail_after(10):
                while sha256(raw) not in node.host.mempool:
                    await trio.sleep(0.01)
            assert not replies  # still waiting
            await node.commit_block([raw])
        assert replies[0].status_code == 200, replies[0].json()
        body = replies[0].json()
        assert (body["status"], body["height"], body["amount"]) == ("committed", 1, 77)

    run_with_node(tmp_path, check)


def test_a_batch_reports_each_rejection_by_index(tmp_path: Path) -> None:
    async def check(node: ApiNode) -> None:
        chain = node.chain
        alice, bob, carol = chain.net.user_keys
        good = [chain.transfer(alice, addr(bob), 1, nonce=n).encode() for n in range(3)]
        low_fee = chain.transfer(carol, addr(bob), 1, fee=0).encode()
        reply = await node.post("/txs", {"txs": [good[0].hex(), low_fee.hex(), good[1].hex(),
                                                 good[0].hex(), good[2].hex()]})
        assert reply.status_code == 202
        assert reply.json()["accepted"] == 3
        assert [(r["index"], r["error"]) for r in reply.json()["rejected"]] == [
            (1, "fee_too_low"), (3, "duplicate")]
        assert len(node.host.mempool) == 3

    run_with_node(tmp_path, check)


def test_a_full_mempool_answers_503_and_refuses_a_batch_before_verifying_it(
        tmp_path: Path) -> None:
    """Four txs at most, so one may wait for a missing nonce: a second such tx is refused
    (queue_full), a ready tx evicts it, and a mempool full of ready txs refuses everything
    with 503, a batch before any signature is checked (a forged tx is refused as
    mempool_full, not bad_tx_signature)."""
    async def check(node: ApiNode) -> None:
        chain = node.chain
        alice, bob, carol = chain.net.user_keys
        gapped = [chain.transfer(carol, addr(bob), 1, nonce=n).encode() for n in (3, 5, 7)]
        reply = await node.post("/txs", {"txs": [gapped[0].hex(), gapped[1].hex()]})
        assert reply.status_code == 202, reply.json()
        assert reply.json()["rejected"][0]["error"] == "queue_full"
        assert (await node.get("/status")).json()["mempool_queued"] == 1
        assert_error(await node.post("/txs", {"tx": gapped[2].hex()}), 503, "queue_full")
        ready = [chain.transfer(alice, addr(bob), 1, nonce=n).encode() for n in range(4)]
        reply = await node.post("/txs", {"txs": [r.hex() for r in ready]})
        assert reply.json() == {"accepted": 4, "rejected": []}
        status = (await node.get("/status")).json()
        assert (status["mempool"], status["mempool_queued"]) == (4, 0)
        forged = bytearray(chain.transfer(bob, addr(alice), 1, nonce=1).encode())
        forged[-1] ^= 1
        batch = [chain.transfer(bob, addr(alice), 1).encode(), bytes(forged)]
        body = assert_error(await node.post("/txs", {"txs": [t.hex() for t in batch]}),
                            503, "mempool_full")
        assert [(r["index"], r["error"]) for r in body["rejected"]] == [
            (0, "mempool_full"), (1, "mempool_full")]
        assert_error(await node.post("/txs", {"tx": batch[0].hex()}), 503, "mempool_full")
        assert len(node.host.mempool) == 4

    async def main() -> None:
        async with api_node(tmp_path, mempool=MempoolConfig(max_txs=4)) as node:
            await check(node)

    trio.run(main)


def test_output_downloads_are_bounded_and_a_failed_one_gives_its_slot_back(
        tmp_path: Path) -> None:
    """Each download holds a whole output in memory: past MAX_DOWNLOADS at once the node
    answers 503 busy at once; a download that fails (the provider's endpoint is closed
    here) gives its slot back."""
    from node.api.routing import MAX_DOWNLOADS
    from tests.unit.market_helpers import MarketChain, make_market_net

    async def main() -> None:
        chain = MarketChain(make_market_net(label="api-output"))
        async with api_node(tmp_path, chain=chain) as node:
            provider, buyer = chain.providers[0], chain.buyers[0]
            await node.commit_block([chain.register(provider)])
            submit = chain.submit(buyer)
            await node.commit_block([submit])
            job = sha256(submit).hex()
            await node.commit_block([chain.commit_result(provider, sha256(submit))])
            assert (await node.get(f"/jobs/{job}")).json()["status"] == "committed"
            downloads = node.app.state.api.downloads
            for _ in range(MAX_DOWNLOADS):
                downloads.acquire_nowait()
            body = assert_error(await node.get(f"/jobs/{job}/output"), 503, "busy")
            assert f"{MAX_DOWNLOADS} output downloads" in body["message"]
            downloads.release()
            assert_error(await node.get(f"/jobs/{job}/output"), 502, "provider_unavailable")
            assert downloads.value == 1

    trio.run(main)


# --- metrics --------------------------------------------------------------------------------


def scrape(text: str) -> dict[str, float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def test_metrics_follow_the_chain_and_expose_the_market_hooks(tmp_path: Path) -> None:
    async def check(node: ApiNode) -> None:
        alice, bob = node.chain.net.user_keys[:2]
        raws = [node.chain.transfer(alice, addr(bob), 5, nonce=n).encode() for n in range(3)]
        await node.commit_block(raws[:1])
        await node.commit_block(raws[1:])
        await node.commit_block()
        await node.get("/blocks/abc")
        metrics = node.app.state.api.metrics
        metrics.set_jobs_by_state({"queued": 2, "assigned": 1})
        metrics.set_jobs_by_state({"queued": 1})
        metrics.count_verification("valid", 3)
        metrics.count_verification("invalid")

        reply = await node.get("/metrics")
        assert reply.status_code == 200 and reply.headers["content-type"].startswith(
            "text/plain")
        m = scrape(reply.text)
        assert (m["jevons_height"], m["jevons_txs_committed_total"]) == (3, 3)
        assert m["jevons_peers"] == 0 and m["jevons_mempool_txs"] == 0
        assert (m["jevons_validators"], m["jevons_is_validator"]) == (4, 1)
        # blocks are 1 s apart (header times): blocks 2 and 3 each observe one interval
        assert m["jevons_block_interval_seconds_count"] == 2
        assert m["jevons_block_interval_seconds_sum"] == 2.0
        assert m["jevons_last_block_interval_seconds"] == 1.0
        assert m["jevons_block_interval_seconds_bucket{le=1.0}"] == 2
        assert (m["jevons_jobs{state=queued}"], m["jevons_jobs{state=assigned}"]) == (1, 0)
        assert m["jevons_verifications_total{outcome=valid}"] == 3
        assert m["jevons_verifications_total{outcome=invalid}"] == 1
        assert m["jevons_api_requests_total{operation=getBlock,status=400}"] == 1

        openmetrics = await node.client.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")

    run_with_node(tmp_path, check)


def test_two_nodes_in_one_process_keep_separate_metrics(tmp_path: Path) -> None:
    async def main() -> None:
        async with api_node(tmp_path, "one") as one, api_node(tmp_path, "two") as two:
            await one.commit_block()
            for _ in range(3):
                await one.get("/status")
            await two.get("/status")
            a = scrape((await one.get("/metrics")).text)
            b = scrape((await two.get("/metrics")).text)
            assert (a["jevons_height"], b["jevons_height"]) == (1, 0)
            key_ = "jevons_api_requests_total{operation=getStatus,status=200}"
            assert (a[key_], b[key_]) == (3, 1)

    trio.run(main)


@pytest.mark.parametrize("client_gone", [False, True])
def test_a_download_holds_its_slot_until_the_body_is_sent(client_gone: bool) -> None:
    """The encoded output stays in memory while it streams: the slot is given back when
    the response has been sent, or when sending failed (the client went away)."""
    from node.api.market import HeldResponse

    async def main() -> None:
        slot = trio.Semaphore(1)
        slot.acquire_nowait()
        response = HeldResponse(slot, b"\x00" * 1000, media_type="application/octet-stream")
        sent: list[dict] = []

        async def send(message: dict) -> None:
            assert slot.value == 0  # still held while the body goes out
            if client_gone and message["type"] == "http.response.body":
                raise OSError("client went away")
            sent.append(message)

        async def receive() -> dict:
            await trio.sleep_forever()

        if client_gone:
            with pytest.raises(OSError):
                await response({"type": "http"}, receive, send)
        else:
            await response({"type": "http"}, receive, send)
            assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert slot.value == 1

    trio.run(main)
