"""node/p2p/patches: the buffered pubsub RPC reader (frame splitting, limits, errors)
against an in-memory byte source, and the coalescing send loop over a real RpcQueue.
The patched Yamux credit is exercised over real libp2p in tests/functional/test_p2p.py."""

from __future__ import annotations

import random
import time

import pytest
import trio
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IncompleteReadError, MessageTooLarge
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import ValidationCache, ValidationResult
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.utils.varint import encode_varint_prefixed

from node.p2p import patches
from node.p2p.gossip import OutboundQueues, message_id


def frame(payload: bytes) -> bytes:
    return encode_varint_prefixed(payload)


def test_split_takes_whole_frames_only() -> None:
    buffer = bytearray(frame(b"a" * 300) + frame(b"") + frame(b"xyz")[:2])
    assert patches.split_varint_frame(buffer, 1000) == b"a" * 300
    assert patches.split_varint_frame(buffer, 1000) == b""
    assert patches.split_varint_frame(buffer, 1000) is None  # body incomplete
    assert buffer == bytearray(frame(b"xyz")[:2])  # nothing taken
    buffer += frame(b"xyz")[2:]
    assert patches.split_varint_frame(buffer, 1000) == b"xyz"
    assert buffer == bytearray()
    assert patches.split_varint_frame(buffer, 1000) is None


def test_split_waits_for_a_prefix_cut_in_the_middle() -> None:
    whole = frame(b"q" * 20_000)  # a 3-byte length prefix
    buffer = bytearray(whole[:1])
    assert patches.split_varint_frame(buffer, 1 << 20) is None
    buffer += whole[1:]
    assert patches.split_varint_frame(buffer, 1 << 20) == b"q" * 20_000


def test_split_refuses_oversized_and_overlong_prefixes() -> None:
    with pytest.raises(MessageTooLarge, match="1001 exceeds maximum allowed 1000"):
        patches.split_varint_frame(bytearray(frame(b"z" * 1001)[:3]), 1000)
    assert patches.split_varint_frame(bytearray(b"\xff" * 9), 1000) is None
    with pytest.raises(ParseError, match="exceeds maximum size of 64 bits"):
        patches.split_varint_frame(bytearray(b"\xff" * 10), 1000)


class Chunks:
    """A byte source that hands out pre-cut chunks, then end of stream (b"")."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.reads = 0

    async def read(self, n: int | None = None) -> bytes:
        self.reads += 1
        await trio.lowlevel.checkpoint()
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        assert n is not None and len(chunk) <= n
        return chunk


def read_all(source: Chunks, limit: int, count: int) -> list[bytes]:
    patches.buffer_pubsub_reads()
    import libp2p.pubsub.pubsub as pubsub_module

    read = pubsub_module.read_varint_prefixed_bytes_limited

    async def main() -> list[bytes]:
        return [await read(source, limit) for _ in range(count)]

    return trio.run(main)


def test_buffered_reader_splits_many_rpcs_from_one_read() -> None:
    payloads = [bytes([i]) * (i * 37) for i in range(50)]
    stream = b"".join(frame(p) for p in payloads)
    source = Chunks(stream[:5], stream[5:4000], stream[4000:])
    assert read_all(source, 1 << 20, len(payloads)) == payloads
    assert source.reads == 3  # one read per chunk, not several per RPC


def test_buffered_reader_keeps_each_streams_leftovers_apart() -> None:
    patches.buffer_pubsub_reads()
    import libp2p.pubsub.pubsub as pubsub_module

    read = pubsub_module.read_varint_prefixed_bytes_limited
    a = Chunks(frame(b"a1") + frame(b"a2"))
    b = Chunks(frame(b"b1") + frame(b"b2"))

    async def main() -> list[bytes]:
        return [await read(a, 100), await read(b, 100), await read(a, 100),
                await read(b, 100)]

    assert trio.run(main) == [b"a1", b"b1", b"a2", b"b2"]


def test_buffered_reader_errors_match_the_originals() -> None:
    with pytest.raises(IncompleteReadError, match="3 bytes of an unfinished RPC"):
        read_all(Chunks(frame(b"abcdef")[:3]), 100, 1)
    with pytest.raises(MessageTooLarge):
        read_all(Chunks(frame(b"x" * 200)), 100, 1)
    with pytest.raises(ValueError, match="greater than 0"):
        read_all(Chunks(frame(b"x")), 0, 1)


def test_patches_are_idempotent() -> None:
    import libp2p.pubsub.pubsub as pubsub_module
    from libp2p.stream_muxer.yamux.yamux import YamuxStream

    patches.apply()
    reader = pubsub_module.read_varint_prefixed_bytes_limited
    credit = YamuxStream._auto_tune_and_send_window_update
    consume = pubsub_module.maybe_consume_signed_record
    patches.apply()
    assert pubsub_module.read_varint_prefixed_bytes_limited is reader
    assert YamuxStream._auto_tune_and_send_window_update is credit
    assert pubsub_module.maybe_consume_signed_record is consume


class Sink:
    """A stream that records what is written, or fails with `error` on the first write."""

    def __init__(self, error: Exception | None = None) -> None:
        self.writes: list[bytes] = []
        self.error = error

    async def write(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self.error is not None:
            raise self.error
        self.writes.append(data)


class PubsubStub:
    def __init__(self) -> None:
        self.dead: list[str] = []

    def _handle_dead_peer(self, peer_id: str) -> None:
        self.dead.append(peer_id)


def rpc(data: bytes) -> rpc_pb2.RPC:
    return rpc_pb2.RPC(publish=[rpc_pb2.Message(data=data, topicIDs=["t"])])


def run_send_loop(pubsub: PubsubStub, sink: Sink, queued: list[bytes]) -> OutboundQueues:
    """Queue RPCs in a real RpcQueue (watched by OutboundQueues), run the patched send
    loop until it has taken them all, then close the queue."""
    patches.coalesce_pubsub_writes(pubsub)
    queues = OutboundQueues()
    queues["peer"] = queue = RpcQueue()
    for data in queued:
        assert queue.push(rpc(data))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pubsub.handle_sending_messages, "peer", sink, queue)
            with trio.fail_after(5):
                while len(queue) and not pubsub.dead:
                    await trio.sleep(0.01)
            queue.close()

    trio.run(main)
    return queues


def test_send_loop_writes_queued_rpcs_together() -> None:
    pubsub, sink = PubsubStub(), Sink()
    payloads = [b"p%d" % i for i in range(20)] + [b"L" * 300_000, b"after"]
    run_send_loop(pubsub, sink, payloads)
    frames = []
    for write in sink.writes:
        buffer = bytearray(write)
        while (frame := patches.split_varint_frame(buffer, 1 << 20)) is not None:
            frames.append(frame)
        assert not buffer  # writes hold whole RPCs only
    assert [rpc_pb2.RPC.FromString(f).publish[0].data for f in frames] == payloads
    # the 20 small RPCs and the large one fill one write (it passes COALESCE_BYTES), the
    # RPC after it goes in a second
    assert len(sink.writes) == 2
    assert pubsub.dead == []


def test_send_loop_reports_a_failed_stream_and_stops() -> None:
    from libp2p.network.stream.exceptions import StreamReset

    for error in (StreamReset("reset"), RuntimeError("boom")):
        pubsub = PubsubStub()
        run_send_loop(pubsub, Sink(error), [b"x", b"y"])
        assert pubsub.dead == ["peer"]


# --- message ids and the validation cache --------------------------------------------------


def message(data: bytes, topic: str = "t") -> rpc_pb2.Message:
    return rpc_pb2.Message(data=data, topicIDs=[topic], from_id=b"peer", seqno=b"\x01")


class IdStub:
    """A Pubsub's two attributes these patches replace."""

    def __init__(self) -> None:
        self.computed: list[bytes] = []

        def constructor(msg: rpc_pb2.Message) -> bytes:
            self.computed.append(msg.data)
            return message_id(msg)

        self._msg_id_constructor = constructor
        self.validation_cache = ValidationCache(ttl=30, max_size=1000)


