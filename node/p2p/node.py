"""P2PNode: the node's one door to the network (gossip topics, request/response streams,
peer policy), over py-libp2p 0.8.1 under trio. See docs/p2p.md."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from node.config import P2PConfig
from node.p2p import gossip, patches, reqresp
from node.p2p.errors import GossipTooLarge, NotRunning, P2PError, PeerUnavailable
from node.p2p.gossip import Deliver, OutboundQueues, TopicCounters, Validator
from node.p2p.host import (
    build_host,
    build_pubsub,
    close_host,
    close_peer,
    drop_stale_connections,
    identity_key_pair,
)
from node.p2p.peers import (
    BAD_FRAME_WEIGHT,
    DEFAULT_WEIGHT,
    ConnectionWatch,
    PeerBook,
    keep_connected,
)
from node.p2p.settings import (
    MAX_GOSSIP_BYTES,
    GossipParams,
    PeerPolicy,
    check_listen_addr,
    check_peer_addr,
)

log = logging.getLogger(__name__)

DISCONNECT_TIMEOUT_S = 2.0


@dataclass
class _Topic:
    name: str
    validate: Validator
    deliver: Deliver
    counters: TopicCounters
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    left: bool = False  # unsubscribed: leave the pubsub topic when the task ends


@dataclass
class _Running:
    host: IHost
    pubsub: Pubsub
    router: GossipSub
    nursery: trio.Nursery
    changed: trio.Event = field(default_factory=trio.Event)  # peers or subscriptions

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class P2PNode:
    """One libp2p host with GossipSub and length-prefixed request/response streams.

    Use `async with node.running():` inside trio; `subscribe` and `set_handler` may be
    called before or while running.
    """

    def __init__(self, identity_seed: bytes, listen: str = "/ip4/127.0.0.1/tcp/0",
                 bootstrap: Sequence[str] = (), *, gossip: GossipParams | None = None,
                 policy: PeerPolicy | None = None) -> None:
        self._key_pair = identity_key_pair(identity_seed)
        self.peer_id: str = ID.from_pubkey(self._key_pair.public_key).to_base58()
        self._listen = check_listen_addr(listen)
        self._bootstrap = [info_from_p2p_addr(check_peer_addr(a)) for a in bootstrap]
        self._gossip = gossip or GossipParams()
        self._policy = policy or PeerPolicy()
        self._book = PeerBook(self._policy, connected=self._connected_peers)
        self._topics: dict[str, _Topic] = {}
        self._counters: dict[str, TopicCounters] = {}
        self._routes: dict[str, reqresp.Route] = {}
        self._queues = OutboundQueues()
        self._publishing = trio.Lock()
        self._run: _Running | None = None

    @classmethod
    def from_config(cls, identity_seed: bytes, config: P2PConfig, **kwargs: Any) -> P2PNode:
        """A node from the `[p2p]` table of config.toml."""
        return cls(identity_seed, config.listen, config.bootstrap, **kwargs)

    # ---- lifecycle -----------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[P2PNode]:
        """Listen, start pubsub, dial the bootstrap peers and keep them connected; on exit
        close everything (connections, services, pubsub's sweeper thread)."""
        if self._run is not None:
            raise P2PError("this P2PNode is already running")
        host = build_host(self._key_pair)
        pubsub, router = build_pubsub(host, self._gossip, self._report_bad_frame)
        self._queues = OutboundQueues()
        pubsub.peer_queues = self._queues
        patches.coalesce_pubsub_writes(pubsub)  # needs the queues' pop_ready
        gossip.refuse_banned_forwarders(pubsub, self._book.is_banned, self._book.any_banned)
        watch = ConnectionWatch(self._on_connected)
        host.get_network().register_notifee(watch)
        error: Exception | None = None  # raised below, outside libp2p's nested nurseries
        try:
            async with (host.run([self._listen]), background_trio_service(pubsub),
                        background_trio_service(router), trio.open_nursery() as nursery):
                try:
                    await self._start(_Running(host, pubsub, router, nursery), watch)
                except P2PError as exc:
                    error = exc
                else:
                    try:
                        yield self
                    except Exception as exc:
                        error = exc
                finally:
                    self._run = None
                    nursery.cancel_scope.cancel()
                    await close_host(host)
        finally:
            self._run = None
            pubsub.seen_messages.stop()  # a thread py-libp2p never stops
        if error is not None:
            raise error

    async def _start(self, run: _Running, watch: ConnectionWatch) -> None:
        if not run.host.get_network().listeners:  # py-libp2p only logs a failed listen
            raise P2PError(f"cannot listen on {self._listen} (is the port in use? see the "
                           "libp2p error above)")
        await run.pubsub.wait_until_ready()
        self._run = run
        self._watch_topics(run.pubsub, run.router, watch)
        for route in self._routes.values():
            self._register(route)
        for topic in self._topics.values():
            topic.scope = trio.CancelScope()
            await run.nursery.start(self._run_topic, topic)
        for info in self._bootstrap:
            run.nursery.start_soon(keep_connected, run.host, info, watch, self._book,
                                   self._policy)

    def _watch_topics(self, pubsub: Pubsub, router: GossipSub, watch: ConnectionWatch) -> None:
        """Wake `wait_for_*` on every connection, subscription and mesh change (py-libp2p
        only offers per-peer waits)."""
        run = self._require()
        on_subscription = pubsub.handle_subscription
        on_mesh_added = router._notify_mesh_peer_added

        def handle_subscription(origin_id: ID, sub_message: Any) -> None:
            on_subscription(origin_id, sub_message)
            run.notify()

        def notify_mesh_peer_added(peer_id: ID, topic: str) -> None:
            on_mesh_added(peer_id, topic)
            run.notify()

        pubsub.handle_subscription = handle_subscription  # type: ignore[method-assign]
        router._notify_mesh_peer_added = notify_mesh_peer_added  # type: ignore[method-assign]

        async def forward_connection_changes() -> None:
            while True:
                await watch.wait_changed()
                run.notify()

        run.nursery.start_soon(forward_connection_changes)

    def _require(self) -> _Running:
        if self._run is None:
            raise NotRunning("the p2p node is not running (use `async with node.running()`)")
        return self._run

    # ---- addresses and peers -------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Dialable addresses of this node, each ending in /p2p/<peer id>."""
        return [str(a) for a in self._require().host.get_addrs()]

    def peers(self) -> list[str]:
        """Peer ids of the peers connected now (py-libp2p's own list also counts
        connections that are closed but not yet cleaned up)."""
        self._require()
        return sorted(self._connected_peers())

    def _connected_peers(self) -> set[str]:
        if self._run is None:
            return set()
        connections = self._run.host.get_network().get_connections()
        return {c.muxed_conn.peer_id.to_base58() for c in connections if not c.is_closed}

    def topic_peers(self, topic: str) -> list[str]:
        """The peers a publish on `topic` goes to now: our GossipSub mesh for a topic we
        subscribe to, else (fanout) the connected peers subscribed to it."""
        return sorted(p.to_base58() for p in self._targets(self._require(), topic))

    async def connect(self, addr: str, timeout: float = 5.0) -> str:
        """Dial /ip4/HOST/tcp/PORT/p2p/PEER_ID once; return the peer id."""
        run = self._require()
        try:
            info = info_from_p2p_addr(check_peer_addr(addr))
        except Exception as exc:  # ConfigError, multiaddr's ValueErrors: the address is bad
            raise PeerUnavailable(f"cannot dial {addr!r}: {exc}") from None
        peer = info.peer_id.to_base58()
        if self._book.is_banned(peer):
            raise PeerUnavailable(f"peer {peer} is banned for {self._book.ban_left(peer):.0f} s")
        await drop_stale_connections(run.host, info.peer_id)
        run.host.get_network().unblock_peer(info.peer_id)
        try:
            with trio.fail_after(timeout):
                await run.host.connect(info)
        except trio.TooSlowError:
            raise PeerUnavailable(f"no connection to {addr} within {timeout:g} s") from None
        except Exception as exc:
            raise PeerUnavailable(f"cannot connect to {addr}: {exc}") from None
        return peer

    async def wait_for_peers(self, count: int, timeout: float) -> list[str]:
        """Wait until at least `count` peers are connected."""
        return await self._wait_for(self.peers, count, timeout, "connected peers")

    async def wait_for_topic_peers(self, topic: str, count: int, timeout: float) -> list[str]:
        """Wait until `topic_peers(topic)` has at least `count` peers (a publish before that
        reaches fewer peers; GossipSub does not resend it)."""
        return await self._wait_for(lambda: self.topic_peers(topic), count, timeout,
                                    f"peers on topic {topic}")

    async def _wait_for(self, current: Callable[[], list[str]], count: int, timeout: float,
                        what: str) -> list[str]:
        with trio.move_on_after(timeout):
            while len(found := current()) < count:
                await self._require().changed.wait()
            return found
        raise PeerUnavailable(f"{len(current())} {what} after {timeout:g} s, "
                              f"wanted {count}")

    # ---- misbehaviour --------------------------------------------------------------

    def report_bad(self, peer_id: str, reason: str, weight: float = DEFAULT_WEIGHT) -> None:
        """Count misbehaviour; at the policy's threshold the peer is disconnected and every
        connection, stream and gossip message from it is refused for `ban_s`."""
        score = self._book.score(peer_id) + weight
        log.warning("peer %s misbehaved: %s (score %.0f of %.0f)", peer_id, reason, score,
                    self._policy.ban_threshold)
        if self._book.report(peer_id, weight):
            log.warning("banning peer %s for %.0f s", peer_id, self._policy.ban_s)
            self._on_connected(peer_id)

    def score(self, peer_id: str) -> float:
        return self._book.score(peer_id)

    def is_banned(self, peer_id: str) -> bool:
        return self._book.is_banned(peer_id)

    def _on_connected(self, peer_id: str) -> None:
        if self._run is not None and self._book.is_banned(peer_id):
            self._run.nursery.start_soon(self._disconnect, peer_id)

    async def _disconnect(self, peer_id: str) -> None:
        run = self._require()
        with trio.CancelScope(shield=True), trio.move_on_after(DISCONNECT_TIMEOUT_S):
            try:
                await close_peer(run.host, ID.from_base58(peer_id))
            except Exception as exc:
                log.debug("disconnecting %s failed: %r", peer_id, exc)

    # ---- gossip --------------------------------------------------------------------

    def subscribe(self, topic: str, validate: Validator, deliver: Deliver) -> None:
        """Receive `topic`: `validate(from_peer, origin, data)` gates each message from
        another peer before it is forwarded (exceptions count as rejections),
        `deliver(origin, data)` gets the accepted ones.
        Our own publishes are neither validated nor delivered back to us."""
        if topic in self._topics:
            raise P2PError(f"already subscribed to {topic!r}")
        entry = _Topic(topic, validate, deliver, self.counters(topic))
        self._topics[topic] = entry
        if self._run is not None:
            self._run.nursery.start_soon(self._run_topic, entry)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving `topic` (announced to peers by the topic's task as it ends)."""
        entry = self._topics.pop(topic, None)
        if entry is not None:
            entry.left = True
            entry.scope.cancel()

    def counters(self, topic: str) -> TopicCounters:
        """This node's counters for `topic` (published, delivered, rejected, …)."""
        return self._counters.setdefault(topic, TopicCounters())

    async def _run_topic(self, entry: _Topic,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        run = self._require()
        with entry.scope:
            try:
                await gossip.serve_topic(run.pubsub, entry.name, entry.validate,
                                         entry.deliver, entry.counters,
                                         self._gossip.deliver_buffer, task_status)
            finally:
                if entry.left:
                    await gossip.leave_topic(run.pubsub, entry.name)

    async def publish(self, topic: str, data: bytes) -> None:
        """Gossip `data` on `topic`, then yield to trio (py-libp2p's publish never does).

        Backpressure: first wait until no peer the message goes to has `queue_high_water`
        RPCs queued (its queue holds 32 and drops silently beyond). A peer still full after
        `publish_timeout_s` is not reading: it is disconnected, and the message goes out
        to the others."""
        run = self._require()
        if len(data) > MAX_GOSSIP_BYTES:
            raise GossipTooLarge(f"gossip payload of {len(data)} B on {topic!r} is over "
                                 f"{MAX_GOSSIP_BYTES} B; send it by request/response")
        async with self._publishing:  # one at a time, so concurrent publishers cannot
            await self._wait_for_room(run, topic)  # overshoot the room they waited for
            try:
                await run.pubsub.publish(topic, data)
            except Exception as exc:
                raise P2PError(f"publish on {topic!r} failed: {exc!r}") from None
        self.counters(topic).published += 1
        await trio.lowlevel.checkpoint()

    async def _wait_for_room(self, run: _Running, topic: str) -> None:
        high_water = self._gossip.queue_high_water
        with trio.move_on_after(self._gossip.publish_timeout_s) as waited:
            await self._queues.wait_for_room(lambda: self._targets(run, topic), high_water)
        if waited.cancelled_caught:
            for peer in self._queues.full_peers(self._targets(run, topic), high_water):
                log.warning("peer %s read no gossip for %g s; disconnecting it",
                            peer.to_base58(), self._gossip.publish_timeout_s)
                run.nursery.start_soon(self._disconnect, peer.to_base58())

    @staticmethod
    def _targets(run: _Running, topic: str) -> set[ID]:
        """Peers a publish on `topic` is queued for: the mesh of a subscribed topic, else
        the peers subscribed to it (fanout picks among them)."""
        mesh = run.router.mesh.get(topic)
        return set(mesh) if mesh is not None else set(run.pubsub.peer_topics.get(topic, ()))

    # ---- request/response ----------------------------------------------------------

    def set_handler(self, protocol: str, handler: reqresp.Handler, max_request: int,
                    timeout: float = 30.0, concurrency: int = 16, per_peer: int = 4) -> None:
        """Serve `protocol` (e.g. /jevons/sync/1): `handler(peer_id, request) -> response`.
        Requests over `max_request` bytes are refused unread and the sender reported; one
        not delivered whole within `reqresp.read_deadline` is dropped and the sender
        reported; the whole exchange is bounded by `timeout`; at most `concurrency`
        handlers run at once, and a peer has at most `per_peer` requests open (more are
        refused unread)."""
        if not protocol.startswith("/"):
            raise P2PError(f"protocol ids start with '/', got {protocol!r}")
        if concurrency < 1 or per_peer < 1:
            raise P2PError(f"concurrency and per_peer must be at least 1, got "
                           f"{concurrency} and {per_peer}")
        route = reqresp.Route(protocol, handler, max_request, timeout,
                              trio.CapacityLimiter(concurrency), per_peer)
        self._routes[protocol] = route
        if self._run is not None:
            self._register(route)

    def _register(self, route: reqresp.Route) -> None:
        async def handle(stream: INetStream) -> None:
            await reqresp.serve(stream, route, self._report_bad_frame, self._book.is_banned,
                                self.report_bad)

        self._require().host.set_stream_handler(TProtocol(route.protocol), handle)

    def _report_bad_frame(self, peer_id: str, reason: str) -> None:
        self.report_bad(peer_id, reason, weight=BAD_FRAME_WEIGHT)

    async def request(self, peer_id: str, protocol: str, payload: bytes, timeout: float,
                      max_response: int) -> bytes:
        """Send `payload` to `peer_id` on `protocol`; the response body, or PeerUnavailable,
        RequestTimeout, ResponseTooLarge, ProtocolError, RemoteError."""
        run = self._require()
        if self._book.is_banned(peer_id):
            raise PeerUnavailable(f"peer {peer_id} is banned for "
                                  f"{self._book.ban_left(peer_id):.0f} s")
        try:
            peer = ID.from_base58(peer_id)
        except Exception:
            raise PeerUnavailable(f"{peer_id!r} is not a peer id") from None
        network = run.host.get_network()
        if not any(not c.is_closed for c in network.get_connections(peer)):
            await drop_stale_connections(run.host, peer)
            network.unblock_peer(peer)  # a peer that restarted is dialable again at once
        return await reqresp.request(run.host, peer, protocol, payload, timeout, max_response)
