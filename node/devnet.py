"""`jevons devnet`: a local network in one command.

Generates homes for N validators (once; a kept `--home` is resumed), starts each node as
its own OS process on loopback, prints the funded dev accounts, submits demo transfers
through the nodes' HTTP APIs, and shows one progress line per new height (height, round,
peers, mempool, tx/s). Ctrl-C or SIGTERM stops every node cleanly (SIGTERM, then SIGKILL
after a grace period); a node that dies on its own stops the devnet with its log's tail.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from consensus.address import address_from_pubkey, to_bech32
from consensus.crypto import PrivateKey
from consensus.jobs import JobSpec
from consensus.tx import SubmitJob, make_transfer, make_tx
from node.errors import NodeError
from node.home import open_home

STOP_GRACE_S = 20.0
DEMO_MAX_PRICE = 20  # per unit; the default provider asks 10
JOB_COLUMNS = ("queued", "running", "accepted", "rejected", "failed", "expired")
JEVONS = str(Path(sys.executable).parent / "jevons")


class DevnetNode:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.config = open_home(home).config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, new_sign_state: bool = False) -> None:
        log = open(self.home / "node.log", "ab")  # noqa: SIM115 - handed to the child
        command = [JEVONS, "node", "start", "--home", str(self.home)]
        if new_sign_state:
            command.append("--new-sign-state")
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # Ctrl-C goes to us only
        log.close()

    def status(self) -> dict | None:
        try:
            return json.loads((self.home / "data" / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def post_tx(self, raw: bytes) -> bool:
        req = urllib.request.Request(f"http://{self.config.api.listen}/txs",
                                     data=json.dumps({"tx": raw.hex()}).encode(),
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5):
                return True
        except (OSError, urllib.error.HTTPError):
            return False

    def nonce(self, address: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://{self.config.api.listen}/accounts/{address}",
                                        timeout=5) as resp:
                return json.loads(resp.read())["nonce"]
        except (OSError, ValueError, KeyError):
            return None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 15) -> str:
        path = self.home / "node.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class DemoLoad:
    """Signed transfers between dev accounts, spread over the nodes, at about `rate`/s."""

    def __init__(self, keys: list[PrivateKey], chain_id: str, min_fee: int, seed: int) -> None:
        self.keys, self.chain_id, self.min_fee = keys, chain_id, min_fee
        self.addresses = [address_from_pubkey(k.public) for k in keys]
        self.nonces: dict[int, int] = {}
        self.rng = random.Random(seed)
        self.sent = 0

    def send(self, nodes: list[DevnetNode], count: int) -> None:
        if len(self.keys) < 2:
            return
        for _ in range(count):
            s, r = self.rng.sample(range(len(self.keys)), 2)
            node = nodes[self.rng.randrange(len(nodes))]
            if s not in self.nonces:
                nonce = node.nonce(to_bech32(self.addresses[s]))
                if nonce is None:
                    return
                self.nonces[s] = nonce
            tx = make_transfer(self.keys[s], self.chain_id, self.addresses[r],
                               self.rng.randint(1, 1_000), self.nonces[s], self.min_fee)
            if node.post_tx(tx.encode()):
                self.nonces[s] += 1
                self.sent += 1
            else:
                self.nonces.pop(s, None)  # re-read the nonce next time


class DemoJobs:
    """Small matrix-product and MLP jobs from one dev account, about `per_minute` a minute,
    each asking for a fresh seed (so every one is new work)."""

    def __init__(self, key: PrivateKey, chain_id: str, min_fee: int, seed: int) -> None:
        self.key, self.chain_id, self.min_fee = key, chain_id, min_fee
        self.address = to_bech32(address_from_pubkey(key.public))
        self.rng = random.Random(seed)
        self.nonce: int | None = None
        self.sent = 0

    def spec(self) -> JobSpec:
        seed = self.rng.randbytes(32)
        if self.sent % 2 == 0:
            return JobSpec("matmul-int8", (256, 512, 256), seed)
        return JobSpec("mlp-int8", (256, 256, 128, 64), seed)

    def send(self, nodes: list[DevnetNode]) -> None:
        node = nodes[self.rng.randrange(len(nodes))]
        if self.nonce is None:
            self.nonce = node.nonce(self.address)
            if self.nonce is None:
                return
        body = SubmitJob(self.spec(), max_price=DEMO_MAX_PRICE, deadline_blocks=50,
                         carbon_max=0)
        if node.post_tx(make_tx(self.key, self.chain_id, body, self.nonce,
                                self.min_fee).encode()):
            self.nonce += 1
            self.sent += 1
        else:
            self.nonce = None


def run_devnet(root: Path, tx_rate: float, blocks: int, echo: Callable[[str], None],
               keys: list[PrivateKey], job_rate: float = 0.0,
               new_sign_state: bool = False) -> int:
    """Run the network under `root` until stopped; return the exit code. `new_sign_state`
    is passed to each node (`jevons node start --new-sign-state`)."""
    nodes = [DevnetNode(p) for p in sorted(root.glob("node*")) if (p / "config.toml").exists()]
    if not nodes:
        raise NodeError(f"{root} holds no node homes")
    genesis = open_home(nodes[0].home).genesis
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for node in nodes:
        node.start(new_sign_state)
    echo(f"started {len(nodes)} nodes of chain {genesis.chain_id}; logs in {root}/node*/"
         f"node.log; Ctrl-C to stop")
    seed = int.from_bytes(genesis.hash()[:8], "big")
    jobs = None
    if job_rate > 0 and keys:
        jobs = DemoJobs(keys[-1], genesis.chain_id, genesis.params.min_fee, seed)
        keys = keys[:-1]  # the job account's nonces are its own
    load = DemoLoad(keys, genesis.chain_id, genesis.params.min_fee, seed)
    code, start_height, shown = 0, None, -1
    last = time.monotonic()
    next_job = last
    while not stop.wait(0.25):
        dead = [n for n in nodes if n.proc and n.proc.poll() is not None]
        if dead:
            for n in dead:
                echo(f"{n.home.name} exited with code {n.proc.returncode}:\n{n.log_tail()}")
            code = 1
            break
        now = time.monotonic()
        if tx_rate > 0:
            load.send(nodes, int((now - last) * tx_rate + random.random()))
        if jobs is not None and now >= next_job:
            jobs.send(nodes)
            next_job = now + 60.0 / job_rate
        last = now
        statuses = [n.status() for n in nodes]
        if any(s is None for s in statuses):
            continue
        height = max(s["height"] for s in statuses)
        start_height = height if start_height is None else start_height
        if height != shown:
            shown = height
            echo(format_progress(statuses, load.sent))
        if blocks and height - start_height >= blocks:
            break
    echo("stopping nodes…")
    for node in nodes:
        node.stop()
    deadline = time.monotonic() + STOP_GRACE_S
    for node in nodes:
        node.wait(deadline)
    echo(f"stopped at height {max((n.status() or {}).get('height', 0) for n in nodes)}")
    return code


def format_progress(statuses: list[dict], sent: int) -> str:
    heights = [s["height"] for s in statuses]
    peers = ",".join(str(s["peers"]) for s in statuses)
    rate = max(s["tx_per_s"] for s in statuses)
    line = (f"height {max(heights):<6} round {max(s['round'] for s in statuses)}  "
            f"peers {peers}  mempool {max(s['mempool'] for s in statuses)}  "
            f"tx/s {rate:.1f}  committed {max(s['txs_committed'] for s in statuses)}  "
            f"submitted {sent}")
    market = max((s.get("jobs", {}) for s in statuses),
                 key=lambda j: j.get("submitted", 0), default={})
    if market.get("submitted"):
        line += ("  jobs " + " ".join(f"{k} {market.get(k, 0)}" for k in JOB_COLUMNS))
    return line
