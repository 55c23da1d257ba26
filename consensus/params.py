"""Chain constants (fixed by the protocol) and chain parameters (set per network in genesis)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from consensus.codec import MAX_INT64, encode, expect_int, expect_list
from consensus.errors import DecodeError
from consensus.hashing import sha256

# --- constants: the same on every network -------------------------------------------------
DENOM = "ujev"
UJEV_PER_JEV = 10**6
MAX_AMOUNT = MAX_INT64  # no balance, stake, amount or total supply may exceed this
BPS = 10_000  # basis points denominator
MAX_BLOCK_BYTES_LIMIT = 8 * 1024 * 1024 - 64 * 1024
"""The largest max_block_bytes a genesis may set: a node logs each proposal with its block
as one consensus WAL record of at most 8 MiB (node/runtime/wal.py), with room to spare."""


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Per-network parameters. Integers only; `bps` fields are parts per 10,000."""

    block_reward: int = 2 * UJEV_PER_JEV
    proposer_bonus_bps: int = 1_000
    fee_burn_bps: int = 5_000
    min_fee: int = 100
    max_block_txs: int = 10_000
    max_block_bytes: int = 4 * 1024 * 1024
    max_tx_bytes: int = 4 * 1024
    unbonding_blocks: int = 100
    min_validator_stake: int = 1_000 * UJEV_PER_JEV
    max_validators: int = 100
    evidence_max_age: int = 100  # blocks
    slash_double_sign_bps: int = 500
    # --- the compute market ---
    min_provider_stake: int = 100 * UJEV_PER_JEV
    max_provider_capacity: int = 64  # jobs a provider may run at once
    max_job_units: int = 1 << 20  # priced units of work in one job (an 8192^3 product is 2^19)
    max_job_deadline_blocks: int = 1_000
    job_queue_blocks: int = 200  # an unassigned job expires (refunded) after this long
    verify_blocks: int = 30  # verdicts are taken for this long after the challenge is fixed
    committee_size: int = 5
    challenge_rows: int = 32  # rows each committee member opens
    challenge_vectors: int = 2  # Freivalds vectors per member (32-bit entries)
    verifier_fee_bps: int = 500  # of the payment, shared by the members who voted with it
    provider_slash_bps: int = 5_000  # of a provider's bond, for an invalid or late result
    compute_reward_per_unit: int = 1_000  # minted per verified unit of work...
    compute_reward_halving_blocks: int = 2_000_000  # ...halved every this many blocks
    newcomer_share_bps: int = 2_000  # assignments reserved for newcomer providers
    newcomer_jobs: int = 10  # a provider with fewer accepted jobs is a newcomer

    def to_fields(self) -> list[int]:
        return [getattr(self, f.name) for f in fields(self)]

    @classmethod
    def from_fields(cls, value: object) -> ChainParams:
        names = [f.name for f in fields(cls)]
        items = expect_list(value, len(names), "params")
        return cls.from_dict(dict(zip(names, items, strict=True)))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ChainParams:
        """Build from a (JSON) mapping; unknown/missing names and bad values raise DecodeError."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise DecodeError(f"params: unknown field(s) {', '.join(unknown)}")
        values = {}
        for name in names:
            if name not in data:
                raise DecodeError(f"params: missing field {name}")
            values[name] = expect_int(data[name], f"params.{name}", 0, MAX_AMOUNT)
        params = cls(**values)
        params.validate()
        return params

    def validate(self) -> None:
        for name in ("proposer_bonus_bps", "fee_burn_bps", "slash_double_sign_bps",
                     "verifier_fee_bps", "provider_slash_bps", "newcomer_share_bps"):
            if getattr(self, name) > BPS:
                raise DecodeError(f"params.{name}: {getattr(self, name)} exceeds {BPS} (100%)")
        if not 1 <= self.max_validators <= 1_000:
            raise DecodeError(f"params.max_validators: {self.max_validators} outside 1..1000")
        if self.min_validator_stake < 1:
            raise DecodeError("params.min_validator_stake must be at least 1")
        for name in ("min_provider_stake", "max_provider_capacity", "max_job_units",
                     "max_job_deadline_blocks", "job_queue_blocks", "verify_blocks",
                     "committee_size", "challenge_rows", "compute_reward_halving_blocks"):
            if getattr(self, name) < 1:
                raise DecodeError(f"params.{name} must be at least 1")
        if self.challenge_vectors > 16 or self.challenge_rows > 4096:
            raise DecodeError("params.challenge_vectors must be <= 16 and challenge_rows "
                              "<= 4096")
        if self.max_block_txs < 1:
            raise DecodeError("params.max_block_txs must be at least 1")
        if self.max_tx_bytes < 256:
            raise DecodeError(f"params.max_tx_bytes: {self.max_tx_bytes} is below 256 bytes")
        if self.max_block_bytes < self.max_tx_bytes:
            raise DecodeError("params.max_block_bytes must be at least params.max_tx_bytes")
        if self.max_block_bytes > MAX_BLOCK_BYTES_LIMIT:
            raise DecodeError(f"params.max_block_bytes: {self.max_block_bytes} is over "
                              f"{MAX_BLOCK_BYTES_LIMIT} (a proposal's block must fit one "
                              f"record of a node's consensus log)")

    def hash(self) -> bytes:
        return sha256(encode(self.to_fields()))
