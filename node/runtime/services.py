"""Network-facing services of a node: consensus and tx gossip, block/status/sync streams,
catch-up sync and re-gossip. They authenticate and validate; the ConsensusHost decides.

Every handler treats its input as hostile: decoding is strict and bounded, a peer that sends
undecodable or unauthenticated data is reported (and disconnected by the p2p layer past a
threshold), and nothing raises into the network layer.
"""

from __future__ import annotations

import logging
import os
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import trio

from consensus.bft.messages import Proposal, ProposalReceived, VoteReceived
from consensus.block import Block
from consensus.crypto import verify_signature
from consensus.errors import DecodeError
from consensus.vote import Vote
from node.errors import NodeError
from node.runtime import wire
from node.runtime.host import ConsensusHost, SyncedBlock
from node.runtime.host import Network as Publisher

log = logging.getLogger("jevons.net")
REQUEST_TIMEOUT_S = 10.0
SYNC_INTERVAL_S = 1.0
REGOSSIP_INTERVAL_S = 1.0
FORCED_PULL_INTERVALS = 5
"""A height and round that have not moved for this many REGOSSIP_INTERVAL_S pull votes
even while messages keep arriving: arriving is not being used (votes for rounds far
ahead, repeats, a validator's conflicting votes), and one validator must not be able to
switch catch-up off by signing a stream of them."""
TX_LINGER_S = 0.01
"""How long admitted txs wait for company before they are gossiped (unless a full batch is
ready): a wallet's single txs and small API batches leave as one message instead of one
each. Every gossip message costs each node about a millisecond of Python (Noise, Yamux,
protobuf, trio) per hop, whatever it carries."""
OUTBOX_HIGH_WATER = 4 * wire.MAX_TX_BATCH
"""Txs waiting to be gossiped past which `broadcast_txs` waits for the outbox to drain
(gossip backpressure reaches the API clients, as before the outbox)."""
MAX_SYNC_RESPONSE_BYTES = 32 * 1024 * 1024
PULL_DEADLINE_S = 2 * REQUEST_TIMEOUT_S
"""How long one peer's pulled proposals and votes may take to handle."""
NEVER_ADMITTED = frozenset({"bad_tx_signature", "malformed", "wrong_chain_id", "too_large"})
"""Mempool rejections that hold on every node, whatever its state: no honest node gossips
such a tx."""
VERIFIED_MEMO = 4096
"""Consensus signatures remembered as good (about 1 MB), so the check before forwarding and
the one on delivery cost one verification."""
TX_SCREEN_SAMPLE = 8
"""Txs of each gossiped batch screened before it is forwarded (about 1 ms). A batch whose
share f of forged txs would make each node verify f of it is forwarded with chance
(1 - f)^8: the waste that spreads is at most about 1/20 of a batch of junk."""
FETCH_TRIES_PER_PEER = 2
"""Block fetches one peer gets per round (a second for a transient failure: catch-up offers
the proposal again). What a peer that offers a proposal and then does not serve its block
can cost us; it cannot use up anyone else's tries."""
MAX_FETCH_SOURCES = 8
"""Peers waiting to be asked for one round's block: a round fetches one source at a time,
and moves to the next when a source fails or stalls."""
FETCHES_PER_PEER = 2
"""Block requests open at once to one peer (its server refuses past 4 per protocol; a
catch-up pull offers one proposal per round, all from the same peer)."""
PROPOSAL_ROUNDS_AHEAD = 2
"""Proposals for rounds further ahead of our engine than this are neither validated nor
fetched yet: otherwise the proposer of a quarter of the engine's 1,000-round window makes
every node apply, keep (a state copy each) and log hundreds of blocks per height. They
are parked (MAX_PARKED) and handed over when our engine gets near their round. Earlier
rounds are handled: a block precommitted in a round we have left still decides the
height."""
MAX_PARKED = 8
"""Proposals of rounds too far ahead kept for later, one per round, the lowest rounds
first (each was signed by its round's proposer: checked before it is parked)."""


