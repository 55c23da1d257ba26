"""The background loops of NodeServices.

- Sync and catch-up poll peers only when gossip seems lost: a node that keeps committing
  asks nobody for its status, and one whose height is slow but keeps hearing proposals and
  votes pulls no votes. (Under load a height lasts longer than the loops' 1 s period, and
  every pull opens a stream per peer and re-checks every vote.)
- The tx gossip outbox coalesces admitted txs into batches bounded in count and bytes, and
  holds back its callers while it is full.

The host here is a stand-in with the few attributes the loops read; the network records
requests. Time is trio's autojumping mock clock, so the test takes no real seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import trio
import trio.testing

from node.errors import NodeError
from node.runtime import wire
from node.runtime.services import (
    FORCED_PULL_INTERVALS,
    OUTBOX_HIGH_WATER,
    REGOSSIP_INTERVAL_S,
    SYNC_INTERVAL_S,
    TX_LINGER_S,
    NodeServices,
)

PEERS = ["peer-a", "peer-b", "peer-c"]


@dataclass
class RecordingNet:
    """Answers status with our own height (nothing to fetch) and votes with none."""

    host: SimpleNamespace
    requests: list[tuple[float, str, str]] = field(default_factory=list)
    published: list[tuple[float, str, bytes]] = field(default_factory=list)
    publish_delay: float = 0.0
    fail_publish: bool = False

    def peers(self) -> list[str]:
        return list(PEERS)

    async def request(self, peer: str, protocol: str, payload: bytes, timeout: float,
                      max_response: int) -> bytes:
        self.requests.append((trio.current_time(), peer, protocol))
        if protocol.endswith("/status/1"):
            return wire.encode_status(self.host.height, b"\0" * 32)
        return wire.encode_messages([])

    async def publish(self, topic: str, data: bytes) -> None:
        await trio.sleep(self.publish_delay)  # a slow peer queue
        if self.fail_publish:
            raise NodeError("no peer reads")
        self.published.append((trio.current_time(), topic, data))

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


def every(period: float, action):
    """A background task that calls `action()` every `period` seconds."""

    async def tick() -> None:
        while True:
            await trio.sleep(period)
            action()

    return tick


def test_a_node_that_keeps_committing_asks_no_peer_for_its_status() -> None:
    svc, host, net = services()

    def commit() -> None:
        host.height += 1

    run_for(20 * SYNC_INTERVAL_S, svc.sync_loop, every(SYNC_INTERVAL_S / 3, commit))
    assert host.height > 50
    assert count(net, "/status/1") == 0, net.requests


def test_a_stalled_node_polls_every_peer_each_interval() -> None:
    svc, _host, net = services()
    run_for(10.5 * SYNC_INTERVAL_S, svc.sync_loop)
    assert count(net, "/status/1") == 10 * len(PEERS)
    assert {peer for _, peer, _ in net.requests} == set(PEERS)


def test_news_of_a_later_height_polls_at_once() -> None:
    svc, host, net = services()

    def commit_and_hear_of_a_later_height() -> None:
        host.height += 1  # committing, yet a message says we are behind
        svc.behind.set()

    run_for(2.1 * SYNC_INTERVAL_S, svc.sync_loop,
            every(SYNC_INTERVAL_S / 4, commit_and_hear_of_a_later_height))
    assert count(net, "/status/1") >= 4 * len(PEERS)
    first = min(t for t, _, _ in net.requests)
    assert first <= SYNC_INTERVAL_S / 4 + 0.01


def test_a_slow_height_that_keeps_hearing_votes_pulls_none() -> None:
    """Under load a height lasts longer than the 1 s period (here 2.5 periods), with votes
    arriving all along: no pulls."""
    svc, host, net = services()

    def hear_a_vote() -> None:
        svc.heard += 1

    def commit() -> None:
        host.height += 1

    run_for(40 * REGOSSIP_INTERVAL_S, svc.catch_up_loop,
            every(REGOSSIP_INTERVAL_S / 2, hear_a_vote),
            every(2.5 * REGOSSIP_INTERVAL_S, commit))
    assert host.height >= 15
    assert count(net, "/votes/1") == 0, net.requests


def test_a_height_that_hears_only_useless_votes_still_pulls_now_and_then() -> None:
    """Votes that arrive are not necessarily used (far-ahead rounds, conflicting votes of
    one validator): a height and round that stay put pull every FORCED_PULL_INTERVALS
    intervals whatever arrives, so no single validator can switch catch-up off."""
    svc, _host, net = services()

    def hear_a_vote() -> None:
        svc.heard += 1

    intervals = 4 * FORCED_PULL_INTERVALS
    run_for((intervals + 0.5) * REGOSSIP_INTERVAL_S, svc.catch_up_loop,
            every(REGOSSIP_INTERVAL_S / 3, hear_a_vote))
    assert count(net, "/votes/1") == 4 * len(PEERS)


def test_a_new_round_resets_the_forced_pull_count() -> None:
    svc, host, net = services()

    def hear_a_vote() -> None:
        svc.heard += 1

    def next_round() -> None:
        host.engine.round += 1

    run_for(6 * FORCED_PULL_INTERVALS * REGOSSIP_INTERVAL_S, svc.catch_up_loop,
            every(REGOSSIP_INTERVAL_S / 3, hear_a_vote),
            every((FORCED_PULL_INTERVALS - 1) * REGOSSIP_INTERVAL_S, next_round))
    assert count(net, "/votes/1") == 0, net.requests


def test_a_silent_stalled_height_pulls_votes_from_every_peer() -> None:
    svc, _host, net = services()
    run_for(5.5 * REGOSSIP_INTERVAL_S, svc.catch_up_loop)
    assert count(net, "/votes/1") == 5 * len(PEERS)


# --- the tx gossip outbox --------------------------------------------------------------


def tx(i: int, size: int = 150) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


def batches(net: RecordingNet) -> list[list[bytes]]:
    return [wire.decode_tx_batch(data, 1 << 20) for _, _, data in net.published]


def test_single_txs_admitted_together_leave_as_one_gossip_message() -> None:
    svc, _host, net = services()

    async def wallets() -> None:
        for i in range(100):  # 100 single-tx submissions within the linger
            await svc.broadcast_txs([tx(i)])
            await trio.sleep(TX_LINGER_S / 1000)

    run_for(1.0, svc.gossip_loop, wallets)
    assert batches(net) == [[tx(i) for i in range(100)]]
    assert net.published[0][1] == "txs"


def test_a_batch_that_fills_during_the_linger_leaves_at_once() -> None:
    svc, _host, net = services()

    async def submit() -> None:
        await svc.broadcast_txs([tx(0)])
        await trio.sleep(TX_LINGER_S / 10)
        await svc.broadcast_txs([tx(i) for i in range(1, wire.MAX_TX_BATCH)])

    run_for(1.0, svc.gossip_loop, submit)
    assert [len(b) for b in batches(net)] == [wire.MAX_TX_BATCH]
    assert net.published[0][0] < TX_LINGER_S / 2


def test_the_outbox_splits_by_count_and_by_bytes_and_keeps_the_order() -> None:
    svc, _host, net = services()
    small = [tx(i) for i in range(2 * wire.MAX_TX_BATCH + 7)]
    big = [tx(i, 4096) for i in range(300)]  # 300 x 4 KiB is over the 1 MB gossip limit

    async def submit() -> None:
        await svc.broadcast_txs(small)
        await trio.sleep(1)
        await svc.broadcast_txs(big)

    run_for(3.0, svc.gossip_loop, submit)
    sent = batches(net)
    assert [len(b) for b in sent[:3]] == [wire.MAX_TX_BATCH, wire.MAX_TX_BATCH, 7]
    assert [t for b in sent[:3] for t in b] == small
    assert all(len(data) <= wire.MAX_GOSSIP_BYTES for _, _, data in net.published)
    assert len(sent) > 4 and [t for b in sent[3:] for t in b] == big
    assert wire.tx_batch_prefix(big) == len(sent[3]) < len(big)


def test_tx_batch_prefix_bounds() -> None:
    assert wire.tx_batch_prefix([]) == 0
    assert wire.tx_batch_prefix([tx(1)]) == 1
    assert wire.tx_batch_prefix([tx(i) for i in range(5000)]) == wire.MAX_TX_BATCH
    huge = [bytes(wire.MAX_GOSSIP_BYTES)]  # never 0 for a non-empty list: it would spin
    assert wire.tx_batch_prefix(huge) == 1
    fits = wire.tx_batch_prefix([tx(i, 4096) for i in range(1000)])
    assert len(wire.encode_tx_batch([tx(i, 4096) for i in range(fits)])) <= \
        wire.MAX_GOSSIP_BYTES
    assert len(wire.encode_tx_batch([tx(i, 4096) for i in range(fits + 1)])) > \
        wire.MAX_GOSSIP_BYTES - 2 * 4096


def test_a_full_outbox_holds_back_its_callers_until_gossip_drains_it() -> None:
    svc, _host, net = services()
    net.publish_delay = 1.0  # each batch takes a second to leave
    returned: list[float] = []

    async def flood() -> None:
        for i in range(8):
            await svc.broadcast_txs([tx(1000 * i + j) for j in range(wire.MAX_TX_BATCH)])
            returned.append(trio.current_time())

    run_for(20.0, svc.gossip_loop, flood)
    assert len(returned) == 8
    assert returned[3] < 0.1  # four batches fit below the high-water mark at once
    assert returned[-1] >= 2.0  # later ones waited for batches to leave
    assert len(net.published) == 8
    assert OUTBOX_HIGH_WATER == 4 * wire.MAX_TX_BATCH


def test_a_failed_publish_is_logged_and_the_loop_goes_on(caplog) -> None:
    svc, _host, net = services()
    net.fail_publish = True

    async def submit() -> None:
        await svc.broadcast_txs([tx(1)])
        await trio.sleep(1)
        net.fail_publish = False
        await svc.broadcast_txs([tx(2)])

    run_for(2.0, svc.gossip_loop, submit)
    assert batches(net) == [[tx(2)]]
    assert "could not gossip 1 transaction(s): no peer reads" in caplog.text


def test_a_stalled_height_re_gossips_pending_txs_through_the_outbox() -> None:
    """Re-gossip goes the way of every tx gossip: cut below the 1 MB limit (300 txs of 4 KiB
    are 1.2 MB), nothing left out."""
    svc, host, net = services()
    pending = [tx(i, 4096) for i in range(300)]
    host.mempool.pending = lambda limit: pending[:limit]
    run_for(1.5 * REGOSSIP_INTERVAL_S, svc.catch_up_loop, svc.gossip_loop)
    sent = batches(net)
    assert len(sent) == 2 and [t for b in sent for t in b] == pending
    assert all(len(data) <= wire.MAX_GOSSIP_BYTES for _, _, data in net.published)


def test_urgent_txs_leave_before_a_full_outbox_and_never_wait() -> None:
    """A node's own verdicts and results must not queue behind 8,000 API txs."""
    svc, _host, net = services()
    net.publish_delay = 1.0
    returned: list[float] = []

    async def flood() -> None:
        for i in range(8):
            await svc.broadcast_txs([tx(1000 * i + j) for j in range(wire.MAX_TX_BATCH)])

    async def own() -> None:
        await trio.sleep(0.5)  # the first batch is being published, 7 more wait
        await svc.broadcast_txs([tx(99_999)], urgent=True)
        returned.append(trio.current_time())

    run_for(20.0, svc.gossip_loop, flood, own)
    assert returned == [0.5]
    sent = batches(net)
    assert len(sent) == 9 and sent[1] == [tx(99_999)]  # right after the batch in flight
    assert [len(b) for b in sent[:1] + sent[2:]] == [wire.MAX_TX_BATCH] * 8
