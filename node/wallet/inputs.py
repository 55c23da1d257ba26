"""Where secrets and confirmations come from: a file, the environment, or the terminal.

Password sources, first match wins: --password-file PATH ('-' reads stdin), the
environment variable JEVONS_WALLET_PASSWORD, a hidden prompt on the terminal. There is no
--password flag: a password on the command line lands in shell history and `ps`.
Nothing prompts when stdin is not a terminal; the error names the non-interactive way.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from consensus.crypto import PUBKEY_LEN, SEED_LEN, PrivateKey
from node.wallet.errors import WalletError

PASSWORD_ENV = "JEVONS_WALLET_PASSWORD"
MIN_PASSWORD_LEN = 8
MAX_SECRET_FILE_BYTES = 64 * 1024


def is_interactive() -> bool:
    return sys.stdin.isatty()


def read_secret_file(path: str, what: str) -> str:
    """The text of `path` ('-': stdin) without its trailing newline."""
    try:
        if path == "-":
            text = sys.stdin.read(MAX_SECRET_FILE_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise WalletError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WalletError(f"{what} file {path} is not UTF-8 text") from exc
    if len(text) > MAX_SECRET_FILE_BYTES:
        raise WalletError(f"{what} file {path} is over {MAX_SECRET_FILE_BYTES} bytes")
    return text.rstrip("\r\n")


def get_password(password_file: str | None, new: bool, key_name: str) -> str:
    """The password for `key_name`; `new` asks twice on a terminal and enforces a minimum
    length whatever the source."""
    if password_file is not None:
        password = read_secret_file(password_file, "password")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif is_interactive():
        label = f"New password for key '{key_name}'" if new else f"Password for '{key_name}'"
        password = click.prompt(label, hide_input=True, confirmation_prompt=new, err=True)
    else:
        raise WalletError("a password is needed but stdin is not a terminal: pass "
                          f"--password-file FILE (or - for stdin) or set {PASSWORD_ENV}")
    if not password:
        raise WalletError("the password is empty")
    if new and len(password) < MIN_PASSWORD_LEN:
        raise WalletError(f"the password has {len(password)} characters; use at least "
                          f"{MIN_PASSWORD_LEN}")
    return password


def get_mnemonic(mnemonic_file: str | None) -> str:
    if mnemonic_file is not None:
        return read_secret_file(mnemonic_file, "mnemonic")
    if not is_interactive():
        raise WalletError("a mnemonic is needed but stdin is not a terminal: pass "
                          "--mnemonic-file FILE (or - for stdin)")
    return click.prompt("Recovery phrase (12-24 words)", hide_input=True, err=True)


def read_private_key_file(path: str) -> bytes:
    """A 32-byte Ed25519 seed from a file holding 64 hex characters, 128 hex characters
    (seed || public key, libsodium's secret key) or a JSON object with a "seed" field
    (a node's keys/validator.json, an entry of a testnet's accounts.json)."""
    text = read_secret_file(path, "private key").strip()
    where = f"private key file {Path(path) if path != '-' else 'stdin'}"
    if text.startswith("{"):
        try:
            text = json.loads(text)["seed"]
        except (ValueError, KeyError, TypeError) as exc:
            raise WalletError(f"{where}: JSON without a string field 'seed'") from exc
    try:
        raw = bytes.fromhex(text)
    except (ValueError, TypeError) as exc:
        raise WalletError(f"{where}: expected {2 * SEED_LEN} hex characters") from exc
    if len(raw) == SEED_LEN + PUBKEY_LEN:
        seed, public = raw[:SEED_LEN], raw[SEED_LEN:]
        if PrivateKey.from_seed(seed).public != public:
            raise WalletError(f"{where}: the public half does not match the seed half")
        return seed
    if len(raw) != SEED_LEN:
        raise WalletError(f"{where}: expected {SEED_LEN} bytes ({2 * SEED_LEN} hex "
                          f"characters), got {len(raw)}")
    return raw


def confirm(question: str, yes: bool) -> None:
    """Ask before doing something irreversible; --yes answers for the user."""
    if yes:
        return
    if not is_interactive():
        raise WalletError("this needs a confirmation but stdin is not a terminal: pass --yes")
    click.confirm(question, abort=True, err=True)
