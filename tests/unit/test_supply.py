"""Supply accounting: the sum of balances and stakes always equals genesis + minted - burned.

The property test runs random block sequences (random valid transfers among a handful of
accounts and fresh addresses, rotating proposers, with invalid transactions mixed in that
must be refused without changing state) and checks every block against a plain model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from consensus.errors import InvalidBlock, InvariantViolation
from consensus.params import BPS, MAX_AMOUNT, ChainParams
from consensus.state import Account
from consensus.transition import check_supply_delta, compute_reward_shares
from genesis.presets import DEVNET
from tests.unit.helpers import Chain, addr, key, make_net

STAKES = (40, 25, 20, 15)
BALANCES = (10**7, 10**6, 10**5, 5 * 10**4)
FRESH = [addr(key(f"supply/fresh/{i}")) for i in range(2)]


@dataclass(frozen=True)
class TxSpec:
    sender: int
    to: int  # index into users, or len(users)+i for FRESH[i]
    amount_permille: int  # of the sender's balance, 0..1100 (above 1000 overspends)
    fee: int
    breakage: str  # "" for a valid tx


tx_specs = st.builds(
    TxSpec,
    sender=st.integers(0, len(BALANCES) - 1),
    to=st.integers(0, len(BALANCES) + len(FRESH) - 1),
    amount_permille=st.integers(1, 600),
    fee=st.sampled_from([100, 101, 777, 5_000]),
    breakage=st.sampled_from(["", "", "", "", "", "overspend", "nonce gap", "nonce reused",
                              "low fee", "bad signature", "zero amount"]),
)
blocks = st.lists(st.lists(tx_specs, max_size=5), min_size=1, max_size=6)
param_sets = st.sampled_from([
    DEVNET,
    replace(DEVNET, fee_burn_bps=0, proposer_bonus_bps=0),
    replace(DEVNET, fee_burn_bps=BPS, proposer_bonus_bps=BPS, block_reward=7),
    replace(DEVNET, fee_burn_bps=3_333, proposer_bonus_bps=2_501, block_reward=1_000_003),
])


class Model:
    """Balances and nonces as plain dicts, updated by the rules written out longhand."""

    def __init__(self, chain: Chain) -> None:
        self.balances = {a: acc.balance for a, acc in chain.state.accounts.items()}
        self.nonces = {a: acc.nonce for a, acc in chain.state.accounts.items()}
        self.stakes = {v.address: v.stake for v in chain.state.validators}
        self.params = chain.params

    def credit(self, address: bytes, amount: int) -> None:
        if amount == 0:
            return  # a zero credit does not create an account
        self.balances[address] = self.balances.get(address, 0) + amount
        self.nonces.setdefault(address, 0)

    def transfer(self, sender: bytes, to: bytes, amount: int, fee: int) -> None:
        self.balances[sender] -= amount + fee
        self.nonces[sender] += 1
        self.credit(to, amount)

    def reward(self, proposer: bytes, fees: int) -> None:
        p = self.params
        bonus = p.block_reward * p.proposer_bonus_bps // BPS
        pool = p.block_reward - bonus
        total = sum(self.stakes.values())
        shares = {a: pool * s // total for a, s in self.stakes.items()}
        for address, share in shares.items():
            self.credit(address, share)
        self.credit(proposer, bonus + pool - sum(shares.values()))
        self.credit(proposer, fees - fees * p.fee_burn_bps // BPS)


def build_tx(chain: Chain, model: Model, spec: TxSpec, nonces: dict[bytes, int],
             spendable: dict[bytes, int]) -> tuple[bytes, bool, tuple]:
    users = chain.net.user_keys
    sender_key = users[spec.sender]
    sender = addr(sender_key)
    to = addr(users[spec.to]) if spec.to < len(users) else FRESH[spec.to - len(users)]
    nonce = nonces[sender]
    fee = spec.fee
    amount = max(1, spendable[sender] * spec.amount_permille // 1000 - fee)
    valid = amount + fee <= spendable[sender]
    if spec.breakage == "overspend":
        amount, valid = spendable[sender] - fee + 1, False
    elif spec.breakage == "nonce gap":
        nonce, valid = nonce + 1, False
    elif spec.breakage == "nonce reused" and nonce > 0:
        nonce, valid = nonce - 1, False
    elif spec.breakage == "low fee":
        fee, valid = chain.params.min_fee - 1, False
    elif spec.breakage == "zero amount":
        amount, valid = 0, False
    tx = chain.transfer(sender_key, to, amount, nonce=nonce, fee=fee)
    raw = tx.encode()
    if spec.breakage == "bad signature":
        raw = replace(tx, signature=bytes(64)).encode()
        valid = False
    if valid:
        nonces[sender] += 1
        spendable[sender] -= amount + fee
        spendable[to] = spendable.get(to, 0) + amount  # spendable later in the same block
    return raw, valid, (sender, to, amount, fee)


def check_supply(chain: Chain) -> None:
    state = chain.state
    supply = state.supply
    assert state.total_balances_and_stakes() == supply.expected_total
    assert supply.expected_total == supply.genesis + supply.minted - supply.burned
    assert supply.slashed == 0
    assert supply.expected_total <= MAX_AMOUNT


@given(param_sets, blocks)
@settings(deadline=None, max_examples=100)
def test_supply_invariant_over_random_blocks(params: ChainParams,
                                             block_specs: list[list[TxSpec]]) -> None:
    chain = Chain(make_net(stakes=STAKES, balances=BALANCES, params=params, label="supply"))
    model = Model(chain)
    genesis_total = sum(BALANCES) + sum(STAKES)
    assert chain.state.supply.genesis == genesis_total
    check_supply(chain)
    for height, specs in enumerate(block_specs, start=1):
        nonces = dict(model.nonces)
        spendable = dict(model.balances)
        txs, invalid, applied = [], [], []
        for spec in specs:
            raw, valid, effect = build_tx(chain, model, spec, nonces, spendable)
            event("valid tx" if valid else f"invalid tx ({spec.breakage or 'overspend'})")
            if valid:
                txs.append(raw)
                applied.append(effect)
            else:  # invalid right where it was built: after the valid txs before it
                invalid.append([*txs, raw])
        before_root, before_supply = chain.state.root(), chain.state.supply.to_fields()
        for bad_txs in invalid:  # each bad tx fails the whole block, leaving no trace
            with pytest.raises(InvalidBlock, match=f"tx {len(bad_txs) - 1} "):
                chain.apply(chain.build(bad_txs))
            assert chain.state.root() == before_root
            assert chain.state.supply.to_fields() == before_supply
        proposer = chain.proposer()
        fees = sum(fee for *_, fee in applied)
        before = chain.state.supply.to_fields()
        chain.advance(txs)
        for sender, to, amount, fee in applied:
            model.transfer(sender, to, amount, fee)
        model.reward(proposer, fees)
        _, minted, burned, _ = chain.state.supply.to_fields()
        assert minted - before[1] == params.block_reward
        assert burned - before[2] == fees * params.fee_burn_bps // BPS
        assert minted == height * params.block_reward
        check_supply(chain)
        assert {a: acc.balance for a, acc in chain.state.accounts.items()} == model.balances
        assert {a: acc.nonce for a, acc in chain.state.accounts.items()} == model.nonces


def test_proposer_receives_fees_minus_burn() -> None:
    params = replace(DEVNET, block_reward=0)
    chain = Chain(make_net(stakes=STAKES, balances=BALANCES, params=params, label="fees"))
    a, b, c, _ = chain.net.user_keys
    fees = [100, 250, 1_001]
    txs = [chain.transfer(k, addr(c), 10, fee=f).encode() for k, f in zip([a, b, a], fees,
                                                                          strict=True)]
    txs[2] = chain.transfer(a, addr(c), 10, nonce=1, fee=fees[2]).encode()
    proposer = chain.proposer()
    chain.advance(txs)
    burned = sum(fees) * params.fee_burn_bps // BPS
    assert chain.balance_of(proposer) == sum(fees) - burned
    assert chain.state.supply.burned == burned
    assert chain.state.supply.minted == 0
    check_supply(chain)


@given(st.lists(st.integers(1, 10**15), min_size=1, max_size=8),
       st.integers(0, 10**12), st.integers(0, BPS), st.data())
def test_reward_shares_sum_to_the_reward(stakes: list[int], reward: int, bonus_bps: int,
                                         data: st.DataObject) -> None:
    net = make_net(stakes=tuple(stakes), label="shares")
    state = net.genesis.initial_state()
    params = replace(net.params, proposer_bonus_bps=bonus_bps)
    proposer = data.draw(st.sampled_from([v.address for v in state.validators]))
    shares = compute_reward_shares(state, proposer, reward, params)
    assert sum(amount for _, amount in shares) == reward
    assert all(amount >= 0 for _, amount in shares)
    total = sum(stakes)
    bonus = reward * bonus_bps // BPS
    for v, (address, amount) in zip(state.validators, shares, strict=False):
        assert address == v.address
        assert amount == (reward - bonus) * v.stake // total
    dust = shares[-1][1] - bonus
    assert shares[-1][0] == proposer
    assert 0 <= dust < len(stakes)


def test_block_reward_is_split_by_stake() -> None:
    params = replace(DEVNET, block_reward=1_000_000, proposer_bonus_bps=1_000, fee_burn_bps=0)
    chain = Chain(make_net(stakes=STAKES, balances=BALANCES, params=params, label="split"))
    proposer = chain.proposer()
    chain.advance()
    pool = 900_000
    for v in chain.state.validators:
        expected = pool * v.stake // sum(STAKES) + (100_000 if v.address == proposer else 0)
        assert chain.balance_of(v.address) == expected
    assert sum(chain.balance_of(v.address) for v in chain.state.validators) == 1_000_000


def test_issuance_stops_at_the_supply_cap() -> None:
    reward = DEVNET.block_reward
    room = 3 * reward // 2  # room for one more reward, not two
    stake = 10**12
    chain = Chain(make_net(stakes=(stake,), balances=(MAX_AMOUNT - stake - room,),
                           label="cap"))
    chain.advance()
    assert chain.state.supply.minted == reward
    chain.advance()
    assert chain.state.supply.minted == reward  # a second reward would pass MAX_AMOUNT
    check_supply(chain)


def test_check_supply_delta_catches_money_from_nowhere() -> None:
    chain = Chain(make_net(label="delta"))
    before = chain.state
    after = before.copy()
    who = addr(chain.net.user_keys[0])
    after.set_account(who, Account(before.accounts[who].balance + 5, 0))
    check_supply_delta(before, after, 5, 0)
    check_supply_delta(before, after, 7, 2)
    with pytest.raises(InvariantViolation):
        check_supply_delta(before, after, 4, 0)
    with pytest.raises(InvariantViolation):
        check_supply_delta(before, after, 5, 1)
