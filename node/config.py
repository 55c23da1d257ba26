"""A node's config.toml: typed, validated, with every bad value named in the error."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from node.errors import ConfigError

ROLES = ("validator", "full", "provider")


@dataclass(frozen=True)
class P2PConfig:
    listen: str = "/ip4/127.0.0.1/tcp/26600"
    bootstrap: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiConfig:
    listen: str = "127.0.0.1:26601"


@dataclass(frozen=True)
class ChainConfig:
    block_time_ms: int = 1000  # target interval between blocks on a dev chain


@dataclass(frozen=True)
class NodeConfig:
    moniker: str = "node"
    role: str = "validator"
    p2p: P2PConfig = field(default_factory=P2PConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)

    def to_toml(self) -> str:
        data = asdict(self)
        top = {"node": {"moniker": data.pop("moniker"), "role": data.pop("role")}}
        data["p2p"]["bootstrap"] = list(data["p2p"]["bootstrap"])
        return tomli_w.dumps({**top, **data})


def _table(data: dict, name: str, keys: set[str]) -> dict:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table")
    unknown = sorted(set(table) - keys)
    if unknown:
        known = ", ".join(sorted(keys))
        raise ConfigError(f"[{name}] has unknown key {unknown[0]!r} (known: {known})")
    return table


def _str(table: dict, name: str, key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"[{name}] {key} must be a non-empty string, got {value!r}")
    return value


def parse_config(data: dict[str, Any]) -> NodeConfig:
    unknown = sorted(set(data) - {"node", "p2p", "api", "chain"})
    if unknown:
        raise ConfigError(f"unknown table [{unknown[0]}] (known: node, p2p, api, chain)")
    node = _table(data, "node", {"moniker", "role"})
    p2p = _table(data, "p2p", {"listen", "bootstrap"})
    api = _table(data, "api", {"listen"})
    chain = _table(data, "chain", {"block_time_ms"})
    role = _str(node, "node", "role", "validator")
    if role not in ROLES:
        raise ConfigError(f"[node] role must be one of {', '.join(ROLES)}, got {role!r}")
    bootstrap = p2p.get("bootstrap", [])
    if not isinstance(bootstrap, list) or not all(isinstance(b, str) for b in bootstrap):
        raise ConfigError("[p2p] bootstrap must be a list of multiaddr strings")
    block_time = chain.get("block_time_ms", ChainConfig.block_time_ms)
    if type(block_time) is not int or not 10 <= block_time <= 600_000:
        raise ConfigError(
            f"[chain] block_time_ms must be an integer in 10..600000, got {block_time!r}")
    host, _, port = _str(api, "api", "listen", ApiConfig.listen).rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"[api] listen must be HOST:PORT, got {api.get('listen')!r}")
    return NodeConfig(
        moniker=_str(node, "node", "moniker", "node"),
        role=role,
        p2p=P2PConfig(_str(p2p, "p2p", "listen", P2PConfig.listen), tuple(bootstrap)),
        api=ApiConfig(f"{host}:{port}"),
        chain=ChainConfig(block_time),
    )


def load_config(path: Path) -> NodeConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file (run `jevons init` to create a home)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
