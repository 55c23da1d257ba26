"""Network presets: parameter tables for named networks (data, not code paths)."""

from __future__ import annotations

from consensus.params import UJEV_PER_JEV, ChainParams

# Small numbers for fast local chains and tests.
DEVNET = ChainParams(
    block_reward=2 * UJEV_PER_JEV,
    proposer_bonus_bps=1_000,
    fee_burn_bps=5_000,
    min_fee=100,
    max_block_txs=10_000,
    max_block_bytes=4 * 1024 * 1024,
    max_tx_bytes=4 * 1024,
    unbonding_blocks=20,
    min_validator_stake=1_000 * UJEV_PER_JEV,
    max_validators=100,
    evidence_max_age=100,
    slash_double_sign_bps=500,
)

TESTNET = ChainParams(unbonding_blocks=10_000)

PRESETS = {"devnet": DEVNET, "testnet": TESTNET}

DEV_VALIDATOR_STAKE = 1_000_000 * UJEV_PER_JEV
DEV_ACCOUNT_BALANCE = 1_000_000 * UJEV_PER_JEV
