"""Job spec files for `jevons wallet job submit`: read, check every field, build the
SubmitJob body. Everything here happens before a key is unlocked or a byte is sent.

A spec file is a JSON object (or TOML, when the file name ends in `.toml`):

    {"kernel": "matmul-int8", "dims": [64, 128, 64],
     "seed": "<64 hex>",            # optional: 32 random bytes when absent
     "max_price": "20ujev",         # per unit of work: a string with a unit, or integer ujev
     "deadline_blocks": 50,         # optional (default 100)
     "carbon_max": 0}               # optional: gCO2e/kWh ceiling, 0 = none (default)

`parse_job_request` collects every problem (unknown keys, wrong types, unknown kernel,
dimension count or range, seed format, price, deadline, carbon) into one WalletError line;
`check_job_limits` then checks what needs the chain's parameters (`max_job_units`,
`max_job_deadline_blocks`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus.jobs import KERNELS, MATMUL, MAX_DIM, MAX_MLP_LAYERS, MLP, SEED_LEN, JobSpec
from consensus.params import MAX_AMOUNT
from consensus.tx import SubmitJob
from node.units import parse_amount
from node.wallet.errors import WalletError

FIELDS = ("kernel", "dims", "seed", "max_price", "deadline_blocks", "carbon_max")
REQUIRED = ("kernel", "dims", "max_price")
DEFAULT_DEADLINE_BLOCKS = 100
MAX_SPEC_FILE_BYTES = 64 * 1024


def max_carbon() -> int:
    """The chain's carbon ceiling (imported on use: consensus.market_rules pulls in the
    whole state module, 50 ms that every other wallet command would pay at start-up)."""
    from consensus.market_rules import MAX_CARBON

    return MAX_CARBON


@dataclass(frozen=True, slots=True)
class JobRequest:
    spec: JobSpec
    max_price: int
    deadline_blocks: int
    carbon_max: int
    seed_generated: bool

    @property
    def units(self) -> int:
        return self.spec.units

    @property
    def escrow(self) -> int:
        return self.max_price * self.spec.units

    def body(self) -> SubmitJob:
        return SubmitJob(self.spec, self.max_price, self.deadline_blocks, self.carbon_max)


def load_job_request(path: str, new_seed: Callable[[], bytes] = lambda: os.urandom(SEED_LEN)
                     ) -> JobRequest:
    """The request in spec file `path` (every field checked; WalletError names each bad one)."""
    return parse_job_request(read_spec_file(path), f"job spec {path}", new_seed)


def read_spec_file(path: str) -> object:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_FILE_BYTES + 1)
    except OSError as exc:
        raise WalletError(f"cannot read job spec {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_SPEC_FILE_BYTES:
        raise WalletError(f"job spec {path} is over {MAX_SPEC_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WalletError(f"job spec {path} is not UTF-8 text") from exc
    if Path(path).suffix.lower() == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise WalletError(f"job spec {path} is not valid TOML: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WalletError(f"job spec {path} is not valid JSON: {exc.msg} at line "
                          f"{exc.lineno} column {exc.colno}") from exc


def parse_job_request(doc: object, where: str,
                      new_seed: Callable[[], bytes] = lambda: os.urandom(SEED_LEN)
                      ) -> JobRequest:
    if not isinstance(doc, dict):
        raise WalletError(f"{where}: expected an object with fields {', '.join(FIELDS)}, "
                          f"got {type(doc).__name__}")
    problems = [f"unknown field {key!r} (known: {', '.join(FIELDS)})"
                for key in doc if key not in FIELDS]
    problems += [f"field {key!r} is missing" for key in REQUIRED if key not in doc]
    checks: list[tuple[str, Callable[[Any], Any]]] = [
        ("kernel", check_kernel), ("max_price", check_max_price),
        ("deadline_blocks", lambda v: check_int(v, 1, None)),
        ("carbon_max", lambda v: check_int(v, 0, max_carbon()))]
    values: dict[str, Any] = {}
    for key, check in checks:
        if key in doc:
            values[key] = _checked(key, doc[key], check, problems)
    if "dims" in doc:
        values["dims"] = _checked("dims", doc["dims"],
                                  lambda v: check_dims(v, values.get("kernel")), problems)
    seed = _checked("seed", doc["seed"], check_seed, problems) if "seed" in doc else None
    if problems:
        raise WalletError(f"{where}: {'; '.join(problems)}")
    spec = JobSpec(values["kernel"], values["dims"], seed if seed is not None else new_seed())
    request = JobRequest(spec, values["max_price"],
                         values.get("deadline_blocks", DEFAULT_DEADLINE_BLOCKS),
                         values.get("carbon_max", 0), seed_generated=seed is None)
    if request.escrow > MAX_AMOUNT:
        raise WalletError(f"{where}: field 'max_price': the escrow {request.max_price} ujev x "
                          f"{request.units} units exceeds the largest amount, {MAX_AMOUNT} ujev")
    return request


def _checked(key: str, value: Any, check: Callable[[Any], Any], problems: list[str]) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        problems.append(f"field {key!r}: {exc}")
        return None


def check_int(value: Any, low: int, high: int | None) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {json.dumps(value)}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise ValueError(f"{value} is outside {bound}")
    return value


def check_kernel(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a kernel name, got {json.dumps(value)}")
    if value not in KERNELS:
        raise ValueError(f"unknown kernel {value!r} (known: {', '.join(KERNELS)})")
    return value


def check_dims(value: Any, kernel: str | None) -> tuple[int, ...]:
    if not isinstance(value, list) or any(type(d) is not int for d in value):
        raise ValueError(f"expected a list of integers, got {json.dumps(value)}")
    if kernel == MATMUL and len(value) != 3:
        raise ValueError(f"{MATMUL} takes 3 dimensions [m, k, n], got {len(value)}")
    if kernel == MLP and not 3 <= len(value) <= MAX_MLP_LAYERS + 2:
        raise ValueError(f"{MLP} takes [batch, w0, ..., wL] with 1..{MAX_MLP_LAYERS} layers "
                         f"(3..{MAX_MLP_LAYERS + 2} values), got {len(value)}")
    bad = [d for d in value if not 1 <= d <= MAX_DIM]
    if bad:
        raise ValueError(f"every dimension must be in 1..{MAX_DIM}, got {bad[0]}")
    return tuple(value)


def check_seed(value: Any) -> bytes:
    text = value.lower() if isinstance(value, str) else ""
    if len(text) != 2 * SEED_LEN or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"expected {2 * SEED_LEN} hex characters ({SEED_LEN} bytes), got "
                         f"{json.dumps(value)[:80]}")
    return bytes.fromhex(text)


def check_max_price(value: Any) -> int:
    if type(value) is int:
        if value < 1:
            raise ValueError(f"{value} ujev per unit: a job must offer at least 1 ujev")
        return value
    if not isinstance(value, str) or not value.strip().lower().endswith("jev"):
        raise ValueError(f"expected integer ujev per unit (20) or a string with a unit "
                         f"('20ujev', '0.00002jev'), got {json.dumps(value)}")
    return parse_price(value)


def parse_price(text: str) -> int:
    """A price per unit of work: a bare integer is ujev ('10'), otherwise it needs a unit
    ('10ujev', '0.00001jev'). ValueError says why not."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    if not stripped.lower().endswith("jev"):
        raise ValueError(f"{text!r} needs a unit ('20ujev', '0.00002jev'); a bare integer "
                         "is ujev")
    return parse_amount(stripped)