def test_message_ids_are_computed_once_per_message_object() -> None:
    stub = IdStub()
    patches.speed_up_pubsub(stub)
    ids = stub._msg_id_constructor
    first, second = message(b"a"), message(b"b")
    assert [ids(first) for _ in range(4)] == [message_id(first)] * 4
    assert ids(second) == message_id(second) != ids(first)
    assert stub.computed == [b"a", b"b"]
    twin = message(b"a")  # equal contents, another object: hashed afresh, same id
    assert ids(twin) == ids(first) and stub.computed == [b"a", b"b", b"a"]


def test_message_id_memo_is_bounded() -> None:
    stub = IdStub()
    patches.memoize_message_ids(stub)
    ids = stub._msg_id_constructor
    msgs = [message(bytes([i])) for i in range(patches.MESSAGE_ID_MEMO + 1)]
    for msg in msgs:
        ids(msg)
    ids(msgs[-1])  # still remembered
    assert len(stub.computed) == len(msgs)
    ids(msgs[0])  # the oldest dropped out: computed again, still right
    assert len(stub.computed) == len(msgs) + 1 and ids(msgs[0]) == message_id(msgs[0])


def test_pubsub_speedups_install_once() -> None:
    stub = IdStub()
    patches.speed_up_pubsub(stub)
    ids, cache = stub._msg_id_constructor, stub.validation_cache
    assert isinstance(cache, patches.LruValidationCache)
    assert (cache.ttl, cache.max_size) == (30, 1000)
    patches.speed_up_pubsub(stub)
    assert stub._msg_id_constructor is ids and stub.validation_cache is cache


def test_lru_validation_cache_matches_pubsubs_own() -> None:
    """Same answers and same survivors as py-libp2p's cache over a random workload of new
    ids, lookups (hits refresh an entry's place) and expired entries."""
    rng = random.Random(7)
    now = time.time()
    ours, theirs = patches.LruValidationCache(ttl=30, max_size=8), ValidationCache(30, 8)
    keys = [bytes([i]) for i in range(40)]
    fresh = iter(keys)
    put: list[bytes] = []
    for _ in range(300):
        if rng.random() < 0.4 and len(put) < len(keys):
            key = next(fresh)
            stale = rng.random() < 0.2
            result = ValidationResult(rng.random() < 0.5, now - 60 if stale else now + 60)
            ours.put(key, result)
            theirs.put(key, result)
            put.append(key)
        elif put:
            key = rng.choice(put)
            assert ours.get(key) == theirs.get(key)
        assert list(ours.cache) == [k for k in theirs.access_order if k in theirs.cache]
    assert len(put) == len(keys)  # the workload did overflow the cache many times


def test_lru_validation_cache_refreshes_a_re_put_id_within_its_bound() -> None:
    cache = patches.LruValidationCache(ttl=30, max_size=2)
    ok = ValidationResult(True, time.time())
    cache.put(b"a", ok)
    cache.put(b"b", ok)
    cache.put(b"a", ValidationResult(False, time.time()))  # replaces, moves to the end
    assert list(cache.cache) == [b"b", b"a"] and not cache.get(b"a").is_valid
    cache.put(b"c", ok)  # full: the least recently used goes
    assert list(cache.cache) == [b"a", b"c"] and cache.get(b"b") is None
    cache.put(b"old", ValidationResult(True, time.time() - 60))
    cache.clear_expired()
    assert list(cache.cache) == [b"c"]
