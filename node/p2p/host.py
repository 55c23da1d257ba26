"""Construction of the py-libp2p host, pubsub and GossipSub router: the only place that
chooses their settings.

- Security is Noise only. py-libp2p's default set also offers /plaintext/2.0.0, which lets
  a dialer that knows only a victim's public key connect under the victim's peer id.
- Yamux only; `max_connections_per_peer=1` (the default of 3 makes every dial wait a fixed
  250 ms "happy eyeballs" delay).
- One dial attempt per address (the swarm's own 3 retries each log an ERROR line) and no
  auto-connector: the adapter's bootstrap redialer owns retrying.
- GossipSub: 1 s heartbeat (default 120 s), spam protection off (default 10 msgs/s per peer
  per topic, enforced even on our own publishes), no peer scorer (its defaults never gate
  anyone and it cost CPU on every message), /meshsub/1.1.0 and 1.0.0 only (1.2's
  IDONTWANT control message per delivered message halves throughput), no mDNS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from consensus.crypto import SEED_LEN
from node.p2p import patches
from node.p2p.errors import P2PError
from node.p2p.gossip import message_id
from node.p2p.settings import GossipParams

GOSSIP_PROTOCOLS = (PROTOCOL_ID_V11, PROTOCOL_ID)
AUTO_CONNECT_OFF_S = 24 * 3600.0
CLOSE_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


def identity_key_pair(seed: bytes) -> KeyPair:
    """The node's Ed25519 identity from its 32-byte seed (same seed, same peer id)."""
    if len(seed) != SEED_LEN:
        raise P2PError(f"identity seed must be {SEED_LEN} bytes, got {len(seed)}")
    return create_new_key_pair(seed)


def build_host(key_pair: KeyPair) -> IHost:
    patches.apply()
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_ID: NoiseTransport(
            key_pair, noise_privkey=create_x25519_key_pair().private_key)},
        muxer_opt={TProtocol(YAMUX_ID): Yamux},
        connection_config=ConnectionConfig(max_connections_per_peer=1, min_connections=0,
                                           auto_connect_interval=AUTO_CONNECT_OFF_S),
        enable_mDNS=False,
    )
    swarm: Any = host.get_network()
    swarm.retry_config = RetryConfig(max_retries=0)
    swarm.auto_connector.maybe_connect = _no_auto_connect
    return host


async def close_host(host: IHost) -> None:
    """Close every connection (concurrently: each close sleeps 0.2 s inside py-libp2p),
    then the listeners. Shielded and bounded, so it also runs while being cancelled.

    Leaving it to the host's context manager leaks sockets: the swarm closes connections
    in a `finally` that runs cancelled, so the first await aborts the loop and the
    remaining sockets (and listeners) stay open; the peer never sees the connection end.
    """
    swarm: Any = host.get_network()
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            for peer in list(swarm.connections):
                nursery.start_soon(_close_quietly, host, peer)
        await host.close()


async def close_peer(host: IHost, peer: ID) -> None:
    """Drop every connection to `peer`, even one whose writer is blocked because the peer
    stopped reading: its socket is closed first (a graceful close would wait forever to
    send yamux's GO_AWAY), then the swarm's close runs and notifies pubsub."""
    swarm: Any = host.get_network()
    for connection in list(swarm.get_connections(peer)):
        secured = getattr(getattr(connection, "muxed_conn", None), "secured_conn", None)
        if secured is not None:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                try:
                    await secured.close()
                except Exception as exc:
                    log.debug("closing the socket to %s failed: %r", peer, exc)
    await host.disconnect(peer)


async def drop_stale_connections(host: IHost, peer: ID) -> None:
    """Finish the cleanup of connections to `peer` that are closed but still listed (their
    close was interrupted). py-libp2p's `connect` returns at once while any connection is
    listed, so a stale one would keep the peer "connected" to nothing forever."""
    swarm: Any = host.get_network()
    for connection in list(swarm.get_connections(peer)):
        if not connection.is_closed:
            continue
        secured = getattr(getattr(connection, "muxed_conn", None), "secured_conn", None)
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
            try:
                if secured is not None:
                    await secured.close()
                swarm.remove_conn(connection)
                await swarm.notify_disconnected(connection)
            except Exception as exc:
                log.debug("dropping a stale connection to %s failed: %r", peer, exc)


async def _close_quietly(host: IHost, peer: ID) -> None:
    try:
        await close_peer(host, peer)
    except Exception as exc:
        log.debug("closing the connection to %s failed: %r", peer, exc)


async def _no_auto_connect() -> None:
    """Replaces the swarm's auto-connector, which redials every peer it ever saw (up to
    200 at a time, every 10 s below 50 connections), logs each round at INFO and each
    failed dial at ERROR, and ignores our bans. `P2PNode` redials its bootstrap peers."""
    await trio.lowlevel.checkpoint()


def build_pubsub(host: IHost, params: GossipParams,
                 on_bad: Callable[[str, str], None] | None = None) -> tuple[Pubsub, GossipSub]:
    patches.apply()
    router = GossipSub(
        protocols=list(GOSSIP_PROTOCOLS),
        degree=params.degree,
        degree_low=params.degree_low,
        degree_high=params.degree_high,
        heartbeat_interval=params.heartbeat_interval_s,
        spam_protection_enabled=False,
    )
    # Its default score parameters weigh everything 0 and set every threshold to -inf, so
    # it never gates a peer, yet it scored each peer several times per message (about a
    # tenth of a publish's CPU). Peer policy is ours (PeerBook); every use checks for None.
    router.scorer = None
    pubsub = Pubsub(
        host,
        router,
        seen_ttl=params.seen_ttl_s,
        msg_id_constructor=message_id,
        validation_cache_ttl=params.validation_cache_ttl_s,
        strict_signing=True,
    )
    patches.speed_up_pubsub(pubsub)
    guard_pubsub_streams(host, pubsub, router, on_bad or (lambda peer, reason: None))
    return pubsub, router


def guard_pubsub_streams(host: IHost, pubsub: Pubsub, router: GossipSub,
                         on_bad: Callable[[str, str], None]) -> None:
    """py-libp2p's pubsub stream handler catches stream errors but not a protobuf
    DecodeError: one malformed RPC frame from a peer (or a frame mangled by a broken
    connection) escapes through the connection's nursery and kills the whole node. Wrap it:
    any error ends that peer's stream, is reported against the peer, and nothing else."""

    async def guarded(stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        try:
            await pubsub.stream_handler(stream)
        except Exception as exc:
            on_bad(peer.to_base58(), f"malformed pubsub RPC ({type(exc).__name__}: {exc})")
            try:
                await stream.reset()
            except Exception as reset_exc:
                log.debug("reset of a pubsub stream failed: %r", reset_exc)
            pubsub._handle_dead_peer(peer)

    for protocol in router.get_protocols():
        host.set_stream_handler(protocol, guarded)
