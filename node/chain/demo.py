"""Demo traffic for dev chains: signed transfers between the well-known dev accounts."""

from __future__ import annotations

import random

from consensus.address import address_from_pubkey
from consensus.crypto import PrivateKey
from consensus.state import State
from consensus.tx import make_transfer


class DemoTraffic:
    def __init__(self, keys: list[PrivateKey], seed: int = 0) -> None:
        self.keys = keys
        self.addresses = [address_from_pubkey(k.public) for k in keys]
        self.rng = random.Random(seed)

    def transfers(self, state: State, count: int) -> list[bytes]:
        """`count` transfers valid on top of `state` (nonces continue from the state)."""
        if len(self.keys) < 2 or count <= 0:
            return []
        nonces: dict[int, int] = {}
        out = []
        fee = state.params.min_fee
        for _ in range(count):
            s, r = self.rng.sample(range(len(self.keys)), 2)
            account = state.get_account(self.addresses[s])
            if account is None or account.balance < 1_000 + fee:
                continue
            nonce = nonces.get(s, account.nonce)
            nonces[s] = nonce + 1
            amount = self.rng.randint(1, 1_000)
            out.append(make_transfer(self.keys[s], state.chain_id, self.addresses[r], amount,
                                     nonce, fee).encode())
        return out
