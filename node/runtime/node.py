"""Run one node process from its home: store, signer, WAL, p2p, consensus host, services.

Stops cleanly on SIGINT/SIGTERM (trio signal receiver -> cancel). Writes a small status file
(data/status.json) every second, which `jevons devnet` reads to show progress.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import time
from pathlib import Path

import trio

from consensus.bft.engine import TimeoutConfig
from consensus.state import State
from node.api.app import build_app, serve_api
from node.api.metrics import NodeMetrics
from node.chain.signer import FileSigner
from node.fsutil import atomic_write
from node.home import Home
from node.p2p import P2PNode, configure_libp2p_logging
from node.runtime.host import ConsensusHost
from node.runtime.market import OutputStore, ProviderWorker, TxSender, VerifierDuty
from node.runtime.services import NodeServices
from node.store.blockstore import BlockStore

log = logging.getLogger("jevons.node")
STATUS_FILE = "status.json"
GC_THRESHOLDS = (20_000, 20, 10)
"""Cyclic garbage collector thresholds of a running node (CPython's default is
(700, 10, 10)). A node allocates tracked objects for every transaction it admits (decoded
tx, mempool entry, trio and pubsub bookkeeping) and keeps most of them alive for a while.
Measured per node under bench/network.py (30,000 transfers): at the default, about 145
young, 13 middle and 1 full collection during the load, 0.3 s in all (a full one walks
every pending tx and signature-cache entry and holds the loop for 30-120 ms); at these
thresholds, about 4 young ones, 0.1 s. Garbage that forms cycles still goes, a little
later: a young generation of 20,000 objects is a few MB."""


async def run_node(home: Home, timeouts: TimeoutConfig | None = None,
                   blocks: int = 0, new_sign_state: bool = False) -> int:
    """Run until a signal (or until `blocks` new blocks are committed, when set); return
    the final height. `new_sign_state`: a validator whose sign state is missing starts from
    a fresh one (the operator's word that the key has not signed at the chain's height)."""
    configure_libp2p_logging()
    genesis = home.genesis
    with BlockStore.open(home.paths.chain_db) as store:
        store.init_genesis(genesis.hash(), genesis.initial_state())
        signer = (FileSigner(home.paths.signer, home.validator_key, genesis.chain_id,
                             new_state=new_sign_state)
                  if home.config.role == "validator" else None)
        net = P2PNode.from_config(home.node_seed, home.config.p2p)
        host = ConsensusHost(store, net, home.validator_key, signer,
                             home.paths.data / "consensus.wal", timeouts or TimeoutConfig(),
                             home.config.consensus.timeout_commit_ms, home.config.mempool)
        services = NodeServices(host, net)
        services.install()
        try:
            async with net.running(), trio.open_nursery() as nursery:
                nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
                await nursery.start(services.run)  # first: gossip flows during WAL replay
                await nursery.start(host.run)
                nursery.start_soon(_write_status, home.paths.data / STATUS_FILE, host, net)
                metrics = NodeMetrics(services)
                host.commit_listeners.append(lambda _block, after: metrics.set_jobs_by_state(
                    {k: v for k, v in job_counts(after).items()
                     if k not in ("submitted", "running")}))
                app = build_app(services, {"moniker": home.config.moniker,
                                           "role": home.config.role, "peer_id": net.peer_id},
                                metrics)
                await nursery.start(serve_api, app, home.config.api.listen)
                start_market_role(nursery, home, host, services, net, metrics)
                tune_gc()
                log.info("node %s started at height %d as %s; p2p %s", home.config.moniker,
                         host.height, home.config.role, net.listen_addrs())
                if blocks:
                    stop_at_height = host.height + blocks
                    while host.height < stop_at_height:
                        await host.progress.wait()
                    nursery.cancel_scope.cancel()
        finally:
            host.close()
            if signer:
                signer.close()
        return host.height


def tune_gc() -> None:
    """Once the node is up: move everything allocated so far (modules, genesis, the state
    loaded from disk) out of the collector's sight for good (`gc.freeze`: it is never
    garbage, and full collections stop walking it), and collect less often (GC_THRESHOLDS)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def start_market_role(nursery: trio.Nursery, home: Home, host: ConsensusHost,
                      services: NodeServices, net: P2PNode, metrics: NodeMetrics) -> None:
    """Providers run jobs and answer challenges; validators check the jobs they are drawn
    for. A full node only serves the chain."""
    sender = TxSender(host, services, home.validator_key)
    if home.config.role == "provider":
        endpoint = home.config.provider.endpoint or net.listen_addrs()[0]
        worker = ProviderWorker(host, net, sender, home.config.provider,
                                OutputStore(home.paths.data / "outputs"), endpoint)
        worker.install()
        nursery.start_soon(worker.run)
    elif home.config.role == "validator":
        nursery.start_soon(VerifierDuty(host, net, sender,
                                        on_outcome=metrics.count_verification).run)


def job_counts(state: State) -> dict[str, int]:
    """Jobs by lifecycle state (and `submitted`, `running`), for metrics and progress."""
    market = state.market
    counts = {"submitted": 0, "queued": len(market.queue), "assigned": 0, "committed": 0,
              "accepted": 0, "rejected": 0, "failed": 0, "expired": 0, "undecided": 0}
    for job_id in market.open:
        counts[market.jobs[job_id].status.name.lower()] += 1
    for stats in market.stats.values():
        for key in ("submitted", "accepted", "rejected", "failed", "expired", "undecided"):
            counts[key] += getattr(stats, key)
    counts["running"] = counts["assigned"] + counts["committed"]
    return counts


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: stopping", signal.Signals(signum).name)
            scope.cancel()
            return


async def _write_status(path: Path, host: ConsensusHost, net: P2PNode) -> None:
    previous = (time.monotonic(), host.committed_txs)
    failing: int | None = None  # the errno of the last failed write: said once, not 1/s
    while True:
        await trio.sleep(1.0)
        now = time.monotonic()
        rate = (host.committed_txs - previous[1]) / max(now - previous[0], 1e-9)
        previous = (now, host.committed_txs)
        status = {"height": host.height, "round": host.engine.round,
                  "step": host.engine.step.name.lower(), "peers": len(net.peers()),
                  "mempool": len(host.mempool), "txs_committed": host.committed_txs,
                  "tx_per_s": round(rate, 1), "tip": host.state.last_block_hash.hex(),
                  "time_ms": time.time_ns() // 1_000_000, "jobs": job_counts(host.state)}
        # a progress report, rewritten every second: atomic for readers, no fsync (on a
        # slow disk two fsyncs a second stalled the node's loop)
        try:
            atomic_write(path, (json.dumps(status) + "\n").encode(), durable=False)
        except OSError as exc:  # a progress file must not stop a validator (disk full)
            if failing != exc.errno:
                log.warning("cannot write %s: %s (retrying every second)", path,
                            exc.strerror or exc)
            failing = exc.errno
        else:
            failing = None
