"""Ed25519 keys and domain-separated signatures (PyNaCl / libsodium).

Every signature covers `domain(kind, chain_id) || payload`, so a signature made for one kind
of object (a transaction, a vote) or one chain can never be replayed as another.
Key generation takes a seed: the caller supplies randomness (node/wallet use os.urandom).
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.bindings as sodium
from nacl.exceptions import BadSignatureError, CryptoError

from consensus.errors import InvalidSignature

PUBKEY_LEN = 32
SIG_LEN = 64
SEED_LEN = 32

# Object kinds that get their own signing domain.
DOMAIN_TX = "tx"
DOMAIN_VOTE = "vote"
DOMAIN_PROPOSAL = "proposal"


def signing_domain(kind: str, chain_id: str) -> bytes:
    return b"jevons/v1/" + kind.encode() + b"/" + chain_id.encode() + b"\x00"


@dataclass(frozen=True, slots=True)
class PrivateKey:
    seed: bytes
    public: bytes
    _secret: bytes  # libsodium's 64-byte secret key (seed || public)

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        if len(seed) != SEED_LEN:
            raise ValueError(f"Ed25519 seed must be {SEED_LEN} bytes, got {len(seed)}")
        public, secret = sodium.crypto_sign_seed_keypair(seed)
        return cls(seed=seed, public=public, _secret=secret)

    def sign(self, kind: str, chain_id: str, payload: bytes) -> bytes:
        message = signing_domain(kind, chain_id) + payload
        return sodium.crypto_sign(message, self._secret)[:SIG_LEN]

    def __repr__(self) -> str:  # never print secrets
        return f"PrivateKey(public={self.public.hex()})"


def verify_signature(public: bytes, signature: bytes, message: bytes) -> bool:
    """Verify a detached signature over an already domain-separated message."""
    if len(public) != PUBKEY_LEN or len(signature) != SIG_LEN:
        return False
    try:
        sodium.crypto_sign_open(signature + message, public)
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True


def verify(public: bytes, signature: bytes, kind: str, chain_id: str, payload: bytes) -> None:
    if not verify_signature(public, signature, signing_domain(kind, chain_id) + payload):
        raise InvalidSignature(f"{kind} signature does not verify for key {public.hex()[:16]}…")
