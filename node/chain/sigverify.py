"""Verify many transaction signatures on every core, once per node.

libsodium releases the GIL, so a small thread pool spreads Ed25519 verification over the
machine's cores. Verified hashes go into the shared SigCache, which `apply_block` trusts:
a transaction is verified once, whether it arrived through the mempool or in a block.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import trio

from consensus.crypto import verify_signature
from consensus.errors import DecodeError
from consensus.hashing import sha256
from consensus.sigcache import SigCache
from consensus.tx import Tx, unsigned_message

CHUNK = 256  # txs per verification task: small enough to start verifying early


class ParallelVerifier:
    def __init__(self, cache: SigCache, workers: int | None = None) -> None:
        self.cache = cache
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sigverify")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ParallelVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verify_raw(self, raws: list[bytes], max_tx_bytes: int,
                   hashes: list[bytes] | None = None) -> list[int]:
        """Verify the signatures of encoded txs not yet in the cache; add the good ones.

        Returns the indices of txs that failed to decode or verify (the caller decides what
        that means: drop from the mempool, or let apply_block reject the block). `hashes`,
        when given, are the txs' sha256 (computed once by the caller).
        """
        verified, bad = self.check(raws, max_tx_bytes, hashes)
        self.remember(verified)
        return bad

    async def check_async(self, raws: list[bytes], max_tx_bytes: int,
                          hashes: list[bytes] | None = None,
                          skip: Callable[[Tx], bool] | None = None
                          ) -> tuple[list[tuple[bytes, Tx]], list[int]]:
        """`check` without holding up the trio loop: decoding and waiting for the pool
        happen on a worker thread, so consensus messages keep flowing meanwhile. The cache
        is not written: the caller keeps only what it admits (`remember`, or the mempool)."""
        return await trio.to_thread.run_sync(self.check, raws, max_tx_bytes, hashes, skip)

    def remember(self, verified: list[tuple[bytes, Tx]]) -> None:
        for tx_hash, tx in verified:
            self.cache.add(tx_hash, tx)

    def check(self, raws: list[bytes], max_tx_bytes: int, hashes: list[bytes] | None = None,
              skip: Callable[[Tx], bool] | None = None
              ) -> tuple[list[tuple[bytes, Tx]], list[int]]:
        """Decode and verify the txs not in the cache, without writing it: returns
        ([(hash, tx) verified], sorted indices of the bad ones). Decoded txs for which
        `skip(tx)` is true (runs on this thread) are neither verified nor counted bad.

        Decoding runs on the calling thread while earlier chunks verify on the pool, so the
        GIL-bound decode overlaps the GIL-free signature checks.
        """
        bad: list[int] = []
        verified: list[tuple[bytes, Tx]] = []
        jobs: list[tuple[list[tuple[int, bytes, Tx, bytes]], Future[list[bool]]]] = []
        chunk: list[tuple[int, bytes, Tx, bytes]] = []
        if hashes is None:
            hashes = [sha256(raw) for raw in raws]
        for i, (raw, tx_hash) in enumerate(zip(raws, hashes, strict=True)):
            if tx_hash in self.cache:
                continue
            try:
                tx = Tx.decode(raw, max_tx_bytes)
            except DecodeError:
                bad.append(i)
                continue
            if skip is not None and skip(tx):
                continue
            chunk.append((i, tx_hash, tx, unsigned_message(raw, tx.chain_id)))
            if len(chunk) == CHUNK:
                jobs.append((chunk, self._pool.submit(_check_chunk, chunk)))
                chunk = []
        if chunk:
            jobs.append((chunk, self._pool.submit(_check_chunk, chunk)))
        for items, future in jobs:
            for (i, tx_hash, tx, _), ok in zip(items, future.result(), strict=True):
                if ok:
                    verified.append((tx_hash, tx))
                else:
                    bad.append(i)
        return verified, sorted(bad)


def _check_chunk(items: list[tuple[int, bytes, Tx, bytes]]) -> list[bool]:
    return [verify_signature(tx.sender_pubkey, tx.signature, msg) for _, _, tx, msg in items]
