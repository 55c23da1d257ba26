"""Transactions: a signed envelope around a kind-specific body.

Wire form (canonical msgpack array):
    [version, chain_id, kind, sender_pubkey(32), nonce, fee, body, signature(64)]
The signature covers the first seven fields, in the `tx` signing domain of `chain_id`.
The transaction hash is SHA-256 of the whole encoding (signature included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from consensus.address import ADDRESS_LEN, address_from_pubkey
from consensus.codec import (
    MAX_INT64,
    decode,
    encode,
    expect_array,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from consensus.crypto import DOMAIN_TX, PUBKEY_LEN, SIG_LEN, PrivateKey, signing_domain
from consensus.errors import DecodeError
from consensus.hashing import HASH_LEN, sha256
from consensus.jobs import JobSpec

TX_VERSION = 1
MAX_CHAIN_ID_LEN = 48


class TxKind(IntEnum):
    TRANSFER = 1
    STAKE = 2
    UNSTAKE = 3
    REGISTER_PROVIDER = 4
    SUBMIT_JOB = 5
    COMMIT_RESULT = 6
    POST_VERDICT = 7


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move `amount` base units to `to`. Amount is signed on the wire so that a negative
    value is a validity error (NonPositiveAmount) rather than an undecodable blob."""

    to: bytes
    amount: int
    KIND: ClassVar[TxKind] = TxKind.TRANSFER

    def to_fields(self) -> list:
        return [self.to, self.amount]

    @classmethod
    def from_fields(cls, value: object) -> Transfer:
        to, amount = expect_list(value, 2, "transfer")
        return cls(
            to=expect_bytes(to, "transfer.to", ADDRESS_LEN),
            amount=expect_int(amount, "transfer.amount", -MAX_INT64, 2**64 - 1),
        )


@dataclass(frozen=True, slots=True)
class Stake:
    """Bond `amount` from the sender's balance to its validator stake; the sender's key is
    the validator's signing key."""

    amount: int
    KIND: ClassVar[TxKind] = TxKind.STAKE

    def to_fields(self) -> list:
        return [self.amount]

    @classmethod
    def from_fields(cls, value: object) -> Stake:
        (amount,) = expect_list(value, 1, "stake")
        return cls(expect_int(amount, "stake.amount", -MAX_INT64, 2**64 - 1))


@dataclass(frozen=True, slots=True)
class Unstake:
    """Start unbonding `amount` of the sender's stake; it returns to the balance after
    params.unbonding_blocks and stays slashable until then."""

    amount: int
    KIND: ClassVar[TxKind] = TxKind.UNSTAKE

    def to_fields(self) -> list:
        return [self.amount]

    @classmethod
    def from_fields(cls, value: object) -> Unstake:
        (amount,) = expect_list(value, 1, "unstake")
        return cls(expect_int(amount, "unstake.amount", -MAX_INT64, 2**64 - 1))


MAX_KERNELS = 8
MAX_REGION_LEN = 32
MAX_ENDPOINT_LEN = 256
MAX_REASON_LEN = 96


@dataclass(frozen=True, slots=True)
class RegisterProvider:
    """Register the sender as a compute provider, or update its terms: bond `stake` more
    (0 allowed when already registered), the kernels it runs (sorted), its price in base
    units per unit of work, how many jobs it runs at once, its region, its declared carbon
    intensity (gCO2e/kWh) and the libp2p address where it serves openings."""

    stake: int
    kernels: tuple[str, ...]
    price: int
    capacity: int
    region: str
    carbon: int
    endpoint: str
    KIND: ClassVar[TxKind] = TxKind.REGISTER_PROVIDER

    def to_fields(self) -> list:
        return [self.stake, list(self.kernels), self.price, self.capacity, self.region,
                self.carbon, self.endpoint]

    @classmethod
    def from_fields(cls, value: object) -> RegisterProvider:
        stake, kernels, price, capacity, region, carbon, endpoint = expect_list(
            value, 7, "register_provider")
        return cls(expect_int(stake, "register_provider.stake", -MAX_INT64, 2**64 - 1),
                   tuple(expect_str(k, "register_provider.kernels", 32)
                         for k in expect_array(kernels, "register_provider.kernels",
                                               MAX_KERNELS)),
                   expect_int(price, "register_provider.price"),
                   expect_int(capacity, "register_provider.capacity"),
                   expect_str(region, "register_provider.region", MAX_REGION_LEN),
                   expect_int(carbon, "register_provider.carbon"),
                   expect_str(endpoint, "register_provider.endpoint", MAX_ENDPOINT_LEN))


@dataclass(frozen=True, slots=True)
class SubmitJob:
    """Ask for `spec` to be computed by a provider charging at most `max_price` per unit,
    within `deadline_blocks` of assignment, by a provider declaring at most `carbon_max`
    gCO2e/kWh (0: no ceiling). `max_price * units` is escrowed from the sender."""

    spec: JobSpec
    max_price: int
    deadline_blocks: int
    carbon_max: int
    KIND: ClassVar[TxKind] = TxKind.SUBMIT_JOB

    def to_fields(self) -> list:
        return [self.spec.to_fields(), self.max_price, self.deadline_blocks, self.carbon_max]

    @classmethod
    def from_fields(cls, value: object) -> SubmitJob:
        spec, max_price, deadline, carbon_max = expect_list(value, 4, "submit_job")
        return cls(JobSpec.from_fields(spec), expect_int(max_price, "submit_job.max_price"),
                   expect_int(deadline, "submit_job.deadline_blocks"),
                   expect_int(carbon_max, "submit_job.carbon_max"))


