"""bech32 addresses: round trip, and each kind of damage refused with InvalidAddress."""

from __future__ import annotations

import bech32
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.address import ADDRESS_LEN, HRP, address_from_pubkey, from_bech32, to_bech32
from consensus.errors import InvalidAddress
from consensus.hashing import sha256
from tests.unit.helpers import key

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
addresses = st.binary(min_size=ADDRESS_LEN, max_size=ADDRESS_LEN)
SAMPLE = to_bech32(bytes(range(ADDRESS_LEN)))


def encode_with(hrp: str, payload: bytes) -> str:
    return bech32.bech32_encode(hrp, bech32.convertbits(payload, 8, 5))


@given(addresses)
def test_round_trip(address: bytes) -> None:
    text = to_bech32(address)
    assert text.startswith(HRP + "1")
    assert text == text.lower()
    assert from_bech32(text) == address
    assert from_bech32(text.upper()) == address  # BIP 173: all-upper is the same address


def test_address_is_a_hash_prefix_of_the_public_key() -> None:
    k = key("address/key")
    assert address_from_pubkey(k.public) == sha256(k.public)[:ADDRESS_LEN]
    assert from_bech32(to_bech32(address_from_pubkey(k.public))) == sha256(k.public)[:20]


@given(addresses, st.data())
def test_any_single_character_substitution_is_refused(address: bytes,
                                                      data: st.DataObject) -> None:
    text = to_bech32(address)
    pos = data.draw(st.integers(len(HRP) + 1, len(text) - 1))
    replacement = data.draw(st.sampled_from(CHARSET.replace(text[pos], "")))
    with pytest.raises(InvalidAddress):
        from_bech32(text[:pos] + replacement + text[pos + 1:])


def test_every_position_flipped_is_refused() -> None:
    for pos in range(len(SAMPLE)):
        replacement = "q" if SAMPLE[pos] != "q" else "p"
        # In the prefix the damage is a wrong prefix; after it, a checksum failure.
        reason = "must start with" if pos <= len(HRP) else "bad checksum"
        with pytest.raises(InvalidAddress, match=reason):
            from_bech32(SAMPLE[:pos] + replacement + SAMPLE[pos + 1:])


@pytest.mark.parametrize("hrp", ["cosmos", "jevx", "je", "bc", "tjev"])
def test_wrong_prefix_is_refused(hrp: str) -> None:
    text = encode_with(hrp, bytes(range(ADDRESS_LEN)))
    assert bech32.bech32_decode(text)[0] == hrp  # a valid bech32 string, just not ours
    with pytest.raises(InvalidAddress, match="jev1"):
        from_bech32(text)


def test_prefix_with_a_separator_inside_is_refused() -> None:
    text = encode_with("jev1x", bytes(range(ADDRESS_LEN)))
    with pytest.raises(InvalidAddress, match="prefix"):
        from_bech32(text)


def test_mixed_case_is_refused() -> None:
    mixed = SAMPLE[:-1] + SAMPLE[-1].upper()
    assert mixed != SAMPLE
    with pytest.raises(InvalidAddress, match="case"):
        from_bech32(mixed)
    with pytest.raises(InvalidAddress, match="case"):
        from_bech32("JEV" + SAMPLE[3:])


@pytest.mark.parametrize("length", [0, 1, 19, 21, 32])
def test_wrong_payload_length_is_refused(length: int) -> None:
    text = encode_with(HRP, bytes(length))
    assert bech32.bech32_decode(text)[0] == HRP
    with pytest.raises(InvalidAddress, match="20 bytes"):
        from_bech32(text)


def test_inserted_q_before_a_final_p_is_refused() -> None:
    """bech32's known weakness: 'q's inserted before a final 'p' keep the checksum valid."""
    seed = 0
    while not (text := to_bech32(sha256(seed.to_bytes(4, "big"))[:ADDRESS_LEN])).endswith("p"):
        seed += 1
    longer = text[:-1] + "qp"
    assert bech32.bech32_decode(longer)[0] == HRP  # the checksum alone does not catch it
    with pytest.raises(InvalidAddress, match="20 bytes"):
        from_bech32(longer)


@pytest.mark.parametrize("text", ["", "jev1", "jev", "1", "jev1" + "q" * 100,
                                  SAMPLE + "q", SAMPLE[:-1], SAMPLE.replace("1", "b", 1),
                                  SAMPLE[:10] + "b" + SAMPLE[11:], " " + SAMPLE, SAMPLE + " "])
def test_malformed_strings_are_refused(text: str) -> None:
    with pytest.raises(InvalidAddress):
        from_bech32(text)


@pytest.mark.parametrize("value", [None, b"jev1", 5])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidAddress):
        from_bech32(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 19, 21, 32])
def test_to_bech32_refuses_wrong_lengths(length: int) -> None:
    with pytest.raises(InvalidAddress):
        to_bech32(bytes(length))
