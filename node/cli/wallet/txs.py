"""`jevons wallet balance|send|stake|unstake|tx status`, and the transaction plumbing the
market commands share: the --from/--fee/--nonce/--wait options, signing and sending,
reporting, hash parsing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from consensus.address import to_bech32
from node.cli.wallet.base import (
    WalletGroup,
    emit,
    password_option,
    settings,
    shared_options,
    wallet,
)
from node.wallet.client import NodeClient
from node.wallet.errors import WalletError
from node.wallet.inputs import confirm, get_password
from node.wallet.txflow import (
    Plan,
    body_for,
    check_affordable,
    parse_value,
    plan_tx,
    resolve_address,
    show,
    sign,
)


@wallet.command()
@click.argument("account", metavar="ADDRESS|NAME")
@shared_options
def balance(account: str) -> None:
    """Show the balance, stake and nonce of an address or a key."""
    s = settings()
    address = resolve_address(s.wallet(), account, "account")
    with s.client() as client:
        body = client.account(to_bech32(address))
    lines = [f"address: {body['address']}", f"balance: {show(body['balance'])}",
             f"stake:   {show(body['stake'])}"]
    lines += [f"unbonding: {show(u['amount'])} until height {u['release_height']}"
              for u in body.get("unbonding", [])]
    emit(body, "\n".join([*lines, f"nonce:   {body['nonce']}"]))


def make_tx_options(wait_help: str) -> Callable[[Callable], Callable]:
    def decorate(f: Callable) -> Callable:
        for option in reversed([
            click.option("--from", "sender", metavar="NAME", required=True,
                         help="The key that signs and pays."),
            click.option("--fee", metavar="AMOUNT", help="Fee with a unit, e.g. 150ujev "
                         "[default: the chain's minimum fee]."),
            click.option("--nonce", type=click.IntRange(0), help="Override the account's "
                         "next nonce (to replace or queue transactions)."),
            click.option("--wait", is_flag=True, help=wait_help),
            password_option,
            shared_options,
        ]):
            f = option(f)
        return f
    return decorate


tx_options = make_tx_options("Wait until the transaction is in a block (up to 60 s).")


def parse_fee(fee_text: str | None) -> int | None:
    return parse_value(fee_text, "--fee", unit_required=True) if fee_text else None


def sign_and_send(client: NodeClient, plan: Plan, password_file: str | None,
                  wait: bool) -> tuple[str, dict[str, Any]]:
    """Local funds check, confirmation, unlock, sign, POST /txs: (tx hash, node's answer)."""
    check_affordable(plan)
    confirm(f"Confirm: {plan.describe()}?", settings().yes)
    name = plan.sender.name
    key = settings().wallet().unlock(name, get_password(password_file, new=False,
                                                        key_name=name)).key
    tx = sign(plan, key)
    return tx.hash().hex(), client.broadcast(tx.encode(), wait)


def run_tx(kind: str, sender: str, amount_text: str, to_text: str | None, fee_text: str | None,
           nonce: int | None, wait: bool, password_file: str | None) -> None:
    s = settings()
    w = s.wallet()
    to = resolve_address(w, to_text, "recipient") if to_text is not None else None
    amount = parse_value(amount_text, "amount")
    fee = parse_fee(fee_text)
    info = w.info(sender)
    with s.client() as client:
        plan = plan_tx(client, info, body_for(kind, amount, to), fee, nonce)
        tx_hash, answer = sign_and_send(client, plan, password_file, wait)
    report_tx(plan, tx_hash, answer, wait)


def report_tx(plan: Plan, tx_hash: str, answer: dict[str, Any], wait: bool) -> None:
    status = answer.get("status", "pending")
    if wait and status != "committed":
        raise WalletError(f"transaction {tx_hash} is still pending after the node's wait; "
                          f"check later: jevons wallet tx status {tx_hash}")
    where = f"committed at height {answer['height']}" if status == "committed" else \
        "pending (submitted; not yet in a block)"
    emit({**plan.to_json(), "hash": tx_hash, "status": status,
          **({"height": answer["height"]} if "height" in answer else {})},
         f"{plan.describe()}\ntx {tx_hash} {where}")


@wallet.command()
@click.argument("to", metavar="TO")
@click.argument("amount")
@tx_options
def send(to: str, amount: str, sender: str, fee: str | None, nonce: int | None, wait: bool,
         password_file: str | None) -> None:
    """Send AMOUNT to TO (a jev1 address or a key name).

    AMOUNT has a unit (1.5jev, 2500ujev); a bare number is JEV.
    """
    run_tx("transfer", sender, amount, to, fee, nonce, wait, password_file)


@wallet.command()
@click.argument("amount")
@tx_options
def stake(amount: str, sender: str, fee: str | None, nonce: int | None, wait: bool,
          password_file: str | None) -> None:
    """Bond AMOUNT of --from's balance as validator stake (signed by --from's key)."""
    run_tx("stake", sender, amount, None, fee, nonce, wait, password_file)


@wallet.command()
@click.argument("amount")
@tx_options
def unstake(amount: str, sender: str, fee: str | None, nonce: int | None, wait: bool,
            password_file: str | None) -> None:
    """Start unbonding AMOUNT of --from's stake (back in the balance after the unbonding
    period)."""
    run_tx("unstake", sender, amount, None, fee, nonce, wait, password_file)


def parse_hash(text: str, what: str) -> str:
    value = text.lower().removeprefix("0x")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise WalletError(f"{what} {text!r} must be 64 hex characters")
    return value


@wallet.group(cls=WalletGroup)
def tx() -> None:
    """Look up transactions."""


@tx.command("status")
@click.argument("tx_hash", metavar="HASH")
@shared_options
def tx_status(tx_hash: str) -> None:
    """Show whether transaction HASH is committed (and where) or pending."""
    text = parse_hash(tx_hash, "transaction hash")
    s = settings()
    with s.client() as client:
        body = client.tx(text)
    if body is None:
        raise WalletError(f"transaction {text} is neither committed nor pending on {s.node}")
    where = (f"committed at height {body['height']} (index {body['index']})"
             if body.get("status") == "committed" else body.get("status", "unknown"))
    emit(body, f"tx {text} {where}")
