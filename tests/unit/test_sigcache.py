"""The signature cache: a hit skips verification (the cache is trusted), and it is bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import consensus.transition as transition
from consensus.errors import BadTxSignature, InvalidBlock, WrongChainId
from consensus.hashing import sha256
from consensus.sigcache import SigCache
from consensus.tx import Tx
from tests.unit.helpers import Chain, addr, make_net


@pytest.fixture
def chain() -> Chain:
    return Chain(make_net(label="sigcache"))


def bad_signature_tx(chain: Chain) -> bytes:
    alice, bob, _ = chain.net.user_keys
    tx = chain.transfer(alice, addr(bob), 5)
    return Tx(tx.chain_id, tx.sender_pubkey, tx.nonce, tx.fee, tx.body, bytes(64)).encode()


def test_a_cached_hash_is_trusted_without_verifying(chain: Chain) -> None:
    """Documents the trust: the cache must only ever hold hashes this node verified."""
    raw = bad_signature_tx(chain)
    block = chain.build([raw])
    with pytest.raises(InvalidBlock) as info:
        chain.apply(block)
    assert type(info.value.__cause__) is BadTxSignature
    empty = SigCache()
    with pytest.raises(InvalidBlock):
        chain.apply(block, empty)
    assert sha256(raw) not in empty  # a failed verification is not cached
    trusted = SigCache()
    trusted.add(sha256(raw))
    state = chain.apply(block, trusted)
    assert state.accounts[addr(chain.net.user_keys[0])].nonce == 1


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real: Callable[[bytes, bytes, bytes], bool] = transition.verify_signature

    def wrapper(public: bytes, signature: bytes, message: bytes) -> bool:
        calls[0] += 1
        return real(public, signature, message)

    monkeypatch.setattr(transition, "verify_signature", wrapper)
    return calls


def three_txs(chain: Chain) -> list[bytes]:
    a, b, c = chain.net.user_keys
    return [chain.transfer(a, addr(b), 1).encode(), chain.transfer(b, addr(c), 2).encode(),
            chain.transfer(c, addr(a), 3).encode()]


def test_each_tx_is_verified_once_per_cache(chain: Chain,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch)
    block = chain.build(three_txs(chain))
    cache = SigCache()
    first = chain.apply(block, cache)
    assert calls[0] == 3
    assert all(sha256(raw) in cache for raw in block.txs)
    again = chain.apply(block, cache)  # e.g. a node re-applying after a restart or a re-org
    assert calls[0] == 3
    assert again.root() == first.root()
    chain.apply(block)  # no cache: everything verified again
    assert calls[0] == 6


def test_mempool_verification_is_reused_by_block_application(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    txs = three_txs(chain)
    cache = SigCache()
    for raw in txs:  # what the mempool does on arrival
        tx = transition.decode_tx(raw, chain.params)
        transition.check_tx_signature(tx, raw, chain.state.chain_id, cache)
    calls = counting(monkeypatch)
    chain.apply(chain.build(txs), cache)
    assert calls[0] == 0


def test_a_cached_tx_still_needs_the_right_chain_id(chain: Chain) -> None:
    alice, bob, _ = chain.net.user_keys
    foreign = chain.transfer(alice, addr(bob), 5, chain_id="jevons-other")
    raw = foreign.encode()
    cache = SigCache()
    cache.add(sha256(raw), foreign)
    with pytest.raises(InvalidBlock) as info:
        chain.apply(chain.build([raw]), cache)
    assert type(info.value.__cause__) is WrongChainId


def test_a_cache_hit_does_not_skip_the_state_rules(chain: Chain) -> None:
    alice, bob, _ = chain.net.user_keys
    raw = chain.transfer(alice, addr(bob), 5, nonce=3).encode()
    cache = SigCache()
    cache.add(sha256(raw))
    with pytest.raises(InvalidBlock, match="skips ahead"):
        chain.apply(chain.build([raw]), cache)


def test_capacity_evicts_the_oldest() -> None:
    cache = SigCache(capacity=3)
    hashes = [sha256(bytes([i])) for i in range(5)]
    for h in hashes[:3]:
        cache.add(h)
    assert len(cache) == 3
    cache.add(hashes[3])
    assert len(cache) == 3
    assert hashes[0] not in cache
    assert all(h in cache for h in hashes[1:4])
    cache.add(hashes[1])  # re-adding refreshes it
    cache.add(hashes[4])
    assert hashes[2] not in cache
    assert all(h in cache for h in (hashes[1], hashes[3], hashes[4]))
    cache.discard(hashes[3])
    cache.discard(hashes[3])  # discarding twice is harmless
    assert hashes[3] not in cache
    assert len(cache) == 2


def test_capacity_one_keeps_only_the_latest() -> None:
    cache = SigCache(capacity=1)
    cache.add(b"a" * 32)
    cache.add(b"b" * 32)
    assert b"a" * 32 not in cache
    assert b"b" * 32 in cache


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_positive(capacity: int) -> None:
    with pytest.raises(ValueError):
        SigCache(capacity=capacity)


def test_an_evicted_tx_is_verified_again(chain: Chain,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch)
    txs = three_txs(chain)
    cache = SigCache(capacity=1)
    chain.apply(chain.build(txs), cache)
    assert calls[0] == 3
    assert [sha256(raw) in cache for raw in txs] == [False, False, True]
    chain.apply(chain.build([txs[2]]), cache)  # still cached
    assert calls[0] == 3
    chain.apply(chain.build([txs[0]]), cache)  # evicted: verified again
    assert calls[0] == 4