def check_job_limits(request: JobRequest, params: dict[str, Any], where: str) -> None:
    """The chain's own limits (GET /params), checked before signing."""
    problems = []
    max_units = params.get("max_job_units")
    if type(max_units) is int and request.units > max_units:
        problems.append(f"field 'dims': {list(request.spec.dims)} is {request.units} units of "
                        f"work (2^20 multiply-accumulates each), the chain's limit is "
                        f"max_job_units = {max_units}; submit a smaller job")
    max_deadline = params.get("max_job_deadline_blocks")
    if type(max_deadline) is int and request.deadline_blocks > max_deadline:
        problems.append(f"field 'deadline_blocks': {request.deadline_blocks} is over the "
                        f"chain's max_job_deadline_blocks = {max_deadline}")
    if problems:
        raise WalletError(f"{where}: {'; '.join(problems)}")


def eligible_providers(request: JobRequest, providers: list[dict[str, Any]],
                       min_stake: int) -> list[dict[str, Any]]:
    """The registered providers the chain could assign this job to now (docs/market.md)."""
    body = request.body()
    return [p for p in providers
            if body.spec.kernel in p.get("kernels", ()) and p.get("price", 0) <= body.max_price
            and (body.carbon_max == 0 or p.get("carbon", 0) <= body.carbon_max)
            and p.get("stake", 0) >= min_stake]
