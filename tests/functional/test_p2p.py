"""node/p2p over real libp2p on 127.0.0.1: gossip, validators, request/response, bans,
backpressure and redialing a killed peer. Several nodes share one `trio.run` for the cheap
checks; the burst and kill -9 checks use child processes (tests/functional/p2p_node.py).
Every wait is on a condition with a deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from node.keys import peer_id_from_seed
from node.p2p import (
    MAX_GOSSIP_BYTES,
    GossipParams,
    GossipTooLarge,
    P2PNode,
    PeerPolicy,
    PeerUnavailable,
    ProtocolError,
    RemoteError,
    RequestRejected,
    RequestTimeout,
    ResponseTooLarge,
)
from tests.functional.p2p_node import ECHO, TOPIC, Inbox, lines

pytestmark = pytest.mark.functional

REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
STEP_TIMEOUT = 15.0  # any single wait; a healthy run takes well under a second per step
BURST = 2000


def seed(n: int) -> bytes:
    return bytes([n]) * 32


def run(scenario: Callable[[], Awaitable[None]], budget: float = 60.0) -> None:
    async def bounded() -> None:
        with trio.fail_after(budget):
            await scenario()

    trio.run(bounded)


async def echo(peer: str, request: bytes) -> bytes:
    return request


@asynccontextmanager
async def started(*nodes: P2PNode) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for node in nodes:
            await stack.enter_async_context(node.running())
        yield


def test_three_nodes_gossip_through_the_hub_whose_validator_gates_it() -> None:
    """B and C know only the hub A. A's validator drops BAD messages (C never sees them)
    and survives raising on BOOM ones (pubsub keeps working)."""

    checked_by_c: list[tuple[str, str, bytes]] = []

    def hub_check(peer: str, origin: str, data: bytes) -> bool:
        if data.startswith(b"BOOM"):
            raise ValueError("a validator bug")
        return not data.startswith(b"BAD")

    async def scenario() -> None:
        hub, inbox = P2PNode(seed(1)), {name: Inbox() for name in "ABC"}
        hub.subscribe(TOPIC, hub_check, inbox["A"].deliver)
        async with hub.running():
            assert hub.peer_id == peer_id_from_seed(seed(1))
            assert all(a.endswith(f"/p2p/{hub.peer_id}") for a in hub.listen_addrs())
            b = P2PNode(seed(2), bootstrap=hub.listen_addrs())
            c = P2PNode(seed(3), bootstrap=hub.listen_addrs())
            b.subscribe(TOPIC, lambda p, o, d: True, inbox["B"].deliver)
            c.subscribe(TOPIC, lambda p, o, d: checked_by_c.append((p, o, d)) is None,
                        inbox["C"].deliver)
            async with started(b, c):
                await hub.wait_for_topic_peers(TOPIC, 2, STEP_TIMEOUT)
                await b.wait_for_topic_peers(TOPIC, 1, STEP_TIMEOUT)
                await c.wait_for_topic_peers(TOPIC, 1, STEP_TIMEOUT)
                for data in (b"hello", b"BAD-1", b"BOOM-1", b"after"):
                    await b.publish(TOPIC, data)
                await hub.publish(TOPIC, b"from-hub")
                assert await inbox["C"].wait_until(
                    lambda: {b"after", b"from-hub"} <= set(inbox["C"].payloads()),
                    STEP_TIMEOUT)
                assert await inbox["B"].wait_until(
                    lambda: b"from-hub" in inbox["B"].payloads(), STEP_TIMEOUT)
                assert sorted(inbox["C"].payloads()) == [b"after", b"from-hub", b"hello"]
                assert sorted(inbox["A"].payloads()) == [b"after", b"hello"]
                assert (b.peer_id, b"hello") in inbox["C"].messages  # origin, not forwarder
                # C's validator is told both: the hub forwarded it, B signed it
                assert (hub.peer_id, b.peer_id, b"hello") in checked_by_c
                counters = hub.counters(TOPIC)
                assert (counters.rejected, counters.validator_errors) == (1, 1)
                with pytest.raises(GossipTooLarge):
                    await b.publish(TOPIC, bytes(MAX_GOSSIP_BYTES + 1))
                c.unsubscribe(TOPIC)
                with trio.fail_after(STEP_TIMEOUT):
                    while c.peer_id in hub.topic_peers(TOPIC):
                        await trio.sleep(0.01)

    run(scenario)


def test_gossip_streams_return_yamux_credit_in_batches() -> None:
    """300 small RPCs and 3 of 900 KB (each over Yamux's initial 256 KB window) all arrive
    whole, while the receiver writes a WINDOW_UPDATE per half window of data
    consumed, not one per read (py-libp2p's own credit path sent one per RPC)."""
    small = [b"m%04d" % i for i in range(300)]
    large = [bytes([i]) * 900_000 for i in range(3)]

    async def scenario() -> None:
        a, b, inbox = P2PNode(seed(1)), P2PNode(seed(2)), Inbox()
        a.subscribe(TOPIC, lambda p, o, d: True, Inbox().deliver)
        b.subscribe(TOPIC, lambda p, o, d: True, inbox.deliver)
        async with started(a, b):
            await b.connect(a.listen_addrs()[0])
            await a.wait_for_topic_peers(TOPIC, 1, STEP_TIMEOUT)
            (conn,) = b._require().host.get_network().get_connections()
            muxer: Any = conn.muxed_conn
            updates = [0]
            write_frame = muxer._write_frame

            async def counting(data: bytes) -> None:
                if len(data) >= 2 and data[1] == 1 and struct.unpack("!I", data[4:8])[0]:
                    updates[0] += 1  # WINDOW_UPDATE on a stream (not a ping/go-away)
                await write_frame(data)

            muxer._write_frame = counting
            for data in small[:150] + large + small[150:]:
                await a.publish(TOPIC, data)
            assert await inbox.wait_until(lambda: len(inbox.messages) == 303, STEP_TIMEOUT)
            assert sorted(inbox.payloads()) == sorted(small + large)  # pubsub may reorder
            received = sum(len(d) for d in small + large)
            assert 1 <= updates[0] <= received // (128 * 1024) + 10, updates[0]

    run(scenario)


def test_requests_round_trip_and_fail_with_typed_errors() -> None:
    async def refuse(peer: str, request: bytes) -> bytes:
        raise RequestRejected("no such block")

    async def stall(peer: str, request: bytes) -> bytes:
        await trio.sleep_forever()
        return b""

    async def scenario() -> None:
        server, client = P2PNode(seed(4)), P2PNode(seed(5))
        server.set_handler("/t/echo/1", echo, max_request=16 * MiB)
        server.set_handler("/t/refuse/1", refuse, max_request=1024)
        server.set_handler("/t/stall/1", stall, max_request=1024)
        async with started(server, client):
            await client.connect(server.listen_addrs()[0])
            for size in (1024, 8 * MiB):
                payload = os.urandom(size)
                got = await client.request(server.peer_id, "/t/echo/1", payload, 20.0, 16 * MiB)
                assert got == payload
            with pytest.raises(RemoteError, match="no such block"):
                await client.request(server.peer_id, "/t/refuse/1", b"x", 5.0, 1024)
            with pytest.raises(RequestTimeout):
                await client.request(server.peer_id, "/t/stall/1", b"x", 0.3, 1024)
            with pytest.raises(ResponseTooLarge):
                await client.request(server.peer_id, "/t/echo/1", bytes(2048), 5.0, 1024)
            with pytest.raises(ProtocolError, match="does not speak"):
                await client.request(server.peer_id, "/t/unknown/1", b"x", 5.0, 1024)
            with pytest.raises(PeerUnavailable):
                await client.request(peer_id_from_seed(seed(99)), "/t/echo/1", b"x", 2.0, 64)
            assert server.score(client.peer_id) == 0  # none of that was misbehaviour

    run(scenario)


def test_bad_requests_get_the_peer_reported_then_banned() -> None:
    """A truncated request and an oversized one (refused unread): 60 + 60 (less decay) reaches
    the ban threshold of 100; the server drops the connection and refuses the peer."""

    async def scenario() -> None:
        server, client = P2PNode(seed(6)), P2PNode(seed(7))
        server.set_handler("/t/echo/1", echo, max_request=MiB)
        async with started(server, client):
            await client.connect(server.listen_addrs()[0])
            await send_truncated_request(client, server.peer_id, "/t/echo/1")
            with trio.fail_after(STEP_TIMEOUT):
                while server.score(client.peer_id) < 40:
                    await trio.sleep(0.01)
            assert not server.is_banned(client.peer_id)
            with pytest.raises(ProtocolError):
                await client.request(server.peer_id, "/t/echo/1", bytes(2 * MiB), 5.0, MiB)
            assert server.is_banned(client.peer_id)
            await client_disconnected(server, client)
            with pytest.raises(PeerUnavailable, match="banned"):
                await server.request(client.peer_id, "/t/echo/1", b"x", 2.0, 64)
            with pytest.raises((PeerUnavailable, ProtocolError)):
                await client.request(server.peer_id, "/t/echo/1", b"x", 2.0, 64)

    run(scenario)


def test_peers_holding_silent_streams_cannot_starve_a_protocol(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, each stream took one of the protocol's handler slots before its request was
    read, and kept it for the 30 s exchange timeout: two silent streams here (16 on a real
    node) left nothing for anyone else, and the peer holding them was never reported."""
    from libp2p.host.exceptions import StreamFailure

    from node.p2p import reqresp
    monkeypatch.setattr(reqresp, "REQUEST_READ_S", 1.0)

    async def scenario() -> None:
        server, rogue, honest = P2PNode(seed(18)), P2PNode(seed(19)), P2PNode(seed(20))
        server.set_handler("/t/echo/1", echo, max_request=1024, concurrency=2, per_peer=2)
        async with started(server, rogue, honest):
            for client in (rogue, honest):
                await client.connect(server.listen_addrs()[0])
            silent = [await open_raw_stream(rogue, server.peer_id, "/t/echo/1")
                      for _ in range(2)]
            with trio.fail_after(STEP_TIMEOUT):  # over per_peer: reset unread, at once
                try:  # the reset may come while the client still negotiates the protocol
                    third = await open_raw_stream(rogue, server.peer_id, "/t/echo/1")
                except StreamFailure:
                    pass
                else:
                    assert await read_until_closed(third) == b""
            start = trio.current_time()
            got = await honest.request(server.peer_id, "/t/echo/1", b"hi", 5.0, 64)
            assert got == b"hi" and trio.current_time() - start < 1.0
            with trio.fail_after(STEP_TIMEOUT):  # the silent ones end at the deadline
                for stream in silent[:2]:
                    assert await read_until_closed(stream) == b""
                while server.score(rogue.peer_id) < 30:  # two reports of 20, less decay
                    await trio.sleep(0.01)
            assert not server.is_banned(rogue.peer_id)
            assert server.score(honest.peer_id) == 0
            got = await rogue.request(server.peer_id, "/t/echo/1", b"ok", 5.0, 64)
            assert got == b"ok"  # its slots were given back

    run(scenario)


async def open_raw_stream(client: P2PNode, server: str, protocol: str) -> Any:
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    host = client._require().host  # a misbehaving peer needs the raw stream
    return await host.new_stream(ID.from_base58(server), [TProtocol(protocol)])


async def read_until_closed(stream: Any) -> bytes:
    """What the other side sent before it closed or reset the stream."""
    data = b""
    while True:
        try:
            chunk = await stream.read(1024)
        except Exception:
            return data
        if not chunk:
            return data
        data += chunk


def test_a_message_a_banned_peer_forwarded_still_counts_from_an_honest_one() -> None:
    """Pubsub caches a verdict per message id. Before, a banned forwarder's copy was refused
    by the topic validator, and so every honest copy of the same message after it (a vote,
    say) was refused too, for the cache's 5 minutes."""
    from libp2p.peer.id import ID

    async def scenario() -> None:
        hub, origin, inbox = P2PNode(seed(21)), P2PNode(seed(22)), Inbox()
        hub.subscribe(TOPIC, lambda peer, origin, data: True, inbox.deliver)
        async with started(hub, origin):
            signed = []  # a message signed by `origin`, taken before it is sent

            async def keep(forwarder: ID, msg: Any) -> None:
                signed.append(msg)

            origin_pubsub = origin._require().pubsub
            origin_pubsub.push_msg = keep
            await origin_pubsub.publish(TOPIC, b"a vote")
            banned = peer_id_from_seed(seed(23))
            hub.report_bad(banned, "misbehaved", weight=1000)
            assert hub.is_banned(banned)
            pubsub = hub._require().pubsub
            await pubsub.push_msg(ID.from_base58(banned), signed[0])
            await pubsub.push_msg(ID.from_base58(origin.peer_id), signed[0])
            assert (await inbox.wait(1, STEP_TIMEOUT))["ok"]
            assert inbox.messages == [(origin.peer_id, b"a vote")]
            assert hub.counters(TOPIC).rejected == 0

    run(scenario)


def test_a_plaintext_dialer_is_refused() -> None:
    """py-libp2p's default hosts accept /plaintext/2.0.0, under which a dialer can claim any
    peer id; ours speak Noise only."""
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.network.exceptions import SwarmException
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

    async def scenario() -> None:
        node = P2PNode(seed(14))
        key_pair = create_new_key_pair(seed(15))
        intruder = new_host(key_pair=key_pair,
                            sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(key_pair)})
        async with node.running(), intruder.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            target = info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs()[0]))
            with pytest.raises(SwarmException) as refused, trio.fail_after(STEP_TIMEOUT):
                await intruder.connect(target)
            assert "failed to negotiate the secure protocol" in str(refused.value.__cause__)
            assert node.peers() == []

    run(scenario)


