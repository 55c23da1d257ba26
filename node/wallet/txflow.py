"""Preparing, checking, signing and submitting a wallet transaction.

    plan = plan_tx(client, sender, body, fee, nonce)   # chain id, nonce, fee from the node
    check_affordable(plan)                              # local funds/stake check
    tx = sign(plan, key); answer = client.broadcast(tx.encode(), wait)

The local check matters: the node's mempool admits a transfer it cannot yet execute (funds
are settled when a block is built), and such a tx would wait there; the wallet refuses it
up front with the balance and the shortfall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consensus.address import from_bech32, to_bech32
from consensus.crypto import PrivateKey
from consensus.errors import InvalidAddress
from consensus.params import ChainParams
from consensus.tx import (
    Body,
    RegisterProvider,
    Stake,
    SubmitJob,
    Transfer,
    Tx,
    TxKind,
    Unstake,
    make_tx,
)
from node.units import format_amount, parse_amount
from node.wallet.client import NodeClient
from node.wallet.errors import TxRejected, WalletError
from node.wallet.keystore import NAME_RE, KeyInfo, Wallet

# Used only when the node's /status does not publish the chain's minimum fee.
FALLBACK_MIN_FEE = ChainParams().min_fee


@dataclass(frozen=True, slots=True)
class Plan:
    sender: KeyInfo
    body: Body
    chain_id: str
    nonce: int
    fee: int
    balance: int
    stake: int

    @property
    def kind(self) -> str:
        return TxKind(self.body.KIND).name.lower()

    @property
    def amount(self) -> int:
        """What the transaction takes from the balance besides the fee: the amount sent or
        staked, a provider's added bond, a job's escrow (max price x units); 0 to unstake
        (it takes from the stake)."""
        return spend_of(self.body)

    def describe(self) -> str:
        who = f"{self.sender.name} ({self.sender.address})"
        fee = f"fee {show(self.fee)}, nonce {self.nonce}, chain {self.chain_id}"
        return f"{describe_body(self.body)} from {who}; {fee}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "from": self.sender.address,
                               "amount": self.amount, "fee": self.fee, "nonce": self.nonce,
                               "chain_id": self.chain_id}
        body = self.body
        if isinstance(body, Transfer):
            out["to"] = to_bech32(body.to)
        elif isinstance(body, Unstake):
            out["amount"] = body.amount
        elif isinstance(body, RegisterProvider):
            out["provider"] = {"stake": body.stake, "kernels": list(body.kernels),
                               "price": body.price, "capacity": body.capacity,
                               "region": body.region, "carbon": body.carbon,
                               "endpoint": body.endpoint}
        elif isinstance(body, SubmitJob):
            out["job"] = {"kernel": body.spec.kernel, "dims": list(body.spec.dims),
                          "seed": body.spec.seed.hex(), "units": body.spec.units,
                          "max_price": body.max_price, "escrow": self.amount,
                          "deadline_blocks": body.deadline_blocks,
                          "carbon_max": body.carbon_max}
        return out


def spend_of(body: Body) -> int:
    if isinstance(body, Transfer | Stake):
        return body.amount
    if isinstance(body, RegisterProvider):
        return body.stake
    if isinstance(body, SubmitJob):
        return body.max_price * body.spec.units
    return 0


def describe_body(body: Body) -> str:
    if isinstance(body, Transfer):
        return f"send {show(body.amount)} to {to_bech32(body.to)}"
    if isinstance(body, Stake | Unstake):
        return f"{TxKind(body.KIND).name.lower()} {show(body.amount)}"
    if isinstance(body, RegisterProvider):
        return (f"register provider terms: kernels {','.join(body.kernels)}, price "
                f"{body.price} ujev/unit, capacity {body.capacity}, region {body.region}, "
                f"carbon {body.carbon} gCO2e/kWh, endpoint {body.endpoint}, "
                + (f"bond {show(body.stake)} more" if body.stake else "bond unchanged"))
    if isinstance(body, SubmitJob):
        spec = body.spec
        ceiling = f"{body.carbon_max} gCO2e/kWh" if body.carbon_max else "none"
        return (f"submit job {spec.kernel} {list(spec.dims)} seed {spec.seed.hex()}: "
                f"{spec.units} unit(s) of work, max price {body.max_price} ujev/unit, "
                f"escrow {show(spend_of(body))}, deadline {body.deadline_blocks} blocks, "
                f"carbon ceiling {ceiling}")
    return TxKind(body.KIND).name.lower()


def show(ujev: int) -> str:
    return f"{format_amount(ujev)} ({ujev} ujev)"


def parse_value(text: str, what: str, unit_required: bool = False) -> int:
    """An amount with a unit ('1.5jev', '250ujev'); a bare number is JEV unless a unit is
    required (--fee, where a bare number is too easy to get wrong by 10^6)."""
    if unit_required and not text.strip().lower().endswith("jev"):
        raise WalletError(f"{what} {text!r} needs a unit: for example '150ujev' or "
                          "'0.00015jev'")
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise WalletError(f"{what}: {exc}") from exc


def resolve_address(wallet: Wallet, text: str, what: str) -> bytes:
    """A jev1 address, or the address of a key in the wallet. Anything starting with
    'jev1' is taken as an address, so a bad checksum is reported, never guessed around."""
    if text.lower().startswith("jev1"):
        try:
            return from_bech32(text)
        except InvalidAddress as exc:
            raise WalletError(f"{what}: {exc}") from exc
    if NAME_RE.match(text) and wallet.exists(text):
        return from_bech32(wallet.info(text).address)
    raise WalletError(f"{what} {text!r} is neither a jev1 address nor a key in {wallet.dir}")


def chain_min_fee(status: dict[str, Any]) -> int:
    value = status.get("min_fee")
    if value is None and isinstance(status.get("params"), dict):
        value = status["params"].get("min_fee")
    return value if type(value) is int and value >= 0 else FALLBACK_MIN_FEE


def plan_tx(client: NodeClient, sender: KeyInfo, body: Body, fee: int | None,
            nonce: int | None) -> Plan:
    status = client.status()
    account = client.account(sender.address)
    return Plan(sender, body, status["chain_id"],
                account.get("nonce", 0) if nonce is None else nonce,
                chain_min_fee(status) if fee is None else fee,
                int(account.get("balance", 0)), int(account.get("stake", 0)))


def check_affordable(plan: Plan) -> None:
    if plan.balance == 0 and plan.stake == 0:
        raise TxRejected("insufficient_funds", f"account {plan.sender.address} holds nothing "
                         "(never funded); send it some JEV first")
    if isinstance(plan.body, Unstake) and plan.body.amount > plan.stake:
        raise TxRejected("insufficient_stake", f"unstaking {show(plan.body.amount)} but only "
                         f"{show(plan.stake)} is bonded")
    needed = plan.amount + plan.fee
    if plan.balance < needed:
        what = {"submit_job": "escrow", "register_provider": "bond"}.get(plan.kind, "amount")
        raise TxRejected("insufficient_funds", f"balance {show(plan.balance)} is less than "
                         f"{show(needed)} ({what} + fee); short by "
                         f"{show(needed - plan.balance)}")


def sign(plan: Plan, key: PrivateKey) -> Tx:
    if key.public != plan.sender.pubkey:
        raise WalletError(f"key {plan.sender.name!r} decrypted to a different public key")
    return make_tx(key, plan.chain_id, plan.body, plan.nonce, plan.fee)


def body_for(kind: str, amount: int, to: bytes | None = None) -> Body:
    if kind == "transfer":
        if to is None:
            raise ValueError("a transfer needs a recipient")
        return Transfer(to, amount)
    return Stake(amount) if kind == "stake" else Unstake(amount)
