"""Key files in a node home: the validator's signing key and the p2p identity seed.

Both are written atomically with mode 0600. The validator key file is plaintext JSON (like
CometBFT's priv_validator_key.json): protect the home directory. Wallet keystores are
encrypted and live elsewhere.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from consensus.address import address_from_pubkey, to_bech32
from consensus.crypto import SEED_LEN, PrivateKey
from node.errors import HomeError
from node.fsutil import atomic_write


def new_private_key() -> PrivateKey:
    return PrivateKey.from_seed(os.urandom(SEED_LEN))


def write_validator_key(path: Path, key: PrivateKey) -> None:
    doc = {"address": to_bech32(address_from_pubkey(key.public)), "pub_key": key.public.hex(),
           "seed": key.seed.hex()}
    atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)


def read_validator_key(path: Path) -> PrivateKey:
    doc = _read_json(path)
    try:
        key = PrivateKey.from_seed(bytes.fromhex(doc["seed"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise HomeError(f"{path}: field 'seed' must be {SEED_LEN * 2} hex characters") from exc
    if doc.get("pub_key") != key.public.hex():
        raise HomeError(f"{path}: pub_key does not match the seed; the key file is corrupt")
    return key


def write_node_key(path: Path, seed: bytes) -> None:
    atomic_write(path, seed.hex().encode() + b"\n", mode=0o600)


def read_node_key(path: Path) -> bytes:
    _check_private(path)
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise HomeError(f"{path}: expected {SEED_LEN * 2} hex characters ({exc})") from exc
    if len(seed) != SEED_LEN:
        raise HomeError(f"{path}: expected {SEED_LEN} bytes, got {len(seed)}")
    return seed


def _check_private(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise HomeError(f"{path}: key file is missing") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HomeError(f"{path}: key file is readable by others (mode {oct(mode & 0o777)}); "
                        f"run: chmod 600 {path}")


def _read_json(path: Path) -> dict:
    _check_private(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HomeError(f"{path}: cannot read key file: {exc}") from exc
    if not isinstance(doc, dict):
        raise HomeError(f"{path}: expected a JSON object")
    return doc


def peer_id_from_seed(seed: bytes) -> str:
    """The libp2p peer id (12D3KooW…) of the Ed25519 identity made from `seed`."""
    from libp2p.crypto.ed25519 import create_new_key_pair  # heavy import: only when asked
    from libp2p.peer.id import ID

    return ID.from_pubkey(create_new_key_pair(seed).public_key).to_base58()
