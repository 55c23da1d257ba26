"""`jevons wallet keys …`: create, import, list, show, export and delete keys in the
encrypted keystore."""

from __future__ import annotations

from typing import Any

import click

from node.cli.wallet.base import (
    WalletGroup,
    emit,
    force_option,
    note,
    password_option,
    settings,
    shared_options,
    wallet,
)
from node.wallet.derivation import new_mnemonic
from node.wallet.errors import WalletError
from node.wallet.inputs import (
    confirm,
    get_mnemonic,
    get_password,
    read_private_key_file,
)
from node.wallet.keystore import KeyInfo, Secret, check_name, kdf_limits_from_env


def key_json(info: KeyInfo) -> dict[str, Any]:
    return {"name": info.name, "address": info.address, "pubkey": info.pubkey.hex(),
            "source": info.source, "path": info.path, "file": str(info.file)}


@wallet.group(cls=WalletGroup)
def keys() -> None:
    """Create, import, list, show, export and delete keys."""


def save_key(name: str, secret: Secret, password_file: str | None, force: bool) -> KeyInfo:
    s = settings()
    check_name(name)
    w = s.wallet()
    if w.exists(name) and not force:
        raise WalletError(f"key {name!r} already exists ({w.file(name)}); choose another "
                          "name or pass --force to replace it")
    password = get_password(password_file, new=True, key_name=name)
    return w.save(name, secret, password, kdf_limits_from_env(), force)


@keys.command("new")
@click.argument("name")
@password_option
@force_option
@shared_options
def keys_new(name: str, password_file: str | None, force: bool) -> None:
    """Create key NAME from a new 24-word recovery phrase."""
    phrase = new_mnemonic()
    info = save_key(name, Secret.from_mnemonic(phrase), password_file, force)
    if settings().json:
        emit({**key_json(info), "mnemonic": phrase}, "")
        return
    note("Write down this recovery phrase and keep it offline. It is shown only this once; "
         "anyone who has it can spend from this key.\n\n    " + phrase + "\n")
    click.echo(f"created key {name!r}: {info.address}  ({info.file})")


@keys.command("import")
@click.argument("name")
@click.option("--mnemonic-file", metavar="PATH",
              help="Read the recovery phrase from this file ('-': stdin) instead of a prompt.")
@click.option("--private-key-file", metavar="PATH",
              help="Import a raw Ed25519 seed instead: 64 hex characters, or JSON with a "
                   "'seed' field (a node's validator.json, a dev account).")
@password_option
@force_option
@shared_options
def keys_import(name: str, mnemonic_file: str | None, private_key_file: str | None,
                password_file: str | None, force: bool) -> None:
    """Import key NAME from its recovery phrase (checked before anything is written)."""
    check_name(name)
    if mnemonic_file and private_key_file:
        raise WalletError("pass either --mnemonic-file or --private-key-file, not both")
    if password_file == "-" and "-" in (mnemonic_file, private_key_file):
        raise WalletError("stdin can carry the secret or the password, not both: give one "
                          "of them as a file")
    if private_key_file:
        secret = Secret.from_seed(read_private_key_file(private_key_file))
    else:
        secret = Secret.from_mnemonic(get_mnemonic(mnemonic_file))
    info = save_key(name, secret, password_file, force)
    emit(key_json(info), f"imported key {name!r}: {info.address}  ({info.file})")


@keys.command("list")
@shared_options
def keys_list() -> None:
    """List the keys of the wallet (no password needed)."""
    w = settings().wallet()
    rows: list[dict[str, Any]] = []
    for name in w.names():
        try:
            rows.append(key_json(w.info(name)))
        except WalletError as exc:
            rows.append({"name": name, "error": str(exc)})
            note(f"Warning: {exc}")
    lines = [f"{r['name']:20} {r['address']}  {r['source']}" for r in rows if "error" not in r]
    emit(rows, "\n".join(lines) if lines else f"no keys in {w.dir}")


@keys.command("show")
@click.argument("name")
@click.option("-a", "--address", "address_only", is_flag=True, help="Print only the address.")
@shared_options
def keys_show(name: str, address_only: bool) -> None:
    """Show key NAME: address, public key, origin (no password needed)."""
    info = settings().wallet().info(name)
    if address_only and not settings().json:
        click.echo(info.address)
        return
    kdf = f"argon2id, {info.limits.opslimit} pass(es), {info.limits.memlimit // 1024} KiB"
    if info.weak_kdf:
        kdf += " (weak: made with JEVONS_KDF=fast, for tests only)"
    emit({**key_json(info), "kdf": {"opslimit": info.limits.opslimit,
                                    "memlimit": info.limits.memlimit}},
         f"name:    {info.name}\naddress: {info.address}\npubkey:  {info.pubkey.hex()}\n"
         f"source:  {info.source}{f' ({info.path})' if info.path else ''}\n"
         f"kdf:     {kdf}\nfile:    {info.file}")


@keys.command("export")
@click.argument("name")
@click.option("--private-key", "as_private_key", is_flag=True,
              help="Print the raw Ed25519 seed (hex) even for a mnemonic key.")
@password_option
@shared_options
def keys_export(name: str, as_private_key: bool, password_file: str | None) -> None:
    """Print key NAME's recovery phrase (or private key). Anyone who sees it owns the key."""
    w = settings().wallet()
    info = w.info(name)
    confirm(f"Print the secret of key {name!r} ({info.address}) on this screen?",
            settings().yes)
    secret = w.unlock(name, get_password(password_file, new=False, key_name=name))
    data = {"name": name, "address": info.address, "private_key": secret.seed.hex()}
    if secret.mnemonic:
        data["mnemonic"] = secret.mnemonic
    emit(data, secret.mnemonic if secret.mnemonic and not as_private_key else secret.seed.hex())


@keys.command("delete")
@click.argument("name")
@shared_options
def keys_delete(name: str) -> None:
    """Delete key NAME's keystore file (only its recovery phrase can bring it back)."""
    w = settings().wallet()
    info = w.info(name)
    confirm(f"Delete key {name!r} ({info.address})? Only its recovery phrase can restore "
            "it.", settings().yes)
    path = w.delete(name)
    emit({"name": name, "deleted": str(path)}, f"deleted key {name!r} ({path})")
