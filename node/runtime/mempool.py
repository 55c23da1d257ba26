"""The mempool: verified, not yet committed transactions, ordered per sender by nonce.

Admission checks what can be checked without executing: size, decoding, chain id, the
signature (once, through the shared SigCache), fee, the nonce against the sender's
committed account (not reused, at most MAX_NONCE_AHEAD ahead) and that the sender's
committed balance pays the fees of all its pending txs. Everything else (amounts, stake)
is settled when a proposer selects transactions with `select_txs`. Each rejection says why.

A tx is *ready* when its nonce continues the sender's committed nonce through pending txs
with no gap; otherwise it is *queued*, waiting for a missing nonce. Queued txs never
execute and so never pay, so admission bounds them apart (a quarter of the capacity; a
discard that queues a sender's later txs again may pass it) and they give way: a ready tx
that finds the mempool full evicts the newest queued ones. Every tx leaves after
`ttl_blocks` blocks in the pool (e.g. one a proposer could not fit, or that cannot pay its
amount, on a node that never proposes). Without these, a spammer could fill every node's
mempool with gapped nonces for free and stop admission network-wide.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from consensus.errors import BadTxSignature, DecodeError, InvalidTx
from consensus.hashing import sha256
from consensus.params import ChainParams
from consensus.sigcache import SigCache
from consensus.state import State
from consensus.transition import BAD_SIGNATURE, check_chain_id, check_tx_signature
from consensus.tx import Tx
from node.config import MempoolConfig

MAX_NONCE_AHEAD = 256
BUSY = frozenset({"mempool_full", "queue_full"})  # codes a client should retry later


class MempoolReject(Exception):
    """Why a transaction was not admitted (`code` is stable, for APIs and metrics)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True, slots=True)
