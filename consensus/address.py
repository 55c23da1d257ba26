"""Account addresses: 20 bytes of SHA-256(public key), shown as bech32 with prefix `jev`.

The 20-byte length is checked on decode, which closes bech32's known weakness (a `q`
inserted before a final `p` keeps the checksum valid but changes the length).
"""

from __future__ import annotations

import bech32

from consensus.errors import InvalidAddress
from consensus.hashing import sha256

HRP = "jev"
ADDRESS_LEN = 20


def address_from_pubkey(public: bytes) -> bytes:
    return sha256(public)[:ADDRESS_LEN]


def to_bech32(address: bytes) -> str:
    if len(address) != ADDRESS_LEN:
        raise InvalidAddress(f"address must be {ADDRESS_LEN} bytes, got {len(address)}")
    return bech32.bech32_encode(HRP, bech32.convertbits(address, 8, 5))


def from_bech32(text: str) -> bytes:
    """Parse `jev1…`; raise InvalidAddress saying exactly what is wrong."""
    if not isinstance(text, str) or not text:
        raise InvalidAddress("address is empty")
    if text.lower() != text and text.upper() != text:
        raise InvalidAddress(f"address {text!r} mixes upper and lower case")
    lowered = text.lower()
    if not lowered.startswith(HRP + "1"):
        raise InvalidAddress(f"address {text!r} must start with '{HRP}1'")
    hrp, data = bech32.bech32_decode(lowered)
    if hrp is None or data is None:
        raise InvalidAddress(f"address {text!r} has a bad checksum or characters outside bech32")
    if hrp != HRP:
        raise InvalidAddress(f"address prefix is {hrp!r}, expected {HRP!r}")
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != ADDRESS_LEN:
        raise InvalidAddress(f"address {text!r} does not hold {ADDRESS_LEN} bytes")
    return bytes(raw)
