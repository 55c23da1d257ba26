"""Every transaction validity rule, each rejected with its own typed error.

Each case is checked twice: inside a block (`apply_block` raises InvalidBlock whose
`__cause__` is the typed error, and the input state is untouched) and through the
per-transaction steps directly (`decode_tx`, `check_tx_signature`, `process_tx`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.codec import MAX_INT64, encode
from consensus.errors import (
    AmountOverflow,
    BadTxSignature,
    FeeTooLow,
    InsufficientFunds,
    InvalidBlock,
    InvalidTx,
    MalformedTx,
    NonceGap,
    NonceReused,
    NonPositiveAmount,
    UnknownSender,
    WrongChainId,
)
from consensus.params import MAX_AMOUNT
from consensus.state import State
from consensus.transition import check_tx_signature, decode_tx, process_tx
from consensus.tx import Transfer, Tx, make_transfer
from genesis.presets import DEVNET
from tests.unit.helpers import (
    USER_BALANCE,
    Chain,
    addr,
    flip_byte,
    key,
    make_net,
    unsigned_transfer,
)

MIN_FEE = DEVNET.min_fee


def used_chain() -> Chain:
    """A dev chain after one block in which user 0 spent nonce 0 (so its nonce is 1)."""
    chain = Chain(make_net(label="txrules"))
    alice, bob, _ = chain.net.user_keys
    chain.advance([chain.transfer(alice, addr(bob), 1_000).encode()])
    assert chain.nonce_of(alice) == 1
    return chain


@pytest.fixture
def chain() -> Chain:
    return used_chain()


@dataclass(frozen=True)
class Case:
    make: Callable[[Chain], bytes]
    error: type[InvalidTx]


def _send(chain: Chain, amount: int, **kw: int) -> bytes:
    alice, bob, _ = chain.net.user_keys
    return chain.transfer(alice, addr(bob), amount, **kw).encode()


def _balance(chain: Chain) -> int:
    return chain.balance_of(addr(chain.net.user_keys[0]))


def _bad_signature(chain: Chain) -> bytes:
    tx = chain.transfer(chain.net.user_keys[0], addr(chain.net.user_keys[1]), 5)
    return Tx(tx.chain_id, tx.sender_pubkey, tx.nonce, tx.fee, tx.body,
              flip_byte(tx.signature, 10)).encode()


def _signed_by_another_key(chain: Chain) -> bytes:
    alice, bob, carol = chain.net.user_keys
    tx = unsigned_transfer(alice, chain.state.chain_id, addr(bob), 5, 1, MIN_FEE)
    forged = Tx(tx.chain_id, tx.sender_pubkey, tx.nonce, tx.fee, tx.body,
                make_transfer(carol, tx.chain_id, addr(bob), 5, 1, MIN_FEE).signature)
    return forged.encode()


def _changed_after_signing(chain: Chain) -> bytes:
    tx = chain.transfer(chain.net.user_keys[0], addr(chain.net.user_keys[1]), 5)
    return Tx(tx.chain_id, tx.sender_pubkey, tx.nonce, tx.fee, Transfer(tx.body.to, 6),
              tx.signature).encode()


def _unsigned(chain: Chain) -> bytes:
    tx = unsigned_transfer(chain.net.user_keys[0], chain.state.chain_id,
                           addr(chain.net.user_keys[1]), 5, 1, MIN_FEE)
    return Tx(tx.chain_id, tx.sender_pubkey, tx.nonce, tx.fee, tx.body, bytes(64)).encode()


def _unknown_sender(chain: Chain) -> bytes:
    stranger = key("txrules/stranger")
    return make_transfer(stranger, chain.state.chain_id, addr(chain.net.user_keys[1]), 5, 0,
                         MIN_FEE).encode()


def _unknown_kind(chain: Chain) -> bytes:
    fields = [1, chain.state.chain_id, 200, chain.net.user_keys[0].public, 1, MIN_FEE,
              [addr(chain.net.user_keys[1]), 5], bytes(64)]
    return encode(fields)


def _oversized(chain: Chain) -> bytes:
    return _send(chain, 5) + bytes(chain.params.max_tx_bytes)


CASES: dict[str, Case] = {
    "bad signature": Case(_bad_signature, BadTxSignature),
    "signed by another key": Case(_signed_by_another_key, BadTxSignature),
    "changed after signing": Case(_changed_after_signing, BadTxSignature),
    "zero signature": Case(_unsigned, BadTxSignature),
    "wrong chain id": Case(lambda c: _send(c, 5, chain_id="jevons-other"), WrongChainId),
    "nonce reused": Case(lambda c: _send(c, 5, nonce=0), NonceReused),
    "nonce skipped": Case(lambda c: _send(c, 5, nonce=2), NonceGap),
    "nonce far ahead": Case(lambda c: _send(c, 5, nonce=2**64 - 1), NonceGap),
    "overspend by one": Case(lambda c: _send(c, _balance(c) - MIN_FEE + 1), InsufficientFunds),
    "fee pushes over balance": Case(lambda c: _send(c, _balance(c), fee=MIN_FEE),
                                    InsufficientFunds),
    "huge fee": Case(lambda c: _send(c, 1, fee=_balance(c)), InsufficientFunds),
    "amount 2**63": Case(lambda c: _send(c, 2**63), AmountOverflow),
    "amount 2**64 - 1": Case(lambda c: _send(c, 2**64 - 1), AmountOverflow),
    "amount MAX plus fee": Case(lambda c: _send(c, MAX_AMOUNT), AmountOverflow),
    "amount + fee one above MAX": Case(lambda c: _send(c, MAX_AMOUNT - MIN_FEE + 1),
                                       AmountOverflow),
    "fee 2**63": Case(lambda c: _send(c, 1, fee=2**63), AmountOverflow),
    "fee 2**64 - 1": Case(lambda c: _send(c, 1, fee=2**64 - 1), AmountOverflow),
    "zero amount": Case(lambda c: _send(c, 0), NonPositiveAmount),
    "negative amount": Case(lambda c: _send(c, -1), NonPositiveAmount),
    "most negative amount": Case(lambda c: _send(c, -MAX_INT64), NonPositiveAmount),
    "fee one below minimum": Case(lambda c: _send(c, 5, fee=MIN_FEE - 1), FeeTooLow),
    "zero fee": Case(lambda c: _send(c, 5, fee=0), FeeTooLow),
    "negative fee": Case(lambda c: _send(c, 5, fee=-MIN_FEE), FeeTooLow),
    "unknown sender": Case(_unknown_sender, UnknownSender),
    "garbage bytes": Case(lambda c: b"\x01garbage", MalformedTx),
    "empty bytes": Case(lambda c: b"", MalformedTx),
    "truncated tx": Case(lambda c: _send(c, 5)[:-1], MalformedTx),
    "trailing byte": Case(lambda c: _send(c, 5) + b"\x00", MalformedTx),
    "unknown kind": Case(_unknown_kind, MalformedTx),
    "over max_tx_bytes": Case(_oversized, MalformedTx),
}


def snapshot(state: State) -> tuple:
    return (state.root(), dict(state.accounts), state.height, state.last_block_hash,
            state.supply.to_fields())


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_rejects_the_block(chain: Chain, case: Case) -> None:
    raw = case.make(chain)
    before = snapshot(chain.state)
    block = chain.build([raw])
    with pytest.raises(InvalidBlock, match=r"tx 0 \(") as info:
        chain.apply(block)
    assert type(info.value.__cause__) is case.error
    assert info.value.__cause__.reason in info.value.reason
    assert snapshot(chain.state) == before


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_rejects_the_tx_directly(chain: Chain, case: Case) -> None:
    raw = case.make(chain)
    state = chain.state.copy()
    before = snapshot(state)
    with pytest.raises(InvalidTx) as info:
        tx = decode_tx(raw, chain.params)
        check_tx_signature(tx, raw, state.chain_id, None)
        process_tx(state, tx, chain.params)
    assert type(info.value) is case.error
    assert snapshot(state) == before  # a rejected tx writes nothing, even on a working copy


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_rejects_a_block_after_valid_txs(chain: Chain, case: Case) -> None:
    """A bad tx after good ones still fails the whole block, and nothing is kept."""
    _, bob, carol = chain.net.user_keys
    good = [chain.transfer(bob, addr(carol), 10).encode(),
            chain.transfer(carol, addr(bob), 10).encode()]
    before = snapshot(chain.state)
    with pytest.raises(InvalidBlock, match=r"tx 2 \(") as info:
        chain.apply(chain.build([*good, case.make(chain)]))
    assert type(info.value.__cause__) is case.error
    assert snapshot(chain.state) == before
    chain.apply(chain.build(good))  # the good ones alone are fine


def test_oversized_tx_is_refused_before_decoding(chain: Chain) -> None:
    with pytest.raises(MalformedTx, match="limit"):
        decode_tx(_oversized(chain), chain.params)


def test_unknown_kind_is_malformed(chain: Chain) -> None:
    with pytest.raises(MalformedTx, match="unknown transaction kind 200"):
        decode_tx(_unknown_kind(chain), chain.params)


def test_exact_balance_is_spendable(chain: Chain) -> None:
    alice, bob, _ = chain.net.user_keys
    balance = chain.balance_of(addr(alice))
    state = chain.apply(chain.build([chain.transfer(alice, addr(bob), balance - MIN_FEE)
                                     .encode()]))
    assert state.accounts[addr(alice)].balance == 0
    assert state.accounts[addr(alice)].nonce == 2


def test_emptied_account_keeps_its_nonce(chain: Chain) -> None:
    """An emptied account is not deleted, so its old transactions cannot be replayed."""
    alice, bob, _ = chain.net.user_keys
    spend = chain.transfer(alice, addr(bob), chain.balance_of(addr(alice)) - MIN_FEE).encode()
    chain.advance([spend])
    assert chain.state.accounts[addr(alice)] == (0, 2)
    refund = chain.transfer(bob, addr(alice), 10 * MIN_FEE).encode()
    chain.advance([refund])
    with pytest.raises(InvalidBlock) as info:
        chain.apply(chain.build([spend]))
    assert type(info.value.__cause__) is NonceReused


def test_same_tx_twice_in_one_block_is_nonce_reuse(chain: Chain) -> None:
    raw = _send(chain, 5)
    chain.apply(chain.build([raw]))
    with pytest.raises(InvalidBlock, match=r"tx 1 \(") as info:
        chain.apply(chain.build([raw, raw]))
    assert type(info.value.__cause__) is NonceReused


def test_consecutive_nonces_in_one_block(chain: Chain) -> None:
    alice, bob, _ = chain.net.user_keys
    txs = [chain.transfer(alice, addr(bob), 5, nonce=n).encode() for n in (1, 2, 3)]
    state = chain.apply(chain.build(txs))
    assert state.accounts[addr(alice)].nonce == 4
    with pytest.raises(InvalidBlock) as info:
        chain.apply(chain.build([txs[0], txs[2]]))
    assert type(info.value.__cause__) is NonceGap


def test_overspend_over_two_txs_in_one_block(chain: Chain) -> None:
    alice, bob, _ = chain.net.user_keys
    half = chain.balance_of(addr(alice)) // 2
    txs = [chain.transfer(alice, addr(bob), half, nonce=n).encode() for n in (1, 2)]
    with pytest.raises(InvalidBlock, match=r"tx 1 \(") as info:
        chain.apply(chain.build(txs))
    assert type(info.value.__cause__) is InsufficientFunds


def test_transfer_to_a_new_address_creates_the_account(chain: Chain) -> None:
    alice = chain.net.user_keys[0]
    fresh = key("txrules/fresh")
    assert chain.state.get_account(addr(fresh)) is None
    state = chain.apply(chain.build([chain.transfer(alice, addr(fresh), 777).encode()]))
    assert state.accounts[addr(fresh)] == (777, 0)


def test_self_transfer_costs_only_the_fee(chain: Chain) -> None:
    alice = chain.net.user_keys[0]
    balance = chain.balance_of(addr(alice))
    state = chain.apply(chain.build([chain.transfer(alice, addr(alice), balance - MIN_FEE)
                                     .encode()]))
    assert state.accounts[addr(alice)] == (balance - MIN_FEE, 2)


def test_chain_id_is_checked_before_the_signature(chain: Chain) -> None:
    """A tx for another chain is WrongChainId even when its signature is also bad."""
    tx = Tx.decode(_send(chain, 5, chain_id="jevons-other"))
    broken = Tx(tx.chain_id, tx.sender_pubkey, tx.nonce, tx.fee, tx.body, bytes(64))
    with pytest.raises(WrongChainId):
        check_tx_signature(broken, broken.encode(), chain.state.chain_id, None)


# --- overflow of a recipient balance (only reachable past the genesis supply cap) -----------


def overfull_chain() -> Chain:
    """Two accounts whose balances sum above MAX_AMOUNT: a Genesis built directly, past the
    limit parse_genesis enforces, to reach the recipient-overflow rule."""
    return Chain(make_net(balances=(2**62, MAX_AMOUNT - 10, 1_000), label="overflow"))


def test_recipient_balance_overflow_rejects_the_block() -> None:
    chain = overfull_chain()
    alice, bob, _ = chain.net.user_keys
    before = snapshot(chain.state)
    with pytest.raises(InvalidBlock) as info:
        chain.apply(chain.build([chain.transfer(alice, addr(bob), 11).encode()]))
    assert type(info.value.__cause__) is AmountOverflow
    assert snapshot(chain.state) == before


def test_recipient_balance_overflow_writes_nothing_directly() -> None:
    chain = overfull_chain()
    alice, bob, _ = chain.net.user_keys
    state = chain.state.copy()
    before = snapshot(state)
    tx = chain.transfer(alice, addr(bob), 11)
    with pytest.raises(AmountOverflow):
        process_tx(state, tx, chain.params)
    assert snapshot(state) == before
    assert process_tx(state, chain.transfer(alice, addr(bob), 10), chain.params) == MIN_FEE
    assert state.accounts[addr(bob)].balance == MAX_AMOUNT


# --- rules that depend on the parameters ------------------------------------------------------


def test_negative_fee_is_refused_even_when_the_minimum_fee_is_zero() -> None:
    from dataclasses import replace

    chain = Chain(make_net(params=replace(DEVNET, min_fee=0), label="freefee"))
    alice, bob, _ = chain.net.user_keys
    free = chain.transfer(alice, addr(bob), 5, fee=0).encode()
    assert chain.apply(chain.build([free])).accounts[addr(alice)] == (USER_BALANCE - 5, 1)
    negative = chain.transfer(alice, addr(bob), 5, fee=-1_000).encode()
    with pytest.raises(InvalidBlock) as info:
        chain.apply(chain.build([negative]))
    assert type(info.value.__cause__) is FeeTooLow


# --- a random mix: each tx is accepted or refused exactly as a simple model predicts -----


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2),
                          st.sampled_from([0, 1, 5, USER_BALANCE // 2, USER_BALANCE, -3]),
                          st.sampled_from([MIN_FEE - 1, MIN_FEE, 1000]),
                          st.integers(-1, 1)),
                min_size=1, max_size=8))
@settings(deadline=None, max_examples=40)
def test_process_tx_agrees_with_a_model(ops: list[tuple[int, int, int, int, int]]) -> None:
    chain = Chain(make_net(label="model"))
    keys = chain.net.user_keys
    state = chain.state.copy()
    model = {addr(k): [USER_BALANCE, 0] for k in keys}
    for s, r, amount, fee, nonce_shift in ops:
        sender, to = addr(keys[s]), addr(keys[r])
        nonce = max(0, model[sender][1] + nonce_shift)
        tx = make_transfer(keys[s], chain.state.chain_id, to, amount, nonce, fee)
        expected: type[InvalidTx] | None = None
        if nonce < model[sender][1]:
            expected = NonceReused
        elif nonce > model[sender][1]:
            expected = NonceGap
        elif fee < MIN_FEE:
            expected = FeeTooLow
        elif amount <= 0:
            expected = NonPositiveAmount
        elif amount + fee > model[sender][0]:
            expected = InsufficientFunds
        before = state.root()
        if expected is None:
            assert process_tx(state, tx, chain.params) == fee
            model[sender][0] -= amount + fee
            model[sender][1] += 1
            model[to][0] += amount
        else:
            with pytest.raises(expected):
                process_tx(state, tx, chain.params)
            assert state.root() == before
        assert {a: list(state.accounts[a]) for a in model} == model
