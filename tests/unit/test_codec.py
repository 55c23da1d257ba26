"""Canonical encoding: round trips, and refusal of every other byte form."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.block import MAX_EVIDENCE, Block, Header
from consensus.codec import (
    DEFAULT_MAX_BYTES,
    MAX_DEPTH,
    MAX_INT64,
    MAX_UINT64,
    decode,
    encode,
    expect_array,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from consensus.errors import DecodeError
from consensus.tx import Transfer, Tx
from consensus.vote import MAX_ROUND, Commit, CommitSig, Vote, VoteType
from tests.unit.helpers import CHAIN_ID, Chain, addr, key, make_net, sign_commit

ints = st.integers(min_value=-(2**63), max_value=MAX_UINT64)
scalars = ints | st.binary(max_size=300) | st.text(max_size=40)


def values(depth: int) -> st.SearchStrategy:
    """Scalars and arrays nested at most `depth` more levels."""
    if depth == 0:
        return scalars
    return scalars | st.lists(values(depth - 1), max_size=4)


# A top-level array may hold arrays nested MAX_DEPTH - 1 further levels.
documents = st.lists(values(MAX_DEPTH - 1), max_size=6)


def nest(levels: int) -> list:
    value: list = [1]
    for _ in range(levels - 1):
        value = [value]
    return value


# --- round trip ---------------------------------------------------------------------------


@given(documents)
@settings(max_examples=300)
def test_round_trip(doc: list) -> None:
    data = encode(doc)
    assert decode(data) == doc
    assert encode(decode(data)) == data


@given(documents)
def test_tuples_encode_like_lists(doc: list) -> None:
    def tuplify(value: object) -> object:
        return tuple(tuplify(v) for v in value) if isinstance(value, list) else value

    assert encode(tuplify(doc)) == encode(doc)


def test_max_depth_is_accepted_and_one_more_is_refused() -> None:
    assert decode(encode(nest(MAX_DEPTH))) == nest(MAX_DEPTH)
    with pytest.raises(DecodeError, match="nesting"):
        decode(msgpack.packb(nest(MAX_DEPTH + 1)))


@pytest.mark.parametrize("value", [0, 1, 127, 128, -1, -32, -33, 255, 256, 2**16, 2**32,
                                   MAX_INT64, -(2**63), MAX_UINT64])
def test_integer_boundaries_round_trip(value: int) -> None:
    assert decode(encode([value])) == [value]


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1])
def test_integers_outside_64_bits_cannot_be_encoded(value: int) -> None:
    with pytest.raises(DecodeError):
        encode([value])


# --- arbitrary bytes ----------------------------------------------------------------------


@given(st.binary(max_size=200))
@settings(max_examples=1000)
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    """No exception but DecodeError, and anything accepted is the canonical form."""
    try:
        obj = decode(data)
    except DecodeError:
        return
    assert isinstance(obj, list)
    assert encode(obj) == data


@given(documents, st.data())
@settings(max_examples=300)
def test_corrupted_encodings_decode_or_raise_decode_error(doc: list, data: st.DataObject) -> None:
    raw = bytearray(encode(doc))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        obj = decode(bytes(raw))
    except DecodeError:
        return
    assert encode(obj) == bytes(raw)


@given(st.binary(min_size=1, max_size=50))
def test_garbage_with_an_invalid_first_byte_is_refused(tail: bytes) -> None:
    # 0xc1 is never used by msgpack; 0xc0 (nil), 0xc2/0xc3 (bool), 0xca/0xcb (float) are refused.
    for first in (0xC1, 0xC0, 0xC2, 0xC3, 0xCA, 0xCB):
        with pytest.raises(DecodeError):
            decode(bytes([first]) + tail)


@given(documents)
@settings(max_examples=100)
def test_every_strict_prefix_is_refused(doc: list) -> None:
    data = encode(doc)
    for end in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:end])


@given(documents, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(doc: list, tail: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(encode(doc) + tail)


# --- size limit ---------------------------------------------------------------------------


@given(documents.filter(lambda d: len(encode(d)) > 1))
def test_size_limit_is_exact(doc: list) -> None:
    data = encode(doc)
    assert decode(data, max_bytes=len(data)) == doc
    with pytest.raises(DecodeError, match="limit"):
        decode(data, max_bytes=len(data) - 1)


def test_default_size_limit() -> None:
    payload = b"x" * (DEFAULT_MAX_BYTES - 10)
    ok = encode([payload])
    assert len(ok) <= DEFAULT_MAX_BYTES
    assert decode(ok) == [payload]
    too_big = encode([payload + b"x" * 20])
    with pytest.raises(DecodeError, match="limit"):
        decode(too_big)


def test_declared_lengths_beyond_the_limit_are_refused_without_allocating() -> None:
    # A bin32 header claiming 4 GiB, an array32 claiming 2**32 - 1 items.
    for data in (b"\x91\xc6\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff"):
        with pytest.raises(DecodeError):
            decode(data, max_bytes=64)


# --- non-canonical headers ----------------------------------------------------------------

INT_FORMATS = [  # (first byte, struct format, lo, hi)
    (0xCC, ">B", 0, 2**8 - 1), (0xCD, ">H", 0, 2**16 - 1), (0xCE, ">I", 0, 2**32 - 1),
    (0xCF, ">Q", 0, 2**64 - 1), (0xD0, ">b", -(2**7), 2**7 - 1),
    (0xD1, ">h", -(2**15), 2**15 - 1), (0xD2, ">i", -(2**31), 2**31 - 1),
    (0xD3, ">q", -(2**63), 2**63 - 1),
]


def every_int_encoding(value: int) -> list[bytes]:
    """All msgpack byte forms of `value`: fixints and every sized format that holds it."""
    forms = []
    if 0 <= value <= 0x7F:
        forms.append(bytes([value]))
    if -32 <= value < 0:
        forms.append(struct.pack(">b", value))
    for first, fmt, lo, hi in INT_FORMATS:
        if lo <= value <= hi:
            forms.append(bytes([first]) + struct.pack(fmt, value))
    return forms


@given(ints)
@settings(max_examples=300)
def test_only_the_shortest_integer_form_is_accepted(value: int) -> None:
    canonical = encode([value])
    forms = every_int_encoding(value)
    assert b"\x91" + forms[0] == canonical  # shortest form first, and it is msgpack's
    for form in forms[1:]:
        with pytest.raises(DecodeError, match="non-canonical"):
            decode(b"\x91" + form)


def test_int_five_in_long_forms_is_refused() -> None:
    assert decode(b"\x91\x05") == [5]
    for data in (b"\x91\xcc\x05", b"\x91\xd0\x05", b"\x91\xcd\x00\x05", b"\x91\xd3" + bytes(7)
                 + b"\x05"):
        with pytest.raises(DecodeError):
            decode(data)


def every_str_header(length: int) -> list[bytes]:
    forms = [bytes([0xA0 | length])] if length < 32 else []
    if length < 2**8:
        forms.append(b"\xd9" + struct.pack(">B", length))
    if length < 2**16:
        forms.append(b"\xda" + struct.pack(">H", length))
    forms.append(b"\xdb" + struct.pack(">I", length))
    return forms


def every_bin_header(length: int) -> list[bytes]:
    forms = [b"\xc4" + struct.pack(">B", length)] if length < 2**8 else []
    if length < 2**16:
        forms.append(b"\xc5" + struct.pack(">H", length))
    forms.append(b"\xc6" + struct.pack(">I", length))
    return forms


def every_array_header(length: int) -> list[bytes]:
    forms = [bytes([0x90 | length])] if length < 16 else []
    if length < 2**16:
        forms.append(b"\xdc" + struct.pack(">H", length))
    forms.append(b"\xdd" + struct.pack(">I", length))
    return forms


@given(st.text(max_size=300))
def test_only_the_shortest_str_header_is_accepted(text: str) -> None:
    body = text.encode()
    headers = every_str_header(len(body))
    assert b"\x91" + headers[0] + body == encode([text])
    for header in headers[1:]:
        with pytest.raises(DecodeError, match="non-canonical"):
            decode(b"\x91" + header + body)


@given(st.binary(max_size=300))
def test_only_the_shortest_bin_header_is_accepted(blob: bytes) -> None:
    headers = every_bin_header(len(blob))
    assert b"\x91" + headers[0] + blob == encode([blob])
    for header in headers[1:]:
        with pytest.raises(DecodeError, match="non-canonical"):
            decode(b"\x91" + header + blob)


@given(st.lists(st.integers(0, 127), max_size=20))
def test_only_the_shortest_array_header_is_accepted(items: list[int]) -> None:
    body = bytes(items)  # positive fixints are one byte each
    headers = every_array_header(len(items))
    assert headers[0] + body == encode(items)
    for header in headers[1:]:
        with pytest.raises(DecodeError, match="non-canonical"):
            decode(header + body)


REFUSED = {
    "float32": b"\x91\xca" + struct.pack(">f", 1.5),
    "float64": b"\x91\xcb" + struct.pack(">d", 1.5),
    "float64 holding an integer": b"\x91\xcb" + struct.pack(">d", 5.0),
    "top-level float": b"\xcb" + struct.pack(">d", 1.5),
    "map": b"\x81\xa1a\x01",
    "empty map": b"\x80",
    "map in array": b"\x91\x81\x01\x02",
    "empty map in array": b"\x91\x80",
    "nil": b"\x91\xc0",
    "top-level nil": b"\xc0",
    "false": b"\x91\xc2",
    "true": b"\x91\xc3",
    "fixext1": b"\x91\xd4\x01\x00",
    "ext8 empty": b"\x91\xc7\x00\x05",
    "ext8 timestamp": b"\x91\xc7\x00\xff",
    "fixext4 timestamp": b"\x91\xd6\xff\x00\x00\x00\x00",
    "reserved 0xc1": b"\x91\xc1",
    "trailing byte": b"\x91\x01\x00",
    "two objects": b"\x90\x90",
    "top-level int": b"\x05",
    "top-level str": b"\xa3abc",
    "top-level bin": b"\xc4\x03abc",
    "invalid utf-8 str": b"\x91\xa1\xff",
    "lone surrogate in str": b"\x91\xa3\xed\xa0\x80",
    "empty input": b"",
    "truncated array": b"\x92\x01",
    "truncated bin": b"\x91\xc4\x05ab",
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_non_canonical_or_foreign_forms_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@pytest.mark.parametrize("data", ["[1]", None, 5, [1]])
def test_non_bytes_input_is_refused(data: object) -> None:
    with pytest.raises(DecodeError, match="expected bytes"):
        decode(data)  # type: ignore[arg-type]


def test_bytearray_and_memoryview_are_accepted() -> None:
    data = encode([1, b"x", "y"])
    assert decode(bytearray(data)) == decode(memoryview(data)) == [1, b"x", "y"]


# --- encode refuses what decode would refuse ------------------------------------------------

foreign = (st.none() | st.booleans() | st.floats(allow_nan=False)
           | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@given(st.lists(scalars | foreign, min_size=1, max_size=5))
def test_encode_output_always_decodes_back(items: list) -> None:
    """`encode` either raises DecodeError or produces the one canonical form of its input."""
    try:
        data = encode(items)
    except DecodeError:
        return
    assert decode(data) == items


@pytest.mark.parametrize("value", [None, True, False, 1.5, 0.0, {}, {"a": 1}, {1, 2}, object()])
def test_encode_refuses_types_without_a_canonical_form(value: object) -> None:
    with pytest.raises(DecodeError):
        encode([1, [value]])


@pytest.mark.parametrize("value", ["abc", 5, b"abc", None, {"a": 1}])
def test_encode_refuses_a_top_level_non_array(value: object) -> None:
    with pytest.raises(DecodeError, match="top level"):
        encode(value)  # type: ignore[arg-type]


def test_field_helpers_check_type_before_length() -> None:
    with pytest.raises(DecodeError, match="expected array"):
        expect_list("ab", 2, "pair")
    with pytest.raises(DecodeError, match="expected array"):
        expect_list((1, 2), 2, "pair")
    assert expect_list([1, 2], 2, "pair") == [1, 2]
    with pytest.raises(DecodeError, match="expected array"):
        expect_array(b"abc", "items", 5)
    with pytest.raises(DecodeError, match="limit"):
        expect_array([1, 2, 3], "items", 2)
    with pytest.raises(DecodeError, match="expected integer"):
        expect_int(True, "flag")
    with pytest.raises(DecodeError, match="outside"):
        expect_int(5, "n", 0, 4)
    with pytest.raises(DecodeError, match="expected bytes"):
        expect_bytes(bytearray(b"ab"), "blob")
    with pytest.raises(DecodeError, match="limit"):
        expect_bytes(b"abcde", "blob", max_len=4)
    assert expect_bytes(b"abcd", "blob", max_len=4) == b"abcd"
    with pytest.raises(DecodeError, match="expected string"):
        expect_str(b"s", "name")
    with pytest.raises(DecodeError, match="limit"):
        expect_str("s" * 65, "name")


def test_encode_refuses_nesting_that_decode_would_refuse() -> None:
    with pytest.raises(DecodeError, match="nesting"):
        encode(nest(MAX_DEPTH + 1))


# --- typed decoders -----------------------------------------------------------------------

SENDER = key("codec/sender")
VALID_TX = Tx(CHAIN_ID, SENDER.public, 3, 100, Transfer(b"\x07" * 20, 1000)).signed(SENDER)
VALID_TX_FIELDS = decode(VALID_TX.encode())


def replaced(fields: list, index: int, value: object) -> list:
    out = list(fields)
    out[index] = value
    return out


def test_tx_round_trip() -> None:
    assert Tx.decode(VALID_TX.encode()) == VALID_TX


@given(st.text(max_size=48), st.integers(0, MAX_UINT64), st.integers(-MAX_INT64, MAX_UINT64),
       st.binary(min_size=20, max_size=20), st.integers(-MAX_INT64, MAX_UINT64))
@settings(deadline=None, max_examples=50)
def test_tx_round_trip_property(chain_id: str, nonce: int, fee: int, to: bytes,
                                amount: int) -> None:
    tx = Tx(chain_id, SENDER.public, nonce, fee, Transfer(to, amount)).signed(SENDER)
    assert Tx.decode(tx.encode()) == tx


BAD_TX_FIELDS = {
    "7 fields": VALID_TX_FIELDS[:7],
    "9 fields": [*VALID_TX_FIELDS, 0],
    "version 2": replaced(VALID_TX_FIELDS, 0, 2),
    "version 0": replaced(VALID_TX_FIELDS, 0, 0),
    "version as str": replaced(VALID_TX_FIELDS, 0, "1"),
    "chain id as bytes": replaced(VALID_TX_FIELDS, 1, CHAIN_ID.encode()),
    "chain id too long": replaced(VALID_TX_FIELDS, 1, "c" * 49),
    "unknown kind": replaced(VALID_TX_FIELDS, 2, 200),
    "kind of another body": replaced(VALID_TX_FIELDS, 2, 2),
    "kind 256": replaced(VALID_TX_FIELDS, 2, 256),
    "negative kind": replaced(VALID_TX_FIELDS, 2, -1),
    "pubkey 31 bytes": replaced(VALID_TX_FIELDS, 3, SENDER.public[:31]),
    "pubkey 33 bytes": replaced(VALID_TX_FIELDS, 3, SENDER.public + b"\x00"),
    "pubkey as str": replaced(VALID_TX_FIELDS, 3, SENDER.public.hex()),
    "negative nonce": replaced(VALID_TX_FIELDS, 4, -1),
    "nonce as bytes": replaced(VALID_TX_FIELDS, 4, b"\x03"),
    "fee as str": replaced(VALID_TX_FIELDS, 5, "100"),
    "fee below -MAX_INT64": replaced(VALID_TX_FIELDS, 5, -(2**63)),
    "body not an array": replaced(VALID_TX_FIELDS, 6, b"body"),
    "body 1 field": replaced(VALID_TX_FIELDS, 6, [b"\x07" * 20]),
    "body 3 fields": replaced(VALID_TX_FIELDS, 6, [b"\x07" * 20, 1000, 0]),
    "recipient 19 bytes": replaced(VALID_TX_FIELDS, 6, [b"\x07" * 19, 1000]),
    "recipient 21 bytes": replaced(VALID_TX_FIELDS, 6, [b"\x07" * 21, 1000]),
    "amount as str": replaced(VALID_TX_FIELDS, 6, [b"\x07" * 20, "1000"]),
    "amount below -MAX_INT64": replaced(VALID_TX_FIELDS, 6, [b"\x07" * 20, -(2**63)]),
    "signature 63 bytes": replaced(VALID_TX_FIELDS, 7, VALID_TX.signature[:63]),
    "signature 65 bytes": replaced(VALID_TX_FIELDS, 7, VALID_TX.signature + b"\x00"),
    "empty signature": replaced(VALID_TX_FIELDS, 7, b""),
    "signature as str": replaced(VALID_TX_FIELDS, 7, "sig"),
}


@pytest.mark.parametrize("fields", BAD_TX_FIELDS.values(), ids=BAD_TX_FIELDS.keys())
def test_tx_decode_refuses_bad_fields(fields: list) -> None:
    with pytest.raises(DecodeError):
        Tx.decode(encode(fields))


def test_tx_decode_size_limit() -> None:
    raw = VALID_TX.encode()
    assert Tx.decode(raw, max_bytes=len(raw)) == VALID_TX
    with pytest.raises(DecodeError, match="limit"):
        Tx.decode(raw, max_bytes=len(raw) - 1)


VOTER = key("codec/voter")
VALID_VOTE = Vote(VoteType.PRECOMMIT, 7, 2, b"\x11" * 32, addr(VOTER)).signed(VOTER, CHAIN_ID)
VALID_VOTE_FIELDS = VALID_VOTE.to_fields()


@pytest.mark.parametrize("vote", [VALID_VOTE, Vote(VoteType.PREVOTE, 1, 0, b"", addr(VOTER))
                                  .signed(VOTER, CHAIN_ID)])
def test_vote_round_trip(vote: Vote) -> None:
    assert Vote.decode(vote.encode()) == vote
    assert vote.verify(CHAIN_ID, VOTER.public)


BAD_VOTE_FIELDS = {
    "5 fields": VALID_VOTE_FIELDS[:5],
    "7 fields": [*VALID_VOTE_FIELDS, 0],
    "type 0": replaced(VALID_VOTE_FIELDS, 0, 0),
    "type 3": replaced(VALID_VOTE_FIELDS, 0, 3),
    "height 0": replaced(VALID_VOTE_FIELDS, 1, 0),
    "height as str": replaced(VALID_VOTE_FIELDS, 1, "7"),
    "round above MAX_ROUND": replaced(VALID_VOTE_FIELDS, 2, MAX_ROUND + 1),
    "negative round": replaced(VALID_VOTE_FIELDS, 2, -1),
    "block hash 31 bytes": replaced(VALID_VOTE_FIELDS, 3, b"\x11" * 31),
    "block hash 33 bytes": replaced(VALID_VOTE_FIELDS, 3, b"\x11" * 33),
    "block hash 1 byte": replaced(VALID_VOTE_FIELDS, 3, b"\x11"),
    "validator 19 bytes": replaced(VALID_VOTE_FIELDS, 4, addr(VOTER)[:19]),
    "signature 63 bytes": replaced(VALID_VOTE_FIELDS, 5, VALID_VOTE.signature[:63]),
    "signature as list": replaced(VALID_VOTE_FIELDS, 5, [VALID_VOTE.signature]),
}


@pytest.mark.parametrize("fields", BAD_VOTE_FIELDS.values(), ids=BAD_VOTE_FIELDS.keys())
def test_vote_decode_refuses_bad_fields(fields: list) -> None:
    with pytest.raises(DecodeError):
        Vote.decode(encode(fields))


def test_vote_decode_size_limit() -> None:
    with pytest.raises(DecodeError, match="limit"):
        Vote.decode(encode([*VALID_VOTE_FIELDS[:5], b"s" * 600]))


SIGNERS = [key(f"codec/signer/{i}") for i in range(3)]
VALID_COMMIT = sign_commit(b"\x22" * 32, 5, SIGNERS, CHAIN_ID, round_=1)
VALID_COMMIT_FIELDS = VALID_COMMIT.to_fields()
SIG_ITEMS = VALID_COMMIT_FIELDS[3]


def test_commit_round_trip() -> None:
    assert len(VALID_COMMIT.signatures) == 3
    assert Commit.from_fields(decode(encode(VALID_COMMIT_FIELDS))) == VALID_COMMIT
    assert Commit.from_fields(Commit.empty().to_fields()) == Commit.empty()


BAD_COMMIT_FIELDS = {
    "3 fields": VALID_COMMIT_FIELDS[:3],
    "5 fields": [*VALID_COMMIT_FIELDS, 0],
    "not an array": b"commit",
    "height as str": replaced(VALID_COMMIT_FIELDS, 0, "5"),
    "negative height": replaced(VALID_COMMIT_FIELDS, 0, -1),
    "round above MAX_ROUND": replaced(VALID_COMMIT_FIELDS, 1, MAX_ROUND + 1),
    "block hash 31 bytes": replaced(VALID_COMMIT_FIELDS, 2, b"\x22" * 31),
    "block hash 33 bytes": replaced(VALID_COMMIT_FIELDS, 2, b"\x22" * 33),
    "empty block hash": replaced(VALID_COMMIT_FIELDS, 2, b""),
    "signatures not an array": replaced(VALID_COMMIT_FIELDS, 3, b""),
    "signature item of 3 fields": replaced(VALID_COMMIT_FIELDS, 3, [[*SIG_ITEMS[0], b""]]),
    "validator 19 bytes": replaced(VALID_COMMIT_FIELDS, 3, [[SIG_ITEMS[0][0][:19],
                                                             SIG_ITEMS[0][1]]]),
    "signature 63 bytes": replaced(VALID_COMMIT_FIELDS, 3, [[SIG_ITEMS[0][0],
                                                             SIG_ITEMS[0][1][:63]]]),
    "unsorted signatures": replaced(VALID_COMMIT_FIELDS, 3, SIG_ITEMS[::-1]),
    "duplicate signer": replaced(VALID_COMMIT_FIELDS, 3, [SIG_ITEMS[0], SIG_ITEMS[0]]),
    "too many signatures": replaced(VALID_COMMIT_FIELDS, 3,
                                    [[i.to_bytes(20, "big"), b"s" * 64] for i in range(1001)]),
    "height 0 with a round": [0, 1, b"", []],
    "height 0 with a block hash": [0, 0, b"\x22" * 32, []],
    "height 0 with signatures": [0, 0, b"", SIG_ITEMS],
}


@pytest.mark.parametrize("fields", BAD_COMMIT_FIELDS.values(), ids=BAD_COMMIT_FIELDS.keys())
def test_commit_from_fields_refuses_bad_fields(fields: object) -> None:
    with pytest.raises(DecodeError):
        Commit.from_fields(fields)


def test_commit_signature_order_is_by_validator_address() -> None:
    addresses = [s.validator for s in VALID_COMMIT.signatures]
    assert addresses == sorted(addr(k) for k in SIGNERS)
    assert all(isinstance(s, CommitSig) for s in VALID_COMMIT.signatures)


def sample_block() -> Block:
    chain = Chain(make_net(label="codec"))
    users = chain.net.user_keys
    chain.advance([chain.transfer(users[0], addr(users[1]), 5).encode()])
    tx = chain.transfer(users[1], addr(users[2]), 7).encode()
    return chain.build([tx])


SAMPLE_BLOCK = sample_block()
BLOCK_FIELDS = SAMPLE_BLOCK.to_fields()
HEADER_FIELDS = BLOCK_FIELDS[0]
BIG = 10 * 1024 * 1024


def test_block_round_trip() -> None:
    raw = SAMPLE_BLOCK.encode()
    assert not SAMPLE_BLOCK.last_commit.is_empty()
    assert Block.decode(raw, len(raw), 1) == SAMPLE_BLOCK
    assert Header.from_fields(HEADER_FIELDS) == SAMPLE_BLOCK.header


BAD_BLOCK_FIELDS = {
    "3 fields": BLOCK_FIELDS[:3],
    "5 fields": [*BLOCK_FIELDS, []],
    "header of 8 fields": replaced(BLOCK_FIELDS, 0, HEADER_FIELDS[:8]),
    "header of 10 fields": replaced(BLOCK_FIELDS, 0, [*HEADER_FIELDS, 0]),
    "header not an array": replaced(BLOCK_FIELDS, 0, b"header"),
    "chain id as bytes": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 0, b"jevons")),
    "height 0": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 1, 0)),
    "negative time": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 2, -1)),
    "prev hash 31 bytes": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 3, b"\x00" * 31)),
    "last commit hash empty": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 4, b"")),
    "tx root 33 bytes": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 5, b"\x00" * 33)),
    "state root as str": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 6, "root")),
    "validators hash 0 bytes": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 7, b"")),
    "proposer 21 bytes": replaced(BLOCK_FIELDS, 0, replaced(HEADER_FIELDS, 8, b"\x00" * 21)),
    "txs not an array": replaced(BLOCK_FIELDS, 1, b"txs"),
    "tx not bytes": replaced(BLOCK_FIELDS, 1, [VALID_TX_FIELDS]),
    "tx as str": replaced(BLOCK_FIELDS, 1, ["tx"]),
    "evidence not an array": replaced(BLOCK_FIELDS, 2, 0),
    "evidence item not bytes": replaced(BLOCK_FIELDS, 2, [[1]]),
    "too much evidence": replaced(BLOCK_FIELDS, 2, [b"e"] * (MAX_EVIDENCE + 1)),
    "last commit of 3 fields": replaced(BLOCK_FIELDS, 3, BLOCK_FIELDS[3][:3]),
    "last commit not an array": replaced(BLOCK_FIELDS, 3, b"commit"),
}


@pytest.mark.parametrize("fields", BAD_BLOCK_FIELDS.values(), ids=BAD_BLOCK_FIELDS.keys())
def test_block_decode_refuses_bad_fields(fields: list) -> None:
    with pytest.raises(DecodeError):
        Block.decode(encode(fields), BIG, 10_000)


def test_block_decode_limits() -> None:
    raw = SAMPLE_BLOCK.encode()
    with pytest.raises(DecodeError, match="limit"):
        Block.decode(raw, len(raw) - 1, 10)
    with pytest.raises(DecodeError, match="limit"):
        Block.decode(raw, len(raw), 0)  # one tx, limit zero
    Block.decode(raw, len(raw), 1)
