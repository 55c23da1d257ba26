from __future__ import annotations

import random

import pytest

from consensus.hashing import sha256
from consensus.sigcache import SigCache
from consensus.tx import Stake, Unstake, make_transfer, make_tx
from node.runtime.mempool import MAX_NONCE_AHEAD, MAX_QUEUED_PER_SENDER, Mempool, MempoolReject
from tests.unit.helpers import USER_BALANCE, Chain, addr, flip_byte, make_net


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


def test_reap_takes_the_longest_waiting_next_tx_of_any_sender_first() -> None:
    """Among every sender's next tx, the one admitted first: the oldest txs are the likeliest
    to be in every validator's mempool already, and a sender with a long run of pending txs
    does not keep a later sender's single tx out of a full block."""
    chain, pool = setup(max_txs=100)
    alice, bob, carol = chain.net.user_keys
    to = addr(bob)
    a = [chain.transfer(alice, to, 1, nonce=n).encode() for n in range(4)]
    b = [chain.transfer(bob, to, 1, nonce=n).encode() for n in range(2)]
    c = [chain.transfer(carol, to, 1, nonce=n).encode() for n in range(2)]
    for raw in (c[1], a[0], a[1], b[0], a[2], c[0], b[1], a[3]):  # carol's 1 waits for 0
        pool.add(raw, chain.state)
    assert pool.reap(chain.state, 100) == [a[0], a[1], b[0], a[2], c[0], c[1], b[1], a[3]]
    assert pool.reap(chain.state, 4) == [a[0], a[1], b[0], a[2]]
    chain.advance([a[0], a[1], b[0]])
    pool.update(chain.state, [sha256(raw) for raw in (a[0], a[1], b[0])])
    assert pool.reap(chain.state, 100) == [a[2], c[0], c[1], b[1], a[3]]


def test_reap_order_matches_a_plain_longest_waiting_head_first_selection() -> None:
    """Randomized: senders' nonces arrive shuffled (some wait for a gap); reap's single
    walk in admission order equals repeatedly picking, among every sender's next tx, the
    one admitted first."""
    rng = random.Random(7)
    for _ in range(60):
        chain, pool = setup(max_txs=1000)
        keys = chain.net.user_keys
        to = addr(keys[0])
        txs = [(k, n) for k in keys for n in range(rng.randrange(0, 7))]
        rng.shuffle(txs)
        admitted: list[tuple[bytes, int, bytes]] = []  # (sender, nonce, raw), in order
        for k, n in txs:
            raw = chain.transfer(k, to, 1, nonce=n).encode()
            pool.add(raw, chain.state)
            admitted.append((addr(k), n, raw))
        expected, want = [], {addr(k): 0 for k in keys}
        while True:
            heads = [i for i, (sender, n, _) in enumerate(admitted) if n == want[sender]]
            if not heads:
                break
            sender, n, raw = admitted[min(heads)]
            expected.append(raw)
            want[sender] = n + 1
        limit = rng.randrange(1, len(admitted) + 2)
        assert pool.reap(chain.state, limit) == expected[:limit]


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


def _codes_of(pool: Mempool, state, raws: list[bytes]) -> list[str]:
    out = []
    for raw in raws:
        try:
            pool.add(raw, state)
            out.append("ok")
        except MempoolReject as exc:
            out.append(exc.code)
    return out


def test_queued_txs_are_bounded_and_ready_ones_evict_them_when_full() -> None:
    """A tx waiting for a missing nonce never executes, so never pays: at most a quarter
    of the pool, and a ready tx that finds the pool full evicts the newest of them. Without
    this, gapped nonces fill every node's mempool for free and admission stops for good."""
    chain, pool = setup(max_txs=8)
    alice, bob, carol = chain.net.user_keys
    to = addr(bob)
    gapped = [chain.transfer(alice, to, 1, nonce=n).encode() for n in (5, 6, 7)]
    assert _codes_of(pool, chain.state, gapped) == ["ok", "ok", "queue_full"]
    assert pool.queued == 2
    ready = [chain.transfer(bob, to, 1, nonce=n).encode() for n in range(6)]
    assert _codes_of(pool, chain.state, ready) == ["ok"] * 6
    assert len(pool) == 8 and pool.queued == 2
    carol_txs = [chain.transfer(carol, to, 1, nonce=n).encode() for n in range(3)]
    assert _codes_of(pool, chain.state, [carol_txs[0]]) == ["ok"]  # evicts the oldest: 5
    assert sha256(gapped[0]) not in pool and sha256(gapped[1]) in pool
    late_gap = chain.transfer(carol, to, 1, nonce=9).encode()
    assert _codes_of(pool, chain.state, [late_gap]) == ["mempool_full"]  # queued: no room
    assert _codes_of(pool, chain.state, [carol_txs[1]]) == ["ok"]  # evicts alice's nonce 6
    assert len(pool) == 8 and pool.queued == 0 and pool.saturated()
    assert _codes_of(pool, chain.state, [carol_txs[2]]) == ["mempool_full"]
    assert pool.reap(chain.state, 100) == ready + carol_txs[:2]


