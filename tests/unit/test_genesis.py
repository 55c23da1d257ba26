"""Genesis documents: strict parsing (each rule names its field) and a hash-preserving round
trip between the Genesis object and its JSON file."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.address import to_bech32
from consensus.errors import InvalidGenesis
from consensus.params import MAX_AMOUNT, ChainParams
from genesis import document
from genesis.document import (
    CHAIN_ID_RE,
    Genesis,
    GenesisValidator,
    dump_genesis,
    format_time_ms,
    load_genesis,
    parse_genesis,
    parse_time,
)
from genesis.presets import DEVNET, TESTNET
from tests.unit.helpers import addr, key, make_net

SMALL_STAKES = dataclasses.replace(DEVNET, min_validator_stake=1)
NET = make_net(stakes=(10, 20, 30, 40), balances=(1_000, 2_000, 3_000), params=SMALL_STAKES,
               label="genesis")
GOOD = NET.genesis.to_json()


def doc() -> dict:
    return copy.deepcopy(GOOD)


def write(tmp_path: Path, text: str | bytes, name: str = "genesis.json") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_good_document_parses_and_round_trips() -> None:
    g = parse_genesis(doc())
    assert g == NET.genesis
    assert g.hash() == NET.genesis.hash()
    assert parse_genesis(g.to_json()).to_json() == GOOD


def test_dump_then_load_preserves_the_hash(tmp_path: Path) -> None:
    path = write(tmp_path, dump_genesis(NET.genesis))
    assert load_genesis(path).hash() == NET.genesis.hash()
    assert load_genesis(str(path)) == NET.genesis


def test_initial_state_counts_balances_and_stakes() -> None:
    state = NET.genesis.initial_state()
    assert state.supply.genesis == 1_000 + 2_000 + 3_000 + 10 + 20 + 30 + 40
    assert state.total_balances_and_stakes() == state.supply.expected_total
    assert state.height == 0
    assert state.last_block_hash == NET.genesis.hash()
    assert [v.address for v in state.validators] == sorted(v.address for v in state.validators)
    assert state.touched == set()


chain_ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,46}[a-z0-9]", fullmatch=True)
times = st.integers(0, 253_402_300_799_999)  # up to 9999-12-31T23:59:59.999Z


@given(chain_ids, times, st.sampled_from([DEVNET, TESTNET]),
       st.lists(st.integers(DEVNET.min_validator_stake, 10**15), min_size=4, max_size=6),
       st.lists(st.integers(0, 10**15), max_size=5))
@settings(max_examples=60, deadline=None)
def test_round_trip_property(chain_id: str, time_ms: int, params: ChainParams,
                             stakes: list[int], balances: list[int]) -> None:
    net = make_net(stakes=tuple(stakes), balances=tuple(balances), params=params,
                   chain_id=chain_id, label=f"rt/{len(stakes)}/{len(balances)}")
    g = Genesis(chain_id, time_ms, False, params, net.genesis.validators,
                net.genesis.accounts)
    back = parse_genesis(json.loads(dump_genesis(g)))
    assert back == g
    assert back.hash() == g.hash()


@given(times)
@settings(max_examples=500)
def test_time_round_trips_to_the_millisecond(time_ms: int) -> None:
    text = format_time_ms(time_ms)
    assert text.endswith("Z")
    assert parse_time(text) == time_ms


def test_known_times() -> None:
    assert parse_time("1970-01-01T00:00:00Z") == 0
    assert parse_time("2004-03-15T07:55:47.472Z") == 1_079_337_347_472
    assert parse_time("2026-11-22T01:00:00+01:00") == parse_time("2026-11-22T00:00:00Z")
    assert format_time_ms(1_079_337_347_472) == "2004-03-15T07:55:47.472Z"


# --- every rule, each naming its field ------------------------------------------------------

Mutation = Callable[[dict], None]


def set_path(path: tuple, value: object) -> Mutation:
    def mutate(d: dict) -> None:
        target = d
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return mutate


def delete_path(path: tuple) -> Mutation:
    def mutate(d: dict) -> None:
        target = d
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    return mutate


def _dup_account(d: dict) -> None:
    d["accounts"].append(dict(d["accounts"][0], balance=5))


def _dup_validator(d: dict) -> None:
    d["validators"].append(dict(d["validators"][0], name="copy"))


def _swap_addresses(d: dict) -> None:
    v0, v1 = d["validators"][0], d["validators"][1]
    v0["address"], v1["address"] = v1["address"], v0["address"]


def _flip_checksum(d: dict) -> None:
    a = d["accounts"][0]["address"]
    a_list = list(a)
    a_list[-1] = "q" if a_list[-1] != "q" else "p"
    d["accounts"][0]["address"] = "".join(a_list)


def _three_validators(d: dict) -> None:
    d["validators"] = d["validators"][:3]


def _dev_with_two(d: dict) -> None:
    d["single_validator_dev_chain"] = True
    d["validators"] = d["validators"][:2]


def _overflow(d: dict) -> None:
    d["accounts"][0]["balance"] = MAX_AMOUNT - 1
    d["accounts"][1]["balance"] = MAX_AMOUNT - 1


def _overflow_by_one(d: dict) -> None:
    rest = sum(a["balance"] for a in d["accounts"][1:]) + sum(v["stake"]
                                                              for v in d["validators"])
    d["accounts"][0]["balance"] = MAX_AMOUNT - rest + 1


def _extra_param(d: dict) -> None:
    d["params"]["slash_bps"] = 1


BAD_DOCS: dict[str, tuple[Mutation, str]] = {
    "missing accounts": (delete_path(("accounts",)), "missing field 'accounts'"),
    "missing chain_id": (delete_path(("chain_id",)), "missing field 'chain_id'"),
    "missing validator stake": (delete_path(("validators", 0, "stake")),
                                r"validators\[0\]: missing field 'stake'"),
    "missing account balance": (delete_path(("accounts", 1, "balance")),
                                r"accounts\[1\]: missing field 'balance'"),
    "missing param": (delete_path(("params", "min_fee")), "params: missing field 'min_fee'"),
    "unknown top-level field": (set_path(("extra",), 1), "unknown field 'extra'"),
    "unknown validator field": (set_path(("validators", 2, "power"), 1),
                                r"validators\[2\]: unknown field 'power'"),
    "unknown account field": (set_path(("accounts", 0, "nonce"), 0),
                              r"accounts\[0\]: unknown field 'nonce'"),
    "unknown param": (_extra_param, "params: unknown field 'slash_bps'"),
    "chain id upper case": (set_path(("chain_id",), "Jevons"), "chain_id"),
    "chain id one char": (set_path(("chain_id",), "j"), "chain_id"),
    "chain id 49 chars": (set_path(("chain_id",), "j" * 49), "chain_id"),
    "chain id leading dash": (set_path(("chain_id",), "-jevons"), "chain_id"),
    "chain id trailing dash": (set_path(("chain_id",), "jevons-"), "chain_id"),
    "chain id trailing newline": (set_path(("chain_id",), "jevons\n"), "chain_id"),
    "chain id with space": (set_path(("chain_id",), "jev ons"), "chain_id"),
    "chain id not a string": (set_path(("chain_id",), 7), "chain_id"),
    "time not a time": (set_path(("genesis_time",), "yesterday"), "genesis_time"),
    "time without zone": (set_path(("genesis_time",), "2026-01-01T00:00:00"), "genesis_time"),
    "time as a number": (set_path(("genesis_time",), 1_700_000_000), "genesis_time"),
    "time empty": (set_path(("genesis_time",), ""), "genesis_time"),
    "dev flag not a bool": (set_path(("single_validator_dev_chain",), 1),
                            "single_validator_dev_chain: expected true or false"),
    "dev flag as a string": (set_path(("single_validator_dev_chain",), "false"),
                             "single_validator_dev_chain: expected true or false"),
    "float balance": (set_path(("accounts", 0, "balance"), 1e6), r"accounts\[0\]\.balance"),
    "float stake": (set_path(("validators", 0, "stake"), 10.0), r"validators\[0\]\.stake"),
    "float param": (set_path(("params", "block_reward"), 2e6), "params.block_reward"),
    "string balance": (set_path(("accounts", 0, "balance"), "1000"), r"accounts\[0\]\.balance"),
    "bool balance": (set_path(("accounts", 0, "balance"), True), r"accounts\[0\]\.balance"),
    "negative balance": (set_path(("accounts", 0, "balance"), -1), r"accounts\[0\]\.balance"),
    "balance above max": (set_path(("accounts", 2, "balance"), MAX_AMOUNT + 1),
                          r"accounts\[2\]\.balance"),
    "zero stake": (set_path(("validators", 1, "stake"), 0), r"validators\[1\]\.stake"),
    "negative stake": (set_path(("validators", 1, "stake"), -10), r"validators\[1\]\.stake"),
    "negative param": (set_path(("params", "min_fee"), -1), "params.min_fee"),
    "burn above 100%": (set_path(("params", "fee_burn_bps"), 10_001), "params.fee_burn_bps"),
    "duplicate account": (_dup_account, r"accounts\[3\]\.address: duplicate"),
    "duplicate validator": (_dup_validator, r"validators\[4\]: duplicate pub_key"),
    "address not of pub_key": (_swap_addresses,
                               r"validators\[0\]\.address: does not belong to pub_key"),
    "bad address checksum": (_flip_checksum, r"accounts\[0\]\.address"),
    "address wrong prefix": (set_path(("accounts", 0, "address"),
                                      "cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu"),
                             r"accounts\[0\]\.address"),
    "address empty": (set_path(("accounts", 0, "address"), ""), r"accounts\[0\]\.address"),
    "pub_key not hex": (set_path(("validators", 0, "pub_key"), "zz" * 32),
                        r"validators\[0\]\.pub_key"),
    "pub_key 31 bytes": (set_path(("validators", 0, "pub_key"), "ab" * 31),
                         r"validators\[0\]\.pub_key"),
    "pub_key not a string": (set_path(("validators", 0, "pub_key"), 5),
                             r"validators\[0\]\.pub_key"),
    "validator name empty": (set_path(("validators", 0, "name"), ""), r"validators\[0\]\.name"),
    "validator name too long": (set_path(("validators", 0, "name"), "n" * 65),
                                r"validators\[0\]\.name"),
    "three validators": (_three_validators, "validators: 3 given"),
    "no validators": (set_path(("validators",), []), "validators: 0 given"),
    "dev flag with two": (_dev_with_two, "exactly 1 validator, got 2"),
    "validators not a list": (set_path(("validators",), {}), "validators: expected a list"),
    "accounts not a list": (set_path(("accounts",), {}), "accounts: expected a list"),
    "stake below the minimum": (set_path(("params", "min_validator_stake"), 11),
                                r"validators\[0\]\.stake: 10 is below params.min_validator"),
    "account not an object": (set_path(("accounts", 0), []), r"accounts\[0\]"),
    "params not an object": (set_path(("params",), []), "params"),
    "total supply overflow": (_overflow, "total supply"),
    "total supply one above max": (_overflow_by_one, "total supply"),
}


@pytest.mark.parametrize(("mutate", "field"), BAD_DOCS.values(), ids=BAD_DOCS.keys())
def test_parse_genesis_names_the_bad_field(mutate: Mutation, field: str) -> None:
    d = doc()
    mutate(d)
    with pytest.raises(InvalidGenesis, match=field):
        parse_genesis(d)


@pytest.mark.parametrize(("mutate", "field"), BAD_DOCS.values(), ids=BAD_DOCS.keys())
def test_load_genesis_names_the_bad_field(tmp_path: Path, mutate: Mutation,
                                          field: str) -> None:
    d = doc()
    mutate(d)
    path = write(tmp_path, json.dumps(d))
    with pytest.raises(InvalidGenesis, match=field) as info:
        load_genesis(path)
    assert str(path) in str(info.value)


def test_total_supply_at_exactly_the_maximum_is_accepted() -> None:
    d = doc()
    rest = sum(a["balance"] for a in d["accounts"][1:]) + sum(v["stake"] for v in d["validators"])
    d["accounts"][0]["balance"] = MAX_AMOUNT - rest
    assert parse_genesis(d).initial_state().supply.genesis == MAX_AMOUNT


def test_dev_chain_with_one_validator_is_accepted() -> None:
    d = doc()
    d["single_validator_dev_chain"] = True
    d["validators"] = d["validators"][:1]
    assert parse_genesis(d).single_validator_dev_chain is True


def test_dev_flag_is_optional_and_defaults_to_false() -> None:
    d = doc()
    del d["single_validator_dev_chain"]
    assert parse_genesis(d).single_validator_dev_chain is False


def test_address_may_be_upper_case() -> None:
    d = doc()
    d["accounts"][0]["address"] = d["accounts"][0]["address"].upper()
    assert parse_genesis(d) == NET.genesis


def test_accounts_are_sorted_whatever_the_file_order() -> None:
    d = doc()
    d["accounts"].reverse()
    assert parse_genesis(d).accounts == NET.genesis.accounts


@pytest.mark.parametrize("value", [None, [], "genesis", 5])
def test_document_must_be_an_object(value: object) -> None:
    with pytest.raises(InvalidGenesis, match="genesis: expected an object"):
        parse_genesis(value)


# --- file-level failures --------------------------------------------------------------------

GOOD_TEXT = json.dumps(GOOD)
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "float written as 1e6": (GOOD_TEXT.replace('"balance": 1000', '"balance": 1e6').encode(),
                             r"accounts\[\d\]\.balance"),
    "float written as 1000.0": (GOOD_TEXT.replace('"balance": 1000', '"balance": 1000.0')
                                .encode(), r"accounts\[\d\]\.balance"),
    "float param": (GOOD_TEXT.replace('"min_fee": 100', '"min_fee": 1E2').encode(),
                    "params.min_fee"),
    "NaN": (GOOD_TEXT.replace('"balance": 1000', '"balance": NaN').encode(), "NaN"),
    "Infinity": (GOOD_TEXT.replace('"balance": 1000', '"balance": Infinity').encode(),
                 "Infinity"),
    "invalid JSON": (GOOD_TEXT[:-1].encode(), "not valid JSON"),
    "empty file": (b"", "not valid JSON"),
    "trailing garbage": (GOOD_TEXT.encode() + b" x", "not valid JSON"),
    "invalid UTF-8": (GOOD_TEXT.replace('"v0"', '"v\xff"').encode("latin-1"), "cannot read"),
    "a JSON list": (b"[]", "expected an object"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    "integer of 5000 digits": (GOOD_TEXT.replace('"balance": 1000', '"balance": ' + "9" * 5000)
                               .encode(), "not valid JSON"),
    "duplicate key": (GOOD_TEXT.replace('"balance": 1000', '"balance": 1, "balance": 1000')
                      .encode(), "duplicate key 'balance'"),
}


@pytest.mark.parametrize(("data", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_files(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InvalidGenesis, match=message) as info:
        load_genesis(path)
    assert str(path) in str(info.value)


def test_good_text_is_accepted(tmp_path: Path) -> None:
    assert '"balance": 1000' in GOOD_TEXT  # the replacements above do change the file
    assert load_genesis(write(tmp_path, GOOD_TEXT)) == NET.genesis


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidGenesis, match="no such file"):
        load_genesis(tmp_path / "absent.json")


def test_file_over_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD_TEXT)
    monkeypatch.setattr(document, "MAX_GENESIS_BYTES", len(GOOD_TEXT.encode()) - 1)
    with pytest.raises(InvalidGenesis, match="limit is"):
        load_genesis(path)
    monkeypatch.setattr(document, "MAX_GENESIS_BYTES", len(GOOD_TEXT.encode()))
    assert load_genesis(path) == NET.genesis


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidGenesis, match="is a directory"):
        load_genesis(tmp_path)


def test_chain_id_pattern_refuses_a_trailing_newline() -> None:
    assert CHAIN_ID_RE.match("jevons-devnet")
    assert not CHAIN_ID_RE.match("jevons-devnet\n")


def test_genesis_hash_covers_every_field() -> None:
    g = NET.genesis
    other_key = key("genesis/other")
    variants = [
        Genesis("jevons-other", g.genesis_time_ms, g.single_validator_dev_chain, g.params,
                g.validators, g.accounts),
        Genesis(g.chain_id, g.genesis_time_ms + 1, g.single_validator_dev_chain, g.params,
                g.validators, g.accounts),
        Genesis(g.chain_id, g.genesis_time_ms, not g.single_validator_dev_chain, g.params,
                g.validators, g.accounts),
        Genesis(g.chain_id, g.genesis_time_ms, g.single_validator_dev_chain, TESTNET,
                g.validators, g.accounts),
        Genesis(g.chain_id, g.genesis_time_ms, g.single_validator_dev_chain, g.params,
                (*g.validators[:3], GenesisValidator("v3", other_key.public, 40)), g.accounts),
        Genesis(g.chain_id, g.genesis_time_ms, g.single_validator_dev_chain, g.params,
                g.validators, (*g.accounts[:2], (addr(other_key), 3_000))),
        Genesis(g.chain_id, g.genesis_time_ms, g.single_validator_dev_chain, g.params,
                g.validators, (*g.accounts[:2], (g.accounts[2][0], 3_001))),
    ]
    hashes = {g.hash(), *(v.hash() for v in variants)}
    assert len(hashes) == len(variants) + 1
    assert to_bech32(addr(other_key)).startswith("jev1")
