"""Parallel pre-verification: same verdicts as serial verification, each tx verified once."""

from __future__ import annotations

import hashlib

import pytest
import trio

from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.sigcache import SigCache
from consensus.tx import Tx, make_transfer
from node.chain.sigverify import CHUNK, ParallelVerifier

CHAIN = "jevons-test"


def keys(n: int) -> list[PrivateKey]:
    return [PrivateKey.from_seed(hashlib.sha256(b"k%d" % i).digest()) for i in range(n)]


def corrupt_signature(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


@pytest.mark.parametrize("off_loop", [False, True], ids=["sync", "async"])
def test_parallel_matches_serial_and_fills_cache(off_loop: bool) -> None:
    ks = keys(8)
    raws = [make_transfer(ks[i % 8], CHAIN, b"\x01" * 20, 5, i, 100).encode()
            for i in range(3 * CHUNK + 7)]
    bad_at = {3, CHUNK + 1, 2 * CHUNK + 5}
    for i in bad_at:
        raws[i] = corrupt_signature(raws[i])
    raws.append(b"\x93\x01\x02\x03")  # decodes as msgpack but is not a tx
    cache = SigCache()
    with ParallelVerifier(cache, workers=2) as verifier:
        if off_loop:  # the admission path: a worker thread, the cache written after
            good, bad = trio.run(verifier.check_async, raws, 4096)
            verifier.remember(good)
        else:
            bad = verifier.verify_raw(raws, 4096)
    assert bad == sorted([*bad_at, len(raws) - 1])
    for i, raw in enumerate(raws[:-1]):
        cached = cache.get(sha256(raw))
        assert (cached is None) == (i in bad_at)
        if cached is not None:
            assert cached == Tx.decode(raw)


def test_cached_txs_are_not_verified_again() -> None:
    ks = keys(1)
    good = make_transfer(ks[0], CHAIN, b"\x01" * 20, 5, 0, 100).encode()
    forged = corrupt_signature(make_transfer(ks[0], CHAIN, b"\x01" * 20, 5, 1, 100).encode())
    cache = SigCache()
    cache.add(sha256(forged), Tx.decode(forged))  # pretend: verified before
    with ParallelVerifier(cache, workers=1) as verifier:
        assert verifier.verify_raw([good, forged], 4096) == []
    assert sha256(good) in cache


def test_check_leaves_the_cache_alone_and_uses_given_hashes() -> None:
    ks = keys(2)
    raws = [make_transfer(ks[i], CHAIN, b"\x01" * 20, 5, 0, 100).encode() for i in range(2)]
    cache = SigCache()
    with ParallelVerifier(cache, workers=1) as verifier:
        verified, bad = verifier.check(raws, 4096, [sha256(r) for r in raws])
        assert bad == [] and len(cache) == 0
        assert verified == [(sha256(r), Tx.decode(r)) for r in raws]
        # a hash already in the cache means "verified before": given hashes are trusted
        cache.add(b"\x00" * 32, None)
        assert verifier.check([raws[0]], 4096, [b"\x00" * 32]) == ([], [])
