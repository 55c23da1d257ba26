from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.params import MAX_AMOUNT
from node.units import format_amount, parse_amount


@pytest.mark.parametrize(("text", "ujev"), [
    ("1", 1_000_000), ("1.5jev", 1_500_000), ("0.000001 JEV", 1), ("250ujev", 250),
    ("2 ujev", 2), ("  3.25 jev ", 3_250_000),
])
def test_parse_amount(text: str, ujev: int) -> None:
    assert parse_amount(text) == ujev


@pytest.mark.parametrize(("text", "reason"), [
    ("", "not a number"), ("abc", "not a number"), ("-1", "not a number"),
    ("1e6", "not a number"), ("0", "positive"), ("0.0000001", "finer than 1 ujev"),
    ("1.5ujev", "finer than 1 ujev"), ("1 btc", "not a number"),
    (f"{MAX_AMOUNT + 1}ujev", "at most"),
])
def test_parse_amount_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_amount(text)


@given(st.integers(1, MAX_AMOUNT))
def test_format_parse_round_trip(ujev: int) -> None:
    shown = format_amount(ujev)
    assert shown.endswith(" JEV")
    assert parse_amount(shown.replace(",", "").removesuffix(" JEV")) == ujev
