"""Amounts for people: "1.5 JEV", "250ujev" <-> integer base units. Exact (no floats)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from consensus.params import MAX_AMOUNT, UJEV_PER_JEV

_AMOUNT_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(jev|ujev)?\s*$", re.IGNORECASE)


def format_amount(ujev: int) -> str:
    whole, frac = divmod(ujev, UJEV_PER_JEV)
    text = f"{whole:,}"
    if frac:
        text += "." + f"{frac:06d}".rstrip("0")
    return text + " JEV"


def parse_amount(text: str, default_unit: str = "jev") -> int:
    """'1.5jev' -> 1500000, '250ujev' -> 250, '2' -> 2 JEV. ValueError says why not."""
    match = _AMOUNT_RE.match(text)
    if not match:
        raise ValueError(f"amount {text!r} is not a number with an optional unit (jev, ujev)")
    unit = (match.group(2) or default_unit).lower()
    try:
        value = Decimal(match.group(1)) * (UJEV_PER_JEV if unit == "jev" else 1)
    except InvalidOperation as exc:
        raise ValueError(f"amount {text!r} is not a number") from exc
    if value != value.to_integral_value():
        raise ValueError(f"amount {text!r} is finer than 1 ujev (6 decimals of JEV at most)")
    if not 0 < value <= MAX_AMOUNT:
        raise ValueError(f"amount {text!r} must be positive and at most {MAX_AMOUNT} ujev")
    return int(value)
