"""The background loops of NodeServices poll peers only when gossip seems lost: a node
that keeps committing asks nobody for its status, and one whose height is slow but keeps
hearing proposals and votes pulls no votes. (Under load a height lasts longer than the
loops' 1 s period, and every pull opens a stream per peer and re-checks every vote.)

The host here is a stand-in with the few attributes the loops read; the network records
requests. Time is trio's autojumping mock clock, so the test takes no real seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import trio
import trio.testing

from node.runtime import wire
from node.runtime.services import REGOSSIP_INTERVAL_S, SYNC_INTERVAL_S, NodeServices

PEERS = ["peer-a", "peer-b", "peer-c"]


@dataclass
class RecordingNet:
    """Answers status with our own height (nothing to fetch) and votes with none."""

    host: SimpleNamespace
    requests: list[tuple[float, str, str]] = field(default_factory=list)

    def peers(self) -> list[str]:
        return list(PEERS)

    async def request(self, peer: str, protocol: str, payload: bytes, timeout: float,
                      max_response: int) -> bytes:
        self.requests.append((trio.current_time(), peer, protocol))
        if protocol.endswith("/status/1"):
            return wire.encode_status(self.host.height, b"\0" * 32)
        return wire.encode_messages([])

    async def publish(self, topic: str, data: bytes) -> None:
        pass

    def report_bad(self, peer: str, reason: str) -> None:
        raise AssertionError(f"no peer misbehaves here: {reason}")


def services() -> tuple[NodeServices, SimpleNamespace, RecordingNet]:
    host = SimpleNamespace(chain_id="jevons-unit", height=5, engine=SimpleNamespace(round=0),
                           mempool=SimpleNamespace(pending=lambda limit: []),
                           tx_topic="txs")
    net = RecordingNet(host)
    return NodeServices(host, net), host, net  # type: ignore[arg-type]


def count(net: RecordingNet, suffix: str) -> int:
    return sum(1 for _, _, protocol in net.requests if protocol.endswith(suffix))


def run_for(seconds: float, loop, *background) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop)
            for task in background:
                nursery.start_soon(task)
            await trio.sleep(seconds)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_node_that_keeps_committing_asks_no_peer_for_its_status() -> None:
    svc, host, net = services()

    async def commit_often() -> None:
        while True:
            await trio.sleep(SYNC_INTERVAL_S / 3)
            host.height += 1

    run_for(20 * SYNC_INTERVAL_S, svc.sync_loop, commit_often)
    assert host.height > 50
    assert count(net, "/status/1") == 0, net.requests


def test_a_stalled_node_polls_every_peer_each_interval() -> None:
    svc, _host, net = services()
    run_for(10.5 * SYNC_INTERVAL_S, svc.sync_loop)
    assert count(net, "/status/1") == 10 * len(PEERS)
    assert {peer for _, peer, _ in net.requests} == set(PEERS)


def test_news_of_a_later_height_polls_at_once() -> None:
    svc, host, net = services()

    async def hear_of_a_later_height() -> None:
        while True:
            await trio.sleep(SYNC_INTERVAL_S / 4)
            host.height += 1  # committing, yet a message says we are behind
            svc.behind.set()

    run_for(2.1 * SYNC_INTERVAL_S, svc.sync_loop, hear_of_a_later_height)
    assert count(net, "/status/1") >= 4 * len(PEERS)
    first = min(t for t, _, _ in net.requests)
    assert first <= SYNC_INTERVAL_S / 4 + 0.01


def test_a_slow_height_that_keeps_hearing_votes_pulls_none() -> None:
    svc, _host, net = services()

    async def hear_votes() -> None:
        while True:
            await trio.sleep(REGOSSIP_INTERVAL_S / 2)
            svc.heard += 1

    run_for(20 * REGOSSIP_INTERVAL_S, svc.catch_up_loop, hear_votes)
    assert count(net, "/votes/1") == 0, net.requests


def test_a_silent_stalled_height_pulls_votes_from_every_peer() -> None:
    svc, _host, net = services()
    run_for(5.5 * REGOSSIP_INTERVAL_S, svc.catch_up_loop)
    assert count(net, "/votes/1") == 5 * len(PEERS)
