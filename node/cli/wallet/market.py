"""`jevons wallet provider|job|market …`: the compute market (provider registration,
jobs, results, market statistics)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from consensus.address import to_bech32
from node.cli.wallet.base import WalletGroup, emit, note, settings, shared_options, wallet
from node.cli.wallet.txs import (
    make_tx_options,
    parse_fee,
    parse_hash,
    report_tx,
    sign_and_send,
    tx_options,
)
from node.wallet.display import render_job, render_market, render_provider, render_providers
from node.wallet.errors import JobFailed, WalletError
from node.wallet.jobspec import check_job_limits, eligible_providers, load_job_request
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
from node.wallet.txflow import parse_value, plan_tx, resolve_address
from node.wallet.watch import failure, find_job, follow


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
