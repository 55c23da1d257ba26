"""Gossip plumbing: message ids, outbound backpressure, safe validators, prompt delivery.

py-libp2p pitfalls handled here:
- Each peer's outbound queue holds 32 RPCs and drops silently when full, and
  `Pubsub.publish()` never yields. `OutboundQueues` wakes publishers whenever a queue
  shrinks, so `P2PNode.publish` can wait for room instead of losing messages.
- A topic validator that raises kills the pubsub service (and the node with it).
  `safe_validator` turns every exception into a rejection and counts it.
- Pubsub caches each message's verdict by message id (`validation_cache_ttl_s`, 30 s), so
  a validator that refuses a banned forwarder refuses the same message from everyone.
  `refuse_banned_forwarders` drops a banned forwarder's messages before validation instead.
- A subscription channel holds 32 messages and drops the rest with a warning.
  `drain_subscription` empties it at once into a larger buffer that a separate task feeds
  to the application.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.abc import ISubscriptionAPI
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

from node.p2p.settings import MAX_GOSSIP_BYTES

log = logging.getLogger(__name__)

LEAVE_TIMEOUT_S = 2.0

Validator = Callable[[str, str, bytes], bool]
"""validate(from_peer_id, origin_peer_id, data) -> accept? `from_peer_id` is the connected
peer that sent us the message, `origin_peer_id` the one that signed it first (pubsub has
checked that signature). Must be cheap (decode, sizes, a few signatures and state lookups):
it runs inline in pubsub for every message from another peer, before it is forwarded, and
pubsub caches the verdict per message id."""

Deliver = Callable[[str, bytes], Awaitable[None]]
"""async deliver(origin_peer_id, data), called once per accepted message, in order of
arrival, from one task per topic."""


def message_id(msg: rpc_pb2.Message) -> bytes:
    """Content-addressed id: sha256 over the topics and the data. Identical payloads on a
    topic are delivered once per seen window, whoever publishes them."""
    digest = hashlib.sha256()
    for topic in msg.topicIDs:
        digest.update(topic.encode())
        digest.update(b"\x00")
    digest.update(msg.data)
    return digest.digest()


@dataclass
class TopicCounters:
    """What happened to one topic's messages on this node (for metrics and tests)."""

    published: int = 0
    delivered: int = 0
    rejected: int = 0
    validator_errors: int = 0
    oversized: int = 0
    dropped: int = 0  # the delivery buffer was full


