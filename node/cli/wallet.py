"""`jevons wallet …`: keys in an encrypted keystore, balances, transfers, staking and the
compute market (provider registration, jobs, results, market statistics).

A thin layer over node/wallet. Options shared by every command (--node, -o/--output,
--yes, --wallet-dir) are accepted before or after the subcommand. Exit codes are those of
node/wallet/errors.py (docs/wallet.md): every failure prints one `Error: …` line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from consensus.address import to_bech32
from consensus.errors import JevonsError
from node.wallet.client import DEFAULT_NODE, NODE_ENV, NodeClient, default_node_url
from node.wallet.derivation import new_mnemonic
from node.wallet.display import render_job, render_market, render_provider, render_providers
from node.wallet.errors import JobFailed, WalletError
from node.wallet.inputs import (
    confirm,
    get_mnemonic,
    get_password,
    read_private_key_file,
)
from node.wallet.jobspec import check_job_limits, eligible_providers, load_job_request
from node.wallet.keystore import KeyInfo, Secret, Wallet, check_name, kdf_limits_from_env
from node.wallet.provider import build_terms, term_options
from node.wallet.results import (
    check_has_result,
    check_output,
    download_output,
    save_output,
)
from node.wallet.results import (
    check_recompute as recompute_and_compare,
)
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
from node.wallet.watch import failure, find_job, follow

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


def key_json(info: KeyInfo) -> dict[str, Any]:
    return {"name": info.name, "address": info.address, "pubkey": info.pubkey.hex(),
            "source": info.source, "path": info.path, "file": str(info.file)}


@click.group(cls=WalletGroup)
@shared_options
@click.pass_context
def wallet(ctx: click.Context) -> None:
    """Keys (encrypted keystore, mnemonic recovery), balances, transfers and staking."""
    ctx.ensure_object(Settings)


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


# --- the compute market -----------------------------------------------------------------------

@wallet.group(cls=WalletGroup)
def provider() -> None:
    """Register as a compute provider; show providers."""


@provider.command("register")
@click.option("--kernels", metavar="K1,K2", help="Kernels offered: matmul-int8, mlp-int8.")
@click.option("--price", metavar="N", help="Price per unit of work (2^20 multiply-accumulates)"
              ": integer ujev, or with a unit (0.00001jev).")
@click.option("--capacity", type=int, help="Jobs run at once (1..max_provider_capacity).")
@click.option("--region", help="Where the machine is, e.g. eu-west.")
@click.option("--carbon", type=int, help="Declared carbon intensity, gCO2e/kWh.")
@click.option("--endpoint", metavar="MULTIADDR", help="libp2p address, with /p2p/<peer id>, "
              "where the provider node serves openings to verifiers.")
@click.option("--stake", metavar="AMOUNT", help="Bond this much more (a new provider: at "
              "least min_provider_stake in all), e.g. 100jev.")
@tx_options
def provider_register(kernels: str | None, price: str | None, capacity: int | None,
                      region: str | None, carbon: int | None, endpoint: str | None,
                      stake: str | None, sender: str, fee: str | None, nonce: int | None,
                      wait: bool, password_file: str | None) -> None:
    """Register --from's key as a compute provider, or update its terms (options left out
    keep their registered values)."""
    s = settings()
    options = term_options(kernels, price, capacity, region, carbon, endpoint,
                           parse_value(stake, "--stake") if stake is not None else None)
    fee_value = parse_fee(fee)
    info = s.wallet().info(sender)
    with s.client() as client:
        body = build_terms(options, client.provider(info.address), client.params())
        plan = plan_tx(client, info, body, fee_value, nonce)
        tx_hash, answer = sign_and_send(client, plan, password_file, wait)
    report_tx(plan, tx_hash, answer, wait)


@provider.command("show")
@click.argument("account", metavar="ADDRESS|NAME")
@shared_options
def provider_show(account: str) -> None:
    """Show a provider's terms, bond and record."""
    s = settings()
    address = to_bech32(resolve_address(s.wallet(), account, "provider"))
    with s.client() as client:
        body = client.provider(address)
    if body is None:
        raise WalletError(f"{address} is not a registered provider on {s.node}")
    emit(body, render_provider(body))


@provider.command("list")
@shared_options
def provider_list() -> None:
    """List the registered providers (price, capacity, carbon, acceptance rate)."""
    with settings().client() as client:
        providers = client.providers()
    emit({"providers": providers}, render_providers(providers))


@wallet.command()
@shared_options
def market() -> None:
    """Market statistics per kernel: providers, price index, queue time, acceptance."""
    with settings().client() as client:
        body = client.market()
    emit(body, render_market(body))


@wallet.group(cls=WalletGroup)
def job() -> None:
    """Submit compute jobs, follow them, fetch and check their results."""


def finish_watch(final: dict[str, Any], job_id: str, data: dict[str, Any]) -> None:
    """Print the final job (data) and exit 6 unless it was accepted."""
    emit(data, render_job(final))
    error = failure(job_id, final)
    if error is not None:
        raise error