class Entry:
    tx_hash: bytes
    raw: bytes
    tx: Tx
    height: int  # the chain height when it was admitted (for ttl_blocks)


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
        self._fees: dict[bytes, int] = {}  # per sender: fees of its pending txs
        self._queued: dict[bytes, Entry] = {}  # not ready, in arrival order
        self._by_height: dict[int, dict[bytes, None]] = {}  # admission height -> hashes
        self._bytes = 0

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
            signature_failed: bool = False) -> bytes:
        """Admit `raw` or raise MempoolReject; returns the tx hash (`tx_hash`, when the
        caller has it already, must be sha256(raw)). `signature_failed` says the caller's
        own verification (ParallelVerifier) refused it: its reason is given without
        verifying it a second time."""
        if tx_hash is None:
            tx_hash = sha256(raw)
        if tx_hash in self._by_hash:
            raise MempoolReject("duplicate", "transaction is already in the mempool")
        if len(raw) > self.params.max_tx_bytes:
            raise MempoolReject("too_large", f"transaction is {len(raw)} bytes, limit is "
                                f"{self.params.max_tx_bytes}")
        if self.saturated():
            raise self.full_error()
        tx = self.cache.get(tx_hash)
        if tx is None:
            try:
                tx = Tx.decode(raw, self.params.max_tx_bytes)
                if signature_failed:
                    check_chain_id(tx, self.chain_id)
                    raise BadTxSignature(BAD_SIGNATURE)
                check_tx_signature(tx, raw, self.chain_id, self.cache, tx_hash)
            except DecodeError as exc:
                raise MempoolReject("malformed", f"undecodable transaction: {exc}") from exc
            except InvalidTx as exc:
                raise MempoolReject(_code(exc), exc.reason) from exc
        committed = self._check_against_state(tx, state)
        sender = tx.sender
        queue = self._by_sender.get(sender, {})
        if tx.nonce in queue:
            raise MempoolReject("nonce_pending", f"a transaction with nonce {tx.nonce} from "
                                "this sender is already pending")
        ready_end = max(self._ready_end.get(sender, committed), committed)
        ready = tx.nonce == ready_end
        if not ready and len(self._queued) >= self.max_queued:
            raise MempoolReject("queue_full", f"{len(self._queued)} txs already wait for a "
                                f"missing nonce; submit this sender's nonce {ready_end} first "
                                "(or retry later)")
        self._make_room(len(raw), ready)
        entry = Entry(tx_hash, raw, tx, state.height)
        queue = self._by_sender.setdefault(sender, queue)
        queue[tx.nonce] = entry
        self._by_hash[tx_hash] = entry
        self._bytes += len(raw)
        self._fees[sender] = self._fees.get(sender, 0) + tx.fee
        self._by_height.setdefault(entry.height, {})[tx_hash] = None
        if ready:
            self._promote(sender, queue, tx.nonce)
        else:
            self._ready_end[sender] = ready_end
            self._queued[tx_hash] = entry
        return tx_hash

    def full_error(self) -> MempoolReject:
        return MempoolReject("mempool_full", f"mempool is full ({len(self._by_hash)} txs, "
                             f"{self._bytes} bytes); retry later")

    def _make_room(self, size: int, ready: bool) -> None:
        """Evict the newest queued txs so that one more tx of `size` bytes fits, if it is
        ready; refuse it (evicting nothing) when that cannot be done."""
        count, total = len(self._by_hash) + 1, self._bytes + size
        if count <= self.max_txs and total <= self.max_bytes:
            return
        if not ready:
            raise self.full_error()
        victims = []
        for entry in reversed(self._queued.values()):
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
            self._queued.pop(queue[nonce].tx_hash, None)
            nonce += 1
        self._ready_end[sender] = nonce

    def _check_against_state(self, tx: Tx, state: State) -> int:
        """The checks against the committed state; returns the sender's committed nonce."""
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
        fees = self._fees.get(tx.sender, 0) + tx.fee
        if fees > account.balance:
            raise MempoolReject("cannot_pay_fees", f"balance {account.balance} cannot pay "
                                f"the fees of this tx and the sender's "
                                f"{len(self._by_sender.get(tx.sender, ()))} pending ones "
                                f"({fees})")
        return account.nonce

    def reap(self, state: State, max_txs: int) -> list[bytes]:
        """Up to `max_txs` txs in an order that can apply: per sender, consecutive nonces
        from the committed nonce; senders in order of first arrival."""
        out: list[bytes] = []
        for sender, queue in self._by_sender.items():
            account = state.get_account(sender)
            nonce = account.nonce if account else 0
            while nonce in queue and len(out) < max_txs:
                out.append(queue[nonce].raw)
                nonce += 1
            if len(out) >= max_txs:
                break
        return out

    def update(self, state: State, committed: list[bytes]) -> None:
        """After a block: drop its txs (given by hash), every tx whose nonce is now used,
        and every tx admitted `ttl_blocks` or more blocks ago; txs a block made ready
        (it held the nonce they waited for) are ready now."""
        for tx_hash in committed:
            self._remove(tx_hash, demote=False)
        for sender in list(self._by_sender):
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
        fees = self._fees.pop(tx.sender, 0) - tx.fee
        if fees:
            self._fees[tx.sender] = fees
        bucket = self._by_height.get(entry.height)
        if bucket is not None:
            bucket.pop(tx_hash, None)
            if not bucket:
                del self._by_height[entry.height]
        self._queued.pop(tx_hash, None)
        queue = self._by_sender.get(tx.sender)
        if queue is None:
            return
        queue.pop(tx.nonce, None)
        if not queue:
            del self._by_sender[tx.sender]
            self._ready_end.pop(tx.sender, None)
            self._fees.pop(tx.sender, None)
            return
        ready_end = self._ready_end.get(tx.sender, 0)
        if demote and tx.nonce < ready_end:
            for nonce in range(tx.nonce + 1, ready_end):
                if nonce in queue:
                    self._queued[queue[nonce].tx_hash] = queue[nonce]
            self._ready_end[tx.sender] = tx.nonce


def _code(exc: InvalidTx) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