class OutboundQueues(dict):  # type: ignore[type-arg]
    """Stand-in for `Pubsub.peer_queues` that reports every change of queue length.

    Pubsub creates one `RpcQueue` per peer, stores it here, then starts the task that pops
    it; we wrap each queue's `pop` as it is stored, so no pop goes unseen, and add
    `pop_ready()`, which takes the next RPC only if one is already queued (None if not)."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = trio.Event()

    def __setitem__(self, peer_id: ID, queue: Any) -> None:
        original_pop = queue.pop

        async def pop() -> Any:
            item = await original_pop()
            self._notify()
            return item

        def pop_ready() -> Any:
            item = queue._queue.pop()  # RpcQueue's own non-blocking pop (None when empty)
            if item is not None:
                self._notify()
            return item

        queue.pop = pop
        queue.pop_ready = pop_ready
        super().__setitem__(peer_id, queue)

    def pop(self, peer_id: ID, *default: Any) -> Any:
        queue = super().pop(peer_id, *default)
        self._notify()
        return queue

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def full_peers(self, peers: set[ID], high_water: int) -> list[ID]:
        return [p for p in peers if (q := self.get(p)) is not None and len(q) >= high_water]

    async def wait_for_room(self, peers: Callable[[], set[ID]], high_water: int) -> None:
        """Return once no queue of `peers()` holds `high_water` or more RPCs."""
        while self.full_peers(peers(), high_water):
            await self._changed.wait()


def refuse_banned_forwarders(pubsub: Pubsub, is_banned: Callable[[str], bool],
                             any_banned: Callable[[], bool]) -> None:
    """Drop messages forwarded by a banned peer before pubsub looks at them (no verdict is
    cached, nothing is marked seen): an honest copy of the same message still counts.
    `any_banned` is the cheap check made for every message."""
    push = pubsub.push_msg

    async def push_msg(forwarder: ID, msg: rpc_pb2.Message) -> None:
        if any_banned() and is_banned(forwarder.to_base58()):
            return
        await push(forwarder, msg)

    pubsub.push_msg = push_msg  # type: ignore[method-assign]


def safe_validator(topic: str, validate: Validator, self_id: ID,
                   counters: TopicCounters) -> Callable[[ID, rpc_pb2.Message], bool]:
    """A pubsub validator that never raises. Our own publishes pass without calling
    `validate` (the application trusts its own data); oversized payloads are refused."""

    def validator(forwarder: ID, msg: rpc_pb2.Message) -> bool:
        if forwarder == self_id:
            return True
        if len(msg.data) > MAX_GOSSIP_BYTES:
            counters.oversized += 1
            return False
        try:
            accepted = validate(forwarder.to_base58(), ID(msg.from_id).to_base58(),
                                msg.data) is True
        except Exception:
            counters.validator_errors += 1
            if _worth_logging(counters.validator_errors):
                log.exception("validator of topic %s raised (%d so far); message rejected",
                              topic, counters.validator_errors)
            return False
        if not accepted:
            counters.rejected += 1
        return accepted

    return validator


async def drain_subscription(subscription: ISubscriptionAPI, self_id: ID,
                             buffer: trio.MemorySendChannel[tuple[str, bytes]],
                             topic: str, counters: TopicCounters) -> None:
    """Move messages from pubsub's 32-slot channel to `buffer` as they arrive, skipping
    our own publishes. Never blocks on the application."""
    own = self_id.to_bytes()
    async for msg in subscription:  # type: ignore[attr-defined]
        if msg.from_id == own:
            continue
        try:
            buffer.send_nowait((ID(msg.from_id).to_base58(), msg.data))
        except trio.WouldBlock:
            counters.dropped += 1
            if _worth_logging(counters.dropped):
                log.warning("topic %s: delivery buffer full, %d messages dropped so far "
                            "(the deliver callback is too slow)", topic, counters.dropped)


def _worth_logging(count: int) -> bool:
    """Log the 1st, 10th, 100th and every 1000th occurrence: a peer must not be able to
    flood our logs."""
    return count in (1, 10, 100) or count % 1000 == 0


async def feed(buffer: trio.MemoryReceiveChannel[tuple[str, bytes]], deliver: Deliver,
               topic: str, counters: TopicCounters) -> None:
    """Call `deliver` for each buffered message; a raising callback is logged, not fatal."""
    async for origin, data in buffer:
        try:
            await deliver(origin, data)
        except Exception:
            log.exception("deliver callback of topic %s raised", topic)
        counters.delivered += 1


async def serve_topic(pubsub: Pubsub, topic: str, validate: Validator, deliver: Deliver,
                      counters: TopicCounters, buffer_size: int,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Subscribe to `topic` with a safe validator, report started, then deliver messages
    until cancelled (or until pubsub closes the subscription)."""
    me = pubsub.my_id
    pubsub.set_topic_validator(topic, safe_validator(topic, validate, me, counters),
                               is_async_validator=False)
    subscription = await pubsub.subscribe(topic)
    task_status.started()
    send, receive = trio.open_memory_channel[tuple[str, bytes]](buffer_size)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed, receive, deliver, topic, counters)
        async with send:
            await drain_subscription(subscription, me, send, topic, counters)


async def leave_topic(pubsub: Pubsub, topic: str) -> None:
    """Unsubscribe and tell peers; shielded and bounded (it runs as a task is cancelled)."""
    pubsub.remove_topic_validator(topic)
    with trio.CancelScope(shield=True), trio.move_on_after(LEAVE_TIMEOUT_S):
        try:
            await pubsub.unsubscribe(topic)
        except Exception as exc:
            log.debug("unsubscribing from %s failed: %r", topic, exc)