class Network(Publisher, Protocol):
    """What the services need of the p2p layer (node.p2p.P2PNode provides it)."""

    def subscribe(self, topic: str, validate: Callable[[str, str, bytes], bool],
                  deliver: Callable[[str, bytes], Awaitable[None]]) -> None: ...
    def set_handler(self, protocol: str, handler: Callable[[str, bytes], Awaitable[bytes]],
                    max_request: int) -> None: ...
    async def request(self, peer_id: str, protocol: str, payload: bytes, timeout: float,
                      max_response: int) -> bytes: ...
    def peers(self) -> list[str]: ...
    def report_bad(self, peer_id: str, reason: str) -> None: ...
    def is_banned(self, peer_id: str) -> bool: ...


class _SyncBatch:
    """How the host settled the blocks of one sync response: `done` once it is through
    them all, or at the first it refuses (`refusal` says why)."""

    def __init__(self, count: int) -> None:
        self.left, self.refusal, self.done = count, None, trio.Event()

    def settled(self, why: str | None) -> None:
        self.left -= 1
        if why is not None and self.refusal is None:
            self.refusal = why
        if why is not None or self.left == 0:
            self.done.set()


Proposed = wire.ProposalMessage | wire.CompactProposal


@dataclass
class _RoundFetch:
    """Block fetches for one (height, round): sources waiting, tries begun per peer."""

    waiting: list[tuple[str, Proposal]] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)
    running: bool = False


