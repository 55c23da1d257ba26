"""A local testnet of validator processes for the benches: generated with `jevons testnet`,
started with `jevons node start`, stopped with SIGTERM (SIGKILL after 30 s)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from consensus.crypto import PrivateKey
from tests.functional.framework import free_port_block

JEVONS = str(Path(sys.executable).parent / "jevons")


@dataclass
class LocalNet:
    keys: list[PrivateKey]  # the funded dev accounts
    apis: list[str]  # HOST:PORT of each validator's API


@contextlib.contextmanager
def local_net(tmp: Path, validators: int, accounts: int, chain_id: str,
              log_level: str = "warning", env: dict[str, str] | None = None
              ) -> Iterator[LocalNet]:
    """`env`, when given, is the node processes' whole environment."""
    base = free_port_block(2 * validators)
    subprocess.run([JEVONS, "testnet", "--validators", str(validators), "--accounts",
                    str(accounts), "--out", str(tmp / "net"), "--base-port", str(base),
                    "--chain-id", chain_id], check=True, capture_output=True)
    seeds = json.loads((tmp / "net" / "accounts.json").read_text())
    keys = [PrivateKey.from_seed(bytes.fromhex(a["seed"])) for a in seeds]
    apis = [f"127.0.0.1:{base + 2 * i + 1}" for i in range(validators)]
    procs = []
    for i in range(validators):
        with open(tmp / f"node{i}.log", "wb") as log:
            procs.append(subprocess.Popen(
                [JEVONS, "node", "start", "--home", str(tmp / "net" / f"node{i}"),
                 "--log-level", log_level], stdout=subprocess.DEVNULL, stderr=log, env=env))
    try:
        yield LocalNet(keys, apis)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
