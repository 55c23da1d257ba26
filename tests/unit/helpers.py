"""Small builders for the consensus unit tests: keys, genesis documents, blocks, commits.

Everything is derived from labels, so every test is deterministic and replayable.
`Net` is a genesis plus the keys behind it; `Chain` extends it one block at a time
(build -> apply -> all validators precommit), and exposes the pieces so that a test can
build a block, break one field and expect the reason it is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from consensus.address import address_from_pubkey
from consensus.block import Block
from consensus.builder import build_block
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.params import ChainParams
from consensus.sigcache import SigCache
from consensus.state import State
from consensus.transition import apply_block
from consensus.tx import Transfer, Tx, make_transfer
from consensus.vote import Commit, Vote, VoteType, make_commit
from genesis.document import Genesis, GenesisValidator
from genesis.presets import DEVNET

CHAIN_ID = "jevons-unit"
GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_INTERVAL_MS = 1_000
USER_BALANCE = 10**9
DEV_STAKE = 10**12


def key(label: str) -> PrivateKey:
    return PrivateKey.from_seed(sha256(label.encode()))


def addr(k: PrivateKey) -> bytes:
    return address_from_pubkey(k.public)


@dataclass
class Net:
    """A genesis and the private keys of its validators and funded users."""

    genesis: Genesis
    validator_keys: list[PrivateKey]
    user_keys: list[PrivateKey]

    @property
    def params(self) -> ChainParams:
        return self.genesis.params

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id


def make_net(stakes: tuple[int, ...] = (DEV_STAKE,),
             balances: tuple[int, ...] = (USER_BALANCE,) * 3,
             params: ChainParams = DEVNET, chain_id: str = CHAIN_ID,
             label: str = "net") -> Net:
    """One validator per stake (a dev chain when there is one), one user per balance.

    The Genesis is built directly (not parsed), so a test may go past genesis limits.
    """
    vkeys = [key(f"{label}/validator/{i}") for i in range(len(stakes))]
    ukeys = [key(f"{label}/user/{i}") for i in range(len(balances))]
    validators = tuple(GenesisValidator(f"v{i}", k.public, s)
                       for i, (k, s) in enumerate(zip(vkeys, stakes, strict=True)))
    accounts = tuple(sorted((addr(k), b) for k, b in zip(ukeys, balances, strict=True)))
    genesis = Genesis(chain_id, GENESIS_TIME_MS, len(stakes) == 1, params, validators, accounts)
    return Net(genesis, vkeys, ukeys)


def with_header(block: Block, **changes: object) -> Block:
    """The same block with some header fields replaced (nothing is recomputed)."""
    return Block(replace(block.header, **changes), block.txs, block.evidence, block.last_commit)


def sign_commit(block_hash: bytes, height: int, signers: list[PrivateKey], chain_id: str,
                round_: int = 0) -> Commit:
    votes = [Vote(VoteType.PRECOMMIT, height, round_, block_hash, addr(k)).signed(k, chain_id)
             for k in signers]
    return make_commit(height, round_, block_hash, votes)


@dataclass
class Chain:
    """A chain on `net`: `state` after the last applied block, `last_commit` for it."""

    net: Net
    state: State = field(init=False)
    last_commit: Commit = field(init=False)
    last_block: Block | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.state = self.net.genesis.initial_state()
        self.last_commit = Commit.empty()

    @property
    def params(self) -> ChainParams:
        return self.state.params

    def proposer(self) -> bytes:
        """Round-robin over the (address-sorted) validators, by height."""
        validators = self.state.validators
        return validators[(self.state.height + 1) % len(validators)].address

    def build(self, txs: list[bytes] | tuple[bytes, ...] = (), *,
              proposer: bytes | None = None, time_ms: int | None = None,
              last_commit: Commit | None = None) -> Block:
        return build_block(self.state, list(txs),
                           self.proposer() if proposer is None else proposer,
                           self.state.time_ms + BLOCK_INTERVAL_MS if time_ms is None else time_ms,
                           self.last_commit if last_commit is None else last_commit)

    def apply(self, block: Block, sig_cache: SigCache | None = None) -> State:
        """The state after `block` (self.state is not changed)."""
        return apply_block(self.state, block, self.state.params, sig_cache)

    def commit(self, block: Block, signers: list[PrivateKey] | None = None) -> Commit:
        keys = self.net.validator_keys if signers is None else signers
        return sign_commit(block.hash(), block.height, keys, self.state.chain_id)

    def accept(self, block: Block, sig_cache: SigCache | None = None) -> State:
        """Apply `block`, move onto it and collect every validator's precommit."""
        self.state = self.apply(block, sig_cache)
        self.last_commit = self.commit(block)
        self.last_block = block
        return self.state

    def advance(self, txs: list[bytes] | tuple[bytes, ...] = ()) -> Block:
        block = self.build(txs)
        self.accept(block)
        return block

    # --- transactions ---------------------------------------------------------------------

    def nonce_of(self, k: PrivateKey) -> int:
        account = self.state.get_account(addr(k))
        return 0 if account is None else account.nonce

    def balance_of(self, address: bytes) -> int:
        account = self.state.get_account(address)
        return 0 if account is None else account.balance

    def transfer(self, sender: PrivateKey, to: bytes, amount: int, *, nonce: int | None = None,
                 fee: int | None = None, chain_id: str | None = None) -> Tx:
        return make_transfer(sender, self.state.chain_id if chain_id is None else chain_id, to,
                             amount, self.nonce_of(sender) if nonce is None else nonce,
                             self.params.min_fee if fee is None else fee)


def unsigned_transfer(sender: PrivateKey, chain_id: str, to: bytes, amount: int, nonce: int,
                      fee: int) -> Tx:
    return Tx(chain_id, sender.public, nonce, fee, Transfer(to, amount))


def flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]
