"""Encrypted keystores: one JSON file per key, `<wallet dir>/<name>.json`, mode 0600.

    {"version": 1, "address": "jev1…", "pubkey": "<hex>", "source": "mnemonic",
     "path": "m/44'/7777'/0'/0'/0'",
     "kdf": {"name": "argon2id", "salt": "<16 bytes hex>", "opslimit": 3,
             "memlimit": 268435456},
     "cipher": {"name": "xsalsa20-poly1305", "nonce": "<24 bytes hex>",
                "ciphertext": "<hex>"},
     "password_check": "<32 bytes hex>"}

argon2id(password, salt) gives 64 bytes: the first 32 are the SecretBox key, the SHA-256 of
the last 32 (tagged) is `password_check`. When the box does not open, a matching check means
the ciphertext was damaged, a different one means a wrong password (or an edited salt or
kdf limit, which this format cannot tell apart from one); when the box opens, a different
check means the check field was damaged. Both the check and the MAC take a full argon2id
run to test a password guess, so the check makes offline guessing no cheaper.

The plaintext is {"mnemonic": "…"} or {"seed": "<hex>"}. Address and pubkey are in clear
so that list/show need no password; after decryption they must match the key.
Writes are atomic (temp file in the same directory, fsync, link/rename, fsync the
directory) and never replace an existing key unless asked to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils

from consensus.address import address_from_pubkey, from_bech32, to_bech32
from consensus.crypto import SEED_LEN, PrivateKey
from consensus.errors import InvalidAddress
from consensus.hashing import sha256
from node.fsutil import fsync_dir
from node.wallet.derivation import DEFAULT_PATH, check_mnemonic, key_from_mnemonic
from node.wallet.errors import (
    InvalidMnemonic,
    KeyNotFound,
    KeystoreCorrupt,
    KeystoreError,
    WalletError,
    WrongPassword,
)

VERSION = 1
KDF_NAME = "argon2id"
CIPHER_NAME = "xsalsa20-poly1305"
SALT_LEN = argon2id.SALTBYTES  # 16
CHECK_TAG = b"jevons keystore v1 password check\x00"
MAX_FILE_BYTES = 64 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KDF_ENV = "JEVONS_KDF"

# Limits read back from a file are bounded, so a hostile file cannot ask for 100 GiB.
OPSLIMIT_RANGE = (argon2id.OPSLIMIT_MIN, 16)
MEMLIMIT_RANGE = (argon2id.MEMLIMIT_MIN, 4 * 1024**3)
SOURCES = ("mnemonic", "private_key")


@dataclass(frozen=True, slots=True)
class KdfLimits:
    opslimit: int
    memlimit: int


# libsodium's MODERATE: 3 passes over 256 MiB, about 0.6 s on one core here.
MODERATE = KdfLimits(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE)
# For tests only (JEVONS_KDF=fast): 1 pass over 8 KiB offers no protection.
FAST = KdfLimits(argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN)


def kdf_limits_from_env() -> KdfLimits:
    value = os.environ.get(KDF_ENV, "")
    if value in ("", "moderate"):
        return MODERATE
    if value == "fast":
        return FAST
    raise WalletError(f"{KDF_ENV}={value!r} is not understood: unset it (or 'moderate'); "
                      "'fast' is for tests only")


@dataclass(frozen=True, slots=True)
class Secret:
    """What a keystore protects: a mnemonic (the key derives from it) or a bare seed."""

    source: str
    seed: bytes = field(repr=False)  # never in a repr or a traceback
    mnemonic: str | None = field(default=None, repr=False)
    path: str | None = None

    @classmethod
    def from_mnemonic(cls, phrase: str, path: str = DEFAULT_PATH) -> Secret:
        phrase = check_mnemonic(phrase)
        return cls("mnemonic", key_from_mnemonic(phrase, path).seed, phrase, path)

    @classmethod
    def from_seed(cls, seed: bytes) -> Secret:
        if len(seed) != SEED_LEN:
            raise WalletError(f"private key must be {SEED_LEN} bytes, got {len(seed)}")
        return cls("private_key", seed)

    @property
    def key(self) -> PrivateKey:
        return PrivateKey.from_seed(self.seed)

    def plaintext(self) -> bytes:
        body = {"mnemonic": self.mnemonic} if self.mnemonic else {"seed": self.seed.hex()}
        return json.dumps(body).encode()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """The public part of a keystore file, read without the password."""

    name: str
    file: Path
    address: str
    pubkey: bytes
    source: str
    path: str | None
    limits: KdfLimits

    @property
    def weak_kdf(self) -> bool:
        return self.limits.memlimit < argon2id.MEMLIMIT_INTERACTIVE


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise WalletError(f"key name {name!r} must be 1-64 of A-Z a-z 0-9 _ . - and start "
                          "with a letter or digit")
    return name


# --- encryption ---------------------------------------------------------------------------

def _derive(password: str, salt: bytes, limits: KdfLimits) -> tuple[bytes, bytes]:
    out = argon2id.kdf(64, password.encode("utf-8"), salt, opslimit=limits.opslimit,
                       memlimit=limits.memlimit)
    return out[:32], sha256(CHECK_TAG + out[32:])


def encrypt_secret(secret: Secret, password: str, limits: KdfLimits) -> dict[str, Any]:
    salt = nacl.utils.random(SALT_LEN)
    key, check = _derive(password, salt, limits)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(key).encrypt(secret.plaintext(), nonce)
    public = secret.key.public
    return {
        "version": VERSION,
        "address": to_bech32(address_from_pubkey(public)),
        "pubkey": public.hex(),
        "source": secret.source,
        "path": secret.path,
        "kdf": {"name": KDF_NAME, "salt": salt.hex(), "opslimit": limits.opslimit,
                "memlimit": limits.memlimit},
        "cipher": {"name": CIPHER_NAME, "nonce": nonce.hex(), "ciphertext": box.ciphertext.hex()},
        "password_check": check.hex(),
    }


def decrypt_secret(doc: dict[str, Any], password: str, file: Path) -> Secret:
    """Unlock a keystore document; every failure names what is wrong."""
    where = str(file)
    info = parse_keystore(doc, file)
    kdf, cipher = doc["kdf"], doc["cipher"]
    key, check = _derive(password, bytes.fromhex(kdf["salt"]), info.limits)
    box = nacl.secret.SecretBox(key)
    try:
        plain = box.decrypt(bytes.fromhex(cipher["ciphertext"]), bytes.fromhex(cipher["nonce"]))
    except nacl.exceptions.CryptoError as exc:
        if check != bytes.fromhex(doc["password_check"]):
            raise WrongPassword(f"wrong password for key {info.name!r} ({where})") from exc
        raise _corrupt(where, "the ciphertext fails authentication (it was altered or "
                       "damaged)") from exc
    if check != bytes.fromhex(doc["password_check"]):
        raise _corrupt(where, "field 'password_check' does not match the password that "
                       "decrypts the key")
    secret = _parse_plaintext(plain, info, where)
    if secret.key.public != info.pubkey:
        raise _corrupt(where, "the decrypted key does not match the file's pubkey and address")
    return secret


def _parse_plaintext(plain: bytes, info: KeyInfo, where: str) -> Secret:
    try:
        body = json.loads(plain)
        if info.source == "mnemonic":
            return Secret.from_mnemonic(body["mnemonic"], info.path or DEFAULT_PATH)
        return Secret.from_seed(bytes.fromhex(body["seed"]))
    except (ValueError, KeyError, TypeError, InvalidMnemonic, WalletError) as exc:
        raise _corrupt(where, f"the decrypted secret is not a valid {info.source}") from exc


# --- parsing ------------------------------------------------------------------------------

def _corrupt(where: str, what: str) -> KeystoreCorrupt:
    return KeystoreCorrupt(f"keystore {where} is corrupt: {what}; restore the file from a "
                           "backup or re-import the key from its mnemonic")


def _field(doc: dict, name: str, kind: type, where: str, prefix: str = "") -> Any:
    value = doc.get(name)
    if type(value) is not kind:
        raise _corrupt(where, f"field '{prefix}{name}' must be a {kind.__name__}, "
                       f"got {value!r:.40}")
    return value


def _hex(doc: dict, name: str, where: str, prefix: str = "", length: int | None = None) -> bytes:
    text = _field(doc, name, str, where, prefix)
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise _corrupt(where, f"field '{prefix}{name}' is not hex") from exc
    if length is not None and len(raw) != length:
        raise _corrupt(where, f"field '{prefix}{name}' must be {length} bytes, got {len(raw)}")
    return raw


def _bounded(doc: dict, name: str, bounds: tuple[int, int], where: str) -> int:
    value = _field(doc, name, int, where, "kdf.")
    if not bounds[0] <= value <= bounds[1]:
        raise _corrupt(where, f"field 'kdf.{name}' is {value}, outside {bounds[0]}..{bounds[1]}")
    return value


def parse_keystore(doc: object, file: Path) -> KeyInfo:
    """Check every field's shape and the public fields (no password needed)."""
    where = str(file)
    if not isinstance(doc, dict):
        raise _corrupt(where, "expected a JSON object")
    if doc.get("version") != VERSION:
        raise _corrupt(where, f"field 'version' is {doc.get('version')!r}, expected {VERSION}")
    source = _field(doc, "source", str, where)
    if source not in SOURCES:
        raise _corrupt(where, f"field 'source' is {source!r}, expected one of {SOURCES}")
    path = doc.get("path")
    if source == "mnemonic" and not isinstance(path, str):
        raise _corrupt(where, "field 'path' must hold the derivation path of a mnemonic key")
    kdf = _field(doc, "kdf", dict, where)
    cipher = _field(doc, "cipher", dict, where)
    if kdf.get("name") != KDF_NAME:
        raise _corrupt(where, f"field 'kdf.name' is {kdf.get('name')!r}, expected {KDF_NAME!r}")
    if cipher.get("name") != CIPHER_NAME:
        raise _corrupt(where, f"field 'cipher.name' is {cipher.get('name')!r}, "
                       f"expected {CIPHER_NAME!r}")
    _hex(kdf, "salt", where, "kdf.", SALT_LEN)
    _hex(cipher, "nonce", where, "cipher.", nacl.secret.SecretBox.NONCE_SIZE)
    _hex(cipher, "ciphertext", where, "cipher.")
    _hex(doc, "password_check", where, "", 32)
    limits = KdfLimits(_bounded(kdf, "opslimit", OPSLIMIT_RANGE, where),
                       _bounded(kdf, "memlimit", MEMLIMIT_RANGE, where))
    pubkey = _hex(doc, "pubkey", where, "", 32)
    address = _field(doc, "address", str, where)
    try:
        raw_address = from_bech32(address)
    except InvalidAddress as exc:
        raise _corrupt(where, f"field 'address': {exc}") from exc
    if raw_address != address_from_pubkey(pubkey):
        raise _corrupt(where, "field 'address' does not belong to field 'pubkey'")
    return KeyInfo(file.stem, file, address, pubkey, source, path, limits)


