"""Genesis generation for local chains: single-validator dev chains and N-validator testnets.

Dev accounts are derived from public seeds (like anvil's well-known test mnemonic) so that
they are the same on every run: never hold value with them.
"""

from __future__ import annotations

from consensus.address import address_from_pubkey
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.params import ChainParams
from genesis.document import Genesis, GenesisValidator, check_validator_count
from genesis.presets import DEV_ACCOUNT_BALANCE, DEV_VALIDATOR_STAKE, DEVNET

DEV_SEED_TAG = b"jevons devnet account "


def dev_account_key(index: int) -> PrivateKey:
    """The well-known key of dev account `index` (public knowledge: test use only)."""
    return PrivateKey.from_seed(sha256(DEV_SEED_TAG + str(index).encode()))


def make_genesis(chain_id: str, genesis_time_ms: int, validators: list[tuple[str, bytes]],
                 funded: list[bytes], params: ChainParams = DEVNET,
                 stake: int = DEV_VALIDATOR_STAKE,
                 balance: int = DEV_ACCOUNT_BALANCE) -> Genesis:
    """A genesis with `validators` (name, pubkey) staked equally and `funded` addresses."""
    dev = len(validators) == 1
    check_validator_count(len(validators), dev)
    accounts = {address: balance for address in funded}
    return Genesis(chain_id, genesis_time_ms, dev, params,
                   tuple(GenesisValidator(name, pub, stake) for name, pub in validators),
                   tuple(sorted(accounts.items())))


def dev_accounts(count: int) -> list[PrivateKey]:
    return [dev_account_key(i) for i in range(count)]


def dev_addresses(count: int) -> list[bytes]:
    return [address_from_pubkey(k.public) for k in dev_accounts(count)]