def test_a_filled_gap_makes_queued_txs_ready_and_a_removed_tx_queues_its_successors() -> None:
    chain, pool = setup()
    alice, bob = chain.net.user_keys[:2]
    txs = [chain.transfer(alice, addr(bob), 1, nonce=n).encode() for n in range(4)]
    _codes_of(pool, chain.state, [txs[1], txs[2]])
    assert pool.queued == 2 and pool.reap(chain.state, 10) == []
    _codes_of(pool, chain.state, [txs[0]])
    assert pool.queued == 0 and pool.reap(chain.state, 10) == txs[:3]
    pool.discard([txs[1]])  # e.g. a proposer found it cannot apply
    assert pool.queued == 1 and pool.reap(chain.state, 10) == txs[:1]
    # a block from elsewhere holds nonces 1 and 2 (this node missed 1): 3 becomes ready
    _codes_of(pool, chain.state, [txs[3]])
    assert pool.queued == 2
    chain.advance(txs[:3])
    pool.update(chain.state, [sha256(raw) for raw in txs[:3]])
    assert len(pool) == 1 and pool.queued == 0 and pool.reap(chain.state, 10) == [txs[3]]


def test_the_committed_balance_must_pay_everything_pending() -> None:
    """Fees and the amounts moved, bonded or escrowed, summed over the sender's pending
    txs: a tx that could not pay would be dropped by proposers unpaid, so admitting it
    would let anyone hold mempool space for free."""
    fee = 100
    chain = Chain(make_net(balances=(3 * fee + 50, 10**9), label="mempool-fees"))
    pool = Mempool(chain.params, chain.state.chain_id, SigCache())
    poor, rich = chain.net.user_keys
    txs = [chain.transfer(poor, addr(rich), 0, nonce=n, fee=fee).encode() for n in range(4)]
    assert _codes_of(pool, chain.state, txs) == ["ok", "ok", "ok", "cannot_pay"]
    pool.discard([txs[2]])
    assert _codes_of(pool, chain.state, [txs[3]]) == ["ok"]  # queued behind 2, but paid for
    chain, fresh = setup()
    alice, bob = chain.net.user_keys[:2]
    big = [make_transfer(alice, chain.state.chain_id, addr(bob), USER_BALANCE // 2, n, fee)
           for n in range(3)]
    stake = make_tx(alice, chain.state.chain_id, Stake(USER_BALANCE), 1, fee)
    assert _codes_of(fresh, chain.state, [t.encode() for t in [*big, stake]]) == [
        "ok", "cannot_pay", "cannot_pay", "cannot_pay"]
    # a negative amount never applies: it counts as 0, not as credit for later txs
    negative = make_transfer(alice, chain.state.chain_id, addr(bob), -10**12, 1, fee)
    unstake = make_tx(alice, chain.state.chain_id, Unstake(10**12), 2, fee)  # moves nothing
    assert _codes_of(fresh, chain.state, [negative.encode(), unstake.encode(),
                                          big[1].encode()]) == ["ok", "ok", "cannot_pay"]


def test_txs_leave_after_ttl_blocks() -> None:
    chain = Chain(make_net(label="mempool-ttl"))
    pool = Mempool(chain.params, chain.state.chain_id, SigCache(), ttl_blocks=2)
    alice, bob = chain.net.user_keys[:2]
    stuck = chain.transfer(alice, addr(bob), 1, nonce=3).encode()  # waits for 0..2 forever
    _codes_of(pool, chain.state, [stuck])
    chain.advance()
    pool.update(chain.state, [])
    fresh = chain.transfer(bob, addr(alice), 1).encode()
    _codes_of(pool, chain.state, [fresh])
    assert len(pool) == 2
    chain.advance()
    pool.update(chain.state, [])  # two blocks since `stuck` came in: it goes
    assert len(pool) == 1 and pool.queued == 0 and sha256(stuck) not in pool
    assert pool.size_bytes == len(fresh)
    chain.advance()
    pool.update(chain.state, [])
    assert len(pool) == 0 and pool.size_bytes == 0
    assert _codes_of(pool, chain.state, [stuck]) == ["ok"]  # it may be sent again


def test_bookkeeping_matches_a_recount_through_random_operations() -> None:
    """Seeded random adds, discards and committed blocks; after each, the pool's queued
    count, bytes and reap order equal what a from-scratch recount of its txs gives."""
    import random

    rng = random.Random(4)
    chain, pool = setup(max_txs=12)
    users = chain.net.user_keys
    made: dict[tuple[int, int], bytes] = {}

    def tx(u: int, n: int) -> bytes:
        if (u, n) not in made:
            made[(u, n)] = chain.transfer(users[u], addr(users[(u + 1) % 3]), 1,
                                          nonce=n).encode()
        return made[(u, n)]

    def recount() -> tuple[int, int, list[bytes]]:
        queued, size, ready = 0, 0, []
        for k in users:
            mine = {e.tx.nonce: e.raw for e in pool.pending_from(addr(k))}
            size += sum(map(len, mine.values()))
            nonce = chain.nonce_of(k)
            while nonce in mine:
                ready.append(mine.pop(nonce))
                nonce += 1
            queued += len(mine)
            assert pool._queued_by.get(addr(k), 0) == len(mine)  # the per-sender cap's count
        return queued, size, ready

    for _ in range(400):
        op = rng.random()
        if op < 0.6:
            u = rng.randrange(3)
            _codes_of(pool, chain.state, [tx(u, chain.nonce_of(users[u]) + rng.randrange(6))])
        elif op < 0.75 and len(pool):
            pool.discard([rng.choice(pool.pending(100))])
        else:
            block = pool.reap(chain.state, rng.randrange(1, 6))
            chain.advance(block)
            pool.update(chain.state, [sha256(raw) for raw in block])
        queued, size, ready = recount()
        assert (pool.queued, pool.size_bytes) == (queued, size)
        assert sorted(pool.reap(chain.state, 100)) == sorted(ready)
        assert len(pool) <= 12  # (queued may pass its cap when a discard queues txs again)


def test_one_sender_queues_at_most_its_share_and_a_ready_tx_spares_its_own_successors(
        ) -> None:
    chain, pool = setup(max_txs=100_000)
    alice, bob, carol = chain.net.user_keys
    gapped = [chain.transfer(alice, addr(bob), 1, nonce=n).encode()
              for n in range(1, MAX_QUEUED_PER_SENDER + 2)]
    assert _codes_of(pool, chain.state, gapped) == ["ok"] * MAX_QUEUED_PER_SENDER + [
        "queue_full"]
    assert _codes_of(pool, chain.state, [chain.transfer(bob, addr(alice), 1, nonce=1).encode()]
                     ) == ["ok"]  # another sender still may
    chain, pool = setup(max_txs=8)
    own_next = chain.transfer(alice, addr(bob), 1, nonce=1).encode()
    other = chain.transfer(carol, addr(bob), 1, nonce=5).encode()
    ready = [chain.transfer(bob, addr(carol), 1, nonce=n).encode() for n in range(6)]
    assert _codes_of(pool, chain.state, [own_next, other, *ready]) == ["ok"] * 8
    head = chain.transfer(alice, addr(bob), 1, nonce=0).encode()
    assert _codes_of(pool, chain.state, [head]) == ["ok"]  # evicts carol's, not its own next
    assert sha256(other) not in pool and pool.queued == 0
    # longest-waiting first: bob's were admitted before alice's head (her nonce 1 rides
    # behind it, though it came first)
    assert pool.reap(chain.state, 100) == [*ready, head, own_next]


def test_after_each_block_a_new_first_tx_that_would_not_apply_is_dropped() -> None:
    """Unstaking more than is bonded pays its fee from the balance, so admission takes it;
    it would never apply. After the next block (on every node, proposer or not) it is
    dropped and the sender's txs behind it wait for its nonce again."""
    chain, pool = setup()
    alice, bob = chain.net.user_keys[:2]
    fee = chain.params.min_fee
    doomed = make_tx(alice, chain.state.chain_id, Unstake(10**12), 0, fee).encode()
    behind = [chain.transfer(alice, addr(bob), 1, nonce=n).encode() for n in (1, 2)]
    fine = [chain.transfer(bob, addr(alice), 1, nonce=n).encode() for n in (0, 1)]
    assert _codes_of(pool, chain.state, [doomed, *behind, *fine]) == ["ok"] * 5
    assert pool.queued == 0
    chain.advance()
    pool.update(chain.state, [])
    assert sha256(doomed) not in pool and pool.queued == 2
    assert pool.reap(chain.state, 10) == fine
    chain.advance(fine[:1])  # bob's next tx is checked in turn, and applies: kept
    pool.update(chain.state, [sha256(fine[0])])
    assert len(pool) == 3 and pool.reap(chain.state, 10) == fine[1:]
