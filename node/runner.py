"""Run a node from its home until asked to stop (SIGINT/SIGTERM) or a block budget is spent.

Signals only set a flag; the loop checks it between blocks, so a stop never lands in the
middle of producing or storing a block.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from consensus.address import address_from_pubkey
from genesis.dev import dev_accounts
from genesis.document import Genesis
from node.chain.demo import DemoTraffic
from node.chain.devchain import DevChain, Produced
from node.home import open_home
from node.store.blockstore import BlockStore
from node.units import format_amount


def known_dev_keys(genesis: Genesis) -> list:
    """The well-known dev keys whose accounts this genesis funds."""
    funded = {address for address, _ in genesis.accounts}
    return [k for k in dev_accounts(len(genesis.accounts))
            if address_from_pubkey(k.public) in funded]


def format_block(p: Produced) -> str:
    h = p.block.header
    clock = time.strftime("%H:%M:%S", time.gmtime(h.time_ms // 1000)) + f".{h.time_ms % 1000:03d}"
    dropped = f"  dropped {p.rejected}" if p.rejected else ""
    return (f"#{h.height:<6} {p.block.hash().hex()[:16]}  {clock}  txs {len(p.block.txs):>5}  "
            f"fees {format_amount(p.fees)}  state {p.state.root().hex()[:12]}  "
            f"supply {format_amount(p.state.supply.expected_total)}{dropped}")


def install_stop_flag() -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def run_dev_chain(root: Path, blocks: int, txs_per_block: int, echo: Callable[[str], None],
                  block_time_ms: int | None = None) -> int:
    """Produce blocks on a single-validator home; return the number produced."""
    home = open_home(root)
    interval = (block_time_ms or home.config.chain.block_time_ms) / 1000
    keys = known_dev_keys(home.genesis)
    stop = install_stop_flag()
    demo = DemoTraffic(keys, seed=int.from_bytes(home.genesis.hash()[:8], "big"))
    produced = 0
    with BlockStore.open(home.paths.chain_db) as store:
        chain = DevChain(store, home.genesis, home.validator_key)
        try:
            echo(f"chain {home.genesis.chain_id} at height {chain.state.height}; "
                 f"a block every {interval:g}s; Ctrl-C to stop")
            deadline = time.monotonic()
            while (blocks == 0 or produced < blocks) and not stop.is_set():
                deadline += interval
                if stop.wait(max(0.0, deadline - time.monotonic())):
                    break
                result = chain.produce(demo.transfers(chain.state, txs_per_block),
                                       time.time_ns() // 1_000_000)
                echo(format_block(result))
                produced += 1
        finally:
            chain.close()
    echo(f"stopped at height {chain.state.height} after {produced} new block(s)")
    return produced
