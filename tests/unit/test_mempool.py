from __future__ import annotations

import pytest

from consensus.hashing import sha256
from consensus.sigcache import SigCache
from node.runtime.mempool import MAX_NONCE_AHEAD, Mempool, MempoolReject
from tests.unit.helpers import Chain, addr, flip_byte, make_net


def _forged(raw: bytes) -> bytes:
    return flip_byte(raw, len(raw) - 1)  # last byte of the signature


def setup(max_txs: int = 100):
    chain = Chain(make_net(label="mempool"))
    pool = Mempool(chain.params, chain.state.chain_id, SigCache(), max_txs=max_txs)
    return chain, pool


def test_admission_rules_each_have_a_code() -> None:
    chain, pool = setup(max_txs=3)
    alice, bob = chain.net.user_keys[:2]
    to = addr(bob)
    ok = chain.transfer(alice, to, 5).encode()
    pool.add(ok, chain.state)
    cases = [
        (ok, "duplicate"),
        (_forged(chain.transfer(alice, to, 6, nonce=1).encode()), "bad_tx_signature"),
        (chain.transfer(alice, to, 5, nonce=0, fee=1).encode(), "fee_too_low"),
        (chain.transfer(alice, to, 5, chain_id="other-chain").encode(), "wrong_chain_id"),
        (chain.transfer(alice, to, 5, nonce=MAX_NONCE_AHEAD + 1).encode(), "nonce_too_far"),
        (chain.transfer(chain.net.validator_keys[0], to, 5).encode(), "unknown_sender"),
        (b"\x93\x01\x02\x03", "malformed"),
        (chain.transfer(alice, to, 7, nonce=0).encode(), "nonce_pending"),
    ]
    for raw, code in cases:
        with pytest.raises(MempoolReject) as info:
            pool.add(raw, chain.state)
        assert info.value.code == code, (code, info.value.reason)
    pool.add(chain.transfer(alice, to, 5, nonce=1).encode(), chain.state)
    pool.add(chain.transfer(bob, to, 5, nonce=0).encode(), chain.state)
    with pytest.raises(MempoolReject) as info:
        pool.add(chain.transfer(bob, to, 5, nonce=1).encode(), chain.state)
    assert info.value.code == "mempool_full"
    assert len(pool) == 3


def test_reap_orders_nonces_and_update_drops_committed() -> None:
    chain, pool = setup()
    alice, bob = chain.net.user_keys[:2]
    txs = [chain.transfer(alice, addr(bob), 5, nonce=n).encode() for n in (2, 0, 1, 4)]
    for raw in txs:
        pool.add(raw, chain.state)
    reaped = pool.reap(chain.state, 10)
    assert reaped == [txs[1], txs[2], txs[0]]  # nonce 4 waits for nonce 3
    chain.advance(reaped[:2])
    pool.update(chain.state, [sha256(raw) for raw in reaped[:2]])
    assert len(pool) == 2
    assert pool.reap(chain.state, 10) == [txs[0]]
    with pytest.raises(MempoolReject) as info:
        pool.add(txs[1], chain.state)
    assert info.value.code == "nonce_reused"


def test_a_failed_parallel_check_gives_the_same_reasons_without_verifying_again() -> None:
    """What ConsensusHost.admit does: verify a batch on the pool, then add each tx saying
    which failed. The codes equal those of a plain add, and a tx marked failed is refused
    as such (its signature is not checked a second time)."""
    from node.chain.sigverify import ParallelVerifier

    chain, plain = setup()
    alice, bob = chain.net.user_keys[:2]
    to = addr(bob)
    batch = [
        chain.transfer(alice, to, 5).encode(),
        _forged(chain.transfer(alice, to, 6, nonce=1).encode()),
        b"\x93\x01\x02\x03",
        _forged(chain.transfer(alice, to, 5, chain_id="other-chain").encode()),
        chain.transfer(bob, to, 5).encode(),
    ]

    def codes(pool: Mempool, failed: set[int]) -> list[str]:
        out = []
        for i, raw in enumerate(batch):
            try:
                pool.add(raw, chain.state, signature_failed=i in failed)
                out.append("ok")
            except MempoolReject as exc:
                out.append(exc.code)
        return out

    cache = SigCache()
    with ParallelVerifier(cache, workers=2) as verifier:
        failed = set(verifier.verify_raw(batch, chain.params.max_tx_bytes))
    assert failed == {1, 2, 3}
    pooled = Mempool(chain.params, chain.state.chain_id, cache)
    expected = ["ok", "bad_tx_signature", "malformed", "wrong_chain_id", "ok"]
    assert codes(pooled, failed) == codes(plain, set()) == expected
    _, fresh = setup()
    with pytest.raises(MempoolReject) as info:  # trusted, not re-verified
        fresh.add(batch[4], chain.state, signature_failed=True)
    assert info.value.code == "bad_tx_signature"