class NodeServices:
    def __init__(self, host: ConsensusHost, net: Network) -> None:
        self.host, self.net = host, net
        (self.status_proto, self.blocks_proto, self.block_proto,
         self.votes_proto) = wire.protocols(host.chain_id)
        self.behind = trio.Event()
        self.catching_up = False
        self.txs_received = 0
        self.txs_rejected = 0
        self.tx_batches_stopped = 0  # gossiped batches refused before forwarding
        self._verified: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
        self._ahead_keys: tuple[object, dict[bytes, bytes]] = (None, {})  # (sets, keys)
        self._screen_rng = random.Random(os.urandom(16))  # a draw no peer can predict
        self.compact_misses = 0  # compact proposals with a tx not in our mempool
        self.heard = 0  # consensus messages handed to the engine (a sign gossip flows)
        self._outbox: list[bytes] = []  # admitted txs not yet gossiped, in admission order
        self._urgent: list[bytes] = []  # this node's own txs: they leave before the outbox
        self._outbox_filled = trio.Event()
        self._outbox_drained = trio.Event()
        self._tasks: trio.Nursery | None = None  # block fetches, set by `run`
        self._fetches: dict[tuple[int, int], _RoundFetch] = {}  # by (height, round)
        self._peer_fetches: dict[str, trio.Semaphore] = {}  # FETCHES_PER_PEER each
        # (height, round) of the proposals handed to the engine, which keeps the first per
        # round: later ones (an equivocating proposer's) are not validated, even before
        # the engine has recorded the first
        self._offered: set[tuple[int, int]] = set()
        self._parked: dict[tuple[int, int], tuple[str, Proposed]] = {}  # see MAX_PARKED
        self._releasing = False  # a task hands parked proposals over once the host settles
        self._release_again = False  # a vote came after the task's last look

    def install(self) -> None:
        h = self.host
        self.net.subscribe(h.consensus_topic, self._check_consensus, self.on_consensus)
        self.net.subscribe(h.tx_topic, self._check_txs, self.on_txs)
        self.net.set_handler(self.status_proto, self.serve_status, 64)
        self.net.set_handler(self.blocks_proto, self.serve_blocks, 64)
        self.net.set_handler(self.block_proto, self.serve_block, 64)
        self.net.set_handler(self.votes_proto, self.serve_votes, 64)

    async def run(self, loops: bool = True,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled: block fetches for proposals (always) and, with `loops`,
        sync, catch-up and tx gossip."""
        async with trio.open_nursery() as nursery:
            self._tasks = nursery
            try:
                if loops:
                    nursery.start_soon(self.sync_loop)
                    nursery.start_soon(self.catch_up_loop)
                    nursery.start_soon(self.gossip_loop)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._tasks = None

    # --- gossip in ------------------------------------------------------------------------

    def _check_consensus(self, peer: str, origin: str, raw: bytes) -> bool:
        """Before a consensus message is forwarded: it decodes; a proposal comes in compact
        form (nodes gossip no other: a whole block is a replay's junk, dropped) and its
        header and carried hashes match (else its origin is reported); and if it is for
        the height being decided here, its signer is the round's proposer (a proposal) or
        in the set (a vote) and its signature holds (a bad one gets its origin reported).
        So a forged proposal carrying megabytes of block, or a stream of forged votes,
        stops at the first honest hop instead of reaching, and costing, every node. A
        later height is judged against the validators known here (`_judge_ahead`): a
        signer in neither set is dropped unreported (it may have joined in blocks we lack;
        a node that far behind syncs by polling), and pubsub caches that verdict (30 s).
        Past heights pass unjudged: a node behind us may need them. The engine's own
        checks follow on delivery. Votes pulled for catch-up pass here too (their
        proposals come whole, with the block left out)."""
        try:
            msg = wire.decode_consensus(raw)
        except DecodeError:
            self.net.report_bad(peer, "undecodable consensus message")
            return False
        if isinstance(msg, wire.ProposalMessage) and msg.block:
            return False  # nodes gossip compact proposals; a whole block is a replay's junk
        if isinstance(msg, wire.CompactProposal) and (why := msg.mismatch()) is not None:
            self.net.report_bad(origin, why)  # honest compact blocks always match
            return False
        signed = msg if isinstance(msg, Vote) else msg.proposal
        deciding = self.host.height + 1
        if signed.height == deciding:
            return self._judged(origin, signed)
        if signed.height > deciding:
            return self._judged(origin, signed, ahead=True)
        return True

    def _judge(self, msg: Vote | Proposal) -> bool | None:
        """A vote or proposal of the height being decided: None if its signer may not sign
        it (not in the set; not the round's proposer), else whether its signature holds."""
        h = self.host
        vs = h.validator_set()
        if isinstance(msg, Vote):
            entry = vs.by_address.get(msg.validator)
            signer = None if entry is None else entry.pubkey
        else:
            proposer = vs.proposer(msg.height, msg.round)
            signer = vs.by_address[proposer].pubkey if msg.proposer == proposer else None
        if signer is None:
            return None
        return self._signed(signer, msg.signature, msg.sign_message(h.chain_id))

    def _judge_ahead(self, msg: Vote | Proposal) -> bool | None:
        """A vote or proposal of a later height than the one being decided: None if its
        signer is in neither set known here (the one signing that height, and the next
        one's), else whether its signature holds. Who proposes a later round is not
        checked here: the engine checks it when it gets there."""
        state = self.host.state
        sets = (state.validators, state.next_validators)  # not the state: kept, it would
        if self._ahead_keys[0] != sets:  # hold a copy of every account after the next commit
            keys = {v.address: v.pubkey for v in state.next_validators}
            keys.update((v.address, v.pubkey) for v in state.validators)
            self._ahead_keys = (sets, keys)
        signer = self._ahead_keys[1].get(msg.validator if isinstance(msg, Vote)
                                         else msg.proposer)
        if signer is None:
            return None
        return self._signed(signer, msg.signature, msg.sign_message(self.host.chain_id))

    def _signed(self, public: bytes, signature: bytes, message: bytes) -> bool:
        """verify_signature, remembering the last VERIFIED_MEMO good ones: a message checked
        before pubsub forwards it is not verified again when it is delivered."""
        key = (public, signature, message)
        if key in self._verified:
            return True
        if not verify_signature(public, signature, message):
            return False
        self._verified[key] = None
        if len(self._verified) > VERIFIED_MEMO:
            self._verified.popitem(last=False)
        return True

    def _check_txs(self, peer: str, origin: str, raw: bytes) -> bool:
        """Before a batch is forwarded: it decodes, and TX_SCREEN_SAMPLE of its txs, drawn
        at random, are screened (`Mempool.screen`). One that no node would admit (a
        forged signature, say) stops the batch here, and its origin is reported (the
        relay that sent it may be honest: its own draw can have missed it). A batch whose
        every drawn tx our state refuses (junk from senders with nothing) is not
        forwarded either, and no one is reported (an honest relay can be a block ahead of
        us). So a peer cannot make every node of the network verify its junk: it stops at
        the first honest hop. Batches from an origin we have banned stop here too (unlike
        votes and proposals, which their validator's key authenticates, whoever sent them
        first)."""
        h = self.host
        try:
            txs = wire.decode_tx_batch(raw, h.params.max_tx_bytes)
        except DecodeError:
            self.net.report_bad(peer, "undecodable tx batch")
            return False
        if self.net.is_banned(origin):
            self.tx_batches_stopped += 1
            return False
        if not txs:
            return True
        refused = 0
        drawn = self._screen_rng.sample(range(len(txs)), min(TX_SCREEN_SAMPLE, len(txs)))
        for i in drawn:
            verdict, why = h.mempool.screen(txs[i], h.state)
            if verdict == "forged":
                self.tx_batches_stopped += 1
                self.net.report_bad(origin, f"gossiped a tx no node would admit "
                                            f"({why.code}: {why.reason})")
                return False
            refused += verdict == "refused"
        if refused == len(drawn):
            self.tx_batches_stopped += 1
            return False
        return True

    async def on_consensus(self, peer: str, raw: bytes) -> None:
        msg = wire.decode_consensus(raw)
        if isinstance(msg, Vote):
            await self._on_vote(peer, msg)
        else:
            await self._on_proposal(peer, msg)

    def _rebuild(self, msg: wire.CompactProposal) -> tuple[bytes, Block] | None:
        """A compact proposal's block from our mempool (None if a tx is missing or the
        block would be over the size limits: then it is fetched whole)."""
        h = self.host
        if len(msg.tx_hashes) > h.params.max_block_txs:
            return None
        block = msg.rebuild(h.mempool.raw_of)
        if block is None:
            return None
        raw = block.encode()
        return (raw, block) if len(raw) <= h.params.max_block_bytes else None

    async def _on_vote(self, peer: str, vote: Vote) -> None:
        h = self.host
        await h.wait_for_commit(vote.height)
        if vote.height > h.height + 1:
            self._ahead(peer, vote)
            return
        if vote.height != h.height + 1 or not self._judged(peer, vote):
            return
        self.heard += 1
        await h.submit(VoteReceived(vote))
        if self._parked and self._tasks is not None:
            self._release_again = True  # the vote may move the engine near a parked round
            if not self._releasing:
                self._releasing = True
                self._tasks.start_soon(self._release_when_settled)

    def _ahead(self, peer: str, msg: Vote | Proposal) -> None:
        """A message of a later height says we are behind, if one of the validators we
        know signed it (a forged one would otherwise send every node syncing)."""
        if self._judged(peer, msg, ahead=True):
            self.behind.set()

    def _judged(self, peer: str, msg: Vote | Proposal, ahead: bool = False) -> bool:
        """`_judge` (`_judge_ahead` for a later height): True to go on; a bad signature gets
        `peer` (the origin) reported."""
        verdict = self._judge_ahead(msg) if ahead else self._judge(msg)
        if verdict is False:
            kind = "vote" if isinstance(msg, Vote) else "proposal"
            self.net.report_bad(peer, f"{kind} with a bad signature")
        return verdict is True

    async def _on_proposal(self, peer: str, msg: Proposed) -> None:
        h, p = self.host, msg.proposal
        await h.wait_for_commit(p.height)
        if p.height > h.height + 1:
            self._ahead(peer, p)
            return
        if p.height != h.height + 1 or not self._judged(peer, p):
            return
        if self._has_proposal(p):
            return  # the engine keeps the first per round: no block fetch for a repeat
        if self._too_far(p):
            self._park(peer, msg)
            return
        if isinstance(msg, wire.CompactProposal):
            if msg.header.hash() != p.block_hash:
                self.net.report_bad(peer, "compact block does not match its proposal")
                return
            rebuilt = self._rebuild(msg)
            if rebuilt is None:
                self.compact_misses += 1
                self._start_fetch(peer, p)
                return
            await self._propose(peer, p, *rebuilt)
        elif msg.block:
            await self._propose(peer, p, msg.block)
        else:
            self._start_fetch(peer, p)

    def _has_proposal(self, p: Proposal) -> bool:
        """The engine has a proposal for the round, or we handed it one."""
        engine = self.host.engine
        return ((engine.height == p.height and p.round in engine.proposals)
                or (p.height, p.round) in self._offered)

    def _park(self, peer: str, msg: Proposed) -> None:
        key = (msg.proposal.height, msg.proposal.round)
        for old in [k for k in self._parked if k[0] < key[0]]:
            del self._parked[old]  # heights left behind: they must not evict this one
        if key not in self._parked:
            self._parked[key] = (peer, msg)
            if len(self._parked) > MAX_PARKED:
                del self._parked[max(self._parked)]

    async def _release_when_settled(self) -> None:
        """Once the host has handled the votes submitted so far, hand over what they made
        near; again while votes came in meanwhile (one may be the one that skips us)."""
        try:
            while self._release_again and self._parked:
                self._release_again = False
                await self.host.settled()
                await self._release_parked()
        finally:
            self._releasing = False

    async def _release_parked(self) -> None:
        """Hand over the parked proposals whose round our engine has come near (after a
        round skip, say); forget those of heights we have left."""
        deciding = self.host.height + 1
        for key in sorted(self._parked):
            if key[0] < deciding:
                self._parked.pop(key, None)
            elif key[0] == deciding and key in self._parked:
                peer, msg = self._parked[key]
                if not self._too_far(msg.proposal):
                    del self._parked[key]
                    try:
                        await self._on_proposal(peer, msg)
                    except Exception:  # as gossip delivery does: log it, go on
                        log.exception("handling a parked proposal failed")

    def _too_far(self, p: Proposal) -> bool:
        """A round more than PROPOSAL_ROUNDS_AHEAD ahead of our engine's (of round 0 while
        the engine has not started the height)."""
        engine = self.host.engine
        our_round = engine.round if engine.height == p.height else 0
        return p.round > our_round + PROPOSAL_ROUNDS_AHEAD

    async def _propose(self, peer: str, p: Proposal, raw: bytes,
                       decoded: Block | None = None) -> bool:
        """Check a proposal's block and hand both to the engine; False (and `peer`
        reported) when `raw` is not the signed block."""
        h = self.host
        valid = h._validate_block(raw, p.block_hash, decoded)
        if valid is None:  # not the signed block: the sender's doing, not the proposer's
            self.net.report_bad(peer, "proposal with a block that is not the proposed one")
            return False
        self.heard += 1
        key = (p.height, p.round)
        self._offered = {k for k in self._offered if k[0] == p.height}
        self._offered.add(key)
        try:
            await h.submit(ProposalReceived(p, valid))
        except BaseException:  # cancelled (a pull's deadline): the engine did not get it
            self._offered.discard(key)
            raise
        return True

    def _start_fetch(self, peer: str, p: Proposal) -> None:
        """Fetch a proposal's block in the background: a fetch takes up to
        REQUEST_TIMEOUT_S and consensus gossip must flow meanwhile (inline, a proposer
        signing blocks nobody has held every vote up for 10 s, again and again).

        Each round asks one source at a time, in the order they offered the proposal
        (up to MAX_FETCH_SOURCES waiting), each at most FETCH_TRIES_PER_PEER times, so a
        relay that offers a proposal and then serves nothing delays the honest sources
        but cannot shut them out. Rounds too far ahead (`_too_far`) are not fetched, nor
        anything before `run` has started; catch-up offers them again."""
        key = (p.height, p.round)
        if self._tasks is None:
            log.debug("not fetching block %s: not running yet", p.block_hash.hex()[:12])
            return
        if self._too_far(p):
            return
        for old in [k for k in self._fetches if k[0] < p.height]:
            del self._fetches[old]
        fetch = self._fetches.setdefault(key, _RoundFetch())
        if (fetch.tries.get(peer, 0) >= FETCH_TRIES_PER_PEER or len(fetch.waiting)
                >= MAX_FETCH_SOURCES or any(source == peer for source, _ in fetch.waiting)):
            return
        fetch.waiting.append((peer, p))
        if not fetch.running:
            fetch.running = True
            self._tasks.start_soon(self._fetch_round, fetch)

    async def _fetch_round(self, fetch: _RoundFetch) -> None:
        h = self.host
        try:
            while fetch.waiting:
                peer, p = fetch.waiting.pop(0)
                fetch.tries[peer] = fetch.tries.get(peer, 0) + 1
                if self._has_proposal(p):
                    return
                async with self._peer_slot(peer):
                    raw = await self._fetch_block(peer, p.block_hash)
                if raw is None:
                    continue  # the next source, if any
                if self._has_proposal(p):
                    return
                await h.wait_for_commit(p.height)
                if p.height != h.height + 1:
                    return
                if await self._propose(peer, p, raw):
                    return
        finally:
            fetch.running = False

    @asynccontextmanager
    async def _peer_slot(self, peer: str) -> AsyncIterator[None]:
        slots = self._peer_fetches.get(peer)
        if slots is None:
            slots = self._peer_fetches[peer] = trio.Semaphore(FETCHES_PER_PEER)
        try:
            async with slots:
                yield
        finally:
            if slots.value == FETCHES_PER_PEER and not slots.statistics().tasks_waiting:
                self._peer_fetches.pop(peer, None)  # unused: do not keep one per peer ever

    async def _fetch_block(self, peer: str, block_hash: bytes) -> bytes | None:
        try:
            raw = await self.net.request(peer, self.block_proto, wire.encode([block_hash]),
                                         REQUEST_TIMEOUT_S, self.host.params.max_block_bytes + 64)
            items = wire.decode(raw, self.host.params.max_block_bytes + 64)
            return items[0] if items and isinstance(items[0], bytes) else None
        except (NodeError, DecodeError) as exc:  # transport or peer error: it may come again
            log.info("could not fetch block %s from %s: %s", block_hash.hex()[:12], peer, exc)
            return None

    async def on_txs(self, peer: str, raw: bytes) -> None:
        """Admit a gossiped batch. `peer` is its origin (pubsub checks the origin's
        signature on every message), and nodes gossip only txs they admitted: a tx that
        can never be admitted anywhere (forged signature, undecodable, another chain) is
        the origin's doing, and it is reported. Stale nonces and a full mempool are races
        any honest node can lose, and are not."""
        h = self.host
        txs = wire.decode_tx_batch(raw, h.params.max_tx_bytes)
        _, rejected = await h.admit(txs)
        self.txs_received += len(txs)
        self.txs_rejected += len(rejected)
        forged = [why for _, why in rejected if why.code in NEVER_ADMITTED]
        if forged:
            self.net.report_bad(peer, f"gossiped {len(forged)} tx(s) no node would admit, "
                                      f"e.g. {forged[0].code}: {forged[0].reason}")

    async def broadcast_txs(self, txs: list[bytes], urgent: bool = False) -> None:
        """Queue admitted txs for gossip (`gossip_loop` sends them, coalesced with others
        admitted within TX_LINGER_S); wait while the outbox is over OUTBOX_HIGH_WATER.
        `urgent` txs (this node's own verdicts and results, a handful per block) go ahead
        of the outbox and never wait: behind 8,000 API txs they could miss their deadline."""
        if not txs:
            return
        if urgent:
            self._urgent.extend(txs)
            self._outbox_filled.set()
            return
        self._outbox.extend(txs)
        self._outbox_filled.set()
        while len(self._outbox) > OUTBOX_HIGH_WATER:
            await self._outbox_drained.wait()

    async def gossip_loop(self) -> None:
        """Publish the outbox in batches of at most MAX_TX_BATCH txs and MAX_GOSSIP_BYTES,
        TX_LINGER_S after the first tx or as soon as a full batch waits; urgent txs go
        first, before each batch. A publish that fails is logged: its txs stay in the
        mempool, which this node proposes from and re-gossips while a height stalls."""
        while True:
            await self._outbox_filled.wait()
            self._outbox_filled = trio.Event()
            with trio.move_on_after(TX_LINGER_S):  # or until a full batch waits
                while len(self._outbox) < wire.MAX_TX_BATCH and not self._urgent:
                    await self._outbox_filled.wait()
                    self._outbox_filled = trio.Event()
            while self._urgent or self._outbox:
                queue = self._urgent or self._outbox
                count = wire.tx_batch_prefix(queue)
                batch = queue[:count]
                del queue[:count]
                if queue is self._outbox and len(queue) <= OUTBOX_HIGH_WATER:
                    self._outbox_drained.set()
                    self._outbox_drained = trio.Event()
                try:
                    await self.net.publish(self.host.tx_topic, wire.encode_tx_batch(batch))
                except NodeError as exc:
                    log.warning("could not gossip %d transaction(s): %s", len(batch), exc)

    # --- streams served -------------------------------------------------------------------

    async def serve_status(self, peer: str, request: bytes) -> bytes:
        return wire.encode_status(self.host.height, self.host.state.last_block_hash)

    async def serve_blocks(self, peer: str, request: bytes) -> bytes:
        start, count = wire.decode_blocks_request(request)
        store, items, size = self.host.store, [], 0
        for height in range(start, min(start + count, self.host.height + 1)):
            raw, commit = store.get_block(height), store.get_seen_commit(height)
            if raw is None or commit is None:
                break
            # the whole encoded item counts (a commit grows with the validator set): the
            # requester refuses a response over the limit, and would never get past it
            item = len(raw) + len(wire.encode(commit.to_fields())) + 16
            if items and size + item > MAX_SYNC_RESPONSE_BYTES:
                break
            items.append((raw, commit))
            size += item
        return wire.encode_blocks(items)

    async def serve_block(self, peer: str, request: bytes) -> bytes:
        items = wire.decode(request, 64)
        block_hash = items[0] if items and isinstance(items[0], bytes) else b""
        candidate = self.host.candidates.get(block_hash)
        raw = candidate.raw if candidate else self.host.store.get_block_by_hash(block_hash)
        return wire.encode([raw] if raw else [])

    # --- background -----------------------------------------------------------------------

    async def sync_loop(self) -> None:
        """Ask peers for their height; fetch, check and hand over the blocks we lack: at
        once when a message from a later height says we are behind, and every
        SYNC_INTERVAL_S in which our height did not move (a node whose gossip went quiet
        learns nothing from messages; one that keeps committing need not poll)."""
        while True:
            height = self.host.height
            with trio.move_on_after(SYNC_INTERVAL_S):
                await self.behind.wait()
            if not self.behind.is_set() and self.host.height != height:
                continue
            self.behind = trio.Event()
            for peer in self.net.peers():
                try:
                    await self._sync_from(peer)
                except DecodeError as exc:  # garbage from a peer: count it against it
                    self.net.report_bad(peer, f"undecodable sync response: {exc}")
                except NodeError as exc:  # gone, slow or refusing: try the next one
                    log.info("sync from %s failed: %s", peer, exc)
            self.catching_up = False

    async def _sync_from(self, peer: str) -> None:
        h = self.host
        raw = await self.net.request(peer, self.status_proto, b"\x90", REQUEST_TIMEOUT_S, 256)
        height, _ = wire.decode_status(raw)
        while height > h.height:
            self.catching_up = height > h.height + 1
            request = wire.encode_blocks_request(h.height + 1, wire.MAX_SYNC_BLOCKS)
            raw = await self.net.request(peer, self.blocks_proto, request, REQUEST_TIMEOUT_S,
                                         MAX_SYNC_RESPONSE_BYTES)
            items = wire.decode_blocks(raw, h.params.max_block_bytes)
            if not items:
                return
            blocks = [(Block.decode(block_raw, h.params.max_block_bytes,
                                    h.params.max_block_txs), commit)
                      for block_raw, commit in items]
            batch = _SyncBatch(len(blocks))
            for block, commit in blocks:  # checked and applied in order
                await h.submit(SyncedBlock(block, commit, batch.settled))
            with trio.move_on_after(REQUEST_TIMEOUT_S):
                await batch.done.wait()
            if batch.refusal is not None:  # a block that does not follow, a bad commit
                self.net.report_bad(peer, f"sync served a block we refuse: {batch.refusal}")
                return
            if not batch.done.is_set():
                return  # the host is slow to apply them: the next round goes on from there

    async def catch_up_loop(self) -> None:
        """Gossip is lossy and a restarted node missed what was said before it came back:
        while a height makes no progress and no new proposal or vote arrives, pull every
        peer's proposals and votes for it (re-publishing would not help: gossip drops
        messages it has already seen), and re-send some pending transactions. A height
        that is merely slow (big blocks under load) keeps hearing votes and costs no
        pulls, unless it stays put for FORCED_PULL_INTERVALS."""
        still = 0  # intervals in a row in which the height and round did not move
        while True:
            height, round_, heard = self.host.height, self.host.engine.round, self.heard
            await trio.sleep(REGOSSIP_INTERVAL_S)
            if self._parked:
                await self._release_parked()
            if self.host.height != height or self.host.engine.round != round_:
                still = 0
                continue
            still += 1
            if self.heard != heard and still < FORCED_PULL_INTERVALS:
                continue
            still = 0
            for peer in self.net.peers():
                await self._pull_votes(peer)
            await self.broadcast_txs(self.host.mempool.pending(wire.MAX_TX_BATCH))

    async def _pull_votes(self, peer: str) -> None:
        h = self.host
        try:
            raw = await self.net.request(peer, self.votes_proto, wire.encode([h.height + 1]),
                                         REQUEST_TIMEOUT_S, wire.MAX_RESPONSE_BYTES)
            messages = wire.decode_messages(raw)
        except (NodeError, DecodeError) as exc:
            log.info("could not pull votes from %s: %s", peer, exc)
            return
        with trio.move_on_after(PULL_DEADLINE_S):  # a reply's block fetches stay bounded
            for message in dict.fromkeys(messages):  # each once, in the peer's order
                if self._check_consensus(peer, peer, message):
                    await self.on_consensus(peer, message)

    async def serve_votes(self, peer: str, request: bytes) -> bytes:
        items = wire.decode(request, 64)
        height = items[0] if items and type(items[0]) is int else -1
        engine = self.host.engine
        if height != engine.height:
            return wire.encode_messages([])
        messages = [wire.encode_proposal(p, b"") for _, (p, _valid)
                    in sorted(engine.proposals.items())]
        for book in (engine.prevotes, engine.precommits):
            for r in sorted(book):
                for voters in book[r].by_value.values():
                    messages.extend(wire.encode_vote(v) for v in voters.values())
        return wire.encode_messages(messages)
