"""A bounded map from transaction hash to the decoded transaction, for transactions whose
signatures this node has already verified.

The hash covers the whole encoded transaction, signature and chain id included, so a hit
means these exact bytes decoded to this transaction and its signature verified. The mempool
(or a parallel pre-verifier) fills it; block application reads it, so a transaction is
decoded and verified once per node.
"""

from __future__ import annotations

from collections import OrderedDict

from consensus.tx import Tx


class SigCache:
    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._items: OrderedDict[bytes, Tx | None] = OrderedDict()

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, tx_hash: bytes) -> Tx | None:
        """The verified transaction with this hash, or None (unknown, or cached without it)."""
        return self._items.get(tx_hash)

    def add(self, tx_hash: bytes, tx: Tx | None = None) -> None:
        items = self._items
        items[tx_hash] = tx
        items.move_to_end(tx_hash)
        while len(items) > self._capacity:
            items.popitem(last=False)

    def discard(self, tx_hash: bytes) -> None:
        self._items.pop(tx_hash, None)
