"""The mempool: verified, not yet committed transactions, ordered per sender by nonce.

Admission checks what can be checked without executing: size, decoding, chain id, the
signature (once, through the shared SigCache), fee, the nonce against the sender's
committed account (not reused, at most MAX_NONCE_AHEAD ahead) and that the sender's
committed balance pays the fees and amounts (`cost`) of all its pending txs. Everything
else is settled when a proposer selects transactions with `select_txs`, and after each
block, when every sender's next tx that is new is dry-run (`_check_heads`). Each
rejection says why.

A tx the chain drops rather than executes pays nothing, so the bounds keep such txs from
holding space: a tx is *ready* when its nonce continues the sender's committed nonce
through pending txs with no gap, otherwise *queued* (waiting for a missing nonce).
Admission holds queued txs to MAX_QUEUED_PER_SENDER per sender and a quarter of the
capacity in all (a drop that queues a sender's later txs again may pass these); a ready
tx that finds the mempool full evicts the oldest queued ones. Every tx leaves after
`ttl_blocks` blocks in the pool. docs/node.md says what remains open.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

from consensus.builder import select_txs
from consensus.errors import BadTxSignature, DecodeError, InvalidTx
from consensus.hashing import sha256
from consensus.params import ChainParams
from consensus.sigcache import SigCache
from consensus.state import State
from consensus.transition import BAD_SIGNATURE, check_chain_id, check_tx_signature
from consensus.tx import RegisterProvider, Stake, SubmitJob, Transfer, Tx
from node.config import MempoolConfig

MAX_NONCE_AHEAD = 256
MAX_QUEUED_PER_SENDER = 64
BUSY = frozenset({"mempool_full", "queue_full"})  # codes a client should retry later


class MempoolReject(Exception):
    """Why a transaction was not admitted (`code` is stable, for APIs and metrics)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a setattr call per
class Entry:  # field, on every admission (`pending_from` hands entries out: read only)
    tx_hash: bytes
    raw: bytes
    tx: Tx
    height: int  # the chain height when it was admitted (for ttl_blocks)
    cost: int  # cost(tx)
    seq: int  # admission order on this node (reap takes the longest-waiting first)


def cost(tx: Tx) -> int:
    """What the tx takes from its sender's balance if it applies: the fee plus the amount
    it moves, bonds or escrows (negative amounts, which never apply, count as 0)."""
    body = tx.body
    if isinstance(body, Transfer | Stake):
        moved = body.amount
    elif isinstance(body, RegisterProvider):
        moved = body.stake
    elif isinstance(body, SubmitJob):
        moved = body.max_price * body.spec.units if not body.spec.problem() else 0
    else:
        moved = 0
    return tx.fee + max(0, moved)