def test_a_connection_whose_close_was_interrupted_is_replaced() -> None:
    """A close cancelled half-way leaves py-libp2p a closed connection still listed (its
    `connect` then returns at once, connected to nothing). The redialer and `request`
    clean it up and dial again."""
    from libp2p.peer.id import ID

    async def scenario() -> None:
        server = P2PNode(seed(16))
        server.set_handler("/t/echo/1", echo, max_request=1024)
        async with server.running():
            client = P2PNode(seed(17), bootstrap=server.listen_addrs(),
                             policy=PeerPolicy(redial_initial_s=0.05))
            async with client.running():
                for attempt in range(2):  # first the redialer, then request, recovers
                    await client.wait_for_peers(1, STEP_TIMEOUT)
                    swarm = client._require().host.get_network()
                    [connection] = swarm.get_connections(ID.from_base58(server.peer_id))
                    with trio.CancelScope() as interrupted:
                        interrupted.cancel()
                        await connection.close()
                    assert connection.is_closed and swarm.get_connections()
                    if attempt == 1:
                        got = await client.request(server.peer_id, "/t/echo/1", b"hi", 5.0, 64)
                        assert got == b"hi"
                await client.wait_for_peers(1, STEP_TIMEOUT)

    run(scenario)


async def send_truncated_request(client: P2PNode, server: str, protocol: str) -> None:
    """Announce 100 bytes, send 10, half-close: a malformed frame."""
    stream = await open_raw_stream(client, server, protocol)
    await stream.write(struct.pack(">I", 100) + bytes(10))
    await stream.close_write()
    with trio.move_on_after(STEP_TIMEOUT):
        try:
            await stream.read(1)
        except Exception:
            return


