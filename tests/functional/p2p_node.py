"""Child process of the p2p functional tests: one P2PNode driven by JSON lines.

    python -m tests.functional.p2p_node --seed HEX [--listen MADDR] [--bootstrap MADDR ...]

Subscribes to topic `t` (accepting every message), serves `/test/echo/1` (echo, requests
up to 16 MiB), prints `{"event": "ready", "peer_id": ..., "addrs": [...]}`, then answers
one command per stdin line with one JSON line on stdout:

    {"cmd": "publish", "count": N, "size": S}     -> {"event": "published", "seconds": s}
    {"cmd": "wait_received", "count": N, "timeout": T}
                                                  -> {"event": "received", "count": n,
                                                      "seconds": first-to-last, "ok": bool}
    {"cmd": "wait_topic_peers", "count": N, "timeout": T} -> {"event": "topic_peers", ...}
    {"cmd": "request", "peer": ID, "size": S, "repeat": R, "protocol": P (default echo)}
                                                  -> {"event": "requested", "seconds": [...]}
    {"cmd": "quit"}                               -> exits 0 (so does EOF on stdin)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

from node.p2p import P2PError, P2PNode, PeerPolicy, configure_libp2p_logging

TOPIC = "t"
ECHO = "/test/echo/1"
MAX_REQUEST = 16 << 20


def emit(**event: Any) -> None:
    print(json.dumps(event), flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", required=True, help="32-byte identity seed, hex")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    parser.add_argument("--bootstrap", nargs="*", default=[])
    return parser.parse_args(argv)


class Inbox:
    """Messages delivered on a topic, with a condition to wait on."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.times: list[float] = []
        self.changed = trio.Event()

    async def deliver(self, origin: str, data: bytes) -> None:
        self.messages.append((origin, data))
        self.times.append(time.perf_counter())
        self.changed.set()
        self.changed = trio.Event()

    def payloads(self) -> list[bytes]:
        return [data for _, data in self.messages]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with trio.move_on_after(timeout):
            while not predicate():
                await self.changed.wait()
            return True
        return False

    async def wait(self, count: int, timeout: float) -> dict[str, Any]:
        ok = await self.wait_until(lambda: len(self.times) >= count, timeout)
        span = self.times[-1] - self.times[0] if self.times else 0.0
        return {"count": len(self.times), "seconds": span, "ok": ok}


async def lines(stream: trio.abc.ReceiveStream) -> Any:
    buf = b""
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)


async def handle(node: P2PNode, inbox: Inbox, cmd: dict[str, Any]) -> bool:
    name = cmd["cmd"]
    if name == "publish":
        start = time.perf_counter()
        for i in range(cmd["count"]):
            await node.publish(TOPIC, i.to_bytes(4, "big") + os.urandom(cmd["size"] - 4))
        emit(event="published", seconds=time.perf_counter() - start)
    elif name == "wait_received":
        emit(event="received", **await inbox.wait(cmd["count"], cmd["timeout"]))
    elif name == "wait_topic_peers":
        try:
            peers = await node.wait_for_topic_peers(TOPIC, cmd["count"], cmd["timeout"])
        except P2PError as exc:
            emit(event="topic_peers", ok=False, error=str(exc))
        else:
            emit(event="topic_peers", ok=True, peers=peers)
    elif name == "request":
        payload = os.urandom(cmd["size"])
        protocol = cmd.get("protocol", ECHO)
        seconds = []
        for _ in range(cmd.get("repeat", 1)):
            start = time.perf_counter()
            response = await node.request(cmd["peer"], protocol, payload, 30.0, MAX_REQUEST)
            seconds.append(time.perf_counter() - start)
            if protocol == ECHO and response != payload:
                raise SystemExit("echo mismatch")
        emit(event="requested", seconds=seconds)
    elif name == "quit":
        return False
    return True


async def main(args: argparse.Namespace) -> None:
    node = P2PNode(bytes.fromhex(args.seed), args.listen, args.bootstrap,
                   policy=PeerPolicy(redial_max_s=1.0))
    inbox = Inbox()

    async def echo(peer: str, request: bytes) -> bytes:
        return request

    node.subscribe(TOPIC, lambda peer, origin, data: True, inbox.deliver)
    node.set_handler(ECHO, echo, MAX_REQUEST)
    async with node.running():
        emit(event="ready", peer_id=node.peer_id, addrs=node.listen_addrs())
        async for cmd in lines(trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))):
            if not await handle(node, inbox, cmd):
                break


if __name__ == "__main__":
    configure_libp2p_logging()
    trio.run(main, parse_args(sys.argv[1:]))
