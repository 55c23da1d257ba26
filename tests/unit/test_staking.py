"""Staking, unbonding, validator-set changes at H+2, and double-sign evidence slashing."""

from __future__ import annotations

import pytest

from consensus.builder import build_block
from consensus.errors import (
    InsufficientStake,
    InvalidBlock,
    InvalidEvidence,
    NonPositiveAmount,
    ValidatorTombstoned,
    WouldHaltChain,
)
from consensus.evidence import DuplicateVoteEvidence
from consensus.hashing import sha256
from consensus.params import BPS
from consensus.staking import compute_validator_set
from consensus.state import validators_hash
from consensus.tx import Stake, Unstake, make_tx
from consensus.vote import Vote, VoteType
from tests.unit.helpers import Chain, addr, make_net

STAKE = 10**12


def net4():
    return make_net(stakes=(STAKE,) * 4, balances=(10**13,) * 2, label="staking")


def staking_tx(chain: Chain, k, body) -> bytes:
    return make_tx(k, chain.state.chain_id, body, chain.nonce_of(k),
                   chain.params.min_fee).encode()


def signers_of(chain: Chain) -> list:
    """Keys of the validators that sign the next commit (the set of the last block)."""
    keys = {addr(k): k for k in chain.net.validator_keys + chain.net.user_keys}
    return [keys[v.address] for v in chain.state.last_validators]


def accept(chain: Chain, txs=(), evidence=()) -> None:
    block = build_block(chain.state, list(txs), chain.proposer(),
                        chain.state.time_ms + 1_000, chain.last_commit, tuple(evidence))
    chain.state = chain.apply(block)
    chain.last_commit = chain.commit(block, signers_of(chain))


def test_stake_joins_the_validator_set_two_blocks_later() -> None:
    chain = Chain(net4())
    user = chain.net.user_keys[0]
    accept(chain)
    h = chain.state.height + 1  # the block carrying the stake tx
    before = chain.state.total_balances_and_stakes()
    accept(chain, [staking_tx(chain, user, Stake(STAKE))])
    assert chain.state.staking.bonded[addr(user)].stake == STAKE
    assert addr(user) in {v.address for v in chain.state.next_validators}  # signs h + 2
    assert addr(user) not in {v.address for v in chain.state.validators}  # not h + 1
    accept(chain)  # block h + 1
    assert chain.state.height == h + 1
    assert addr(user) in {v.address for v in chain.state.validators}
    block = chain.build([])
    assert block.header.validators_hash == validators_hash(chain.state.validators)
    assert chain.state.total_balances_and_stakes() == chain.state.supply.expected_total
    assert before <= chain.state.total_balances_and_stakes()