watch_options = [
    click.option("--interval", type=click.FloatRange(0.1), default=1.0, show_default=True,
                 help="Seconds between polls while watching."),
    click.option("--timeout", type=click.FloatRange(0), help="Give up watching after this "
                 "many seconds (exit 1) [default: no limit]."),
]


def with_watch_options(f: Callable) -> Callable:
    for option in reversed(watch_options):
        f = option(f)
    return f


@job.command("submit")
@click.argument("spec_file", metavar="SPEC_FILE")
@make_tx_options("Follow the job to its final status (exit 0 accepted, 6 otherwise).")
@with_watch_options
def job_submit(spec_file: str, sender: str, fee: str | None, nonce: int | None, wait: bool,
               password_file: str | None, interval: float, timeout: float | None) -> None:
    """Submit the job in SPEC_FILE (JSON, or TOML for *.toml; docs/wallet.md), paid by
    --from: max_price x units is escrowed; the job id is printed."""
    s = settings()
    request = load_job_request(spec_file)
    fee_value = parse_fee(fee)
    info = s.wallet().info(sender)
    with s.client() as client:
        params = client.params()
        check_job_limits(request, params, f"job spec {spec_file}")
        plan = plan_tx(client, info, request.body(), fee_value, nonce)
        if not eligible_providers(request, client.providers(),
                                  params.get("min_provider_stake", 0)):
            note(f"Warning: no registered provider takes {request.spec.kernel} at "
                 f"{request.max_price} ujev/unit or less under this carbon ceiling now; the "
                 f"job waits in the queue and is refunded after "
                 f"{params.get('job_queue_blocks')} blocks without one")
        job_id, answer = sign_and_send(client, plan, password_file, False)
        if request.seed_generated:
            note(f"seed {request.spec.seed.hex()} (random: the file names none)")
        data = {**plan.to_json(), "hash": job_id, "job_id": job_id,
                "status": answer.get("status", "pending")}
        if not wait:
            emit(data, f"{plan.describe()}\njob {job_id} submitted (pending: not yet in a "
                       f"block)\nfollow it: jevons wallet job status {job_id} --watch")
            return
        note(f"job {job_id} submitted")
        final = follow(client, job_id, interval, timeout)
    finish_watch(final, job_id, {**data, "status": final["status"], "job": final})


@job.command("status")
@click.argument("job_id", metavar="JOB_ID")
@click.option("--watch", is_flag=True, help="Follow the job to its final status with a "
              "progress display (exit 0 accepted, 6 rejected/failed/expired/undecided).")
@with_watch_options
@shared_options
def job_status(job_id: str, watch: bool, interval: float, timeout: float | None) -> None:
    """Show job JOB_ID (the hash of its SubmitJob): status, provider, verdicts, payment."""
    job_id = parse_hash(job_id, "job id")
    s = settings()
    with s.client() as client:
        if watch:
            final = follow(client, job_id, interval, timeout)
            return finish_watch(final, job_id, final)
        body = find_job(client, job_id)
        if body is None:
            return emit({"id": job_id, "status": "pending"}, f"job {job_id} is pending: its "
                        "SubmitJob transaction is not in a block yet")
    emit(body, render_job(body))


@job.command("result")
@click.argument("job_id", metavar="JOB_ID")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the output: FILE.npy (NumPy) or any other name (the "
                   "canonical JVA1 array bytes). Written only if it checks out.")
@click.option("--check-recompute", is_flag=True, help="Also run the whole job here on the "
              "CPU and compare every value.")
@shared_options
def job_result(job_id: str, out: Path, check_recompute: bool) -> None:
    """Download job JOB_ID's output, recompute its Merkle root here, compare it with the
    root on chain, and only then write it to --out."""
    job_id = parse_hash(job_id, "job id")
    s = settings()
    with s.client() as client:
        body = find_job(client, job_id)
        if body is None:
            raise JobFailed("job is pending: no result (its SubmitJob is not in a block)")
        check_has_result(job_id, body)
        data, header_root = download_output(client, job_id)
    output = check_output(body, data, header_root)
    if check_recompute:
        recompute_and_compare(body, output)
    fmt = save_output(out, output)
    if body["status"] != "accepted":
        note(f"Warning: job is {body['status']}, not accepted: the output matches what the "
             "provider committed, but no committee accepted it"
             + ("" if check_recompute else " (--check-recompute checks it here)"))
    shape = "x".join(map(str, output.shape))
    emit({"job_id": job_id, "status": body["status"], "file": str(out), "format": fmt,
          "shape": list(output.shape), "dtype": str(output.dtype), "root": body["root"],
          "recomputed": check_recompute},
         f"wrote {out} ({fmt}, {shape} {output.dtype}): root {body['root']} matches the "
         f"chain" + ("; equal to a local recomputation" if check_recompute else ""))

