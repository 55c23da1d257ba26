"""The genesis file: format, strict loading, canonical hash and the initial state.

JSON shape (all amounts are JSON integers in base units, ujev):
{
  "chain_id": "jevons-devnet",
  "genesis_time": "2026-11-22T00:00:00Z",
  "single_validator_dev_chain": false,
  "params": {"block_reward": 2000000, ...every ChainParams field...},
  "validators": [{"name": "node0", "address": "jev1...", "pub_key": "<64 hex>", "stake": 1}],
  "accounts": [{"address": "jev1...", "balance": 1000000}]
}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from consensus.address import address_from_pubkey, from_bech32, to_bech32
from consensus.codec import encode
from consensus.errors import DecodeError, InvalidAddress, InvalidGenesis
from consensus.hashing import sha256
from consensus.params import MAX_AMOUNT, ChainParams
from consensus.staking import Staking
from consensus.state import Account, State, Supply, Validator

CHAIN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,46}[a-z0-9]\Z")  # \Z: no trailing newline
MIN_VALIDATORS = 4
MAX_GENESIS_BYTES = 64 * 1024 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
TOP_KEYS = {"chain_id", "genesis_time", "single_validator_dev_chain", "params", "validators",
            "accounts"}


@dataclass(frozen=True)
class GenesisValidator:
    name: str
    pubkey: bytes
    stake: int

    @property
    def address(self) -> bytes:
        return address_from_pubkey(self.pubkey)


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    single_validator_dev_chain: bool
    params: ChainParams
    validators: tuple[GenesisValidator, ...]
    accounts: tuple[tuple[bytes, int], ...]  # (address, balance), sorted by address

    def hash(self) -> bytes:
        return sha256(encode([
            b"jevons/genesis/v1", self.chain_id, self.genesis_time_ms,
            int(self.single_validator_dev_chain), self.params.to_fields(),
            [[v.name, v.pubkey, v.stake] for v in self.validators],
            [[a, b] for a, b in self.accounts],
        ]))

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time": format_time_ms(self.genesis_time_ms),
            "single_validator_dev_chain": self.single_validator_dev_chain,
            "params": self.params.to_dict(),
            "validators": [{"name": v.name, "address": to_bech32(v.address),
                            "pub_key": v.pubkey.hex(), "stake": v.stake}
                           for v in self.validators],
            "accounts": [{"address": to_bech32(a), "balance": b} for a, b in self.accounts],
        }

    def initial_state(self) -> State:
        validators = tuple(sorted((Validator(v.address, v.pubkey, v.stake)
                                   for v in self.validators), key=lambda v: v.address))
        total = sum(b for _, b in self.accounts) + sum(v.stake for v in validators)
        staking = Staking({v.address: v for v in validators})
        state = State(self.chain_id, self.params, self.hash(), 0, self.genesis_time_ms,
                      self.hash(), validators, validators, Supply(genesis=total),
                      validators, staking)
        for address, balance in self.accounts:
            state.set_account(address, Account(balance, 0))
        state.touched.clear()
        return state


def format_time_ms(ms: int) -> str:
    """Integer arithmetic only: a float round trip can be off by a millisecond."""
    return (EPOCH + ms * ONE_MS).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: Any) -> int:
    if not isinstance(text, str):
        raise InvalidGenesis("genesis_time: expected an RFC 3339 string like 2026-01-01T00:00:00Z")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidGenesis(f"genesis_time: {text!r} is not an RFC 3339 time") from exc
    if when.tzinfo is None:
        raise InvalidGenesis(f"genesis_time: {text!r} needs a time zone (end it with Z)")
    return (when - EPOCH) // ONE_MS


def _int(value: Any, where: str, lo: int = 0) -> int:
    if type(value) is not int:
        raise InvalidGenesis(f"{where}: expected an integer (base units), got {value!r}")
    if not lo <= value <= MAX_AMOUNT:
        raise InvalidGenesis(f"{where}: {value} outside [{lo}, {MAX_AMOUNT}]")
    return value


def _keys(obj: Any, where: str, required: set[str], optional: set[str] = frozenset()) -> dict:
    if not isinstance(obj, dict):
        raise InvalidGenesis(f"{where}: expected an object")
    missing = sorted(required - obj.keys())
    if missing:
        raise InvalidGenesis(f"{where}: missing field {missing[0]!r}")
    unknown = sorted(obj.keys() - required - optional)
    if unknown:
        raise InvalidGenesis(f"{where}: unknown field {unknown[0]!r}")
    return obj


def _address(text: Any, where: str) -> bytes:
    try:
        return from_bech32(text)
    except InvalidAddress as exc:
        raise InvalidGenesis(f"{where}: {exc}") from exc


def parse_validator(obj: Any, i: int) -> GenesisValidator:
    where = f"validators[{i}]"
    _keys(obj, where, {"name", "address", "pub_key", "stake"})
    name = obj["name"]
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise InvalidGenesis(f"{where}.name: expected 1-64 characters")
    try:
        pubkey = bytes.fromhex(obj["pub_key"])
    except (TypeError, ValueError) as exc:
        raise InvalidGenesis(f"{where}.pub_key: expected 64 hex characters") from exc
    if len(pubkey) != 32:
        raise InvalidGenesis(f"{where}.pub_key: expected 32 bytes, got {len(pubkey)}")
    if _address(obj["address"], f"{where}.address") != address_from_pubkey(pubkey):
        raise InvalidGenesis(f"{where}.address: does not belong to pub_key")
    return GenesisValidator(name, pubkey, _int(obj["stake"], f"{where}.stake", 1))


def parse_genesis(obj: Any) -> Genesis:
    """Validate a decoded JSON document; raise InvalidGenesis naming the first bad field."""
    _keys(obj, "genesis", TOP_KEYS - {"single_validator_dev_chain"},
          {"single_validator_dev_chain"})
    chain_id = obj["chain_id"]
    if not isinstance(chain_id, str) or not CHAIN_ID_RE.match(chain_id):
        raise InvalidGenesis(f"chain_id: {chain_id!r} must be 2-48 of a-z, 0-9 and '-'")
    dev = obj.get("single_validator_dev_chain", False)
    if not isinstance(dev, bool):
        raise InvalidGenesis("single_validator_dev_chain: expected true or false")
    try:
        params = ChainParams.from_dict(_keys(obj["params"], "params", set()
                                             | set(ChainParams().to_dict())))
    except DecodeError as exc:
        raise InvalidGenesis(str(exc)) from exc
    if not isinstance(obj["validators"], list):
        raise InvalidGenesis("validators: expected a list")
    validators = tuple(parse_validator(v, i) for i, v in enumerate(obj["validators"]))
    check_validator_count(len(validators), dev)
    seen = set()
    for i, v in enumerate(validators):
        if v.stake < params.min_validator_stake:
            raise InvalidGenesis(f"validators[{i}].stake: {v.stake} is below "
                                 f"params.min_validator_stake {params.min_validator_stake}")
        if v.pubkey in seen:
            raise InvalidGenesis(f"validators[{i}]: duplicate pub_key")
        seen.add(v.pubkey)
    accounts = parse_accounts(obj["accounts"])
    genesis = Genesis(chain_id, parse_time(obj["genesis_time"]), dev, params, validators,
                      accounts)
    total = sum(b for _, b in accounts) + sum(v.stake for v in validators)
    if total > MAX_AMOUNT:
        raise InvalidGenesis(f"total supply {total} exceeds the maximum {MAX_AMOUNT}")
    return genesis


def check_validator_count(count: int, dev: bool) -> None:
    if dev and count != 1:
        raise InvalidGenesis(
            f"validators: a single_validator_dev_chain has exactly 1 validator, got {count}")
    if not dev and count < MIN_VALIDATORS:
        raise InvalidGenesis(
            f"validators: {count} given; BFT needs at least {MIN_VALIDATORS} "
            "(set single_validator_dev_chain for a one-validator dev chain)")


def parse_accounts(items: Any) -> tuple[tuple[bytes, int], ...]:
    if not isinstance(items, list):
        raise InvalidGenesis("accounts: expected a list")
    balances: dict[bytes, int] = {}
    for i, obj in enumerate(items):
        _keys(obj, f"accounts[{i}]", {"address", "balance"})
        address = _address(obj["address"], f"accounts[{i}].address")
        if address in balances:
            raise InvalidGenesis(f"accounts[{i}].address: duplicate of an earlier account")
        balances[address] = _int(obj["balance"], f"accounts[{i}].balance")
    return tuple(sorted(balances.items()))


def _reject_constant(name: str) -> Any:
    raise InvalidGenesis(f"{name} is not allowed in a genesis file")


@dataclass(frozen=True)
class JsonFloat:
    """A JSON number with a fraction or exponent (`1e6`, `5.0`). Kept as its text so that the
    field check refusing it names the field; amounts are integers in ujev."""

    text: str

    def __repr__(self) -> str:
        return self.text


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise InvalidGenesis(f"duplicate key {name!r} in one JSON object")
        obj[name] = value
    return obj


def load_genesis(path: str | Path) -> Genesis:
    """Read and validate a genesis file; InvalidGenesis says what is wrong and where."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_GENESIS_BYTES:
            raise InvalidGenesis(f"{path}: {size} bytes, limit is {MAX_GENESIS_BYTES}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidGenesis(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InvalidGenesis(f"{path}: is a directory, expected a genesis JSON file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidGenesis(f"{path}: cannot read: {exc}") from exc
    try:
        obj = json.loads(text, parse_float=JsonFloat, parse_constant=_reject_constant,
                         object_pairs_hook=_reject_duplicate_keys)
    except InvalidGenesis as exc:
        raise InvalidGenesis(f"{path}: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, too-long ints, deep nesting
        raise InvalidGenesis(f"{path}: not valid JSON: {exc}") from exc
    try:
        return parse_genesis(obj)
    except InvalidGenesis as exc:
        raise InvalidGenesis(f"{path}: {exc}") from exc


def dump_genesis(genesis: Genesis) -> str:
    return json.dumps(genesis.to_json(), indent=2) + "\n"
