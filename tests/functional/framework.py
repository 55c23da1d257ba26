"""A small functional-test framework in the manner of Bitcoin Core's: real node processes
on loopback (real libp2p, real LevelDB, the real CLI), driven through their HTTP API.

    net = TestNetwork(tmp_path, validators=4)
    net.start_all(); net.wait_for_height(3)
    net.nodes[0].kill(); …; net.nodes[0].start(); net.sync_all()

Every wait is a condition polled with a deadline (never a bare sleep). Node logs stay in
each home (node.log) and are printed when a test fails.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.functional.cli import JEVONS, jevons

DEFAULT_TIMEOUT = 60.0


def ephemeral_port_floor() -> int:
    """The lowest port the kernel hands out for outgoing connections (32768 by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port_block(count: int) -> int:
    """A base port with `count` consecutive free ports on 127.0.0.1 (checked by binding),
    below the ephemeral range: a node started later (a restart, a late joiner) would
    otherwise find its port taken by another node's outgoing connection."""
    rng = random.Random(os.getpid() ^ time.time_ns())
    top = min(60_000, ephemeral_port_floor()) - count
    for _ in range(200):
        base = rng.randrange(10_000, max(10_001, top))
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports found")


def wait_until(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
               what: str = "condition", interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class TestNode:
    __test__ = False

    def __init__(self, home: Path, api: str) -> None:
        self.home, self.api = home, api
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.home.name

    def start(self, *extra: str) -> None:
        log = open(self.home / "node.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([JEVONS, "node", "start", "--home", str(self.home), *extra],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.api}{path}", timeout=5) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict) -> tuple[int, Any]:
        req = urllib.request.Request(f"http://{self.api}{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=70) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def metric(self, name: str) -> float:
        """One unlabelled sample of the node's /metrics (0 if it is not there)."""
        with urllib.request.urlopen(f"http://{self.api}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return 0.0

    def status(self) -> dict | None:
        try:
            return self.get("/status")
        except (OSError, ValueError):
            return None

    def height(self) -> int:
        status = self.status()
        return status["height"] if status else -1

    def block_hash(self, height: int) -> str:
        return self.get(f"/blocks/{height}")["hash"]

    def log_text(self) -> str:
        path = self.home / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""


class TestNetwork:
    __test__ = False

    def __init__(self, tmp: Path, validators: int = 4, full_nodes: int = 0,
                 accounts: int = 4) -> None:
        self.root = tmp / "net"
        self.base = free_port_block(2 * (validators + full_nodes))
        jevons("testnet", "--validators", str(validators), "--providers", str(full_nodes),
               "--accounts", str(accounts), "--out", self.root, "--base-port", str(self.base),
               "--chain-id", "jevons-ft", check=True)
        total = validators + full_nodes
        self.nodes = [TestNode(self.root / f"node{i}", f"127.0.0.1:{self.base + 2 * i + 1}")
                      for i in range(total)]
        self.accounts = json.loads((self.root / "accounts.json").read_text())

    def start_all(self, count: int | None = None) -> None:
        for node in self.nodes[:count]:
            node.start()

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.running():
                try:
                    node.stop()
                except subprocess.TimeoutExpired:
                    node.kill()

    def live(self) -> list[TestNode]:
        return [n for n in self.nodes if n.running()]

    def wait_for_height(self, height: int, nodes: list[TestNode] | None = None,
                        timeout: float = DEFAULT_TIMEOUT) -> None:
        group = nodes or self.live()
        wait_until(lambda: all(n.height() >= height for n in group), timeout,
                   f"height {height} on {[n.name for n in group]}")

    def assert_same_chain(self, nodes: list[TestNode] | None = None) -> int:
        """Every node has the same block at every height up to the lowest tip."""
        group = nodes or self.live()
        top = min(n.height() for n in group)
        for h in range(1, top + 1):
            hashes = {n.block_hash(h) for n in group}
            assert len(hashes) == 1, f"fork at height {h}: {hashes}"
        return top

    def dump_logs(self) -> str:
        return "\n".join(f"==== {n.name} ====\n{n.log_text()[-4000:]}" for n in self.nodes)
