"""The block store: blocks, the tx index and the state in one LevelDB.

Every committed block is one synced write batch holding the block, its indices, the accounts
it changed, the state meta and the new tip, so after a crash at any moment the store holds
the last fully committed block and the state after it, never half a block. One process:
LevelDB's lock keeps other processes (and a second open in this one) out. Within it, the
node writes blocks from a worker thread while its loop reads (LevelDB is thread-safe and
plyvel releases the GIL during I/O); only one thread ever writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import msgpack
import plyvel

from consensus.block import Block
from consensus.codec import decode, encode, expect_bytes, expect_int, expect_list
from consensus.errors import DecodeError
from consensus.hashing import HASH_LEN
from consensus.state import Account, State
from consensus.vote import Commit
from node.errors import NodeError
from node.store import keys
from node.store.keys import key_name

T = TypeVar("T")

MAX_META_BYTES = 16 * 1024 * 1024  # state meta grows with the validator set
REPAIR_HINT = "move the directory aside and resync, or restore it from a backup"


class StoreError(NodeError):
    """The store cannot do what was asked: locked, corrupt, closed, or a refused write."""


class BlockStore:
    """Blocks by height and hash, tx locations and the chain state, on LevelDB."""

    def __init__(self, db: plyvel.DB, path: Path) -> None:
        self._db: plyvel.DB | None = db
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> BlockStore:
        """Open (creating if missing) the store at `path`; StoreError if locked or corrupt."""
        path = Path(path)
        store = cls(_open_leveldb(path), path)
        try:
            store._check_format()
        except StoreError:
            store.close()
            raise
        return store

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- writes -----------------------------------------------------------------------------

    def init_genesis(self, genesis_hash: bytes, state: State) -> None:
        """Write the genesis state (height 0). Idempotent for the same genesis hash."""
        if state.height != 0 or state.genesis_hash != genesis_hash:
            raise StoreError(
                f"init_genesis needs the height-0 state of genesis {genesis_hash.hex()}; got "
                f"height {state.height} of genesis {state.genesis_hash.hex()}")
        stored = self.genesis_hash()
        if stored == genesis_hash:
            return
        if stored is not None:
            raise StoreError(
                f"store {self.path} holds the chain of genesis {stored.hex()}, not "
                f"{genesis_hash.hex()}: use another data directory for the new chain")
        self._write([
            (keys.META_FORMAT, keys.FORMAT),
            (keys.META_GENESIS, genesis_hash),
            (keys.META_TIP, encode([0, genesis_hash])),
            *state_items(state, state.accounts),
        ])

    def commit_block(self, block: Block, state: State, *,
                     seen_commit: Commit | None = None, raw: bytes | None = None) -> None:
        """Store `block`, `state` (the state after it) and the commit this node saw for the
        block (needed to build the next block after a restart) in one synced batch. `raw`,
        when the caller holds it, is the block's canonical encoding (it is not re-encoded).
        """
        height, tip_hash = self._require_tip()
        block_hash = block.hash()
        if block.height != height + 1:
            raise StoreError(f"cannot commit block {block.height}: the stored tip is block "
                             f"{height}, so the next block must be {height + 1}")
        if block.header.prev_hash != tip_hash:
            raise StoreError(f"block {block.height} does not extend the stored tip: prev_hash "
                             f"{block.header.prev_hash.hex()}, tip hash {tip_hash.hex()}")
        if state.height != block.height or state.last_block_hash != block_hash:
            raise StoreError(f"the state given is not the state after block {block.height} "
                             f"({block_hash.hex()}): it is at height {state.height}, last "
                             f"block {state.last_block_hash.hex()}")
        if seen_commit is not None and (seen_commit.height, seen_commit.block_hash) != (
                block.height, block_hash):
            raise StoreError(f"the seen commit is for block {seen_commit.height} "
                             f"({seen_commit.block_hash.hex()}), not for block {block.height} "
                             f"({block_hash.hex()})")
        self._write([
            *block_items(block, block_hash, raw),
            *state_items(state, sorted(state.touched)),
            *seen_commit_items(seen_commit),
            (keys.META_TIP, encode([block.height, block_hash])),
        ])

    # --- reads ------------------------------------------------------------------------------

    def genesis_hash(self) -> bytes | None:
        return self._read(keys.META_GENESIS,
                          lambda raw: expect_bytes(raw, "genesis hash", HASH_LEN))

    def tip(self) -> tuple[int, bytes] | None:
        """(height, hash) of the last committed block; (0, genesis hash) right after genesis."""
        return self._read(keys.META_TIP, parse_tip)

    def get_block(self, height: int) -> bytes | None:
        """The raw canonical bytes of block `height` (None for genesis and unknown heights)."""
        return self._get(keys.block_key(height))

    def get_block_by_hash(self, block_hash: bytes) -> bytes | None:
        key = keys.block_hash_key(block_hash)
        height = self._read(key, parse_height)
        if height is None:
            return None
        raw = self.get_block(height)
        if raw is None:
            raise self._corrupt(key, f"points at block {height}, which is not stored")
        return raw

    def get_seen_commit(self, height: int) -> Commit | None:
        """The commit stored with block `height` (None if it was committed without one)."""
        return self._read(keys.seen_commit_key(height), parse_commit)

    def get_tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(block height, index in the block) of a committed transaction."""
        return self._read(keys.tx_key(tx_hash), parse_tx_location)

    def load_state(self) -> State:
        """The state after the stored tip, rebuilt from the meta and every stored account."""
        tip = self._require_tip()
        meta = self._read(keys.META_STATE, lambda raw: decode(raw, MAX_META_BYTES))
        if meta is None:
            raise self._corrupt(keys.META_STATE, "is missing although a genesis is stored")
        accounts = self._load_accounts()
        try:
            state = State.from_meta(meta, accounts)
        except (DecodeError, TypeError, ValueError) as exc:
            raise self._corrupt(keys.META_STATE, str(exc)) from exc
        if (state.height, state.last_block_hash) != tip:
            raise self._corrupt(keys.META_STATE, f"is for block {state.height}, but the tip "
                                f"is block {tip[0]}")
        if state.genesis_hash != self.genesis_hash():
            raise self._corrupt(keys.META_STATE, "names another genesis than the store's")
        return state

    # --- internals --------------------------------------------------------------------------

    @property
    def _live(self) -> plyvel.DB:
        if self._db is None:
            raise StoreError(f"store {self.path} is closed")
        return self._db

    def _check_format(self) -> None:
        found = self._get(keys.META_FORMAT)
        if found is not None and found != keys.FORMAT:
            raise StoreError(f"store {self.path} has format {found!r}; this node reads "
                             f"{keys.FORMAT!r}")

    def _require_tip(self) -> tuple[int, bytes]:
        tip = self.tip()
        if tip is None:
            raise StoreError(f"store {self.path} has no genesis: initialise it first")
        return tip

    def _load_accounts(self) -> dict[bytes, Account]:
        accounts: dict[bytes, Account] = {}
        prefix_len = len(keys.ACCOUNT)
        try:
            for key, raw in self._live.iterator(prefix=keys.ACCOUNT, verify_checksums=True):
                address = key[prefix_len:]
                if len(address) != 20:
                    raise self._corrupt(key, f"address is {len(address)} bytes, expected 20")
                accounts[address] = self._parse(key, raw, parse_account)
        except plyvel.Error as exc:
            raise StoreError(f"cannot read accounts from {self.path}: {_message(exc)}; "
                             f"{REPAIR_HINT}") from exc
        return accounts

    def _get(self, key: bytes) -> bytes | None:
        try:
            return self._live.get(key, verify_checksums=True)
        except plyvel.Error as exc:
            raise StoreError(f"cannot read {key_name(key)} from {self.path}: {_message(exc)}; "
                             f"{REPAIR_HINT}") from exc

    def _read(self, key: bytes, parse: Callable[[bytes], T]) -> T | None:
        raw = self._get(key)
        return None if raw is None else self._parse(key, raw, parse)

    def _parse(self, key: bytes, raw: bytes, parse: Callable[[bytes], T]) -> T:
        try:
            return parse(raw)
        except DecodeError as exc:
            raise self._corrupt(key, str(exc)) from exc

    def _corrupt(self, key: bytes, detail: str) -> StoreError:
        return StoreError(f"store {self.path} is corrupt: value under key {key_name(key)} "
                          f"{detail}; {REPAIR_HINT}")

    def _write(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        batch = self._live.write_batch(sync=True)
        for key, value in items:
            batch.put(key, value)
        try:
            batch.write()
        except plyvel.Error as exc:
            raise StoreError(f"cannot write to {self.path}: {_message(exc)}") from exc


# --- value encoding -------------------------------------------------------------------------


def block_items(block: Block, block_hash: bytes, raw: bytes | None = None
                ) -> list[tuple[bytes, bytes]]:
    """The block under its height, its height under its hash, and each tx's location
    (`encode([height, index])`; both plain ints, so msgpack's own packing is canonical)."""
    height = keys.encode_height(block.height)
    items = [(keys.block_key(block.height), block.encode() if raw is None else raw),
             (keys.block_hash_key(block_hash), height)]
    pack = _tx_location_packer.pack
    for index, tx_hash in enumerate(block.tx_hashes):
        items.append((keys.tx_key(tx_hash), pack([block.height, index])))
    return items


_tx_location_packer = msgpack.Packer(use_bin_type=True)


def state_items(state: State, addresses: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    """The state meta and the given accounts."""
    items = [(keys.META_STATE, encode(state.meta_fields()))]
    for address in addresses:
        items.append((keys.account_key(address), encode(state.accounts[address].to_fields())))
    return items


def seen_commit_items(commit: Commit | None) -> list[tuple[bytes, bytes]]:
    if commit is None:
        return []
    return [(keys.seen_commit_key(commit.height), encode(commit.to_fields()))]


def parse_height(raw: bytes) -> int:
    if len(raw) != keys.HEIGHT_LEN:
        raise DecodeError(f"height: expected {keys.HEIGHT_LEN} bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")


def parse_tip(raw: bytes) -> tuple[int, bytes]:
    height, block_hash = expect_list(decode(raw), 2, "tip")
    return expect_int(height, "tip.height"), expect_bytes(block_hash, "tip.hash", HASH_LEN)


def parse_tx_location(raw: bytes) -> tuple[int, int]:
    height, index = expect_list(decode(raw), 2, "tx location")
    return expect_int(height, "tx location.height"), expect_int(index, "tx location.index")


def parse_commit(raw: bytes) -> Commit:
    return Commit.from_fields(decode(raw))


def parse_account(raw: bytes) -> Account:
    return Account.from_fields(decode(raw))


# --- opening --------------------------------------------------------------------------------


def _open_leveldb(path: Path) -> plyvel.DB:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create store directory {path}: {exc}") from exc
    try:
        return plyvel.DB(str(path), create_if_missing=True, paranoid_checks=True)
    except plyvel.IOError as exc:
        raise _open_error(path, exc) from exc
    except plyvel.CorruptionError as exc:
        raise StoreError(f"store {path} is corrupt: {_message(exc)}; {REPAIR_HINT}") from exc
    except plyvel.Error as exc:
        raise StoreError(f"cannot open store {path}: {_message(exc)}") from exc


def _open_error(path: Path, exc: plyvel.IOError) -> StoreError:
    message = _message(exc)
    if "already held by process" in message:
        return StoreError(f"store {path} is already open in this process ({message}): "
                          "close the other BlockStore first")
    if "/LOCK" in message:
        return StoreError(f"store {path} is already in use by another process: {message}; "
                          "stop the other node or choose another data directory")
    return StoreError(f"cannot open store {path}: {message}")


def _message(exc: Exception) -> str:
    """plyvel puts LevelDB's status in args[0] as bytes."""
    first = exc.args[0] if exc.args else exc
    return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
