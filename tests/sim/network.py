"""The fake network and virtual clock: one priority queue of (deliver_at_ms, seq, dest, item).

Items are wire messages (bytes, so garbage is possible), timers and ticks a node scheduled
for itself, and scenario controls (partition, heal, crash, restart). Link faults are applied
on send: loss, a random delay (so messages reorder), duplication; a partition drops messages
between groups both when sent and when delivered (messages in flight are lost too).
Every delivered item is folded into a SHA-256 trace hash, the fingerprint of a run.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass

from consensus.bft.messages import TimeoutElapsed

CONTROL = -1  # destination of scenario controls (not a node)


@dataclass(frozen=True, slots=True)
class Message:
    kind: int
    sender: int  # the network endpoint it came from (a transport fact, not authentication)
    payload: bytes


@dataclass(frozen=True, slots=True)
class Timer:
    epoch: int  # the node incarnation that scheduled it; a restarted node ignores old ones
    event: TimeoutElapsed


@dataclass(frozen=True, slots=True)
class Tick:
    epoch: int


@dataclass(frozen=True, slots=True)
class Control:
    name: str
    apply: Callable[[], None]


Item = Message | Timer | Tick | Control


@dataclass(frozen=True, slots=True)
class LinkModel:
    drop: float = 0.0  # probability a message is lost
    delay_min_ms: int = 1
    delay_max_ms: int = 20
    duplicate: float = 0.0  # probability a message is delivered twice


class Network:
    def __init__(self, rng: random.Random, endpoints: int, link: LinkModel) -> None:
        self.rng = rng
        self.link = link
        self.now_ms = 0
        self.groups: list[int] | None = None  # partition: group id per endpoint
        self.alive = [True] * endpoints
        self._queue: list[tuple[int, int, int, Item]] = []
        self._seq = 0
        self._trace = hashlib.sha256()
        self.delivered = 0
        self.sent = 0

    # --- scheduling -----------------------------------------------------------------------

    def push(self, at_ms: int, dest: int, item: Item) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, dest, item))

    def schedule(self, dest: int, delay_ms: int, item: Item) -> None:
        self.push(self.now_ms + delay_ms, dest, item)

    def control(self, at_ms: int, name: str, apply: Callable[[], None]) -> None:
        self.push(at_ms, CONTROL, Control(name, apply))

    def send(self, src: int, dest: int, kind: int, payload: bytes) -> None:
        self.sent += 1
        link = self.link
        if src == dest or self.rng.random() < link.drop or self._cut(src, dest):
            return
        copies = 2 if link.duplicate and self.rng.random() < link.duplicate else 1
        for _ in range(copies):
            delay = self.rng.randint(link.delay_min_ms, link.delay_max_ms)
            self.schedule(dest, delay, Message(kind, src, payload))

    # --- partitions -----------------------------------------------------------------------

    def partition(self, groups: list[int]) -> None:
        self.groups = list(groups)

    def heal(self) -> None:
        self.groups = None

    def _cut(self, a: int, b: int) -> bool:
        return self.groups is not None and self.groups[a] != self.groups[b]

    # --- delivery -------------------------------------------------------------------------

    def pop(self) -> tuple[int, Item] | None:
        """The next item to deliver (None when the queue is empty); advances the clock."""
        while self._queue:
            at, seq, dest, item = heapq.heappop(self._queue)
            self.now_ms = at
            if isinstance(item, Message) and (not self.alive[dest]
                                              or self._cut(item.sender, dest)):
                continue  # lost: the receiver is down, or a partition cut the link in flight
            self.delivered += 1
            self._record(at, seq, dest, item)
            return dest, item
        return None

    def _record(self, at: int, seq: int, dest: int, item: Item) -> None:
        if isinstance(item, Message):
            head = f"{at},{seq},{dest},m{item.kind},{item.sender};"
            self._trace.update(head.encode() + item.payload)
        elif isinstance(item, Timer):
            ev = item.event
            self._trace.update(f"{at},{seq},{dest},t{item.epoch},{int(ev.kind)},{ev.height},"
                               f"{ev.round};".encode())
        elif isinstance(item, Tick):
            self._trace.update(f"{at},{seq},{dest},k{item.epoch};".encode())
        else:
            self._trace.update(f"{at},{seq},c,{item.name};".encode())

    def trace_hash(self) -> str:
        return self._trace.hexdigest()
