"""The consensus host: feeds the BFT engine and executes its effects.

One consumer task takes engine inputs from a channel in order: each is written to the WAL,
then stepped through the engine, then its effects are executed (sign through the persisted
guard, log, publish, feed back; schedule timeouts; commit decided blocks in one atomic store
batch; collect evidence). Network handlers only authenticate and validate messages and put
them on the channel. See docs/node.md.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import trio

from consensus.address import address_from_pubkey
from consensus.bft.engine import EngineState, TimeoutConfig, step
from consensus.bft.guard import DoubleSignRefused
from consensus.bft.messages import (
    CastVote,
    Decide,
    Effect,
    EquivocationDetected,
    Event,
    Proposal,
    ProposalReceived,
    ProposeBlock,
    ScheduleTimeout,
    StartHeight,
    Step,
    TimeoutElapsed,
    TimeoutKind,
    VoteReceived,
)
from consensus.bft.validators import ValidatorSet
from consensus.block import Block
from consensus.builder import build_block, select_txs
from consensus.crypto import PrivateKey
from consensus.errors import DecodeError, InvalidBlock
from consensus.evidence import DuplicateVoteEvidence
from consensus.hashing import sha256
from consensus.sigcache import SigCache
from consensus.state import State
from consensus.transition import apply_block
from consensus.tx import Tx
from consensus.vote import Commit, Vote, verify_commit
from node.chain.signer import FileSigner
from node.chain.sigverify import ParallelVerifier
from node.config import MempoolConfig
from node.errors import NodeError
from node.runtime import events as ev
from node.runtime.mempool import Mempool, MempoolReject
from node.runtime.wal import Wal, replay, unreadable_record
from node.runtime.wire import encode_compact_proposal, encode_vote, topics
from node.store.blockstore import BlockStore

log = logging.getLogger("jevons.consensus")
T = TypeVar("T")
MAX_EVIDENCE_PER_BLOCK = 10
SIG_CACHE_MIN = 100_000
REAP_ROUNDS = 3  # a proposal whose reaped txs do not all apply reaps again, up to this
MAX_PROPOSAL_TXS = 2_000  # measured: 4,000-tx blocks took 1.1-2.3 s each under load (2,000: 0.55 s)


class Network(Protocol):
    """All the host needs of the p2p layer: to gossip."""

    async def publish(self, topic: str, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A proposed block of the current height: its bytes (kept so the WAL, gossip and the
    block stream never re-encode it) and the state after it, or None if it is invalid."""

    block: Block
    raw: bytes
    after: State | None


@dataclass(frozen=True, slots=True)
class SyncedBlock:
    """A block fetched by catch-up sync and the commit said to certify it; the host checks
    the commit against its own validator set before applying it. `settled`, if given, is
    called once the host is done with it: with None when the block is committed or no
    longer needed (our tip moved past it), with the reason when the host refuses it."""

    block: Block
    commit: Commit
    settled: Callable[[str | None], None] | None = None


@dataclass(frozen=True, slots=True)
class Barrier:
    """Set once the host has handled every event submitted before it (`settled`)."""

    done: trio.Event


