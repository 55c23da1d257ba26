"""The mempool: verified, not yet committed transactions, ordered per sender by nonce.

Admission checks what can be checked without executing: size, decoding, chain id, the
signature (once, through the shared SigCache), fee, and the nonce against the sender's
committed account (not reused, at most MAX_NONCE_AHEAD ahead). Everything else (funds) is
settled when a proposer selects transactions with `select_txs`. Each rejection says why.
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

MAX_NONCE_AHEAD = 256


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


class Mempool:
    def __init__(self, params: ChainParams, chain_id: str, cache: SigCache,
                 max_txs: int = 100_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.params, self.chain_id, self.cache = params, chain_id, cache
        self.max_txs, self.max_bytes = max_txs, max_bytes
        self._by_hash: dict[bytes, Entry] = {}
        self._by_sender: OrderedDict[bytes, dict[int, Entry]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    @property
    def size_bytes(self) -> int:
        return self._bytes

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
        if len(self._by_hash) >= self.max_txs or self._bytes + len(raw) > self.max_bytes:
            raise MempoolReject("mempool_full", f"mempool is full ({len(self._by_hash)} txs, "
                                f"{self._bytes} bytes); retry later or raise the fee")
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
        self._check_against_state(tx, state)
        entry = Entry(tx_hash, raw, tx)
        queue = self._by_sender.setdefault(tx.sender, {})
        if tx.nonce in queue:
            raise MempoolReject("nonce_pending", f"a transaction with nonce {tx.nonce} from "
                                "this sender is already pending")
        queue[tx.nonce] = entry
        self._by_hash[tx_hash] = entry
        self._bytes += len(raw)
        return tx_hash

    def _check_against_state(self, tx: Tx, state: State) -> None:
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
        """After a block: drop its txs (given by hash) and every tx whose nonce is now
        used."""
        for tx_hash in committed:
            self._remove(tx_hash)
        for sender in list(self._by_sender):
            account = state.get_account(sender)
            if account is None:
                continue
            for nonce in [n for n in self._by_sender.get(sender, {}) if n < account.nonce]:
                self._remove(self._by_sender[sender][nonce].tx_hash)

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

    def _remove(self, tx_hash: bytes) -> None:
        entry = self._by_hash.pop(tx_hash, None)
        if entry is None:
            return
        self._bytes -= len(entry.raw)
        queue = self._by_sender.get(entry.tx.sender)
        if queue is not None:
            queue.pop(entry.tx.nonce, None)
            if not queue:
                del self._by_sender[entry.tx.sender]


def _code(exc: InvalidTx) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
