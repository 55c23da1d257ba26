"""A node's config.toml: typed, validated, with every bad value named in the error."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from node.errors import ConfigError

ROLES = ("validator", "full", "provider")
BACKENDS = ("auto", "cpu", "cuda")
FAULTS = ("none", "corrupt", "wrong-answer", "silent")  # test-only misbehaviour
KERNEL_NAMES = ("matmul-int8", "mlp-int8")


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
class ConsensusConfig:
    timeout_commit_ms: int = 300
    """Pause after a block is decided before the next height's proposal is built (CometBFT's
    timeout_commit): late votes and new txs arrive meanwhile, so blocks are fuller and an
    idle network does not spin through empty blocks as fast as the CPU allows."""


@dataclass(frozen=True)
class MempoolConfig:
    """Bounds on this node's pending transactions (not consensus: nodes may differ)."""

    max_txs: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    ttl_blocks: int = 600
    """A tx still pending after this many blocks leaves the mempool (its sender may send it
    again): e.g. one that waits for a nonce never sent, or that cannot pay its amount."""


@dataclass(frozen=True)
class ProviderConfig:
    """A provider's terms, registered on chain when the node starts (and re-registered when
    they change). Amounts in base units (ujev)."""

    kernels: tuple[str, ...] = KERNEL_NAMES
    price: int = 10  # per unit of work (2^20 multiply-accumulates)
    capacity: int = 4
    region: str = "local"
    carbon: int = 400  # declared gCO2e/kWh of the machine's power
    stake: int = 200_000_000  # bonded on first registration (200 JEV)
    endpoint: str = ""  # multiaddr verifiers dial; default: p2p listen + /p2p/<peer id>
    backend: str = "auto"
    fault: str = "none"  # TESTING ONLY: corrupt | wrong-answer | silent


@dataclass(frozen=True)
class NodeConfig:
    moniker: str = "node"
    role: str = "validator"
    p2p: P2PConfig = field(default_factory=P2PConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    provider: ProviderConfig = field(default_factory=ProviderConfig)

    def to_toml(self) -> str:
        data = asdict(self)
        top = {"node": {"moniker": data.pop("moniker"), "role": data.pop("role")}}
        data["p2p"]["bootstrap"] = list(data["p2p"]["bootstrap"])
        data["provider"]["kernels"] = list(data["provider"]["kernels"])
        if self.role != "provider":
            del data["provider"]
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
    unknown = sorted(set(data) - {"node", "p2p", "api", "chain", "consensus", "mempool",
                                  "provider"})
    if unknown:
        raise ConfigError(f"unknown table [{unknown[0]}] (known: node, p2p, api, chain, "
                          "consensus, mempool, provider)")
    node = _table(data, "node", {"moniker", "role"})
    p2p = _table(data, "p2p", {"listen", "bootstrap"})
    api = _table(data, "api", {"listen"})
    chain = _table(data, "chain", {"block_time_ms"})
    consensus = _table(data, "consensus", {"timeout_commit_ms"})
    mempool = _table(data, "mempool", {"max_txs", "max_bytes", "ttl_blocks"})
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
    if (not _is_host(host) or not port.isascii() or not port.isdigit()
            or not 0 <= int(port) <= 65535):
        raise ConfigError(f"[api] listen must be HOST:PORT with an IP address or host name "
                          f"and a port 0..65535 (0: any free one), got {api.get('listen')!r}")
    return NodeConfig(
        moniker=_str(node, "node", "moniker", "node"),
        role=role,
        p2p=P2PConfig(_str(p2p, "p2p", "listen", P2PConfig.listen), tuple(bootstrap)),
        api=ApiConfig(f"{host}:{port}"),
        chain=ChainConfig(block_time),
        consensus=ConsensusConfig(_int(consensus, "consensus", "timeout_commit_ms",
                                       ConsensusConfig.timeout_commit_ms, 0, 60_000)),
        mempool=MempoolConfig(
            _int(mempool, "mempool", "max_txs", MempoolConfig.max_txs, 100, 1_000_000),
            _int(mempool, "mempool", "max_bytes", MempoolConfig.max_bytes, 1024 * 1024,
                 16 * 1024**3),
            _int(mempool, "mempool", "ttl_blocks", MempoolConfig.ttl_blocks, 10, 10_000_000)),
        provider=parse_provider(data),
    )


def _int(table: dict, name: str, key: str, default: int, lo: int, hi: int) -> int:
    value = table.get(key, default)
    if type(value) is not int or not lo <= value <= hi:
        raise ConfigError(f"[{name}] {key} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _choice(table: dict, name: str, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = table.get(key, default)
    if value not in choices:
        raise ConfigError(f"[{name}] {key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_provider(data: dict[str, Any]) -> ProviderConfig:
    d = ProviderConfig()
    t = _table(data, "provider", {"kernels", "price", "capacity", "region", "carbon", "stake",
                                  "endpoint", "backend", "fault"})
    kernels = t.get("kernels", list(d.kernels))
    if (not isinstance(kernels, list) or not kernels
            or any(k not in KERNEL_NAMES for k in kernels)):
        raise ConfigError(f"[provider] kernels must be a non-empty list of "
                          f"{', '.join(KERNEL_NAMES)}, got {kernels!r}")
    endpoint = t.get("endpoint", "")
    if not isinstance(endpoint, str):
        raise ConfigError(f"[provider] endpoint must be a multiaddr string, got {endpoint!r}")
    return ProviderConfig(
        kernels=tuple(sorted(set(kernels))),
        price=_int(t, "provider", "price", d.price, 0, 2**63 - 1),
        capacity=_int(t, "provider", "capacity", d.capacity, 1, 1_000),
        region=_str(t, "provider", "region", d.region),
        carbon=_int(t, "provider", "carbon", d.carbon, 0, 100_000),
        stake=_int(t, "provider", "stake", d.stake, 0, 2**63 - 1),
        endpoint=endpoint,
        backend=_choice(t, "provider", "backend", d.backend, BACKENDS),
        fault=_choice(t, "provider", "fault", d.fault, FAULTS),
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


LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*\.?")


def _is_host(host: str) -> bool:
    """An IP address ([::1] for IPv6, as in a URL) or a DNS host name."""
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
        return True
    except ValueError:
        return HOST_NAME.fullmatch(host) is not None
