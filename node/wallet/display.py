"""Text renderings of the market's documents (GET /providers, /jobs/{id}, /market) for
`jevons wallet`; `-o json` prints the documents themselves."""

from __future__ import annotations

from typing import Any

from node.units import format_amount
from node.wallet.watch import events, verdicts


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def render_provider(p: dict[str, Any]) -> str:
    rows = [("address", p["address"]), ("kernels", ", ".join(p["kernels"])),
            ("price", f"{p['price']} ujev/unit"),
            ("capacity", f"{p['active_jobs']}/{p['capacity']} jobs running"),
            ("region", p["region"]), ("carbon", f"{p['carbon']} gCO2e/kWh"),
            ("endpoint", p["endpoint"]),
            ("bond", f"{format_amount(p['stake'])} ({p['stake']} ujev)"),
            ("registered", f"height {p['registered_height']}"),
            ("jobs", f"{p['jobs_accepted']} accepted, {p['jobs_rejected']} rejected, "
                     f"{p['jobs_failed']} failed; acceptance {_rate(p['acceptance_rate'])}"
                     + ("; newcomer" if p.get("newcomer") else "")),
            ("slashed", f"{p['slashed']} ujev")]
    return "\n".join(f"{name + ':':11} {value}" for name, value in rows)


def render_providers(providers: list[dict[str, Any]]) -> str:
    if not providers:
        return "no registered providers"
    head = (f"{'address':42}  {'price':>7}  {'cap':>5}  {'carbon':>6}  {'accept':>6}  "
            f"{'region':10}  kernels")
    lines = [f"{p['address']:42}  {p['price']:>7}  {p['active_jobs']:>2}/{p['capacity']:<2}  "
             f"{p['carbon']:>6}  {_rate(p['acceptance_rate']):>6}  {p['region'][:10]:10}  "
             f"{','.join(p['kernels'])}" for p in providers]
    return "\n".join([head, *lines, "(price in ujev per unit of work; carbon in gCO2e/kWh)"])


def render_job(job: dict[str, Any]) -> str:
    ceiling = f"{job['carbon_max']} gCO2e/kWh" if job.get("carbon_max") else "none"
    lines = [f"job:       {job['id']}", f"status:    {job['status']}" +
             (f" ({job['outcome']})" if job.get("outcome") and job["outcome"] != job["status"]
              else ""),
             f"buyer:     {job['buyer']}",
             f"spec:      {job['kernel']} {job['dims']} seed {job['seed']}",
             f"work:      {job['units']} unit(s); max price {job['max_price']} ujev/unit, "
             f"escrow {job['escrow']} ujev; deadline {job['deadline_blocks']} blocks; "
             f"carbon ceiling {ceiling}"]
    lines += [f"history:   {line}" for line in events(job)]
    if job.get("status") == "committed" and job.get("committee"):
        lines.append(f"verdicts:  {verdicts(job).removeprefix('; verdicts ')}, until height "
                     f"{_or_dash(job.get('verify_deadline'))}")
    detection = job.get("detection")
    if detection:
        lines.append(f"detection: {detection['rows_opened']} rows opened; an output wrong in "
                     f"{100 * detection['fraction']:g}% of its rows passes with probability "
                     f"{detection['false_accept_bound']:.3g}")
    return "\n".join(lines)


def render_market(market: dict[str, Any]) -> str:
    lines = [f"height {market['height']}: {market['queued']} job(s) queued, "
             f"{market['running']} running"]
    for k in market["kernels"]:
        lines += [
            f"\n{k['kernel']}",
            f"  providers      {k['providers']} (cheapest {_or_dash(k['cheapest_price'])} "
            f"ujev/unit, lowest carbon {_or_dash(k['lowest_carbon'])} gCO2e/kWh)",
            f"  price index    {k['price_index']} ujev/unit (last {k['last_price']})",
            f"  jobs           {k['submitted']} submitted, {k['assigned']} assigned, "
            f"{k['accepted']} accepted, {k['rejected']} rejected, {k['failed']} failed, "
            f"{k['expired']} expired, {k['undecided']} undecided",
            f"  acceptance     {_rate(k['acceptance_rate'])}",
            f"  queue time     {_or_dash(k['avg_queue_blocks'])} blocks, "
            f"{_or_dash(k['avg_queue_s'])} s on average",
            f"  units accepted {k['units_accepted']}"]
    if not market["kernels"]:
        lines.append("no kernels offered or requested yet")
    return "\n".join(lines)
