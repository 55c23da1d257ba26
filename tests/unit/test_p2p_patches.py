"""node/p2p/patches: the buffered pubsub RPC reader (frame splitting, limits, errors)
against an in-memory byte source. The patched Yamux credit is exercised over real libp2p
in tests/functional/test_p2p.py."""

from __future__ import annotations

import pytest
import trio
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IncompleteReadError, MessageTooLarge
from libp2p.utils.varint import encode_varint_prefixed

from node.p2p import patches


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
