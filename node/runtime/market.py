"""The compute market's node side: the provider worker, the validator's verification duty,
the openings stream between them, and output downloads for buyers.

Provider (role "provider"): registers its terms on start (and whenever config.toml changes
them); after each block, runs every job newly assigned to it (in a worker thread, on the
configured backend), stores the output under data/outputs/ (atomically; deleted
OUTPUT_RETENTION_BLOCKS after the job settled), commits the Merkle root over its rows in
a CommitResult tx, and serves row openings on
`/jevons/<chain>/openings/1` to whoever asks: committee members for their challenge rows,
buyers' nodes for downloads.

Validator: after each block, for every committed job whose committee it sits on and that
it has not judged yet, derives its own challenge from the randomness fixed after the
commit, fetches the openings from the provider's registered endpoint, judges them
(verifier.jobs) and posts a PostVerdict tx. A provider that cannot be reached is retried
every block; once fewer than `NO_ANSWER_GRACE_BLOCKS` blocks are left before the verdict
deadline, silence is judged invalid.

Openings stream: request [job_id, [row, ...]] (sorted distinct rows, at most
MAX_OPENING_ROWS); response verifier.commitment.encode_openings of those rows, or a
rejection ("unknown job", "no output").
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trio

from consensus.builder import select_txs
from consensus.codec import decode, encode, expect_array, expect_bytes, expect_int, expect_list
from consensus.crypto import PrivateKey
from consensus.errors import DecodeError
from consensus.hashing import HASH_LEN
from consensus.jobs import JobSpec
from consensus.market import Job, JobStatus
from consensus.market_rules import verify_deadline
from consensus.tx import Body, CommitResult, PostVerdict, RegisterProvider, make_tx
from kernels.backend import get_backend
from kernels.blobs import decode_array, encode_array
from kernels.jobs import run_job
from node.config import ProviderConfig
from node.errors import NodeError
from node.fsutil import atomic_write
from node.p2p.errors import RequestRejected
from node.runtime.host import ConsensusHost
from node.runtime.mempool import MempoolReject
from node.runtime.services import Network, NodeServices
from verifier.commitment import Opening, RowTree, decode_openings, encode_openings
from verifier.jobs import check_download, commit_output, job_challenge, judge_job, row_bytes

log = logging.getLogger("jevons.market")

MAX_OPENING_ROWS = 4_096
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # py-libp2p streams fail past ~6.5 MiB (DESIGN.md)
PROOF_BYTES_PER_ROW = 64 * (HASH_LEN + 2) + 32
REQUEST_TIMEOUT_S = 20.0
NO_ANSWER_GRACE_BLOCKS = 5
RECOMMIT_AFTER_BLOCKS = 5
TREE_CACHE = 16
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
DOWNLOAD_ATTEMPTS = 3
OUTPUT_RETENTION_BLOCKS = 10_000  # a provider keeps settled outputs this long for buyers
PRUNE_EVERY_BLOCKS = 100


def openings_protocol(chain_id: str) -> str:
    return f"/jevons/{chain_id}/openings/1"


def encode_openings_request(job_id: bytes, rows: list[int]) -> bytes:
    return encode([job_id, list(rows)])


def decode_openings_request(raw: bytes) -> tuple[bytes, list[int]]:
    job_id, rows = expect_list(decode(raw, 64 + 10 * MAX_OPENING_ROWS), 2, "openings request")
    indices = [expect_int(r, "row") for r in expect_array(rows, "rows", MAX_OPENING_ROWS)]
    if indices != sorted(set(indices)):
        raise DecodeError("rows must be sorted and distinct")
    return expect_bytes(job_id, "job id", HASH_LEN), indices


def rows_per_request(spec: JobSpec) -> int:
    """How many rows (with proofs) fit one response."""
    return max(1, min(MAX_OPENING_ROWS,
                      MAX_RESPONSE_BYTES // (row_bytes(spec) + PROOF_BYTES_PER_ROW) - 1))


# --- sending the node's own transactions ------------------------------------------------------


class TxSender:
    """Signs transactions with the node's account key and hands them to its own mempool
    (which gossips them), at the next nonce not already pending."""

    def __init__(self, host: ConsensusHost, services: NodeServices, key: PrivateKey) -> None:
        self.host, self.services, self.key = host, services, key
        self.address = host.address

    async def send(self, body: Body) -> bytes | None:
        """Sign, admit and gossip `body`; None (logged) when it would not apply on the
        current state after this node's own pending txs (a tx that cannot apply would
        block every later nonce of ours), or the mempool refuses it."""
        h = self.host
        self.drop_stuck()
        nonce = h.mempool.next_nonce(self.address, h.state)
        raw = make_tx(self.key, h.chain_id, body, nonce, h.params.min_fee).encode()
        own = [e.raw for e in h.mempool.pending_from(self.address)]
        h.verifier.verify_raw([raw], h.params.max_tx_bytes)
        _, rejected = select_txs(h.state, [*own, raw], h.params, h.cache)
        if rejected:
            log.info("not sending %s: %s", type(body).__name__, rejected[0][1].reason)
            return None
        try:
            tx_hash = h.mempool.add(raw, h.state)
        except MempoolReject as exc:
            log.warning("own %s tx refused by the mempool: %s (%s)", type(body).__name__,
                        exc.reason, exc.code)
            return None
        # ahead of API txs; a failed publish is logged there: the tx is in our mempool,
        await self.services.broadcast_txs([raw], urgent=True)  # which our proposals and
        return tx_hash  # re-gossip carry

    def drop_stuck(self) -> None:
        """Drop our pending txs from the first one that no longer applies (e.g. a verdict
        after its job settled): kept, it would hold every later nonce of ours forever."""
        h = self.host
        own = [e.raw for e in h.mempool.pending_from(self.address)]
        if not own:
            return
        _, rejected = select_txs(h.state, own, h.params, h.cache)
        if rejected:
            first = rejected[0][0]
            log.info("dropping %d own pending tx(s): %s", len(own) - first,
                     rejected[0][1].reason)
            h.mempool.discard(own[first:])

    def pending_bodies(self) -> list[Body]:
        """The bodies of this node's own txs still in its mempool, in nonce order."""
        return [e.tx.body for e in self.host.mempool.pending_from(self.address)]