@dataclass(frozen=True, slots=True)
class DeferredProposal:
    """Our round-0 proposal, put off until the commit pause has passed (not logged: after
    a crash the engine asks for the proposal again)."""

    effect: ProposeBlock


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ConsensusHost:
    def __init__(self, store: BlockStore, net: Network, key: PrivateKey,
                 signer: FileSigner | None, wal_path, timeouts: TimeoutConfig,
                 commit_pause_ms: int = 0, mempool: MempoolConfig | None = None) -> None:
        self.store, self.net, self.key, self.signer = store, net, key, signer
        self.commit_pause_ms = commit_pause_ms
        self._decided_at: float | None = None  # trio clock of the last commit
        self.address = address_from_pubkey(key.public)
        self.state: State = store.load_state()
        self.params = self.state.params
        self.chain_id = self.state.chain_id
        self.consensus_topic, self.tx_topic = topics(self.chain_id)
        limits = mempool or MempoolConfig()
        self.cache = SigCache(max(SIG_CACHE_MIN, limits.max_txs))  # covers every pending tx
        self.verifier = ParallelVerifier(self.cache)
        self.mempool = Mempool(self.params, self.chain_id, self.cache, limits.max_txs,
                               limits.max_bytes, limits.ttl_blocks)
        self.engine = EngineState(self.address if signer else None, timeouts)
        self.candidates: dict[bytes, Candidate] = {}
        self._built: dict[int, bytes] = {}  # round -> hash of the block we logged to propose
        self.evidence: dict[bytes, bytes] = {}
        tip = store.tip()
        self.last_commit = (store.get_seen_commit(tip[0]) if tip and tip[0] > 0
                            else Commit.empty())
        self.wal_path = wal_path
        self.wal: Wal | None = None
        self.inbox_send, self.inbox = trio.open_memory_channel[
            Event | SyncedBlock | DeferredProposal | Barrier](10_000)
        self.progress = trio.Event()
        self.committed_txs = 0
        self.commit_listeners: list[Callable[[Block, State], None]] = []  # e.g. API metrics
        self.nursery: trio.Nursery | None = None
        self._replaying = False
        self._own_on_record: set[tuple[int, int, int]] = set()
        self._vset: ValidatorSet | None = None
        self._admitting = trio.Lock()
        self._disk = trio.CapacityLimiter(1)  # this host's fsyncs, never behind other work
        self.committing: trio.Event | None = None
        """Set while a decided or synced block is written to the store (its fsync runs off
        the loop): gossip for the height after it waits for it (`wait_for_commit`) rather
        than being judged against the state before it."""

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.state.height

    async def admit(self, raws: list[bytes]
                    ) -> tuple[list[bytes], list[tuple[int, MempoolReject]]]:
        """Admit a batch of encoded txs into the mempool: each is hashed once, txs already
        pending are refused before any work, the signatures of the rest are verified on
        all cores in one pass, off the trio loop (consensus goes on meanwhile), except those
        the committed state refuses anyway (no account, a used nonce: junk costs a lookup,
        not a verification); a full mempool refuses the whole batch before any of that.
        Returns (admitted, [(index, why), …])."""
        mempool = self.mempool
        if mempool.saturated():  # every one would be refused: do not verify them first
            return [], [(i, mempool.full_error()) for i in range(len(raws))]
        hashes = [sha256(raw) for raw in raws]
        fresh = [i for i, h in enumerate(hashes) if h not in mempool]
        failed: set[int] = set()  # the mempool names why without verifying again
        checked: dict[bytes, Tx] = {}  # the mempool caches those it admits, and only those
        todo = fresh
        async with self._admitting:  # one batch at a time: ingestion must not starve consensus
            for _ in range(2):
                state = self.state
                good, bad = await self.verifier.check_async(
                    [raws[i] for i in todo], self.params.max_tx_bytes,
                    [hashes[i] for i in todo],
                    lambda tx, state=state: mempool.refused_by_state(tx, state))
                failed.update(todo[j] for j in bad)
                checked.update(good)
                if self.state is state:
                    break
                # a block committed meanwhile may take what that state refused: those are
                # verified here too, not one by one on the loop by the mempool
                todo = [i for i in todo if i not in failed and hashes[i] not in checked]
        admitted: list[bytes] = []
        rejected: list[tuple[int, MempoolReject]] = []
        for i, (raw, tx_hash) in enumerate(zip(raws, hashes, strict=True)):
            try:
                mempool.add(raw, self.state, tx_hash, signature_failed=i in failed,
                            verified=checked.get(tx_hash))
                admitted.append(raw)
            except MempoolReject as exc:
                rejected.append((i, exc))
        return admitted, rejected

    def validator_set(self) -> ValidatorSet:
        """The set signing the next height (cached: its proposer cycle costs to build)."""
        if self._vset is None or self._vset.validators != self.state.validators:
            self._vset = ValidatorSet(self.state.validators)
        return self._vset

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            await self._recover()
            task_status.started()
            async for event in self.inbox:
                if isinstance(event, SyncedBlock):
                    await self._adopt(event)
                elif isinstance(event, DeferredProposal):
                    await self._propose(event.effect, deferred=True)
                elif isinstance(event, Barrier):
                    event.done.set()
                else:
                    await self.handle(event)

    async def submit(self, event: Event | SyncedBlock | DeferredProposal | Barrier) -> None:
        await self.inbox_send.send(event)

    async def settled(self) -> None:
        """Return once every event submitted before this call has been handled (votes
        that move the engine to another round, say)."""
        done = trio.Event()
        await self.submit(Barrier(done))
        await done.wait()

    def close(self) -> None:
        self.verifier.close()
        if self.wal:
            self.wal.close()

    async def _recover(self) -> None:
        """Replay this height's WAL into a fresh engine; then schedule the current step's
        timeout so a node that crashed while waiting wakes up."""
        records = []
        for index, raw in enumerate(replay(self.wal_path)):
            try:
                records.append(ev.decode_record(raw))
            except DecodeError as exc:
                raise unreadable_record(self.wal_path, index, str(exc)) from exc
        self.wal = Wal(self.wal_path)
        start = self.height + 1
        if not records or records[0] != ev.StartRecord(start):
            self.wal.rotate(ev.encode_record(ev.StartRecord(start)))
            records = []
        else:
            records = records[1:]
        for record in records:
            if isinstance(record, ev.BuiltRecord) and record.height == start:
                self._recover_built(record)
        records = [r for r in records if not isinstance(r, ev.BuiltRecord)]
        own = {(r.vote.type, r.vote.height, r.vote.round) for r in records
               if isinstance(r, ev.VoteRecord) and r.vote.validator == self.address}
        own |= {(0, r.proposal.height, r.proposal.round) for r in records
                if isinstance(r, ev.ProposalRecord) and r.proposal.proposer == self.address}
        self._own_on_record = own
        self._replaying = True
        await self.handle(StartHeight(start, self.validator_set()), log_it=False)
        for record in records:
            await self.handle(self._event_of(record), log_it=False)
        self._replaying = False
        self._own_on_record = set()
        e = self.engine
        kind = {Step.PROPOSE: TimeoutKind.PROPOSE, Step.PREVOTE: TimeoutKind.PREVOTE,
                Step.PRECOMMIT: TimeoutKind.PRECOMMIT}.get(e.step)
        if kind is not None:
            self._schedule(ScheduleTimeout(kind, e.height, e.round,
                                           e.timeouts.delay(kind, e.round)))
        if records:
            log.info("replayed %d WAL records at height %d round %d", len(records), e.height,
                     e.round)

    def _recover_built(self, record: ev.BuiltRecord) -> None:
        """Keep a block we built and logged before a crash, to propose it again."""
        try:
            block = Block.decode(record.block, self.params.max_block_bytes,
                                 self.params.max_block_txs)
        except DecodeError as exc:
            log.warning("ignoring our logged block for round %d: %s", record.round, exc)
            return
        if self._validate_block(record.block, block.hash(), block):
            self._built[record.round] = block.hash()

    def _event_of(self, record: ev.Record) -> Event:
        if isinstance(record, ev.ProposalRecord):
            if record.valid and record.block:
                self._validate_block(record.block, record.proposal.block_hash)
            return ProposalReceived(record.proposal, record.valid)
        if isinstance(record, ev.VoteRecord):
            return VoteReceived(record.vote)
        if isinstance(record, ev.TimeoutRecord):
            return TimeoutElapsed(record.kind, record.height, record.round)
        raise ValueError(f"unexpected WAL record {record}")

    # --- the loop ---------------------------------------------------------------------------

    async def handle(self, event: Event, log_it: bool = True) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("input %s", _describe(event))
        if log_it and self.wal is not None:
            self.wal.append(ev.encode_record(self._record_of(event)))
        self.engine, effects = step(self.engine, event)
        for effect in effects:
            await self._execute(effect)

    def _record_of(self, event: Event) -> ev.Record:
        if isinstance(event, ProposalReceived):
            p = event.proposal
            candidate = self.candidates.get(p.block_hash)
            logged = p.proposer == self.address and self._built.get(p.round) == p.block_hash
            raw = candidate.raw if candidate and not logged else b""  # not twice
            return ev.ProposalRecord(p, event.valid, raw)
        if isinstance(event, VoteReceived):
            return ev.VoteRecord(event.vote)
        if isinstance(event, TimeoutElapsed):
            return ev.TimeoutRecord(event.kind, event.height, event.round)
        raise TypeError(f"{type(event).__name__} is not logged")

    async def _execute(self, effect: Effect) -> None:
        if isinstance(effect, ScheduleTimeout):
            if not self._replaying:
                self._schedule(effect)
        elif isinstance(effect, CastVote):
            if not (self._replaying and (effect.type, effect.height, effect.round)
                    in self._own_on_record):
                await self._cast(effect)
        elif isinstance(effect, ProposeBlock):
            if not (self._replaying and (0, effect.height, effect.round) in self._own_on_record):
                await self._propose(effect)
        elif isinstance(effect, Decide):
            await self._commit(effect)
        elif isinstance(effect, EquivocationDetected):
            evidence = DuplicateVoteEvidence.of(effect.first, effect.second)
            self.evidence[evidence.hash()] = evidence.encode()
            log.warning("validator %s equivocated at height %d round %d",
                        effect.first.validator.hex(), effect.first.height, effect.first.round)

    async def _off_loop(self, fn: Callable[..., T], *args: object) -> T:
        """Run a call that ends in an fsync (signer state, WAL, the store's block batch) on
        a worker thread.

        The host's own flow waits for it, so "durable before it is sent" and the engine's
        event order hold exactly as before; meanwhile gossip, admission and the API keep
        the trio loop, which a slow disk would otherwise stall for every fsync (6 to 9 per
        height). The host's own limiter (one at a time) keeps these calls from queueing
        behind other threaded work (signature and job checks share trio's default one). A
        cancelled wait still lets the thread finish: nothing is left half-written or
        released unpersisted."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._disk)

    def _schedule(self, effect: ScheduleTimeout) -> None:
        assert self.nursery is not None
        delay_ms = effect.delay_ms
        if effect.kind == TimeoutKind.PROPOSE and effect.round == 0:
            delay_ms += self.commit_pause_ms  # the proposer waits that long before building

        async def fire() -> None:
            await trio.sleep(delay_ms / 1000)
            await self.submit(TimeoutElapsed(effect.kind, effect.height, effect.round))

        self.nursery.start_soon(fire)

    # --- effects ----------------------------------------------------------------------------

    async def _cast(self, effect: CastVote) -> None:
        if self.signer is None or effect.height != self.engine.height:
            return  # not a validator, or an effect made stale by a decision handled first
        try:
            vote = await self._off_loop(self.signer.sign_vote,
                                        Vote(effect.type, effect.height, effect.round,
                                             effect.block_hash, self.address))
        except DoubleSignRefused as exc:  # the guard did its job: never sign, never crash
            log.error("refused to sign: %s", exc)
            return
        raw = encode_vote(vote)
        await self.handle(VoteReceived(vote))  # logged (fsynced below) and counted
        if self.wal:
            await self._off_loop(self.wal.sync)
        await self.publish(raw)

    async def publish(self, raw: bytes) -> None:
        """Gossip a consensus message; a failure is logged, not fatal (re-gossip retries)."""
        try:
            await self.net.publish(self.consensus_topic, raw)
        except NodeError as exc:
            log.warning("could not gossip a consensus message: %s", exc)

    async def _propose(self, effect: ProposeBlock, deferred: bool = False) -> None:
        if self.signer is None or effect.height != self.engine.height:
            return
        if deferred and (effect.round != self.engine.round or self.engine.step != Step.PROPOSE):
            return  # the round moved on while we paused
        pause = self._commit_pause_left()
        if not deferred and effect.round == 0 and pause > 0:
            self._defer(DeferredProposal(effect), pause)
            return
        if effect.block_hash is not None and effect.block_hash in self.candidates:
            candidate = self.candidates[effect.block_hash]  # logged when it was proposed
        elif self._built.get(effect.round) in self.candidates:  # logged before a crash
            candidate = self.candidates[self._built[effect.round]]
        else:
            candidate = self._build_block()
            await self._log_built(effect.round, candidate)
        try:
            proposal = await self._off_loop(self.signer.sign_proposal,
                                            Proposal(effect.height, effect.round,
                                                     candidate.block.hash(), effect.pol_round,
                                                     self.address))
        except DoubleSignRefused as exc:
            log.error("refused to sign a proposal: %s", exc)
            return
        raw = encode_compact_proposal(proposal, candidate.block)
        # no fsync before publishing: its block is durable already, so a node killed now
        # replays to the same ProposeBlock and re-releases this very signature
        await self.handle(ProposalReceived(proposal, True))
        await self.publish(raw)

    async def _log_built(self, round_: int, candidate: Candidate) -> None:
        """Make the block we are about to sign durable first (BuiltRecord)."""
        self._built[round_] = candidate.block.hash()
        if self.wal:
            self.wal.append(ev.encode_record(ev.BuiltRecord(self.engine.height, round_,
                                                            candidate.raw)))
            await self._off_loop(self.wal.sync)

    def _commit_pause_left(self) -> float:
        """Seconds left of the pause after the last commit (0 when none is due)."""
        if self._decided_at is None or self._replaying or not self.commit_pause_ms:
            return 0.0
        return self._decided_at + self.commit_pause_ms / 1000 - trio.current_time()

    def _defer(self, event: DeferredProposal, delay_s: float) -> None:
        assert self.nursery is not None

        async def later() -> None:
            await trio.sleep(delay_s)
            await self.submit(event)

        self.nursery.start_soon(later)

    def _build_block(self) -> Candidate:
        for _ in range(REAP_ROUNDS):  # mempool txs are verified (reap marks them in the cache)
            pending = self.mempool.reap(self.state, min(MAX_PROPOSAL_TXS,
                                                        self.params.max_block_txs))
            txs, rejected = select_txs(self.state, pending, self.params, self.cache)
            if not rejected:
                break
            # they do not apply now; kept, they would block their senders' nonces. The
            # txs behind them wait again, so the next round reaps others in their place.
            self.mempool.discard([pending[index] for index, _ in rejected])
        evidence = tuple(list(self.evidence.values())[:MAX_EVIDENCE_PER_BLOCK])
        block = build_block(self.state, txs, self.address, max(now_ms(), self.state.time_ms + 1),
                            self.last_commit, evidence)
        try:
            after = apply_block(self.state, block, self.params, self.cache)
        except InvalidBlock as exc:  # e.g. evidence that expired: propose without it
            log.warning("dropping evidence from own proposal: %s", exc)
            self.evidence.clear()
            block = build_block(self.state, txs, self.address, block.header.time_ms,
                                self.last_commit)
            after = apply_block(self.state, block, self.params, self.cache)
        candidate = Candidate(block, block.encode(), after)
        self.candidates[block.hash()] = candidate
        return candidate

    def _validate_block(self, raw: bytes, block_hash: bytes, block: Block | None = None
                        ) -> bool | None:
        """valid(v): decodes, has the proposal's hash and applies on our state. Cached.
        `block`, when given, is `raw` already decoded (a block rebuilt from the mempool).

        None when `raw` is not the proposal's block at all: undecodable, another hash, or
        a body its header does not name. That is the fault of whoever sent it, not of the
        proposer, so it is neither cached nor handed to the engine: an honest copy of the
        block, from another peer, must still count (the engine keeps one per round)."""
        if block_hash in self.candidates:
            return self.candidates[block_hash].after is not None
        if block is None:
            try:
                block = Block.decode(raw, self.params.max_block_bytes,
                                     self.params.max_block_txs)
            except DecodeError as exc:  # the codec raises nothing else on any input (tested)
                log.info("undecodable proposed block: %s", exc)
                return None
        if block.hash() != block_hash:
            return None
        mismatch = block.body_mismatch()
        if mismatch is not None:
            log.info("block %s came with another body: %s", block_hash.hex()[:12], mismatch)
            return None
        self.verifier.verify_raw(list(block.txs), self.params.max_tx_bytes,
                                 list(block.tx_hashes))
        try:
            after = apply_block(self.state, block, self.params, self.cache)
        except InvalidBlock as exc:
            log.info("proposed block %s is invalid: %s", block_hash.hex()[:12], exc)
            self.candidates[block_hash] = Candidate(block, raw, None)
            return False
        self.candidates[block_hash] = Candidate(block, raw, after)
        return True

    async def _commit(self, effect: Decide) -> None:
        candidate = self.candidates[effect.block_hash]
        block, after = candidate.block, candidate.after
        if after is None:
            raise RuntimeError(f"decided block {effect.block_hash.hex()} failed validation "
                               "here: this node's state diverged from the network; stopping")
        await self._store_and_advance(block, after, effect.commit, candidate.raw)
        await self.handle(StartHeight(after.height + 1, self.validator_set()), log_it=False)

    async def _adopt(self, synced: SyncedBlock) -> None:
        """Commit a block obtained by sync, if it extends our tip and its commit holds."""
        block, settled = synced.block, synced.settled or (lambda why: None)
        if block.height != self.height + 1:
            settled(None if block.height <= self.height else
                    f"block {block.height} does not follow our tip {self.height}")
            return
        try:
            verify_commit(synced.commit, self.chain_id, block.height, block.hash(),
                          self.state.validator_map(self.state.validators))
            after = apply_block(self.state, block, self.params, self.cache)
        except InvalidBlock as exc:
            log.warning("refusing synced block %d: %s", block.height, exc)
            settled(f"block {block.height}: {exc}")
            return
        await self._store_and_advance(block, after, synced.commit)
        await self.handle(StartHeight(after.height + 1, self.validator_set()), log_it=False)
        settled(None)

    async def _store_and_advance(self, block: Block, after: State, commit: Commit,
                                 raw: bytes | None = None) -> None:
        """Write the block in one synced batch (off the loop), then move onto it. Until
        then the state, `height` and the API stay at the block before."""
        self.committing = trio.Event()
        try:
            await self._off_loop(functools.partial(self.store.commit_block, block, after,
                                                   seen_commit=commit, raw=raw))
            await self._advance(block, after, commit)
        finally:
            self._committed()

    def _committed(self) -> None:
        """Release the gossip that waited for the block being stored (idempotent)."""
        done, self.committing = self.committing, None
        if done is not None:
            done.set()

    async def wait_for_commit(self, height: int) -> None:
        """A message for the height after the block being stored waits until it is
        stored; anything else goes on at once."""
        done = self.committing
        if done is not None and height == self.height + 2:
            await done.wait()

    async def _advance(self, block: Block, after: State, commit: Commit) -> None:
        """Move onto a committed block (decided here or synced). Everything else is in
        place before the WAL rotation's fsync is awaited, last, so the next height's gossip
        that arrives meanwhile is accepted (and queued for the engine), not dropped as early."""
        self.state, self.last_commit = after, commit
        self._committed()  # the next height's gossip may go on: the state it needs is here
        self._decided_at = trio.current_time()
        self.mempool.update(after, list(block.tx_hashes))
        self.committed_txs += len(block.txs)
        for raw in block.evidence:
            self.evidence.pop(DuplicateVoteEvidence.decode(raw).hash(), None)
        self.candidates.clear()
        self._built = {}
        for listener in self.commit_listeners:
            listener(block, after)
        self.progress.set()
        self.progress = trio.Event()
        log.info("committed block %d %s txs=%d", after.height, block.hash().hex()[:16],
                 len(block.txs))
        if self.wal:
            await self._off_loop(self.wal.rotate,
                                 ev.encode_record(ev.StartRecord(after.height + 1)))



def _describe(event: Event) -> str:
    if isinstance(event, VoteReceived):
        v = event.vote
        return (f"vote type={v.type} h={v.height} r={v.round} {v.block_hash.hex()[:8]} "
                f"from {v.validator.hex()[:8]}")
    if isinstance(event, ProposalReceived):
        p = event.proposal
        return f"proposal h={p.height} r={p.round} {p.block_hash.hex()[:8]} valid={event.valid}"
    return repr(event)[:120]
