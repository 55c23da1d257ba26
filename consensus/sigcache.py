"""A bounded set of transaction hashes whose signatures this node has already verified.

The hash covers the whole encoded transaction, signature and chain id included, so a hit
means these exact bytes verified before. The mempool fills it; block application reads it,
so a transaction is verified once per node.
"""

from __future__ import annotations

from collections import OrderedDict


class SigCache:
    def __init__(self, capacity: int = 200_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, tx_hash: bytes) -> None:
        items = self._items
        items[tx_hash] = None
        items.move_to_end(tx_hash)
        while len(items) > self._capacity:
            items.popitem(last=False)

    def discard(self, tx_hash: bytes) -> None:
        self._items.pop(tx_hash, None)
