"""Mnemonics and key derivation: BIP39 phrases, SLIP-0010 Ed25519 hardened derivation.

    phrase (24 words) --BIP39 PBKDF2, empty passphrase--> 64-byte seed
    seed --SLIP-0010 ed25519, path m/44'/7777'/0'/0'/0'--> 32-byte Ed25519 private seed

SLIP-0010 for Ed25519: the master key is HMAC-SHA512(key="ed25519 seed", seed), left half
the key, right half the chain code; each child is HMAC-SHA512(chain code,
0x00 || key || ser32(index)), hardened indices only (Ed25519 has no public derivation).
7777 is Jevons' coin type in the BIP44-shaped path (not registered in SLIP-0044).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata

from mnemonic import Mnemonic

from consensus.crypto import PrivateKey
from node.wallet.errors import InvalidMnemonic

HARDENED = 0x8000_0000
COIN_TYPE = 7777
DEFAULT_PATH = f"m/44'/{COIN_TYPE}'/0'/0'/0'"
WORD_COUNTS = (12, 15, 18, 21, 24)
NEW_ENTROPY_BYTES = 32  # 256 bits -> 24 words
_ED25519_CURVE = b"ed25519 seed"

_english = Mnemonic("english")


def new_mnemonic() -> str:
    """A fresh 24-word phrase from 256 bits of os.urandom."""
    return _english.to_mnemonic(os.urandom(NEW_ENTROPY_BYTES))


def normalize_mnemonic(text: str) -> str:
    """NFKD, lower case, single spaces: the form BIP39 hashes."""
    return " ".join(unicodedata.normalize("NFKD", text).lower().split())


def check_mnemonic(text: str) -> str:
    """Return the normalized phrase, or raise InvalidMnemonic saying what is wrong
    (word count, the first unknown word, or the checksum)."""
    phrase = normalize_mnemonic(text)
    words = phrase.split()
    if len(words) not in WORD_COUNTS:
        raise InvalidMnemonic(f"mnemonic has {len(words)} words; expected 12, 15, 18, 21 "
                              "or 24")
    known = set(_english.wordlist)
    for position, word in enumerate(words, 1):
        if word not in known:
            raise InvalidMnemonic(f"mnemonic word {position} ({word!r}) is not in the BIP39 "
                                  "English word list")
    if not _english.check(phrase):
        raise InvalidMnemonic("mnemonic checksum does not match: a word is wrong or two "
                              "words are swapped")
    return phrase


def mnemonic_to_seed(phrase: str, passphrase: str = "") -> bytes:
    return Mnemonic.to_seed(check_mnemonic(phrase), passphrase)


def parse_path(path: str) -> list[int]:
    """"m/44'/7777'/0'" -> hardened indices. Every step must be hardened (' or h)."""
    parts = path.strip().split("/")
    if parts[0] != "m":
        raise ValueError(f"derivation path {path!r} must start with 'm'")
    indices = []
    for part in parts[1:]:
        if not part.endswith(("'", "h", "H")):
            raise ValueError(f"derivation path {path!r}: step {part!r} is not hardened; "
                             "Ed25519 (SLIP-0010) allows hardened steps only")
        number = part[:-1]
        if not number.isdigit() or int(number) >= HARDENED:
            raise ValueError(f"derivation path {path!r}: bad step {part!r}")
        indices.append(int(number) | HARDENED)
    return indices


def slip10_master(seed: bytes) -> tuple[bytes, bytes]:
    """(key, chain code) of the SLIP-0010 Ed25519 master node."""
    digest = hmac.new(_ED25519_CURVE, seed, hashlib.sha512).digest()
    return digest[:32], digest[32:]


def slip10_child(key: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    if index < HARDENED:
        raise ValueError("SLIP-0010 Ed25519 derives hardened children only")
    data = b"\x00" + key + index.to_bytes(4, "big")
    digest = hmac.new(chain_code, data, hashlib.sha512).digest()
    return digest[:32], digest[32:]


def slip10_derive(seed: bytes, path: str) -> tuple[bytes, bytes]:
    """(key, chain code) at `path`."""
    key, chain_code = slip10_master(seed)
    for index in parse_path(path):
        key, chain_code = slip10_child(key, chain_code, index)
    return key, chain_code


def key_from_mnemonic(phrase: str, path: str = DEFAULT_PATH) -> PrivateKey:
    key, _ = slip10_derive(mnemonic_to_seed(phrase), path)
    return PrivateKey.from_seed(key)
