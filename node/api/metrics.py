"""Prometheus metrics of one node, in its own CollectorRegistry (never the global one, so
several nodes in one process, or tests, do not clash), served at GET /metrics.

Gauges of the node's current state (height, round, peers, mempool, …) are read from the
host when scraped; the block interval histogram is fed by the host's commit listeners.
Hooks for the compute market, set by the code that knows the numbers:

    metrics.set_jobs_by_state({"queued": 3, "assigned": 1, …})   # gauge jevons_jobs{state}
    metrics.count_verification("valid")                        # jevons_verifications_total
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from consensus.block import Block
from consensus.state import State
from node.errors import NodeError

if TYPE_CHECKING:
    from node.runtime.services import NodeServices

BLOCK_INTERVAL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class NodeMetrics:
    def __init__(self, services: NodeServices) -> None:
        self.services = services
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StateCollector(services))
        r = self.registry
        self.block_interval = Histogram(
            "jevons_block_interval_seconds", "Time between consecutive committed blocks, "
            "from their header times", buckets=BLOCK_INTERVAL_BUCKETS, registry=r)
        self.last_block_interval = Gauge(
            "jevons_last_block_interval_seconds", "Header time of the last committed block "
            "minus that of the block before it", registry=r)
        self.api_requests = Counter(
            "jevons_api_requests", "HTTP API requests answered, by operation and status",
            ["operation", "status"], registry=r)
        self.jobs = Gauge(
            "jevons_jobs", "Jobs in chain state by lifecycle state (set by the market code)",
            ["state"], registry=r)
        self.verifications = Counter(
            "jevons_verifications", "Spot-check verification outcomes (counted by the market "
            "and verification code)", ["outcome"], registry=r)
        self._job_states: set[str] = set()
        host = services.host
        self._last_time_ms = host.state.time_ms
        self._last_height = host.height
        host.commit_listeners.append(self.on_commit)

    # --- hooks ------------------------------------------------------------------------------

    def on_commit(self, block: Block, after: State) -> None:
        """Called by the host for each committed block, in order."""
        if block.height == self._last_height + 1 and self._last_height > 0:
            seconds = max(0, block.header.time_ms - self._last_time_ms) / 1000
            self.block_interval.observe(seconds)
            self.last_block_interval.set(seconds)
        self._last_time_ms, self._last_height = block.header.time_ms, block.height

    def set_jobs_by_state(self, counts: Mapping[str, int]) -> None:
        """Set jevons_jobs{state} to `counts` (a state set before and missing now is 0)."""
        self._job_states.update(counts)
        for state in sorted(self._job_states):
            self.jobs.labels(state=state).set(counts.get(state, 0))

    def count_verification(self, outcome: str, count: int = 1) -> None:
        """Add to jevons_verifications_total{outcome} (e.g. valid, invalid, missed)."""
        self.verifications.labels(outcome=outcome).inc(count)

    def count_request(self, operation: str, status: int) -> None:
        self.api_requests.labels(operation=operation, status=str(status)).inc()

    # --- exposition -------------------------------------------------------------------------

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format the Accept header asks for (Prometheus text 0.0.4 by
        default, OpenMetrics on request) and its content type."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


class _StateCollector(Collector):
    """Gauges and counters read from the host at scrape time."""

    def __init__(self, services: NodeServices) -> None:
        self.services = services

    def describe(self) -> list[Metric]:
        return []  # names are known only by collecting, which is cheap

    def collect(self) -> Iterator[Metric]:
        services, host = self.services, self.services.host
        engine = host.engine
        vset = host.validator_set()
        yield _gauge("jevons_height", "Height of the last committed block", host.height)
        yield _gauge("jevons_round", "Consensus round at the height being decided",
                     engine.round)
        yield _gauge("jevons_last_block_time_seconds", "Header time of the last committed "
                     "block (unix seconds)", host.state.time_ms / 1000)
        yield _gauge("jevons_peers", "Connected libp2p peers", peer_count(services))
        yield _gauge("jevons_mempool_txs", "Transactions in the mempool", len(host.mempool))
        yield _gauge("jevons_mempool_bytes", "Bytes of transactions in the mempool",
                     host.mempool.size_bytes)
        yield _gauge("jevons_mempool_queued_txs", "Transactions in the mempool that wait for a "
                     "missing nonce of their sender", host.mempool.queued)
        yield _gauge("jevons_catching_up", "1 while the node syncs blocks it is behind on",
                     int(services.catching_up))
        yield _gauge("jevons_validators", "Validators in the set signing the next height",
                     len(vset))
        yield _gauge("jevons_validator_stake", "Total stake of the set signing the next "
                     "height (ujev)", vset.total)
        yield _gauge("jevons_is_validator", "1 if this node's key is in the current set",
                     int(host.address in vset))
        yield _counter("jevons_txs_committed", "Transactions in blocks committed since the "
                       "node started", host.committed_txs)
        yield _counter("jevons_gossip_txs_received", "Transactions received by gossip",
                       services.txs_received)
        yield _counter("jevons_gossip_txs_rejected", "Gossiped transactions the mempool "
                       "refused", services.txs_rejected)
        yield _counter("jevons_gossip_tx_batches_stopped", "Gossiped tx batches refused "
                       "before forwarding (a forged tx drawn, or only txs the state "
                       "refuses)", services.tx_batches_stopped)
        yield _counter("jevons_compact_block_misses", "Compact proposals this node could not "
                       "rebuild from its mempool (the block was fetched whole)",
                       services.compact_misses)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def peer_count(services: NodeServices) -> int:
    """Connected peers; 0 while the p2p node is not (or no longer) running."""
    try:
        return len(services.net.peers())
    except NodeError:
        return 0