class Mempool:
    def __init__(self, params: ChainParams, chain_id: str, cache: SigCache,
                 max_txs: int = MempoolConfig.max_txs, max_bytes: int = MempoolConfig.max_bytes,
                 ttl_blocks: int = MempoolConfig.ttl_blocks) -> None:
        self.params, self.chain_id, self.cache = params, chain_id, cache
        self.max_txs, self.max_bytes, self.ttl_blocks = max_txs, max_bytes, ttl_blocks
        self.max_queued = max(1, max_txs // 4)
        self._by_hash: dict[bytes, Entry] = {}
        self._by_sender: OrderedDict[bytes, dict[int, Entry]] = OrderedDict()
        self._ready_end: dict[bytes, int] = {}  # per sender: first nonce not ready
        self._costs: dict[bytes, int] = {}  # per sender: cost() of its pending txs
        self._queued: OrderedDict[bytes, Entry] = OrderedDict()  # not ready, oldest first
        self._queued_by: dict[bytes, int] = {}  # per sender: how many of its txs are queued
        self._unchecked: dict[bytes, None] = {}  # senders whose first tx to apply is new
        self._by_height: dict[int, dict[bytes, None]] = {}  # admission height -> hashes
        self._bytes = 0
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def queued(self) -> int:
        """How many pending txs wait for a missing nonce."""
        return len(self._queued)

    def saturated(self) -> bool:
        """Full, with nothing a new tx could evict: any tx would be refused as
        mempool_full (callers refuse a batch before verifying it)."""
        return not self._queued and (len(self._by_hash) >= self.max_txs
                                     or self._bytes >= self.max_bytes)

    def add(self, raw: bytes, state: State, tx_hash: bytes | None = None, *,
            signature_failed: bool = False, verified: Tx | None = None) -> bytes:
        """Admit `raw` or raise MempoolReject; returns the tx hash (`tx_hash`, when the
        caller has it already, must be sha256(raw)). `signature_failed` says the caller's
        own verification (ParallelVerifier) refused it: its reason is given without
        verifying it a second time; `verified` is the decoded tx when that verification
        passed. Only an admitted tx enters the signature cache: refused ones (unknown
        senders, say) would push pending txs out of it, to be verified again on the loop
        when a block carries them."""
        if tx_hash is None:
            tx_hash = sha256(raw)
        if tx_hash in self._by_hash:
            raise MempoolReject("duplicate", "transaction is already in the mempool")
        if len(raw) > self.params.max_tx_bytes:
            raise MempoolReject("too_large", f"transaction is {len(raw)} bytes, limit is "
                                f"{self.params.max_tx_bytes}")
        if self.saturated():
            raise self.full_error()
        tx = verified or self.cache.get(tx_hash)
        unverified = tx is None
        if unverified:
            try:
                tx = Tx.decode(raw, self.params.max_tx_bytes)
                if signature_failed:
                    check_chain_id(tx, self.chain_id)
                    raise BadTxSignature(BAD_SIGNATURE)
            except DecodeError as exc:
                raise MempoolReject("malformed", f"undecodable transaction: {exc}") from exc
            except InvalidTx as exc:
                raise MempoolReject(_code(exc), exc.reason) from exc
        tx_cost = cost(tx)
        # the state's cheap refusals before a signature is verified: junk from senders
        # that cannot pay costs a lookup, not a verification
        sender = tx.sender
        queue = self._by_sender.get(sender, {})
        committed = self._check_against_state(tx, state, tx_cost,
                                              (self._costs.get(sender, 0), len(queue)))
        if unverified:
            try:
                check_tx_signature(tx, raw, self.chain_id, None, tx_hash)
            except InvalidTx as exc:
                raise MempoolReject(_code(exc), exc.reason) from exc
        if tx.nonce in queue:
            raise MempoolReject("nonce_pending", f"a transaction with nonce {tx.nonce} from "
                                "this sender is already pending")
        ready_end = max(self._ready_end.get(sender, committed), committed)
        ready = tx.nonce == ready_end
        if not ready and self._queued_by.get(sender, 0) >= MAX_QUEUED_PER_SENDER:
            raise MempoolReject("queue_full", f"this sender already has "
                                f"{MAX_QUEUED_PER_SENDER} txs waiting for its missing nonce "
                                f"{ready_end}; submit that one first")
        if not ready and len(self._queued) >= self.max_queued:
            raise MempoolReject("queue_full", f"{len(self._queued)} txs already wait for a "
                                f"missing nonce; submit this sender's nonce {ready_end} first "
                                "(or retry later)")
        self._make_room(len(raw), ready, sender, tx.nonce)
        entry = Entry(tx_hash, raw, tx, state.height, tx_cost, next(self._seq))
        queue = self._by_sender.setdefault(sender, queue)
        queue[tx.nonce] = entry
        self._by_hash[tx_hash] = entry
        self._bytes += len(raw)
        self._costs[sender] = self._costs.get(sender, 0) + entry.cost
        self._by_height.setdefault(entry.height, {})[tx_hash] = None
        self.cache.add(tx_hash, tx)
        if ready:
            if tx.nonce == committed:
                self._unchecked[sender] = None
            self._promote(sender, queue, tx.nonce)
        else:
            self._ready_end[sender] = ready_end
            self._enqueue(entry)
        return tx_hash

    def screen(self, raw: bytes, state: State) -> tuple[str, MempoolReject | None]:
        """A gossiped tx checked before its batch is forwarded: ("ok", None) if it verifies
        or is known here already; ("forged", why) if no node would ever admit it
        (undecodable, another chain, a signature that does not verify); ("refused", None)
        if the committed state refuses it (`refused_by_state`: unknown sender, a used
        nonce; a race an honest relay can lose; its signature is not verified). What is
        pending here does not count: a peer must not be able to make this node refuse
        others' batches by filling its mempool first."""
        tx_hash = sha256(raw)
        if tx_hash in self._by_hash or tx_hash in self.cache:
            return "ok", None
        try:
            tx = Tx.decode(raw, self.params.max_tx_bytes)
            check_chain_id(tx, self.chain_id)
        except DecodeError as exc:
            return "forged", MempoolReject("malformed", f"undecodable transaction: {exc}")
        except InvalidTx as exc:
            return "forged", MempoolReject(_code(exc), exc.reason)
        if self.refused_by_state(tx, state):
            return "refused", None
        try:
            check_tx_signature(tx, raw, self.chain_id, None, tx_hash)
        except InvalidTx as exc:
            return "forged", MempoolReject(_code(exc), exc.reason)
        return "ok", None

    def refused_by_state(self, tx: Tx, state: State) -> bool:
        """Would the committed `state` refuse `tx` whatever is pending (another chain, a
        fee too low, no account, a used nonce or one too far ahead, a balance short of this
        tx alone)? Reads nothing of the mempool's own: safe on a worker thread while the
        loop admits (`state` is a committed state, never changed in place)."""
        try:
            self._check_against_state(tx, state, cost(tx))
        except MempoolReject:
            return True
        return False

    def _enqueue(self, entry: Entry) -> None:
        self._queued[entry.tx_hash] = entry
        sender = entry.tx.sender
        self._queued_by[sender] = self._queued_by.get(sender, 0) + 1

    def _dequeue(self, entry: Entry) -> None:
        if self._queued.pop(entry.tx_hash, None) is not None:
            sender = entry.tx.sender
            left = self._queued_by.pop(sender) - 1
            if left:
                self._queued_by[sender] = left

    def full_error(self) -> MempoolReject:
        return MempoolReject("mempool_full", f"mempool is full ({len(self._by_hash)} txs, "
                             f"{self._bytes} bytes); retry later")

    def _make_room(self, size: int, ready: bool, sender: bytes, nonce: int) -> None:
        """Evict the oldest queued txs (the longest wait for a missing nonce: an honest
        reordering fills its gap within seconds) so that one more tx of `size` bytes fits,
        if it is ready; the txs it would make ready itself go last. Refuse it (evicting
        nothing) when that cannot be done."""
        count, total = len(self._by_hash) + 1, self._bytes + size
        if count <= self.max_txs and total <= self.max_bytes:
            return
        if not ready:
            raise self.full_error()

        def own(entry: Entry) -> bool:
            return entry.tx.sender == sender and entry.tx.nonce > nonce

        victims = []
        order = itertools.chain((e for e in self._queued.values() if not own(e)),
                                (e for e in self._queued.values() if own(e)))
        for entry in order:
            victims.append(entry.tx_hash)
            count, total = count - 1, total - len(entry.raw)
            if count <= self.max_txs and total <= self.max_bytes:
                break
        else:
            raise self.full_error()
        for victim in victims:
            self._remove(victim)

    def _promote(self, sender: bytes, queue: dict[int, Entry], nonce: int) -> None:
        """`nonce` continues the sender's ready run: it and the queued txs it joins to
        the run become ready."""
        while nonce in queue:
            self._dequeue(queue[nonce])
            nonce += 1
        self._ready_end[sender] = nonce

    def _check_against_state(self, tx: Tx, state: State, tx_cost: int,
                             pending: tuple[int, int] = (0, 0)) -> int:
        """The checks against the committed state (`tx_cost` is cost(tx)); returns the
        sender's committed nonce. `pending`: the cost and count of the sender's txs held
        here, which the balance must cover too ((0, 0): the committed state alone; then
        nothing of the mempool's own is read)."""
        if tx.chain_id != self.chain_id:
            raise MempoolReject("wrong_chain_id", f"tx is for chain {tx.chain_id!r}")
        if tx.fee < self.params.min_fee:
            raise MempoolReject("fee_too_low", f"fee {tx.fee} is below the minimum "
                                f"{self.params.min_fee}")
        account = state.get_account(tx.sender)
        if account is None:
            raise MempoolReject("unknown_sender", f"sender {tx.sender.hex()} has no account")
        if tx.nonce < account.nonce:
            raise MempoolReject("nonce_reused", f"nonce {tx.nonce} already used; account "
                                f"nonce is {account.nonce}")
        if tx.nonce > account.nonce + MAX_NONCE_AHEAD:
            raise MempoolReject("nonce_too_far", f"nonce {tx.nonce} is more than "
                                f"{MAX_NONCE_AHEAD} ahead of the account nonce {account.nonce}")
        total = pending[0] + tx_cost
        if total > account.balance:
            raise MempoolReject("cannot_pay", f"balance {account.balance} cannot pay the "
                                f"amounts and fees of this tx and the sender's "
                                f"{pending[1]} pending ones ({total})")
        return account.nonce

    def reap(self, state: State, max_txs: int) -> list[bytes]:
        """Up to `max_txs` txs in an order that can apply (per sender, consecutive nonces
        from the committed nonce), longest-waiting first: each step takes, among every
        sender's next tx, the one this node admitted first. The oldest txs are the likeliest
        to have reached every validator already, so the others rebuild the block from their
        own mempools instead of fetching it; and a sender with many pending txs cannot keep
        the others out of blocks."""
        out: list[bytes] = []
        expected: dict[bytes, int] = {}  # per sender met so far: the nonce it needs next
        for entry in self._by_hash.values():  # admission order (a dict keeps it)
            if len(out) >= max_txs:
                break
            sender = entry.tx.sender
            nonce = expected.get(sender)
            if nonce is None:
                account = state.get_account(sender)
                nonce = account.nonce if account else 0
            queue, walked = self._by_sender[sender], entry.seq
            # take it if it is the sender's next, then its successors already walked past
            # (admitted before it): each is then the longest-waiting next tx of any sender
            while entry is not None and entry.tx.nonce == nonce and len(out) < max_txs:
                self.cache.add(entry.tx_hash, entry.tx)  # verified: never again for a block
                out.append(entry.raw)
                nonce += 1
                entry = queue.get(nonce)
                if entry is not None and entry.seq > walked:
                    entry = None  # later in the walk: it waits for its turn
            expected[sender] = nonce
        return out

    def update(self, state: State, committed: list[bytes]) -> None:
        """After a block: drop its txs (given by hash), every tx whose nonce is now used,
        and every tx admitted `ttl_blocks` or more blocks ago; txs a block made ready
        (it held the nonce they waited for) are ready now."""
        for tx_hash in committed:
            self._remove(tx_hash, demote=False)
        # only the accounts the block wrote can have a new nonce
        for sender in sorted(a for a in state.touched if a in self._by_sender):
            self._unchecked[sender] = None  # a new nonce or balance: its next tx may not apply
            account = state.get_account(sender)
            if account is None:
                continue
            queue = self._by_sender[sender]
            for nonce in [n for n in queue if n < account.nonce]:
                self._remove(queue[nonce].tx_hash, demote=False)
            if sender in self._by_sender:
                self._promote(sender, queue, max(self._ready_end.get(sender, 0),
                                                 account.nonce))
        self._expire(state.height - self.ttl_blocks)
        self._check_heads(state)

    def _check_heads(self, state: State) -> None:
        """Dry-run, on one copy of `state`, each sender's next tx where it is new (admitted
        since the last block, or the sender's account changed) and drop those that would
        not apply: a proposer would drop them unpaid, and until then they and the txs
        behind them hold mempool space for free (on a node that never proposes, until
        their ttl). The txs behind a dropped one wait for its nonce again (queued)."""
        heads = []
        for sender in self._unchecked:
            queue = self._by_sender.get(sender)
            account = state.get_account(sender)
            if queue and account is not None and account.nonce in queue:
                heads.append(queue[account.nonce])
        self._unchecked.clear()
        if not heads:
            return
        for entry in heads:  # verified at admission: never again here, on the loop
            self.cache.add(entry.tx_hash, entry.tx)
        chosen, rejected = select_txs(state, [e.raw for e in heads], self.params, self.cache)
        for entry in heads[len(chosen) + len(rejected):]:  # past one block's limits: next time
            self._unchecked[entry.tx.sender] = None
        for index, _ in rejected:
            self._remove(heads[index].tx_hash)

    def _expire(self, height: int) -> None:
        """Drop every tx admitted at `height` or before (one bucket per height that
        admitted something, so this is cheap)."""
        for h in [h for h in self._by_height if h <= height]:
            for tx_hash in list(self._by_height.get(h, ())):
                self._remove(tx_hash)

    def raw_of(self, tx_hash: bytes) -> bytes | None:
        """The bytes of a pending tx, by hash (None if not pending)."""
        entry = self._by_hash.get(tx_hash)
        return entry.raw if entry is not None else None

    def next_nonce(self, sender: bytes, state: State) -> int:
        """The nonce of `sender`'s next tx: after its committed nonce and its pending txs."""
        account = state.get_account(sender)
        nonce = account.nonce if account else 0
        queue = self._by_sender.get(sender, {})
        while nonce in queue:
            nonce += 1
        return nonce

    def pending_from(self, sender: bytes) -> list[Entry]:
        """`sender`'s pending txs (bytes and decoded) in nonce order."""
        queue = self._by_sender.get(sender, {})
        return [queue[n] for n in sorted(queue)]

    def discard(self, raws: list[bytes]) -> None:
        """Drop these txs (e.g. ones that no longer apply on the current state)."""
        for raw in raws:
            self._remove(sha256(raw))

    def pending(self, limit: int) -> list[bytes]:
        """Some pending txs, oldest senders first (for re-gossip)."""
        out = []
        for queue in self._by_sender.values():
            for nonce in sorted(queue):
                out.append(queue[nonce].raw)
                if len(out) >= limit:
                    return out
        return out

    def _remove(self, tx_hash: bytes, *, demote: bool = True) -> None:
        """Drop one tx. With `demote`, the sender's ready txs after it are queued again
        (they wait for its nonce); `update` passes False for txs whose nonce is used."""
        entry = self._by_hash.pop(tx_hash, None)
        if entry is None:
            return
        tx = entry.tx
        self._bytes -= len(entry.raw)
        left = self._costs.pop(tx.sender, 0) - entry.cost
        if left:
            self._costs[tx.sender] = left
        bucket = self._by_height.get(entry.height)
        if bucket is not None:
            bucket.pop(tx_hash, None)
            if not bucket:
                del self._by_height[entry.height]
        self._dequeue(entry)
        queue = self._by_sender.get(tx.sender)
        if queue is None:
            return
        queue.pop(tx.nonce, None)
        if not queue:
            del self._by_sender[tx.sender]
            self._ready_end.pop(tx.sender, None)
            self._costs.pop(tx.sender, None)
            return
        ready_end = self._ready_end.get(tx.sender, 0)
        if demote and tx.nonce < ready_end:
            for nonce in range(tx.nonce + 1, ready_end):
                if nonce in queue:
                    self._enqueue(queue[nonce])
            self._ready_end[tx.sender] = tx.nonce


def _code(exc: InvalidTx) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