# --- provider -------------------------------------------------------------------------------


class OutputStore:
    """A provider's job outputs, one canonical array file per job (written atomically),
    and a small cache of their commitment trees."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._trees: OrderedDict[bytes, RowTree] = OrderedDict()
        self._pinned: dict[bytes, RowTree] = {}

    def path(self, job_id: bytes) -> Path:
        return self.root / f"{job_id.hex()}.jva"

    def prune(self, keep: Callable[[bytes], bool]) -> int:
        """Delete the outputs of jobs `keep` says no to; returns how many."""
        removed = 0
        for path in sorted(self.root.glob("*.jva")):
            try:
                job_id = bytes.fromhex(path.stem)
            except ValueError:
                continue
            if not keep(job_id):
                path.unlink(missing_ok=True)
                self._trees.pop(job_id, None)
                self._pinned.pop(job_id, None)
                removed += 1
        return removed

    def write(self, job_id: bytes, output: np.ndarray) -> None:
        """Store a job's output durably (up to hundreds of MiB and an fsync: callers run it
        off the trio loop)."""
        atomic_write(self.path(job_id), encode_array(output))

    def remember(self, job_id: bytes, tree: RowTree, pinned: bool = False) -> None:
        """Cache a job's tree: `pinned` (a job not settled yet, which verifiers will ask
        about) until `unpin`, otherwise among the TREE_CACHE most recently used, so that
        peers asking about many old jobs cannot push out the trees of open ones."""
        if pinned:
            self._pinned[job_id] = tree
            return
        self._trees[job_id] = tree
        self._trees.move_to_end(job_id)
        while len(self._trees) > TREE_CACHE:
            self._trees.popitem(last=False)

    def unpin(self, keep: Callable[[bytes], bool]) -> None:
        """Move the pinned trees of jobs `keep` says no to among the recently used."""
        for job_id in [j for j in self._pinned if not keep(j)]:
            self.remember(job_id, self._pinned.pop(job_id))

    def cached_tree(self, job_id: bytes) -> RowTree | None:
        tree = self._pinned.get(job_id)
        if tree is not None:
            return tree
        tree = self._trees.get(job_id)
        if tree is not None:
            self._trees.move_to_end(job_id)
        return tree

    def load_tree(self, job_id: bytes, spec: JobSpec) -> RowTree | None:
        """The job's commitment tree rebuilt from its file (None if absent): reads and
        hashes the whole output, so callers run it off the trio loop; the cache is not
        touched (it belongs to the loop's thread)."""
        try:
            output = decode_array(self.path(job_id).read_bytes())
        except FileNotFoundError:
            return None
        return commit_output(spec, output)


def corrupt(output: np.ndarray) -> np.ndarray:
    """What the `corrupt` test fault commits: every other row's entries off by one bit."""
    bad = output.copy()
    bad[::2] ^= 1
    return bad


@dataclass
class ProviderWorker:
    host: ConsensusHost
    net: Network
    sender: TxSender
    config: ProviderConfig
    outputs: OutputStore
    endpoint: str
    working: set[bytes] = field(default_factory=set)
    committed_at: dict[bytes, int] = field(default_factory=dict)
    registered_at: int = -1
    rebuilding: trio.Lock = field(default_factory=trio.Lock)

    def install(self) -> None:
        self.net.set_handler(openings_protocol(self.host.chain_id), self.serve_openings,
                             64 + 10 * MAX_OPENING_ROWS)

    def terms(self, stake: int) -> RegisterProvider:
        c = self.config
        return RegisterProvider(stake, tuple(sorted(c.kernels)), c.price, c.capacity,
                                c.region, c.carbon, self.endpoint)

    async def run(self) -> None:
        backend = get_backend(self.config.backend)
        log.info("provider %s on %s: kernels %s, price %d/unit, capacity %d, endpoint %s",
                 self.host.address.hex()[:12], backend.describe(), ",".join(self.config.kernels),
                 self.config.price, self.config.capacity, self.endpoint)
        async with trio.open_nursery() as nursery:
            while True:
                progressed = self.host.progress
                await self.register_if_needed()
                self.start_jobs(nursery, backend)
                self.outputs.unpin(self.is_open)
                if self.host.height % PRUNE_EVERY_BLOCKS == 0:
                    self.prune_outputs()
                await progressed.wait()

    def is_open(self, job_id: bytes) -> bool:
        """The job is on chain and not settled (verifiers may still ask for its rows)."""
        job = self.host.state.market.jobs.get(job_id)
        return job is not None and not job.status.is_final

    def prune_outputs(self) -> None:
        """Outputs stay downloadable for OUTPUT_RETENTION_BLOCKS after their job settled."""
        state = self.host.state

        def keep(job_id: bytes) -> bool:
            job = state.market.jobs.get(job_id)
            return job is not None and (not job.status.is_final or state.height
                                        - job.settled_height < OUTPUT_RETENTION_BLOCKS)

        removed = self.outputs.prune(keep)
        if removed:
            log.info("deleted %d job outputs settled over %d blocks ago", removed,
                     OUTPUT_RETENTION_BLOCKS)

    async def register_if_needed(self) -> None:
        h = self.host
        current = h.state.market.providers.get(h.address)
        wanted = self.terms(0)
        if current is not None and (current.kernels, current.price, current.capacity,
                                    current.region, current.carbon, current.endpoint) == (
                wanted.kernels, wanted.price, wanted.capacity, wanted.region, wanted.carbon,
                wanted.endpoint):
            return
        if self.registered_at >= 0 and h.height - self.registered_at < RECOMMIT_AFTER_BLOCKS:
            return  # a registration is on its way
        if any(isinstance(body, RegisterProvider) for body in self.sender.pending_bodies()):
            return  # still pending: a second one would bond the stake twice
        stake = self.config.stake if current is None else 0
        if current is None and stake < h.params.min_provider_stake:
            log.error("[provider] stake %d is below the chain's minimum %d: not registering",
                      stake, h.params.min_provider_stake)
            self.registered_at = h.height + 10**9
            return
        if await self.sender.send(self.terms(stake)) is not None:
            log.info("registering as a provider (bond %d)", stake)
        self.registered_at = h.height

    def start_jobs(self, nursery: trio.Nursery, backend) -> None:
        h = self.host
        market = h.state.market
        for job_id in market.open:
            job = market.jobs[job_id]
            if job.provider != h.address or job.status != JobStatus.ASSIGNED:
                continue
            if job_id in self.working:
                continue
            sent = self.committed_at.get(job_id)
            if sent is not None and (h.height - sent < RECOMMIT_AFTER_BLOCKS
                                     or self.commit_pending(job_id)):
                continue
            self.working.add(job_id)
            nursery.start_soon(self.compute, job, backend)

    def commit_pending(self, job_id: bytes) -> bool:
        """Is one of our CommitResult txs for the job still in our mempool?"""
        return any(isinstance(body, CommitResult) and body.job_id == job_id
                   for body in self.sender.pending_bodies())

    async def compute(self, job: Job, backend) -> None:
        try:
            if self.config.fault == "silent":
                log.warning("fault=silent: ignoring job %s", job.id.hex()[:16])
                self.committed_at[job.id] = self.host.height + 10**9
                return
            tree = (await self.tree(job.id, job.spec, pinned=True)
                    if self.outputs.path(job.id).exists() else None)  # computed before a restart
            if tree is None:
                log.info("computing job %s: %s %s", job.id.hex()[:16], job.spec.kernel,
                         list(job.spec.dims))
                output, tree = await trio.to_thread.run_sync(self._run, job.spec, backend)
                await trio.to_thread.run_sync(self.outputs.write, job.id, output)
                self.outputs.remember(job.id, tree, pinned=True)
            if await self.sender.send(CommitResult(job.id, tree.root)) is not None:
                log.info("committed job %s root %s", job.id.hex()[:16], tree.root.hex()[:16])
            self.committed_at[job.id] = self.host.height
        except Exception as exc:  # out of memory, a device error…: never kill the node
            log.error("job %s failed here: %s: %s", job.id.hex()[:16], type(exc).__name__,
                      exc)
            self.committed_at[job.id] = self.host.height
        finally:
            self.working.discard(job.id)

    async def tree(self, job_id: bytes, spec: JobSpec, pinned: bool) -> RowTree | None:
        """A job's commitment tree: from the cache, or rebuilt from disk on a worker thread,
        one rebuild at a time. A peer asking for the openings of many old jobs in turn
        costs one thread's time, not the loop's (consensus, gossip and the API go on), and
        cannot push out the trees of open jobs (`pinned`), which verifiers need."""
        tree = self.outputs.cached_tree(job_id)
        if tree is not None:
            return tree
        async with self.rebuilding:
            tree = self.outputs.cached_tree(job_id)  # rebuilt while we waited?
            if tree is None:
                tree = await trio.to_thread.run_sync(self.outputs.load_tree, job_id, spec)
                if tree is not None:
                    self.outputs.remember(job_id, tree, pinned)
        return tree

    def _run(self, spec: JobSpec, backend) -> tuple[np.ndarray, RowTree]:
        output = run_job(spec.kernel, spec.dims, spec.seed, backend)
        if self.config.fault == "corrupt":
            output = corrupt(output)
        return output, commit_output(spec, output)

    async def serve_openings(self, peer: str, request: bytes) -> bytes:
        try:
            job_id, rows = decode_openings_request(request)
        except DecodeError as exc:
            raise RequestRejected(f"bad openings request: {exc}") from None
        job = self.host.state.market.jobs.get(job_id)
        if job is None or job.provider != self.host.address:
            raise RequestRejected("unknown job")
        if rows and rows[-1] >= job.spec.output_rows:
            raise RequestRejected(f"row {rows[-1]} is outside the output")
        if len(rows) > rows_per_request(job.spec):
            raise RequestRejected(f"at most {rows_per_request(job.spec)} rows per request")
        tree = await self.tree(job_id, job.spec, pinned=not job.status.is_final)
        if tree is None:
            raise RequestRejected("no output for this job")
        return await trio.to_thread.run_sync(self._answer, tree, rows)  # up to 6 MiB

    def _answer(self, tree: RowTree, rows: list[int]) -> bytes:
        openings = tree.open(rows)
        if self.config.fault == "wrong-answer":
            openings = [Opening(o.index, bytes(b ^ 1 for b in o.row_bytes), o.proof)
                        for o in openings]
        return encode_openings(openings)


# --- fetching openings (validators and downloads) ---------------------------------------------


async def fetch_openings(net: Network, chain_id: str, endpoint: str, job: Job,
                         rows: list[int]) -> list[Opening]:
    """The provider's openings of `rows`; NodeError if it cannot be reached or refuses,
    DecodeError if it answers garbage."""
    connect = getattr(net, "connect", None)
    if connect is None:
        raise NodeError("this network cannot dial providers")
    peer = await connect(endpoint, timeout=REQUEST_TIMEOUT_S)
    raw = await net.request(peer, openings_protocol(chain_id),
                            encode_openings_request(job.id, rows), REQUEST_TIMEOUT_S,
                            MAX_RESPONSE_BYTES)
    return await trio.to_thread.run_sync(decode_openings, raw, len(rows),
                                         row_bytes(job.spec))  # up to 6 MiB: off the loop


async def fetch_rows(net: Network, chain_id: str, endpoint: str, job: Job,
                     rows: list[int]) -> list[Opening]:
    """Openings of `rows`, in as many requests as the provider's response limit needs."""
    step = rows_per_request(job.spec)
    out: list[Opening] = []
    for start in range(0, len(rows), step):
        out += await fetch_openings(net, chain_id, endpoint, job, rows[start:start + step])
    return out


async def _fetch_with_retries(net: Network, chain_id: str, endpoint: str, job: Job,
                              rows: list[int]) -> list[Opening]:
    """py-libp2p sometimes leaves a connection that opens no streams; a fresh dial after a
    pause usually works (connect() drops stale connections first)."""
    for attempt in range(DOWNLOAD_ATTEMPTS):
        try:
            return await fetch_openings(net, chain_id, endpoint, job, rows)
        except NodeError as exc:
            if attempt == DOWNLOAD_ATTEMPTS - 1:
                raise
            log.info("download of job %s rows %d..: %s; retrying", job.id.hex()[:16], rows[0],
                     exc)
            await trio.sleep(1.0)
    raise AssertionError("unreachable")


async def download_output(net: Network, chain_id: str, endpoint: str, job: Job) -> np.ndarray:
    """The whole committed output, every row proven against the job's root."""
    spec = job.spec
    if spec.output_rows * row_bytes(spec) > MAX_DOWNLOAD_BYTES:
        raise NodeError(f"output is over {MAX_DOWNLOAD_BYTES} bytes; fetch it from the "
                        "provider directly")
    step = rows_per_request(spec)
    parts = []
    for start in range(0, spec.output_rows, step):
        rows = list(range(start, min(start + step, spec.output_rows)))
        openings = await _fetch_with_retries(net, chain_id, endpoint, job, rows)
        try:  # up to 6 MiB of rows and their proofs: hashed off the loop
            parts.append(await trio.to_thread.run_sync(check_download, spec, job.root,
                                                       openings, start))
        except ValueError as exc:
            raise NodeError(f"provider sent a bad output: {exc}") from None
        if len(openings) != len(rows):
            raise NodeError(f"provider sent {len(openings)} rows, asked for {len(rows)}")
    return await trio.to_thread.run_sync(np.concatenate, parts)


# --- validator verification duty ------------------------------------------------------------


@dataclass
class VerifierDuty:
    host: ConsensusHost
    net: Network
    sender: TxSender
    on_outcome: Callable[[str], None] = lambda outcome: None  # valid|invalid|unreachable
    in_flight: set[bytes] = field(default_factory=set)
    posted: dict[bytes, int] = field(default_factory=dict)  # job id -> height posted

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                progressed = self.host.progress
                self.start_checks(nursery)
                await progressed.wait()

    def due(self) -> list[Job]:
        h = self.host
        market = h.state.market
        out = []
        for job_id in market.open:
            job = market.jobs[job_id]
            if job.status != JobStatus.COMMITTED or not job.randomness:
                continue
            if all(member != h.address for member, _ in job.committee):
                continue
            if any(v.member == h.address for v in job.verdicts):
                continue
            posted = self.posted.get(job_id)
            if posted is not None and h.height - posted < RECOMMIT_AFTER_BLOCKS:
                continue
            out.append(job)
        return out

    def start_checks(self, nursery: trio.Nursery) -> None:
        for job in self.due():
            if job.id not in self.in_flight:
                self.in_flight.add(job.id)
                nursery.start_soon(self.check, job)

    async def check(self, job: Job) -> None:
        h = self.host
        try:
            challenge = job_challenge(job.spec, job.id, job.randomness, job.root, h.address,
                                      h.params.challenge_rows, h.params.challenge_vectors)
            provider = h.state.market.providers.get(job.provider)
            try:
                if provider is None:
                    raise NodeError("provider is not registered")
                openings = await fetch_rows(self.net, h.chain_id, provider.endpoint, job,
                                            list(challenge.rows))
            except (NodeError, DecodeError) as exc:
                left = verify_deadline(job, h.params) - h.height
                self.on_outcome("unreachable")
                if left > NO_ANSWER_GRACE_BLOCKS:
                    log.info("job %s: no answer from the provider yet (%s); %d blocks left",
                             job.id.hex()[:16], exc, left)
                    return
                await self.post(job, False, f"no answer: {exc}")
                return
            verdict = await trio.to_thread.run_sync(judge_job, job.spec, job.root, openings,
                                                    challenge)
            log.info("job %s judged %s: %s (false-accept bound %.3g at f=%g)",
                     job.id.hex()[:16], "valid" if verdict.valid else "INVALID",
                     verdict.reason, verdict.false_accept_bound, verdict.fraction)
            await self.post(job, verdict.valid, verdict.reason)
        except Exception:  # a bug or no memory: log it, retry next block, keep the node up
            log.exception("checking job %s failed", job.id.hex()[:16])
        finally:
            self.in_flight.discard(job.id)

    async def post(self, job: Job, valid: bool, reason: str) -> None:
        self.on_outcome("valid" if valid else "invalid")
        if await self.sender.send(PostVerdict(job.id, int(valid), reason[:96])) is not None:
            self.posted[job.id] = self.host.height
