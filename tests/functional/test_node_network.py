"""Validators on real processes: finality, transfers, crashes, halts, late joiners.

Each test builds its own network with `jevons testnet` and runs `jevons node start` per
node. Safety is checked by comparing block hashes at every height across nodes.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from consensus.address import address_from_pubkey, to_bech32
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.tx import make_transfer
from tests.functional.framework import TestNetwork, wait_until

pytestmark = [pytest.mark.functional, pytest.mark.slow]
CHAIN = "jevons-ft"


@pytest.fixture
def network(tmp_path: Path, request: pytest.FixtureRequest):
    params = getattr(request, "param", {})
    net = TestNetwork(tmp_path, **params)
    yield net
    net.stop_all()
    call = getattr(request.node, "rep_call", None)  # set by tests/functional/conftest.py
    if call is not None and call.failed:
        print(net.dump_logs())  # shown by pytest with the failure


def send_transfer(net: TestNetwork, node_index: int, amount: int, wait: bool = True) -> tuple:
    key = PrivateKey.from_seed(bytes.fromhex(net.accounts[0]["seed"]))
    sender = to_bech32(address_from_pubkey(key.public))
    recipient = address_from_pubkey(sha256(b"recipient-%d" % amount))
    node = net.nodes[node_index]
    nonce = node.get(f"/accounts/{sender}")["nonce"]
    tx = make_transfer(key, CHAIN, recipient, amount, nonce, 100)
    status, body = node.post("/txs", {"tx": tx.encode().hex(), "wait": wait})
    return status, body, to_bech32(recipient)


def no_double_signing(net: TestNetwork) -> None:
    for node in net.nodes:
        text = node.log_text()
        assert "equivocated" not in text, node.name
        assert "DoubleSignRefused" not in text and "refused to sign" not in text, node.name
        assert "Traceback" not in text, node.name


@pytest.mark.parametrize("network", [{"validators": 4, "full_nodes": 1}], indirect=True)
def test_finality_transfer_crash_restart_and_late_joiner(network: TestNetwork) -> None:
    net = network
    validators = net.nodes[:4]
    net.start_all(4)
    net.wait_for_height(2, validators)

    status, body, recipient = send_transfer(net, 0, 12_345)
    assert status == 200 and body["status"] == "committed", body
    wait_until(lambda: all(n.get(f"/accounts/{recipient}")["balance"] == 12_345
                           for n in validators), 30, "the transfer on every validator")

    # kill -9 one validator: the other three keep finalizing
    victim = validators[3]
    victim.kill()
    others = validators[:3]
    h = max(n.height() for n in others)
    net.wait_for_height(h + 3, others)
    # restarted, it catches up and rejoins: no fork, no double sign
    victim.start()
    target = max(n.height() for n in others) + 2
    net.wait_for_height(target, validators)
    net.assert_same_chain(validators)

    # a new full node joining at height >= 50 syncs to the tip
    net.wait_for_height(50, validators, timeout=180)
    late = net.nodes[4]
    late.start()
    tip = max(n.height() for n in validators)
    net.wait_for_height(tip, [late], timeout=120)
    assert net.assert_same_chain() >= 50
    no_double_signing(net)
    # block pacing: each proposer waits timeout_commit_ms (default 300) after the last
    # commit before building, so blocks are not made back to back (a median over 40
    # blocks: a proposer that just restarted has no commit to wait from)
    times = [validators[0].get(f"/blocks/{h}")["time_ms"] for h in range(10, 51)]
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    assert gaps[len(gaps) // 2] >= 300, gaps


def test_two_of_four_down_halts_without_fork_then_resumes(network: TestNetwork) -> None:
    net = network
    net.start_all()
    net.wait_for_height(2)
    net.nodes[2].kill()
    net.nodes[3].kill()
    survivors = net.nodes[:2]
    halted_at = max(n.height() for n in survivors)
    # without a 2/3 quorum nothing can be decided: watch for a few round timeouts
    with pytest.raises(AssertionError, match="timed out"):
        wait_until(lambda: max(n.height() for n in survivors) > halted_at + 1, 4.0,
                   "progress without a quorum")
    net.assert_same_chain(survivors)
    net.nodes[2].start()
    net.wait_for_height(halted_at + 2, net.nodes[:3], timeout=90)
    net.assert_same_chain(net.nodes[:3])
    no_double_signing(net)


def test_hostile_peer_is_ignored_and_the_network_keeps_finalizing(
        network: TestNetwork) -> None:
    import json
    import subprocess
    import sys

    from node.home import open_home
    from node.keys import peer_id_from_seed

    net = network
    net.start_all()
    net.wait_for_height(2)
    home = open_home(net.nodes[0].home)
    target = f"{home.config.p2p.listen}/p2p/{peer_id_from_seed(home.node_seed)}"
    rogue = subprocess.run([sys.executable, "-m", "tests.functional.rogue_peer",
                            "--bootstrap", target, "--chain-id", CHAIN],
                           capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parents[2])
    assert rogue.returncode == 0, rogue.stderr[-2000:]
    report = json.loads(rogue.stdout.strip().splitlines()[-1])
    assert report["peers_before"] >= 1 and report["published"] > 0
    assert report["failed_requests"] >= 2  # the oversized and the garbage request
    assert report["pubsub_garbage_sent"] and report["forged_batches"] == 3
    # the forged batches stopped at the node the rogue reached: the others never saw them
    wait_until(lambda: net.nodes[0].metric("jevons_gossip_tx_batches_stopped_total") >= 3,
               30, "the forged batches stopped")
    assert [n.metric("jevons_gossip_txs_received_total") for n in net.nodes[1:]] == [0, 0, 0]
    h = max(n.height() for n in net.nodes)
    net.wait_for_height(h + 3)  # nothing the rogue did stopped the network
    assert all(n.running() for n in net.nodes)  # nor any node: a bad frame is not a crash
    net.assert_same_chain()
    logs = "".join(n.log_text() for n in net.nodes)
    assert "misbehaved" in logs
    no_double_signing(net)