@dataclass(frozen=True, slots=True)
class CommitResult:
    """The assigned provider's commitment: a Merkle root over the job's output rows."""

    job_id: bytes
    root: bytes
    KIND: ClassVar[TxKind] = TxKind.COMMIT_RESULT

    def to_fields(self) -> list:
        return [self.job_id, self.root]

    @classmethod
    def from_fields(cls, value: object) -> CommitResult:
        job_id, root = expect_list(value, 2, "commit_result")
        return cls(expect_bytes(job_id, "commit_result.job_id", HASH_LEN),
                   expect_bytes(root, "commit_result.root", HASH_LEN))


@dataclass(frozen=True, slots=True)
class PostVerdict:
    """A committee member's verdict on a committed job: valid (1) or invalid (0), and why."""

    job_id: bytes
    valid: int
    reason: str
    KIND: ClassVar[TxKind] = TxKind.POST_VERDICT

    def to_fields(self) -> list:
        return [self.job_id, self.valid, self.reason]

    @classmethod
    def from_fields(cls, value: object) -> PostVerdict:
        job_id, valid, reason = expect_list(value, 3, "post_verdict")
        return cls(expect_bytes(job_id, "post_verdict.job_id", HASH_LEN),
                   expect_int(valid, "post_verdict.valid", 0, 1),
                   expect_str(reason, "post_verdict.reason", MAX_REASON_LEN))


Body = Transfer | Stake | Unstake | RegisterProvider | SubmitJob | CommitResult | PostVerdict
BODY_TYPES: dict[int, type[Body]] = {
    TxKind.TRANSFER: Transfer, TxKind.STAKE: Stake, TxKind.UNSTAKE: Unstake,
    TxKind.REGISTER_PROVIDER: RegisterProvider, TxKind.SUBMIT_JOB: SubmitJob,
    TxKind.COMMIT_RESULT: CommitResult, TxKind.POST_VERDICT: PostVerdict}


@dataclass(frozen=True, slots=True)
class Tx:
    chain_id: str
    sender_pubkey: bytes
    nonce: int
    fee: int
    body: Body
    signature: bytes = b""
    sender: bytes = field(init=False, repr=False, compare=False)
    """The sender's address, derived from `sender_pubkey` once (it is read many times per
    transaction: admission, selection, application)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sender", address_from_pubkey(self.sender_pubkey))

    @property
    def kind(self) -> int:
        return int(self.body.KIND)

    def unsigned_fields(self) -> list:
        return [TX_VERSION, self.chain_id, self.kind, self.sender_pubkey, self.nonce, self.fee,
                self.body.to_fields()]

    def sign_message(self) -> bytes:
        """The exact bytes the signature covers: domain || canonical unsigned fields."""
        return signing_domain(DOMAIN_TX, self.chain_id) + encode(self.unsigned_fields())

    def encode(self) -> bytes:
        return encode([*self.unsigned_fields(), self.signature])

    def hash(self) -> bytes:
        return sha256(self.encode())

    def signed(self, key: PrivateKey) -> Tx:
        if key.public != self.sender_pubkey:
            raise ValueError("signing key does not match the transaction's sender")
        sig = key.sign(DOMAIN_TX, self.chain_id, encode(self.unsigned_fields()))
        return Tx(self.chain_id, self.sender_pubkey, self.nonce, self.fee, self.body, sig)

    @classmethod
    def decode(cls, raw: bytes, max_bytes: int = 4096) -> Tx:
        fields = expect_list(decode(raw, max_bytes), 8, "tx")
        version, chain_id, kind, pubkey, nonce, fee, body, sig = fields
        if expect_int(version, "tx.version") != TX_VERSION:
            raise DecodeError(f"tx.version: {version} is not supported (expected {TX_VERSION})")
        kind = expect_int(kind, "tx.kind", 0, 255)
        body_type = BODY_TYPES.get(kind)
        if body_type is None:
            raise DecodeError(f"tx.kind: unknown transaction kind {kind}")
        return cls(
            chain_id=expect_str(chain_id, "tx.chain_id", MAX_CHAIN_ID_LEN),
            sender_pubkey=expect_bytes(pubkey, "tx.sender_pubkey", PUBKEY_LEN),
            nonce=expect_int(nonce, "tx.nonce"),
            fee=expect_int(fee, "tx.fee", -MAX_INT64, 2**64 - 1),
            body=body_type.from_fields(body),
            signature=expect_bytes(sig, "tx.signature", SIG_LEN),
        )


def unsigned_message(raw: bytes, chain_id: str) -> bytes:
    """The signed message of an already-decoded canonical tx, sliced from its bytes.

    A canonical tx is a fixarray of 8 (0x98) whose last element is a 64-byte bin
    (0xc4 0x40 + 64 bytes); the unsigned encoding is the same bytes as a fixarray of 7
    (0x97) without that last element. Equal to `tx.sign_message()`, without re-encoding.
    """
    return signing_domain(DOMAIN_TX, chain_id) + b"\x97" + raw[1:-(SIG_LEN + 2)]


def make_transfer(key: PrivateKey, chain_id: str, to: bytes, amount: int, nonce: int,
                  fee: int) -> Tx:
    """Build and sign a transfer from `key`'s account."""
    return Tx(chain_id, key.public, nonce, fee, Transfer(to, amount)).signed(key)


def make_tx(key: PrivateKey, chain_id: str, body: Body, nonce: int, fee: int) -> Tx:
    """Build and sign a transaction of any kind from `key`'s account."""
    return Tx(chain_id, key.public, nonce, fee, body).signed(key)