# --- files --------------------------------------------------------------------------------

def write_new_file(path: Path, data: bytes, force: bool) -> None:
    """Write `data` to `path` atomically with mode 0600. Without `force` an existing file
    is never replaced (the final step is a hard link, which fails if the name exists)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


class Wallet:
    """A wallet directory of keystore files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def file(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.json"

    def exists(self, name: str) -> bool:
        return self.file(name).exists()

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json")
                      if NAME_RE.match(p.stem) and p.is_file())

    def ensure_dir(self) -> None:
        if not self.dir.exists():
            self.dir.mkdir(parents=True, mode=0o700)
            os.chmod(self.dir, 0o700)
        elif not self.dir.is_dir():
            raise KeystoreError(f"wallet directory {self.dir} exists and is not a directory")

    def save(self, name: str, secret: Secret, password: str, limits: KdfLimits,
             force: bool = False) -> KeyInfo:
        path = self.file(name)
        if path.exists() and not force:
            raise WalletError(f"key {name!r} already exists ({path}); choose another name or "
                              "pass --force to replace it")
        doc = encrypt_secret(secret, password, limits)
        self.ensure_dir()
        try:
            write_new_file(path, (json.dumps(doc, indent=2) + "\n").encode(), force)
        except FileExistsError as exc:
            raise WalletError(f"key {name!r} already exists ({path}); pass --force to "
                              "replace it") from exc
        return parse_keystore(doc, path)

    def read_doc(self, name: str) -> tuple[dict[str, Any], Path]:
        path = self.file(name)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError as exc:
            raise KeyNotFound(f"no key named {name!r} in {self.dir} (see `jevons wallet keys "
                              "list`)") from exc
        except OSError as exc:
            raise KeystoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if len(raw) > MAX_FILE_BYTES:
            raise _corrupt(str(path), f"file is over {MAX_FILE_BYTES} bytes")
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _corrupt(str(path), f"not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise _corrupt(str(path), "expected a JSON object")
        return doc, path

    def info(self, name: str) -> KeyInfo:
        doc, path = self.read_doc(name)
        return parse_keystore(doc, path)

    def unlock(self, name: str, password: str) -> Secret:
        doc, path = self.read_doc(name)
        return decrypt_secret(doc, password, path)

    def delete(self, name: str) -> Path:
        path = self.file(name)
        try:
            path.unlink()
        except FileNotFoundError as exc:
            raise KeyNotFound(f"no key named {name!r} in {self.dir}") from exc
        fsync_dir(self.dir)
        return path
