"""Header and last-commit rules: each broken rule raises InvalidBlock with its reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.block import Block
from consensus.errors import InvalidBlock, InvalidCommit
from consensus.hashing import sha256
from consensus.state import State, validators_hash
from consensus.transition import apply_block
from consensus.vote import Commit, CommitSig, make_commit, verify_commit
from genesis.presets import DEVNET
from tests.unit.helpers import (
    Chain,
    addr,
    flip_byte,
    key,
    make_net,
    sign_commit,
    with_header,
)

FOUR_EQUAL = (10, 10, 10, 10)


def chain_at_height_1(stakes: tuple[int, ...] = FOUR_EQUAL, label: str = "blocks") -> Chain:
    chain = Chain(make_net(stakes=stakes, label=label))
    chain.advance()
    return chain


@pytest.fixture
def chain() -> Chain:
    return chain_at_height_1()


def snapshot(state: State) -> tuple:
    return (state.root(), state.height, state.time_ms, state.last_block_hash,
            dict(state.accounts), state.supply.to_fields())


def expect_invalid(chain: Chain, block: Block, reason: str,
                   error: type[InvalidBlock] = InvalidBlock) -> InvalidBlock:
    before = snapshot(chain.state)
    with pytest.raises(error, match=reason) as info:
        chain.apply(block)
    assert snapshot(chain.state) == before
    return info.value


def test_valid_block_is_accepted(chain: Chain) -> None:
    block = chain.build()
    state = chain.apply(block)
    assert state.height == 2
    assert state.last_block_hash == block.hash()
    assert state.time_ms == block.header.time_ms


HEADER_BREAKS = {
    "chain id": ({"chain_id": "jevons-other"}, "chain id"),
    "height too high": ({"height": 3}, "height 3, expected 2"),
    "height repeated": ({"height": 1}, "height 1, expected 2"),
    "prev hash": ({"prev_hash": sha256(b"elsewhere")}, "prev_hash"),
    "state root": ({"state_root": sha256(b"another state")}, "state_root"),
    "validators hash": ({"validators_hash": sha256(b"other validators")}, "validators_hash"),
    "last commit hash": ({"last_commit_hash": sha256(b"other commit")}, "last_commit_hash"),
    "tx root": ({"tx_root": sha256(b"other txs")}, "tx_root"),
    "proposer": ({"proposer": addr(key("blocks/outsider"))}, "is not a validator"),
}


@pytest.mark.parametrize(("changes", "reason"), HEADER_BREAKS.values(),
                         ids=HEADER_BREAKS.keys())
def test_broken_header_field(chain: Chain, changes: dict, reason: str) -> None:
    block = chain.build()
    expect_invalid(chain, with_header(block, **changes), reason)


@pytest.mark.parametrize("delta_ms", [0, -1, -1_000])
def test_time_must_increase(chain: Chain, delta_ms: int) -> None:
    block = chain.build(time_ms=chain.state.time_ms + delta_ms)
    expect_invalid(chain, block, "is not after the previous")
    chain.apply(chain.build(time_ms=chain.state.time_ms + 1))


def test_state_root_of_genesis_block_is_the_genesis_state() -> None:
    chain = Chain(make_net(stakes=FOUR_EQUAL, label="blocks"))
    block = chain.build()
    assert block.header.state_root == chain.state.root()
    assert block.header.prev_hash == chain.net.genesis.hash()
    expect_invalid(chain, with_header(block, prev_hash=sha256(b"x")), "prev_hash")


def test_validators_hash_binds_the_set(chain: Chain) -> None:
    shuffled = tuple(reversed(chain.state.validators))
    assert validators_hash(shuffled) != validators_hash(chain.state.validators)
    expect_invalid(chain, with_header(chain.build(), validators_hash=validators_hash(shuffled)),
                   "validators_hash")


def test_tx_root_binds_the_order_of_txs() -> None:
    chain = chain_at_height_1()
    a, b, c = chain.net.user_keys
    txs = [chain.transfer(a, addr(b), 5).encode(), chain.transfer(b, addr(c), 5).encode()]
    block = chain.build(txs)
    swapped = Block(block.header, tuple(reversed(txs)), (), block.last_commit)
    expect_invalid(chain, swapped, "tx_root")
    dropped = Block(block.header, (txs[0],), (), block.last_commit)
    expect_invalid(chain, dropped, "tx_root")
    chain.apply(block)


def test_too_many_txs() -> None:
    chain = Chain(make_net(params=replace(DEVNET, max_block_txs=2), label="toomany"))
    a, b, c = chain.net.user_keys
    txs = [chain.transfer(a, addr(b), 5).encode(), chain.transfer(b, addr(c), 5).encode(),
           chain.transfer(c, addr(a), 5).encode()]
    expect_invalid(chain, chain.build(txs), "3 txs, limit is 2")
    chain.apply(chain.build(txs[:2]))


def test_evidence_is_not_accepted(chain: Chain) -> None:
    block = chain.build()
    with_evidence = Block(block.header, block.txs, (b"evidence",), block.last_commit)
    expect_invalid(chain, with_evidence, "evidence")


def test_params_must_match_the_state(chain: Chain) -> None:
    with pytest.raises(InvalidBlock, match="parameters"):
        apply_block(chain.state, chain.build(), replace(chain.params, min_fee=1))


# --- the last commit --------------------------------------------------------------------


def test_block_1_must_carry_the_empty_commit() -> None:
    chain = Chain(make_net(stakes=FOUR_EQUAL, label="blocks"))
    fake = sign_commit(chain.state.last_block_hash, 1, chain.net.validator_keys,
                       chain.state.chain_id)
    expect_invalid(chain, chain.build(last_commit=fake), "block 1 must carry the empty")
    chain.apply(chain.build(last_commit=Commit.empty()))


def test_block_2_needs_a_commit(chain: Chain) -> None:
    expect_invalid(chain, chain.build(last_commit=Commit.empty()), "height 0, expected 1",
                   InvalidCommit)


def with_commit(chain: Chain, commit: Commit) -> Block:
    return chain.build(last_commit=commit)


def test_commit_for_the_wrong_block(chain: Chain) -> None:
    other = sha256(b"a different block")
    commit = sign_commit(other, 1, chain.net.validator_keys, chain.state.chain_id)
    expect_invalid(chain, with_commit(chain, commit), "different block", InvalidCommit)


def test_commit_for_the_wrong_height(chain: Chain) -> None:
    commit = sign_commit(chain.state.last_block_hash, 2, chain.net.validator_keys,
                         chain.state.chain_id)
    expect_invalid(chain, with_commit(chain, commit), "height 2, expected 1", InvalidCommit)


def test_commit_with_a_bad_signature(chain: Chain) -> None:
    good = chain.last_commit
    sigs = list(good.signatures)
    sigs[1] = CommitSig(sigs[1].validator, flip_byte(sigs[1].signature, 5))
    bad = Commit(good.height, good.round, good.block_hash, tuple(sigs))
    expect_invalid(chain, with_commit(chain, bad), "bad precommit signature", InvalidCommit)


def test_commit_signed_for_another_chain(chain: Chain) -> None:
    commit = sign_commit(chain.state.last_block_hash, 1, chain.net.validator_keys,
                         "jevons-other")
    expect_invalid(chain, with_commit(chain, commit), "bad precommit signature", InvalidCommit)


def test_commit_with_a_signature_moved_to_another_round(chain: Chain) -> None:
    good = chain.last_commit
    moved = Commit(good.height, good.round + 1, good.block_hash, good.signatures)
    expect_invalid(chain, with_commit(chain, moved), "bad precommit signature", InvalidCommit)


def test_commit_signed_by_a_non_validator(chain: Chain) -> None:
    outsider = key("blocks/outsider")
    signers = [*chain.net.validator_keys, outsider]
    commit = sign_commit(chain.state.last_block_hash, 1, signers, chain.state.chain_id)
    expect_invalid(chain, with_commit(chain, commit), "non-validator", InvalidCommit)


def test_commit_with_a_repeated_signer_does_not_count_twice(chain: Chain) -> None:
    """Two of four signers, each listed twice: still only half the stake."""
    two = sign_commit(chain.state.last_block_hash, 1, chain.net.validator_keys[:2],
                      chain.state.chain_id)
    doubled = Commit(two.height, two.round, two.block_hash,
                     tuple(sorted(two.signatures * 2, key=lambda s: s.validator)))
    expect_invalid(chain, with_commit(chain, doubled), "repeated", InvalidCommit)


def signers_by_stake(chain: Chain, stakes: list[int]) -> list:
    """Validator keys picked by the stake each was given in genesis (in genesis order)."""
    by_stake: dict[int, list] = {}
    for k, v in zip(chain.net.validator_keys, chain.net.genesis.validators, strict=True):
        by_stake.setdefault(v.stake, []).append(k)
    return [by_stake[s].pop() for s in stakes]


QUORUM_CASES = {
    "4 equal, 2 sign": (FOUR_EQUAL, [10, 10], False),
    "4 equal, 3 sign": (FOUR_EQUAL, [10, 10, 10], True),
    "4 equal, 4 sign": (FOUR_EQUAL, [10, 10, 10, 10], True),
    "4 equal, none sign": (FOUR_EQUAL, [], False),
    "70 alone": ((70, 10, 10, 10), [70], True),
    "three small": ((70, 10, 10, 10), [10, 10, 10], False),
    "exactly 2/3": ((2, 2, 1, 1), [2, 2], False),
    "just above 2/3": ((2, 2, 1, 1), [2, 2, 1], True),
    "66 of 100": ((66, 14, 10, 10), [66], False),
    "67 of 100": ((67, 13, 10, 10), [67], True),
}


@pytest.mark.parametrize(("stakes", "signing", "passes"), QUORUM_CASES.values(),
                         ids=QUORUM_CASES.keys())
def test_commit_quorum_is_more_than_two_thirds_of_stake(stakes: tuple[int, ...],
                                                         signing: list[int],
                                                         passes: bool) -> None:
    chain = chain_at_height_1(stakes, label=f"quorum/{stakes}")
    commit = sign_commit(chain.state.last_block_hash, 1, signers_by_stake(chain, signing),
                         chain.state.chain_id)
    block = with_commit(chain, commit)
    if passes:
        assert chain.apply(block).height == 2
    else:
        expect_invalid(chain, block, f"has {sum(signing)} of {sum(stakes)} stake",
                       InvalidCommit)


def test_verify_commit_returns_the_signed_stake() -> None:
    chain = chain_at_height_1((70, 10, 10, 10), label="stake")
    validators = chain.state.validator_map(chain.state.last_validators)
    commit = sign_commit(chain.state.last_block_hash, 1, signers_by_stake(chain, [70, 10]),
                         chain.state.chain_id)
    assert verify_commit(commit, chain.state.chain_id, 1, chain.state.last_block_hash,
                         validators) == 80


def test_make_commit_keeps_only_matching_precommits(chain: Chain) -> None:
    from consensus.vote import Vote, VoteType

    h = chain.state.last_block_hash
    k0, k1, k2, k3 = chain.net.validator_keys
    cid = chain.state.chain_id
    votes = [Vote(VoteType.PRECOMMIT, 1, 0, h, addr(k0)).signed(k0, cid),
             Vote(VoteType.PREVOTE, 1, 0, h, addr(k1)).signed(k1, cid),
             Vote(VoteType.PRECOMMIT, 1, 1, h, addr(k2)).signed(k2, cid),
             Vote(VoteType.PRECOMMIT, 1, 0, b"", addr(k3)).signed(k3, cid)]
    commit = make_commit(1, 0, h, votes)
    assert [s.validator for s in commit.signatures] == [addr(k0)]


def test_commit_uses_the_previous_validator_set_and_chain_keeps_going(chain: Chain) -> None:
    for _ in range(3):
        chain.advance()
    assert chain.state.height == 4
    assert chain.state.last_validators == chain.state.validators


def test_rejected_block_leaves_the_input_state_usable(chain: Chain) -> None:
    bad = with_header(chain.build(), state_root=sha256(b"x"))
    expect_invalid(chain, bad, "state_root")
    good = chain.build()
    state = apply_block(chain.state, good, chain.params)
    assert state.height == chain.state.height + 1


def test_commit_with_unsorted_signatures(chain: Chain) -> None:
    """Two orders of the same signatures would give one block two hashes: only sorted."""
    good = chain.last_commit
    unsorted = Commit(good.height, good.round, good.block_hash, tuple(reversed(good.signatures)))
    expect_invalid(chain, with_commit(chain, unsorted), "not sorted", InvalidCommit)
    chain.apply(with_commit(chain, good))
