"""Market routes: /providers, /providers/{address}, /jobs/{id}, /jobs/{id}/output, /market,
/supply. Everything is read from chain state (what every node agrees on), except an
output download, which this node fetches from the job's provider over libp2p and proves
row by row against the committed root before serving it.

Derived figures (acceptance rates, average queue time) are computed here from the integer
counters the chain keeps; they are for display and never feed back into consensus.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response

from consensus.address import to_bech32
from consensus.errors import DecodeError
from consensus.market import Job, JobStatus, KernelStats, Provider
from consensus.market_rules import verify_deadline
from kernels.blobs import encode_array
from node.api.accounts import ADDRESS as ACCOUNT_ADDRESS
from node.api.accounts import parse_address
from node.api.errors import ApiError
from node.api.routing import MAX_DOWNLOADS, Api, Operation, Param, Reply, json_response
from node.api.schemas import ADDRESS, HEX32, UINT, obj, ref
from node.errors import NodeError
from node.runtime.market import download_output
from verifier.detection import p_pass_sample

JOB_STATES = [s.name.lower() for s in JobStatus]
QUOTED_FRACTION = 0.01  # the corrupted-row fraction a job's detection bound is quoted for

ADDRESS_PARAM = replace(ACCOUNT_ADDRESS, description="provider address")
JOB_ID = Param("job_id", {"type": "string", "minLength": 64, "maxLength": 64,
                          "pattern": "^[0-9a-f]{64}$"},
               "job id (the hash of its SubmitJob transaction)", "bad_job_id",
               "64 lowercase hex characters")

NUMBER = {"type": "number", "minimum": 0}
RATE = {"type": "number", "minimum": 0, "maximum": 1, "nullable": True}
PROVIDER = obj({
    "address": ADDRESS, "stake": UINT, "kernels": {"type": "array", "items": {"type": "string"}},
    "price": {**UINT, "description": "ujev per unit of work (2^20 multiply-accumulates)"},
    "capacity": UINT, "active_jobs": UINT, "region": {"type": "string"},
    "carbon": {**UINT, "description": "declared gCO2e/kWh"}, "endpoint": {"type": "string"},
    "registered_height": UINT, "jobs_accepted": UINT, "jobs_rejected": UINT,
    "jobs_failed": UINT, "slashed": UINT,
    "acceptance_rate": {**RATE, "description": "accepted / (accepted + rejected + failed)"},
    "newcomer": {"type": "boolean"},
})
PROVIDERS = obj({"providers": {"type": "array", "items": ref("Provider")}})
VERDICT = obj({"member": ADDRESS, "valid": {"type": "boolean"}, "reason": {"type": "string"}})
JOB = obj({
    "id": HEX32, "status": {"type": "string", "enum": JOB_STATES},
    "outcome": {"type": "string"}, "buyer": ADDRESS, "kernel": {"type": "string"},
    "dims": {"type": "array", "items": UINT}, "seed": HEX32, "units": UINT,
    "max_price": UINT, "escrow": UINT, "deadline_blocks": UINT, "carbon_max": UINT,
    "submitted_height": UINT, "provider": {**ADDRESS, "nullable": True},
    "price": UINT, "assigned_height": UINT, "deadline_height": {**UINT, "nullable": True},
    "root": {**HEX32, "nullable": True}, "committed_height": UINT,
    "committee": {"type": "array", "items": ADDRESS},
    "verdicts": {"type": "array", "items": ref("Verdict")},
    "verify_deadline": {**UINT, "nullable": True},
    "queue_ms": {**UINT, "nullable": True}, "settled_height": UINT, "paid": UINT,
    "reward": UINT, "refunded": UINT, "slashed": UINT,
    "detection": {"type": "object", "nullable": True, "description":
                  "chance that an output wrong in `fraction` of its rows passes every "
                  "committee member's opened rows"},
})
KERNEL_MARKET = obj({
    "kernel": {"type": "string"}, "submitted": UINT, "assigned": UINT, "accepted": UINT,
    "rejected": UINT, "failed": UINT, "expired": UINT, "undecided": UINT,
    "units_accepted": UINT, "price_index": {**UINT, "description": "ujev per unit"},
    "last_price": UINT, "avg_queue_blocks": {**NUMBER, "nullable": True},
    "avg_queue_s": {**NUMBER, "nullable": True}, "acceptance_rate": RATE,
    "providers": UINT, "cheapest_price": {**UINT, "nullable": True},
    "lowest_carbon": {**UINT, "nullable": True},
})
MARKET = obj({"height": UINT, "queued": UINT, "running": UINT,
              "kernels": {"type": "array", "items": ref("KernelMarket")}})
SUPPLY = obj({"genesis": UINT, "minted": UINT, "burned": UINT, "slashed": UINT,
              "expected_total": UINT, "actual_total": UINT, "escrowed": UINT,
              "provider_bonds": UINT, "holds": {"type": "boolean"}})

SCHEMAS = {"Provider": PROVIDER, "Providers": PROVIDERS, "Verdict": VERDICT, "Job": JOB,
           "KernelMarket": KERNEL_MARKET, "Market": MARKET, "Supply": SUPPLY}


def rate(good: int, bad: int) -> float | None:
    return round(good / (good + bad), 6) if good + bad else None


def provider_json(p: Provider, newcomer_jobs: int) -> dict[str, Any]:
    return {"address": to_bech32(p.address), "stake": p.stake, "kernels": list(p.kernels),
            "price": p.price, "capacity": p.capacity, "active_jobs": p.active_jobs,
            "region": p.region, "carbon": p.carbon, "endpoint": p.endpoint,
            "registered_height": p.registered_height, "jobs_accepted": p.jobs_accepted,
            "jobs_rejected": p.jobs_rejected, "jobs_failed": p.jobs_failed,
            "slashed": p.slashed,
            "acceptance_rate": rate(p.jobs_accepted, p.jobs_rejected + p.jobs_failed),
            "newcomer": p.jobs_accepted < newcomer_jobs}


def job_json(job: Job, api: Api) -> dict[str, Any]:
    params = api.host.params
    committed = job.root != b""
    rows_opened = params.challenge_rows * len(job.committee)
    detection = None
    if job.committee:
        detection = {"fraction": QUOTED_FRACTION, "rows_opened": rows_opened,
                     "false_accept_bound": p_pass_sample(QUOTED_FRACTION, rows_opened,
                                                         job.spec.output_rows)}
    return {
        "id": job.id.hex(), "status": job.status.name.lower(), "outcome": job.outcome,
        "buyer": to_bech32(job.buyer), "kernel": job.spec.kernel, "dims": list(job.spec.dims),
        "seed": job.spec.seed.hex(), "units": job.units, "max_price": job.max_price,
        "escrow": job.escrow, "deadline_blocks": job.deadline_blocks,
        "carbon_max": job.carbon_max, "submitted_height": job.submitted_height,
        "provider": to_bech32(job.provider) if job.provider else None, "price": job.price,
        "assigned_height": job.assigned_height,
        "deadline_height": job.deadline_height if job.provider else None,
        "root": job.root.hex() if committed else None,
        "committed_height": job.committed_height,
        "committee": [to_bech32(a) for a, _ in job.committee],
        "verdicts": [{"member": to_bech32(v.member), "valid": bool(v.valid),
                      "reason": v.reason} for v in job.verdicts],
        "verify_deadline": verify_deadline(job, params) if job.randomness else None,
        "queue_ms": (job.assigned_time_ms - job.submitted_time_ms) if job.provider else None,
        "settled_height": job.settled_height, "paid": job.paid, "reward": job.reward,
        "refunded": job.refunded, "slashed": job.slashed, "detection": detection,
    }


def kernel_json(kernel: str, s: KernelStats, providers: list[Provider]) -> dict[str, Any]:
    offering = [p for p in providers if kernel in p.kernels]
    return {"kernel": kernel, "submitted": s.submitted, "assigned": s.assigned,
            "accepted": s.accepted, "rejected": s.rejected, "failed": s.failed,
            "expired": s.expired, "undecided": s.undecided, "units_accepted": s.units_accepted,
            "price_index": s.price_index, "last_price": s.last_price,
            "avg_queue_blocks": (round(s.queue_blocks_total / s.assigned, 3)
                                 if s.assigned else None),
            "avg_queue_s": (round(s.queue_ms_total / s.assigned / 1000, 3)
                            if s.assigned else None),
            "acceptance_rate": rate(s.accepted, s.rejected + s.failed),
            "providers": len(offering),
            "cheapest_price": min((p.price for p in offering), default=None),
            "lowest_carbon": min((p.carbon for p in offering), default=None)}


def _job(api: Api, job_id: str) -> Job:
    job = api.host.state.market.jobs.get(bytes.fromhex(job_id))
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id} on this chain")
    return job


async def list_providers(api: Api, request: Request, args: dict[str, Any]) -> Response:
    state = api.host.state
    providers = state.market.providers
    return json_response({"providers": [provider_json(providers[a], state.params.newcomer_jobs)
                                        for a in sorted(providers)]})


async def get_provider(api: Api, request: Request, args: dict[str, Any]) -> Response:
    address = parse_address(args["address"])
    state = api.host.state
    provider = state.market.providers.get(address)
    if provider is None:
        raise ApiError(404, "not_found", f"{to_bech32(address)} is not a registered provider")
    return json_response(provider_json(provider, state.params.newcomer_jobs))


async def get_job(api: Api, request: Request, args: dict[str, Any]) -> Response:
    return json_response(job_json(_job(api, args["job_id"]), api))


async def get_output(api: Api, request: Request, args: dict[str, Any]) -> Response:
    job = _job(api, args["job_id"])
    if not job.root:
        raise ApiError(409, "no_result", f"job is {job.status.name.lower()}: no result has "
                                         "been committed")
    provider = api.host.state.market.providers.get(job.provider)
    if provider is None:
        raise ApiError(502, "provider_unavailable", "the job's provider is not registered")
    net = api.services.net
    try:
        api.downloads.acquire_nowait()
    except trio.WouldBlock:
        raise ApiError(503, "busy", f"{MAX_DOWNLOADS} output downloads are in progress on "
                                    "this node; retry later") from None
    try:
        output = await download_output(net, api.host.chain_id, provider.endpoint, job)
        body = await trio.to_thread.run_sync(encode_array, output)
    except (NodeError, DecodeError) as exc:
        api.downloads.release()
        raise ApiError(502, "provider_unavailable",
                       f"could not fetch the output from the provider: {exc}") from None
    except BaseException:  # cancelled, or anything else: the slot is not held past here
        api.downloads.release()
        raise
    return HeldResponse(api.downloads, body, media_type="application/octet-stream",
                        headers={"x-jevons-root": job.root.hex(),
                                 "x-jevons-status": job.status.name.lower()})


class HeldResponse(Response):
    """A response that holds a download slot until its body has been sent (or the client
    went away): the body, up to MAX_DOWNLOAD_BYTES, stays in memory until then."""

    def __init__(self, slot: trio.Semaphore, content: bytes, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


async def get_market(api: Api, request: Request, args: dict[str, Any]) -> Response:
    state = api.host.state
    market = state.market
    providers = [market.providers[a] for a in sorted(market.providers)]
    kernels = sorted(set(market.stats) | {k for p in providers for k in p.kernels})
    return json_response({"height": state.height, "queued": len(market.queue),
                          "running": len(market.open),
                          "kernels": [kernel_json(k, market.kernel_stats(k), providers)
                                      for k in kernels]})


async def get_supply(api: Api, request: Request, args: dict[str, Any]) -> Response:
    state = api.host.state
    supply = state.supply
    actual = state.total_balances_and_stakes()
    return json_response({"genesis": supply.genesis, "minted": supply.minted,
                          "burned": supply.burned, "slashed": supply.slashed,
                          "expected_total": supply.expected_total, "actual_total": actual,
                          "escrowed": state.market.escrowed(),
                          "provider_bonds": state.market.bonded(),
                          "holds": actual == supply.expected_total})


NOT_FOUND = Reply("not_found: no such job / provider on this chain")
OPERATIONS = (
    Operation("GET", "/providers", "listProviders", "Registered compute providers",
              list_providers, {200: Reply("every provider, by address", ref("Providers"))},
              tag="market"),
    Operation("GET", "/providers/{address}", "getProvider", "One provider's terms and record",
              get_provider,
              {200: Reply("terms, bond, jobs and acceptance rate", ref("Provider")),
               400: Reply("bad_address: not a bech32 'jev1…' address"), 404: NOT_FOUND},
              (ADDRESS_PARAM,), tag="market"),
    Operation("GET", "/jobs/{job_id}", "getJob", "A job's state, settlement and verdicts",
              get_job,
              {200: Reply("the job as the chain holds it", ref("Job")),
               400: Reply("bad_job_id: not 64 hex characters"), 404: NOT_FOUND},
              (JOB_ID,), tag="market"),
    Operation("GET", "/jobs/{job_id}/output", "getJobOutput",
              "Download a job's output, proven row by row against its committed root",
              get_output,
              {200: Reply("the output as a canonical array (kernels.blobs JVA1 bytes); "
                          "header x-jevons-root names the root it was checked against",
                          {"type": "string", "format": "binary"},
                          "application/octet-stream"),
               400: Reply("bad_job_id: not 64 hex characters"), 404: NOT_FOUND,
               409: Reply("no_result: nothing committed yet"),
               502: Reply("provider_unavailable: the provider did not answer or sent rows "
                          "that do not match the root"),
               503: Reply("busy: the node already serves its limit of output downloads "
                          "(each is held in memory); retry later")},
              (JOB_ID,), tag="market"),
    Operation("GET", "/market", "getMarket",
              "Market statistics per kernel: price index, queue time, acceptance rate",
              get_market, {200: Reply("per-kernel statistics", ref("Market"))}, tag="market"),
    Operation("GET", "/supply", "getSupply",
              "Token supply: genesis + minted - burned - slashed, and what accounts hold",
              get_supply, {200: Reply("supply counters and the invariant", ref("Supply"))},
              tag="chain"),
)