async def client_disconnected(server: P2PNode, client: P2PNode) -> None:
    with trio.fail_after(STEP_TIMEOUT):
        while client.peer_id in server.peers():
            await trio.sleep(0.01)


# ---- child processes ---------------------------------------------------------------


class Child:
    """A p2p_node process; JSON commands on stdin, one JSON line back per command."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        assert proc.stdout is not None
        self._lines = lines(proc.stdout).__aiter__()
        self.ready: dict[str, Any] = {}

    async def next(self, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        with trio.fail_after(timeout):
            return await self._lines.__anext__()

    async def call(self, deadline: float = STEP_TIMEOUT + 5, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(json.dumps(cmd).encode() + b"\n")
        return await self.next(deadline)


@asynccontextmanager
async def child(log: Path, node_seed: bytes, listen: str = "/ip4/127.0.0.1/tcp/0",
                bootstrap: tuple[str, ...] = ()) -> AsyncIterator[Child]:
    args = [sys.executable, "-m", "tests.functional.p2p_node", "--seed", node_seed.hex(),
            "--listen", listen]
    if bootstrap:
        args += ["--bootstrap", *bootstrap]
    with log.open("ab") as stderr:
        proc = await trio.lowlevel.open_process(args, cwd=REPO_ROOT, stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, stderr=stderr)
    kid = Child(proc)
    try:
        kid.ready = await kid.next(timeout=30.0)
        assert kid.ready["event"] == "ready", kid.ready
        yield kid
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_burst_from_another_process_is_delivered_completely(tmp_path: Path) -> None:
    """2,000 small messages published in a tight loop reach the peer, all of them
    (publish waits for room in the 32-slot outbound queue instead of dropping)."""

    async def scenario() -> None:
        inbox = Inbox()
        receiver = P2PNode(seed(8))
        receiver.subscribe(TOPIC, lambda p, o, d: True, inbox.deliver)
        async with receiver.running(), child(tmp_path / "publisher.log", seed(9),
                         bootstrap=tuple(receiver.listen_addrs())) as publisher:
            reply = await publisher.call(cmd="wait_topic_peers", count=1,
                                         timeout=STEP_TIMEOUT)
            assert reply["ok"], reply
            await publisher.call(cmd="publish", count=BURST, size=100, deadline=60.0)
            assert await inbox.wait_until(lambda: len(inbox.times) >= BURST, 20.0), \
                    f"{len(inbox.times)} of {BURST} delivered"
            indices = sorted(int.from_bytes(d[:4], "big") for d in inbox.payloads())
            assert indices == list(range(BURST))
            assert receiver.counters(TOPIC).dropped == 0

    run(scenario, budget=120.0)


def test_a_peer_that_stops_reading_is_dropped_not_waited_on(tmp_path: Path) -> None:
    """SIGSTOP a subscriber: once its outbound queue stays full for the publish timeout it
    is disconnected, and publishing goes on at full speed."""

    async def scenario() -> None:
        publisher = P2PNode(seed(12), gossip=GossipParams(publish_timeout_s=1.0))
        publisher.subscribe(TOPIC, lambda p, o, d: True, Inbox().deliver)
        async with publisher.running(), child(tmp_path / "stopped.log", seed(13),
                                              bootstrap=tuple(publisher.listen_addrs())) as kid:
            await publisher.wait_for_topic_peers(TOPIC, 1, STEP_TIMEOUT)
            kid.proc.send_signal(signal.SIGSTOP)
            try:
                with trio.fail_after(STEP_TIMEOUT):
                    for i in range(100):
                        await publisher.publish(TOPIC, i.to_bytes(4, "big") + bytes(200_000))
                assert kid.ready["peer_id"] not in publisher.peers()
            finally:
                kid.proc.send_signal(signal.SIGCONT)

    run(scenario)


def test_killed_peer_is_redialed_when_it_restarts(tmp_path: Path) -> None:
    """SIGKILL a bootstrap peer; after it restarts with the same identity and port the
    survivor reconnects on its own (through the dial negative cache), gossip and requests
    work again."""
    port = free_port()
    listen = f"/ip4/127.0.0.1/tcp/{port}"
    addr = f"{listen}/p2p/{peer_id_from_seed(seed(10))}"

    async def scenario() -> None:
        inbox = Inbox()
        survivor = P2PNode(seed(11), bootstrap=[addr],
                           policy=PeerPolicy(redial_initial_s=0.1, redial_max_s=0.5))
        survivor.subscribe(TOPIC, lambda p, o, d: True, inbox.deliver)
        async with survivor.running():
            async with child(tmp_path / "peer.log", seed(10), listen) as peer:
                await survivor.wait_for_topic_peers(TOPIC, 1, STEP_TIMEOUT)
                peer.proc.send_signal(signal.SIGKILL)
                with trio.fail_after(STEP_TIMEOUT):
                    while survivor.peers():
                        await trio.sleep(0.02)
                with pytest.raises((PeerUnavailable, ProtocolError)):
                    await survivor.request(peer.ready["peer_id"], ECHO, b"x", 2.0, 64)
            async with child(tmp_path / "peer.log", seed(10), listen) as peer:
                await survivor.wait_for_topic_peers(TOPIC, 1, STEP_TIMEOUT)
                got = await survivor.request(peer.ready["peer_id"], ECHO, b"ping", 5.0, 64)
                assert got == b"ping"
                await survivor.publish(TOPIC, b"welcome back")
                reply = await peer.call(cmd="wait_received", count=1, timeout=STEP_TIMEOUT)
                assert reply["ok"], reply
                await peer.call(cmd="publish", count=1, size=16)
                assert await inbox.wait_until(lambda: len(inbox.times) >= 1, STEP_TIMEOUT)

    run(scenario)
