"""Settings of the p2p adapter: addresses, gossip parameters and peer policy.

`node.config.P2PConfig` is the `[p2p]` table of config.toml (listen, bootstrap); this module
holds the rest of what the adapter needs at run time, with defaults measured to work on
loopback and small machines. Limits that are protocol conventions (frame and gossip sizes) are
constants here so that every node agrees on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import multiaddr

from node.errors import ConfigError

MAX_GOSSIP_BYTES = 1_000_000
"""Largest gossip payload accepted by `publish` and by the validators of `subscribe`.

The pubsub RPC limit is 1 MiB including about 470 B of envelope (signature, key, signed
peer record, topic); beyond it peers silently receive nothing. Larger data goes by
request/response."""

MAX_FRAME_BYTES = 256 * 1024 * 1024
"""Largest request or response body the framing can carry (a sanity cap on top of the
per-protocol `max_request` / per-call `max_response`)."""

MAX_REASON_BYTES = 512
"""Longest refusal reason a handler may send back (longer ones are cut)."""


@dataclass(frozen=True)
class GossipParams:
    """GossipSub and publish/deliver knobs (py-libp2p's own defaults are unusable: a 120 s
    heartbeat and a 10 msgs/s per-peer cap)."""

    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    heartbeat_interval_s: int = 1
    seen_ttl_s: int = 120  # identical payloads on one topic are delivered once per window
    validation_cache_ttl_s: int = 30
    queue_high_water: int = 16  # of the 32 slots of each peer's outbound queue
    publish_timeout_s: float = 10.0  # longest a publish waits for a peer's queue to drain
    deliver_buffer: int = 4096  # messages buffered between pubsub and the deliver callback

    def __post_init__(self) -> None:
        if not 0 < self.queue_high_water < 32:
            raise ConfigError(f"queue_high_water must be in 1..31 (a peer's outbound queue "
                              f"holds 32 RPCs), got {self.queue_high_water}")


@dataclass(frozen=True)
class PeerPolicy:
    """Misbehaviour scoring, bans and redialing."""

    ban_threshold: float = 100.0
    score_half_life_s: float = 60.0
    ban_s: float = 300.0
    dial_timeout_s: float = 5.0
    redial_initial_s: float = 0.25
    redial_max_s: float = 10.0


def check_listen_addr(addr: str) -> multiaddr.Multiaddr:
    """A TCP listen multiaddr such as /ip4/127.0.0.1/tcp/26600 (port 0 picks one)."""
    try:
        maddr = multiaddr.Multiaddr(addr)
        maddr.value_for_protocol("tcp")
    except Exception as exc:
        raise ConfigError(f"p2p listen address {addr!r} is not a TCP multiaddr "
                          "(expected e.g. /ip4/127.0.0.1/tcp/26600)") from exc
    return maddr


def check_peer_addr(addr: str) -> multiaddr.Multiaddr:
    """A dialable peer address: /ip4/HOST/tcp/PORT/p2p/PEER_ID."""
    try:
        maddr = multiaddr.Multiaddr(addr)
        maddr.value_for_protocol("tcp")
        maddr.value_for_protocol("p2p")
    except Exception as exc:
        raise ConfigError(f"p2p bootstrap address {addr!r} must look like "
                          "/ip4/HOST/tcp/PORT/p2p/PEER_ID") from exc
    return maddr


def topic_name(chain_id: str, kind: str, version: int = 1) -> str:
    """The gossip topic of one message kind on one chain: /jevons/<chain>/<kind>/<v>.
    Naming the chain keeps two networks on one machine (or one bootstrap peer) apart."""
    return _name(chain_id, kind, version)


def protocol_id(chain_id: str, name: str, version: int = 1) -> str:
    """The request/response protocol id: /jevons/<chain>/<name>/<v>. A protocol whose
    wire format changes gets a new version; nodes serve both while they migrate."""
    return _name(chain_id, name, version)


def _name(chain_id: str, part: str, version: int) -> str:
    for label, value in (("chain id", chain_id), ("name", part)):
        if not value or "/" in value or not value.isprintable() or " " in value:
            raise ConfigError(f"{label} {value!r} must be non-empty, printable, without "
                              "'/' or spaces")
    if version < 1:
        raise ConfigError(f"version must be >= 1, got {version}")
    return f"/jevons/{chain_id}/{part}/{version}"
