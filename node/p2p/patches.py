"""Fixes to py-libp2p 0.8.1's per-message hot paths (the version is pinned; each fix
replaces one function and keeps its contract).

Every pubsub RPC costs a node about a millisecond of Python (Noise, Yamux, protobuf, trio),
and a 4-validator net moves dozens of them per block, so per-RPC work is most of a node's
CPU. Measured with two processes on loopback (bench/p2p.py): see docs/p2p.md.

- `memoize_peer_records`: the signed peer record carried by every RPC is verified once
  per peer, not on every RPC.
- `buffer_pubsub_reads`: pubsub read each RPC's varint length one byte at a time, every
  byte a full trip through NetStream, Yamux's locks and its window accounting; now whole
  chunks are read and split into RPCs in memory.
- `batch_yamux_window_updates`: Yamux answered nearly every read with a WINDOW_UPDATE
  frame (its "partial slack" branch sends one whenever any credit is owed), so each RPC
  cost the receiver a Noise encryption and a socket write and the sender a read and a
  decryption. Credit is now returned as go-yamux does it, once half the window is used.

`apply` installs all of them; it is idempotent and runs before a host is built.
`coalesce_pubsub_writes(pubsub)` is per Pubsub instance (it needs `OutboundQueues`):
- the per-peer send loop wrote one RPC per stream write (a Yamux frame, a Noise
  encryption and a socket send each); RPCs already queued behind the first now go out in
  one write, up to COALESCE_BYTES.
`speed_up_pubsub(pubsub)`, also per instance, installs two more:
- `memoize_message_ids`: a received message's id (sha256 over topics and data) was computed
  four times (seen check, validation cache, marking seen, the router's forwarding); now
  once per message object.
- `LruValidationCache`: pubsub's validation cache kept its LRU order in a list, so every
  new message scanned and shifted up to 1,000 ids; now an OrderedDict, same behaviour.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IncompleteReadError, MessageTooLarge
from libp2p.peer.id import ID
from libp2p.pubsub.pubsub import ValidationCache, ValidationResult

PEER_RECORD_MEMO_SIZE = 4096
PEER_RECORD_RECHECK_S = 600.0
LOCAL_RECORD_RECHECK_S = 5.0
READ_CHUNK = 256 * 1024
"""Most bytes one pubsub stream read asks for (what is buffered is returned at once, so
this only bounds the read-ahead kept per stream)."""
log = logging.getLogger(__name__)

MAX_VARINT_BYTES = 10  # a 64-bit unsigned varint
COALESCE_BYTES = 256 * 1024
"""Most bytes of already-queued RPCs one pubsub stream write carries (one RPC may be
larger; it then goes alone)."""
MESSAGE_ID_MEMO = 16
"""Messages whose id is remembered (by object, each held until it drops out). Pubsub
pushes each message through its steps as one object; with more than this many in flight
at once an id is just computed again."""


def apply() -> None:
    memoize_peer_records()
    buffer_pubsub_reads()
    batch_yamux_window_updates()


def memoize_peer_records() -> None:
    """Stop py-libp2p from redoing signed-peer-record work on every pubsub RPC.

    Each RPC it sends carries the node's signed peer record, rebuilt from the host's
    listen addresses (Multiaddr parsing, a set comparison, protobuf marshalling); each RPC
    it receives has that record's Ed25519 signature verified again and the peerstore
    updated. A peer's record is the same bytes on every RPC, so on an idle 4-validator net
    this was about 8% of each node's CPU. A record that verified once for a peer is now
    trusted for PEER_RECORD_RECHECK_S (then checked again; the peerstore keeps it two
    hours); a record that fails is never remembered. The local record is reused for
    LOCAL_RECORD_RECHECK_S before the addresses are compared again."""
    import libp2p.pubsub.gossipsub as gossipsub_module
    import libp2p.pubsub.pubsub as pubsub_module

    if getattr(pubsub_module.maybe_consume_signed_record, "jevons_memo", False):
        return
    consume = pubsub_module.maybe_consume_signed_record
    envelope_of = pubsub_module.env_to_send_in_RPC
    verified: dict[tuple[bytes, bytes], float] = {}

    def memo_consume(msg: Any, host: IHost, peer_id: ID) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        key = (peer_id.to_bytes(), msg.senderRecord)
        now = trio.current_time()
        if verified.get(key, -1.0) > now:
            return True
        ok = consume(msg, host, peer_id)
        if ok:
            if len(verified) >= PEER_RECORD_MEMO_SIZE:
                verified.clear()
            verified[key] = now + PEER_RECORD_RECHECK_S
        return ok

    def memo_envelope(host: IHost) -> tuple[bytes, bool]:
        now = trio.current_time()
        cached = getattr(host, "_jevons_local_record", None)
        if cached is not None and cached[0] > now:
            return cached[1]
        result = envelope_of(host)
        host._jevons_local_record = (now + LOCAL_RECORD_RECHECK_S, result)  # type: ignore
        return result

    memo_consume.jevons_memo = True  # type: ignore[attr-defined]
    for module in (pubsub_module, gossipsub_module):
        module.maybe_consume_signed_record = memo_consume  # type: ignore[assignment]
        module.env_to_send_in_RPC = memo_envelope  # type: ignore[assignment]


def split_varint_frame(buffer: bytearray, max_length: int) -> bytes | None:
    """Take one varint-length-prefixed frame off the front of `buffer`; None if the buffer
    does not hold a whole frame yet (nothing is taken then).

    Raises ParseError for a length prefix longer than 10 bytes and MessageTooLarge as soon
    as the prefix claims more than `max_length`, before any of the body is awaited: the
    caller never buffers more than max_length plus one read.
    """
    length = used = 0
    for index in range(min(len(buffer), MAX_VARINT_BYTES)):
        byte = buffer[index]
        length |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            used = index + 1
            break
    else:
        if len(buffer) >= MAX_VARINT_BYTES:
            raise ParseError("Varint decoding error: integer exceeds maximum size of 64 bits")
        return None  # the prefix itself is incomplete
    if length > max_length:
        raise MessageTooLarge(f"Message length {length} exceeds maximum allowed {max_length}")
    end = used + length
    if len(buffer) < end:
        return None
    frame = bytes(buffer[used:end])
    del buffer[:end]
    return frame


def buffer_pubsub_reads() -> None:
    """Replace pubsub's `read_varint_prefixed_bytes_limited` with a buffered reader: one
    stream read brings whatever has arrived (up to READ_CHUNK), and the RPCs are split
    from it in memory. Same errors as the original: ValueError for a non-positive limit,
    ParseError, MessageTooLarge, and IncompleteReadError when the stream ends mid-RPC (or
    the stream's own EOF/reset error, raised by its read)."""
    import libp2p.pubsub.pubsub as pubsub_module

    if getattr(pubsub_module.read_varint_prefixed_bytes_limited, "jevons_buffered", False):
        return
    buffers: weakref.WeakKeyDictionary[Any, bytearray] = weakref.WeakKeyDictionary()

    async def read_frame(reader: Any, max_length: int) -> bytes:
        if max_length <= 0:
            raise ValueError("max_length must be greater than 0")
        buffer = buffers.get(reader)
        if buffer is None:
            buffer = buffers[reader] = bytearray()
        while True:
            frame = split_varint_frame(buffer, max_length)
            if frame is not None:
                return frame
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                raise IncompleteReadError(
                    f"stream ended with {len(buffer)} bytes of an unfinished RPC",
                    expected_bytes=1, received_bytes=len(buffer))
            buffer.extend(chunk)

    read_frame.jevons_buffered = True  # type: ignore[attr-defined]
    pubsub_module.read_varint_prefixed_bytes_limited = read_frame  # type: ignore[assignment]


def batch_yamux_window_updates() -> None:
    """Send Yamux receive-window credit once at least half the target window has been
    consumed (go-yamux's `sendWindowUpdate`), instead of after almost every read.

    The sender can always have a full window in flight, so throughput on loopback is
    unchanged; what goes is one 12-byte frame per read, each a Noise encryption and a
    socket write here and a read, decryption and dispatch at the peer. The window's
    auto-tuning (growing the target when updates come fast) is py-libp2p's own."""
    from libp2p.stream_muxer.yamux.yamux import YamuxStream

    if getattr(YamuxStream._auto_tune_and_send_window_update, "jevons_batched", False):
        return

    async def send_credit_when_due(self: Any, *, bytes_read: int = 0) -> None:
        increment = 0
        async with self.window_lock:
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            owed = self.target_recv_window - (self.recv_window + buffered)
            if owed > 0 and owed >= self._grow_threshold():
                increment = self._grow_to_delta(buffered)
                increment += self._apply_autotune_epoch(buffered)
                self._pending_recv_release = 0
        if increment > 0:
            await self.send_window_update(increment, skip_lock=True)

    send_credit_when_due.jevons_batched = True  # type: ignore[attr-defined]
    YamuxStream._auto_tune_and_send_window_update = send_credit_when_due  # type: ignore


def coalesce_pubsub_writes(pubsub: Any) -> None:
    """Replace `pubsub`'s per-peer send loop with one that writes the RPC it waited for
    together with those already queued behind it (needs queues from `OutboundQueues`,
    which provide `pop_ready`). Ends like the original: quietly when the queue is closed,
    and through `_handle_dead_peer` when the stream fails."""
    from libp2p.network.stream.exceptions import StreamClosed, StreamReset
    from libp2p.utils.varint import encode_varint_prefixed

    async def send_loop(peer_id: ID, stream: Any, queue: Any) -> None:
        try:
            while True:
                rpc = await queue.pop()
                if rpc is None:
                    return
                frames = [encode_varint_prefixed(rpc.SerializeToString())]
                size = len(frames[0])
                while size < COALESCE_BYTES:
                    more = queue.pop_ready()
                    if more is None:
                        break
                    frames.append(encode_varint_prefixed(more.SerializeToString()))
                    size += len(frames[-1])
                try:
                    await stream.write(b"".join(frames))
                except (StreamClosed, StreamReset):
                    log.debug("pubsub stream to %s closed or reset", peer_id)
                    pubsub._handle_dead_peer(peer_id)
                    return
        except Exception as exc:
            log.debug("pubsub send loop for %s ended: %r", peer_id, exc)
            pubsub._handle_dead_peer(peer_id)

    pubsub.handle_sending_messages = send_loop


def speed_up_pubsub(pubsub: Any) -> None:
    """Install `memoize_message_ids` and `LruValidationCache` on one Pubsub (idempotent)."""
    memoize_message_ids(pubsub)
    if not isinstance(pubsub.validation_cache, LruValidationCache):
        old = pubsub.validation_cache
        pubsub.validation_cache = LruValidationCache(old.ttl, old.max_size)


def memoize_message_ids(pubsub: Any) -> None:
    """Compute each message's id once, not once per pubsub step.

    A message pushed through pubsub is one protobuf object from the seen check to the
    router's forwarding, and the id depends only on its topics and data, which nothing
    changes on the way. The memo is keyed by the object itself (its identity, checked, and
    a reference held so the identity cannot be reused while remembered); a different
    object, even with equal contents, is hashed afresh. Costs at most MESSAGE_ID_MEMO
    messages of memory."""
    compute: Callable[[Any], bytes] = pubsub._msg_id_constructor
    if getattr(compute, "jevons_memo", False):
        return
    recent: OrderedDict[int, tuple[Any, bytes]] = OrderedDict()

    def message_id(msg: Any) -> bytes:
        key = id(msg)
        hit = recent.get(key)
        if hit is not None and hit[0] is msg:
            return hit[1]
        digest = compute(msg)
        recent[key] = (msg, digest)
        if len(recent) > MESSAGE_ID_MEMO:
            recent.popitem(last=False)
        return digest

    message_id.jevons_memo = True  # type: ignore[attr-defined]
    pubsub._msg_id_constructor = message_id


class LruValidationCache(ValidationCache):
    """py-libp2p's ValidationCache with its LRU order in an OrderedDict: same TTL, size
    bound and eviction order, without the list scans (`in`, `remove`, `pop(0)`) that
    cost every new message a pass over up to max_size ids."""

    def __init__(self, ttl: int = 300, max_size: int = 1000) -> None:
        self.ttl, self.max_size = ttl, max_size
        self.cache: OrderedDict[bytes, ValidationResult] = OrderedDict()  # type: ignore

    def get(self, msg_id: bytes) -> ValidationResult | None:
        result = self.cache.get(msg_id)
        if result is None:
            return None
        if time.time() - result.timestamp > self.ttl:
            del self.cache[msg_id]
            return None
        self.cache.move_to_end(msg_id)
        return result

    def put(self, msg_id: bytes, result: ValidationResult) -> None:
        self.cache.pop(msg_id, None)
        while self.cache and len(self.cache) >= self.max_size:
            self.cache.popitem(last=False)
        self.cache[msg_id] = result

    def _remove(self, msg_id: bytes) -> None:
        self.cache.pop(msg_id, None)

    def clear_expired(self) -> None:
        now = time.time()
        for msg_id in [m for m, r in self.cache.items() if now - r.timestamp > self.ttl]:
            del self.cache[msg_id]