def test_unstake_unbonds_then_pays_out() -> None:
    net = net4()
    chain = Chain(net)
    v = net.validator_keys[0]
    accept(chain)  # validators earn their first reward: an account to pay fees from
    balance = chain.balance_of(addr(v))
    accept(chain, [staking_tx(chain, v, Unstake(STAKE // 4))])
    unbonding = chain.state.staking.unbonding
    assert [(u.address, u.amount) for u in unbonding] == [(addr(v), STAKE // 4)]
    release = unbonding[0].release_height
    assert release == 2 + chain.params.unbonding_blocks
    while chain.state.height < release - 1:
        accept(chain)
        assert chain.state.total_balances_and_stakes() == chain.state.supply.expected_total
    assert chain.state.staking.unbonding
    accept(chain)
    assert not chain.state.staking.unbonding
    assert chain.balance_of(addr(v)) >= balance + STAKE // 4 - chain.params.min_fee


@pytest.mark.parametrize(("body", "error"), [
    (Unstake(STAKE + 1), InsufficientStake),
    (Unstake(0), NonPositiveAmount),
    (Stake(0), NonPositiveAmount),
    (Stake(-5), NonPositiveAmount),
])
def test_staking_validity_rules(body, error) -> None:
    chain = Chain(net4())
    accept(chain)
    k = chain.net.validator_keys[1]
    with pytest.raises(InvalidBlock) as info:
        chain.apply(chain.build([staking_tx(chain, k, body)]))
    assert isinstance(info.value.__cause__, error)


def test_last_validator_cannot_unstake() -> None:
    chain = Chain(make_net(label="solo"))
    accept(chain)
    k = chain.net.validator_keys[0]
    root = chain.state.root()
    with pytest.raises(InvalidBlock) as info:
        chain.apply(chain.build([staking_tx(chain, k, Unstake(10**12))]))
    assert isinstance(info.value.__cause__, WouldHaltChain)
    assert chain.state.root() == root


def equivocation(chain: Chain, k, height: int = 1) -> DuplicateVoteEvidence:
    votes = [Vote(VoteType.PREVOTE, height, 0, sha256(label), addr(k)).signed(
        k, chain.state.chain_id) for label in (b"x", b"y")]
    return DuplicateVoteEvidence.of(*votes)


def test_double_sign_evidence_slashes_and_tombstones() -> None:
    chain = Chain(net4())
    accept(chain)
    bad = chain.net.validator_keys[2]
    evidence = equivocation(chain, bad)
    supply = chain.state.supply.expected_total
    accept(chain, evidence=[evidence.encode()])
    cut = STAKE * chain.params.slash_double_sign_bps // BPS
    assert chain.state.supply.slashed == cut
    assert chain.state.supply.expected_total == supply + chain.params.block_reward - cut
    assert chain.state.total_balances_and_stakes() == chain.state.supply.expected_total
    assert addr(bad) in chain.state.staking.tombstoned
    assert addr(bad) not in chain.state.staking.bonded
    assert addr(bad) not in {v.address for v in chain.state.next_validators}
    assert [u.amount for u in chain.state.staking.unbonding] == [STAKE - cut]
    # punished once: the same evidence again is refused, and so is staking again
    with pytest.raises(InvalidEvidence, match="already slashed"):
        chain.apply(_with_evidence(chain, [evidence.encode()]))
    with pytest.raises(InvalidBlock) as info:
        chain.apply(chain.build([staking_tx(chain, bad, Stake(1))]))
    assert isinstance(info.value.__cause__, ValidatorTombstoned)


def _with_evidence(chain: Chain, evidence: list[bytes]):
    return build_block(chain.state, [], chain.proposer(), chain.state.time_ms + 1_000,
                       chain.last_commit, tuple(evidence))


def test_bad_evidence_is_refused_with_a_reason() -> None:
    chain = Chain(net4())
    accept(chain)
    k = chain.net.validator_keys[1]
    good = equivocation(chain, k)
    forged = DuplicateVoteEvidence(good.vote_a, Vote(good.vote_b.type, good.vote_b.height, 0,
                                                     good.vote_b.block_hash, addr(k),
                                                     b"\x00" * 64))
    stranger = equivocation(chain, chain.net.user_keys[0])
    future = equivocation(chain, k, height=5)
    swapped = good.encode().replace(good.vote_a.to_fields()[3], b"\xff" * 32, 1)
    cases = [
        (forged.encode(), "does not verify"),
        (stranger.encode(), "not a bonded validator"),
        (future.encode(), "from the future"),
        (b"\x93\x01\x02\x03", "evidence 0"),
        (swapped, "evidence 0"),
    ]
    for raw, reason in cases:
        with pytest.raises(InvalidEvidence, match=reason):
            chain.apply(_with_evidence(chain, [raw]))


def test_old_evidence_expires() -> None:
    chain = Chain(net4())
    accept(chain)
    evidence = equivocation(chain, chain.net.validator_keys[0], height=1)
    while chain.state.height + 1 - 1 <= chain.params.evidence_max_age:
        accept(chain)
    with pytest.raises(InvalidEvidence, match="blocks old"):
        chain.apply(_with_evidence(chain, [evidence.encode()]))


def test_validator_set_is_top_stake_above_minimum() -> None:
    chain = Chain(net4())
    staking = chain.state.staking.copy()
    params = chain.params
    entries = list(staking.bonded.values())
    from dataclasses import replace
    staking.bonded[entries[0].address] = replace(entries[0], stake=params.min_validator_stake - 1)
    chosen = compute_validator_set(staking, replace(params, max_validators=2))
    assert len(chosen) == 2
    assert entries[0].address not in {v.address for v in chosen}
    assert list(chosen) == sorted(chosen, key=lambda v: v.address)


def test_genesis_refuses_a_validator_below_the_minimum_stake() -> None:
    import json

    from consensus.errors import InvalidGenesis
    from genesis.document import parse_genesis

    doc = net4().genesis.to_json()
    doc["validators"][2]["stake"] = doc["params"]["min_validator_stake"] - 1
    with pytest.raises(InvalidGenesis, match=r"validators\[2\]\.stake: .* below"):
        parse_genesis(json.loads(json.dumps(doc)))


def test_block_hash_covers_evidence() -> None:
    """Evidence changes state (slashing), so a block whose evidence differs from what its
    header commits to is refused: one hash, one state."""
    from consensus.block import Block

    chain = Chain(net4())
    accept(chain)
    evidence = equivocation(chain, chain.net.validator_keys[2]).encode()
    with_ev = _with_evidence(chain, [evidence])
    stripped = Block(with_ev.header, with_ev.txs, (), with_ev.last_commit)
    added = _with_evidence(chain, [])
    added = Block(added.header, added.txs, (evidence,), added.last_commit)
    for block in (stripped, added):
        with pytest.raises(InvalidBlock, match="evidence_root"):
            chain.apply(block)
    assert chain.apply(with_ev).supply.slashed > 0
