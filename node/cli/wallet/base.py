"""The `jevons wallet` group and the plumbing its commands share: the global options
(--node, -o/--output, --yes, --wallet-dir, accepted before or after the subcommand), the
settings they fill, error handling (a JevonsError becomes one `Error: …` line and the exit
code of node/wallet/errors.py) and output (`emit`, `note`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from consensus.errors import JevonsError
from node.wallet.client import DEFAULT_NODE, NODE_ENV, NodeClient, default_node_url
from node.wallet.keystore import Wallet

WALLET_DIR_ENV = "JEVONS_WALLET_DIR"


def default_wallet_dir() -> Path:
    return Path(os.environ.get(WALLET_DIR_ENV) or Path.home() / ".jevons" / "wallet")


@dataclass
class Settings:
    node: str = field(default_factory=default_node_url)
    output: str = "text"
    yes: bool = False
    wallet_dir: Path = field(default_factory=default_wallet_dir)

    @property
    def json(self) -> bool:
        return self.output == "json"

    def wallet(self) -> Wallet:
        return Wallet(self.wallet_dir)

    def client(self) -> NodeClient:
        return NodeClient(self.node)


class WalletExit(click.ClickException):
    """Prints `Error: <message>` on stderr and exits with the error's own code."""

    def __init__(self, error: JevonsError) -> None:
        super().__init__(str(error))
        self.exit_code = int(getattr(error, "exit_code", 1))


class WalletGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JevonsError as exc:
            raise WalletExit(exc) from exc


def settings() -> Settings:
    return click.get_current_context().ensure_object(Settings)


def _set(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(Settings), name, value)
    return callback


def shared_options(f: Callable) -> Callable:
    """--node, -o, --yes, --wallet-dir: on the group and on every command."""
    for option in reversed([
        click.option("--node", metavar="URL", callback=_set("node"), expose_value=False,
                     help=f"Node API URL [env {NODE_ENV}; default {DEFAULT_NODE}]."),
        click.option("-o", "--output", type=click.Choice(["text", "json"]),
                     callback=_set("output"), expose_value=False,
                     help="json: one JSON document on stdout, messages on stderr."),
        click.option("-y", "--yes", is_flag=True, default=False, callback=_set("yes"),
                     expose_value=False, help="Answer yes to confirmations."),
        click.option("--wallet-dir", type=click.Path(file_okay=False, path_type=Path),
                     callback=_set("wallet_dir"), expose_value=False,
                     help=f"Keystore directory [env {WALLET_DIR_ENV}; default "
                          "~/.jevons/wallet]."),
    ]):
        f = option(f)
    return f


password_option = click.option(
    "--password-file", metavar="PATH",
    help="Read the password from this file ('-': stdin) instead of "
         "JEVONS_WALLET_PASSWORD or the terminal.")
force_option = click.option("--force", is_flag=True, help="Replace an existing key of "
                            "this name (its old file is gone for good).")


def note(message: str) -> None:
    click.echo(message, err=True)


def emit(data: Any, text: str) -> None:
    if settings().json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(text)


@click.group(cls=WalletGroup)
@shared_options
@click.pass_context
def wallet(ctx: click.Context) -> None:
    """Keys (encrypted keystore, mnemonic recovery), balances, transfers and staking."""
    ctx.ensure_object(Settings)
