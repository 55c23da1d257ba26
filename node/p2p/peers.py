"""Who we talk to: misbehaviour scores and bans, connection events, bootstrap redialing.

py-libp2p pitfalls handled here:
- After a peer's addresses all fail once, the swarm refuses to dial it for 60 s (a
  "negative cache"), so a validator that restarts quickly stays unreachable. The redialer
  clears that entry (`unblock_peer`) before each attempt.
- The swarm retries every failed dial 3 more times and logs an ERROR line per attempt; our
  redialer owns the retry policy (exponential backoff with jitter, capped), so the swarm
  makes one attempt per dial.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from node.p2p.host import drop_stale_connections
from node.p2p.settings import PeerPolicy

log = logging.getLogger(__name__)

BAD_FRAME_WEIGHT = 60.0  # oversized or truncated request: two within ~35 s and out
DEFAULT_WEIGHT = 20.0
MAX_TRACKED_PEERS = 4096
"""Scores and bans kept, each. Gossip misbehaviour is charged to a message's origin, and
anyone can make fresh identities: past this, scores decayed below 1 are forgotten, then the
lowest, down to half, the scores of connected peers last (bans: the expired, then the
soonest to expire). So a flood of fresh identities cannot wipe the record of a peer we are
connected to, nor one of a peer closer to a ban than they are."""


@dataclass
class _Score:
    value: float
    at: float


@dataclass
class PeerBook:
    """Misbehaviour scores that halve every `score_half_life_s`; a peer whose score
    reaches `ban_threshold` is banned for `ban_s`."""

    policy: PeerPolicy
    clock: Callable[[], float] = time.monotonic
    connected: Callable[[], set[str]] = set  # the peers connected now (kept when pruning)
    _scores: dict[str, _Score] = field(default_factory=dict)
    _bans: dict[str, float] = field(default_factory=dict)

    def score(self, peer: str) -> float:
        entry = self._scores.get(peer)
        if entry is None:
            return 0.0
        age = self.clock() - entry.at
        return entry.value * math.pow(0.5, age / self.policy.score_half_life_s)

    def report(self, peer: str, weight: float) -> bool:
        """Add `weight` to the peer's score; True when this report bans it."""
        now = self.clock()
        value = self.score(peer) + weight
        self._scores[peer] = _Score(value, now)
        if len(self._scores) > MAX_TRACKED_PEERS:
            self._prune_scores()
        if value < self.policy.ban_threshold or self.is_banned(peer):
            return False
        self._bans[peer] = now + self.policy.ban_s
        self._scores.pop(peer, None)
        if len(self._bans) > MAX_TRACKED_PEERS:
            self._prune_bans(now)
        return True

    def _prune_scores(self) -> None:
        try:
            connected = self.connected()
        except Exception:  # never let bookkeeping stop a report from banning
            log.exception("listing connected peers failed; pruning scores without them")
            connected = set()
        ranked = sorted(((peer in connected, score, entry.at, peer)
                         for peer, entry in self._scores.items()
                         if (score := self.score(peer)) >= 1.0), reverse=True)
        self._scores = {peer: self._scores[peer]
                        for *_, peer in ranked[:MAX_TRACKED_PEERS // 2]}

    def _prune_bans(self, now: float) -> None:
        live = sorted((expiry, peer) for peer, expiry in self._bans.items() if expiry > now)
        self._bans = {peer: expiry for expiry, peer in live[-(MAX_TRACKED_PEERS // 2):]}

    def any_banned(self) -> bool:
        """Cheap: False only when no ban is recorded (expired ones may still count)."""
        return bool(self._bans)

    def is_banned(self, peer: str) -> bool:
        return self.ban_left(peer) > 0

    def ban_left(self, peer: str) -> float:
        expiry = self._bans.get(peer)
        if expiry is None:
            return 0.0
        left = expiry - self.clock()
        if left <= 0:
            del self._bans[peer]
            return 0.0
        return left

    def banned(self) -> list[str]:
        return [p for p in list(self._bans) if self.is_banned(p)]


class ConnectionWatch(INotifee):
    """Network notifee: wakes waiters on every connect/disconnect and hands each new
    connection to `on_connected` (which drops banned peers)."""

    def __init__(self, on_connected: Callable[[str], None]) -> None:
        self._on_connected = on_connected
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._notify()
        self._on_connected(conn.muxed_conn.peer_id.to_base58())
        await trio.lowlevel.checkpoint()

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._notify()
        await trio.lowlevel.checkpoint()

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        await trio.lowlevel.checkpoint()


def is_connected(host: IHost, info: PeerInfo) -> bool:
    return any(not c.is_closed for c in host.get_network().get_connections(info.peer_id))


async def keep_connected(host: IHost, info: PeerInfo, watch: ConnectionWatch,
                         book: PeerBook, policy: PeerPolicy) -> None:
    """Stay connected to one bootstrap peer forever: while connected, wait for a
    connection event (re-checking every `redial_max_s`); while not, redial with capped
    exponential backoff (waking early if the peer dials us)."""
    peer = info.peer_id.to_base58()
    delay = policy.redial_initial_s
    failures = 0
    while True:
        if is_connected(host, info):
            if failures:
                log.info("reconnected to bootstrap peer %s after %d failed dials", peer,
                         failures)
            failures, delay = 0, policy.redial_initial_s
            with trio.move_on_after(policy.redial_max_s):  # also re-check now and then: a
                await watch.wait_changed()  # connection can end without an event
            continue
        if book.is_banned(peer):
            await trio.sleep(book.ban_left(peer))
            continue
        error = await _dial(host, info, policy.dial_timeout_s)
        if error is None and is_connected(host, info):
            continue
        # host.connect can return at once without a live connection: count it as a
        # failure so this loop always waits, never spins.
        error = error or "dial returned without a live connection"
        failures += 1
        if failures == 1:
            log.info("bootstrap peer %s unreachable (%s); redialing with backoff", peer,
                     error)
        with trio.move_on_after(delay * random.uniform(0.8, 1.2)):
            await watch.wait_changed()
        delay = min(delay * 2, policy.redial_max_s)


async def _dial(host: IHost, info: PeerInfo, timeout_s: float) -> str | None:
    """One dial attempt; the error as text, or None on success."""
    await drop_stale_connections(host, info.peer_id)
    host.get_network().unblock_peer(info.peer_id)
    try:
        with trio.fail_after(timeout_s):
            await host.connect(info)
    except trio.TooSlowError:
        return f"no connection within {timeout_s:g} s"
    except Exception as exc:
        cause = exc.__cause__ or exc
        return f"{type(exc).__name__}: {cause}"
    return None
