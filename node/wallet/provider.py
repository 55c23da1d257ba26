"""Provider terms for `jevons wallet provider register`: parse the options, fill what is not
given from the terms already on chain (an update), and check them the way the chain will
(consensus/market_rules.py `register_provider`), so a refused registration never leaves
the wallet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consensus.jobs import KERNELS, endpoint_problem
from consensus.params import MAX_AMOUNT
from consensus.tx import MAX_ENDPOINT_LEN, MAX_KERNELS, MAX_REGION_LEN, RegisterProvider
from node.wallet.errors import WalletError
from node.wallet.jobspec import max_carbon, parse_price
from node.wallet.txflow import show


@dataclass(frozen=True, slots=True)
class TermOptions:
    """What the command line gave, parsed (`term_options`); None where left out."""

    kernels: tuple[str, ...] | None = None
    price: int | None = None  # ujev per unit of work
    capacity: int | None = None
    region: str | None = None
    carbon: int | None = None
    endpoint: str | None = None
    stake: int | None = None  # ujev


def term_options(kernels: str | None, price: str | None, capacity: int | None,
                 region: str | None, carbon: int | None, endpoint: str | None,
                 stake: int | None) -> TermOptions:
    """Parse the options that need it (no node needed): WalletError names the option."""
    return TermOptions(parse_kernels(kernels) if kernels is not None else None,
                       _price(price) if price is not None else None, capacity, region,
                       carbon, check_endpoint(endpoint) if endpoint is not None else None,
                       stake)


def parse_kernels(text: str) -> tuple[str, ...]:
    """'mlp-int8,matmul-int8' -> ('matmul-int8', 'mlp-int8'): sorted, distinct, known."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in KERNELS]
    if not names or unknown:
        raise WalletError(f"--kernels {text!r}: expected a comma-separated list of "
                          f"{', '.join(KERNELS)}" + (f"; unknown: {', '.join(unknown)}"
                                                     if unknown else ""))
    return tuple(sorted(set(names)))


def check_endpoint(text: str) -> str:
    """The chain's own endpoint rule (consensus.jobs.endpoint_problem), and its length."""
    if endpoint_problem(text) or len(text) > MAX_ENDPOINT_LEN:
        raise WalletError(f"--endpoint {text!r}: expected the libp2p multiaddr where this "
                          "provider serves openings, with its peer id, e.g. "
                          "/ip4/203.0.113.7/tcp/26600/p2p/16Uiu2… (at most "
                          f"{MAX_ENDPOINT_LEN} characters)")
    return text


def build_terms(options: TermOptions, current: dict[str, Any] | None,
                params: dict[str, Any]) -> RegisterProvider:
    """The RegisterProvider body: options over the provider's current terms (`current`,
    from GET /providers/{address}; None for a new provider, which must give them all)."""
    if current is None:
        missing = [f"--{name}" for name in ("kernels", "price", "capacity", "region", "carbon",
                                            "endpoint", "stake")
                   if getattr(options, name) is None]
        if missing:
            raise WalletError(f"a new provider needs {', '.join(missing)} (an update of a "
                              "registered provider may leave out what does not change)")
    known = current or {}

    def pick(name: str) -> Any:
        value = getattr(options, name)
        return known[name] if value is None else value

    terms = RegisterProvider(options.stake or 0, tuple(pick("kernels")), pick("price"),
                             pick("capacity"), pick("region"), pick("carbon"),
                             pick("endpoint"))
    check_terms(terms, known.get("stake", 0), params)
    return terms


def _price(text: str) -> int:
    try:
        return parse_price(text)
    except ValueError as exc:
        raise WalletError(f"--price: {exc}") from exc


def check_terms(terms: RegisterProvider, bonded: int, params: dict[str, Any]) -> None:
    """The chain's rules for provider terms, with the option to fix in each message."""
    max_capacity = params.get("max_provider_capacity", 64)
    min_stake = params.get("min_provider_stake", 0)
    if len(terms.kernels) > MAX_KERNELS:
        raise WalletError(f"--kernels: at most {MAX_KERNELS} kernels")
    if not 1 <= terms.capacity <= max_capacity:
        raise WalletError(f"--capacity {terms.capacity}: the chain allows 1..{max_capacity} "
                          "jobs at once (max_provider_capacity)")
    if not 0 <= terms.carbon <= max_carbon():
        raise WalletError(f"--carbon {terms.carbon}: declared gCO2e/kWh must be in "
                          f"0..{max_carbon()}")
    if terms.price > MAX_AMOUNT:
        raise WalletError(f"--price {terms.price} ujev/unit is over {MAX_AMOUNT}")
    if not terms.region or len(terms.region) > MAX_REGION_LEN:
        raise WalletError(f"--region {terms.region!r}: 1..{MAX_REGION_LEN} characters")
    if bonded + terms.stake < min_stake:
        raise WalletError(f"--stake: the bond would be {show(bonded + terms.stake)}, the "
                          f"chain's min_provider_stake is {show(min_stake)}; bond at least "
                          f"{show(min_stake - bonded)} more")
