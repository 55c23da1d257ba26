"""BlockStore on a real LevelDB: round trips, refused writes, locking, corrupt values."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest

from consensus.block import Block
from consensus.codec import encode
from consensus.hashing import sha256
from consensus.state import State
from genesis.document import Genesis
from node.store import BlockStore, StoreError, keys
from tests.chainutil import ChainBuilder, address_of, decode_block, make_genesis

SEED = 7
N_ACCOUNTS = 6
N_BLOCKS = 5
TXS_PER_BLOCK = 4
GENESIS_META = make_genesis(N_ACCOUNTS, SEED)[0].initial_state().meta_fields()


@pytest.fixture
def chain() -> tuple[Genesis, ChainBuilder]:
    genesis, validator_key, account_keys = make_genesis(N_ACCOUNTS, SEED)
    return genesis, ChainBuilder(genesis.initial_state(), validator_key, account_keys,
                                 random.Random(SEED))


@pytest.fixture
def store(tmp_path: Path, chain: tuple[Genesis, ChainBuilder]) -> Iterator[BlockStore]:
    genesis, _ = chain
    opened = BlockStore.open(tmp_path / "db")
    opened.init_genesis(genesis.hash(), genesis.initial_state())
    yield opened
    opened.close()


def commit_blocks(store: BlockStore, builder: ChainBuilder, count: int) -> list[Block]:
    """Extend the chain by `count` blocks, storing each with its seen commit (every other
    one with the caller's encoding of the block, as the node does, the rest re-encoded)."""
    blocks = []
    for i in range(count):
        block, state = builder.next_block(TXS_PER_BLOCK)
        store.commit_block(block, state, seen_commit=builder.last_commit,
                           raw=block.encode() if i % 2 else None)
        blocks.append(block)
    return blocks


def put_raw(path: Path, key: bytes, value: bytes) -> None:
    """Write one value behind the store's back, as disk corruption would."""
    db = plyvel.DB(str(path))
    try:
        db.put(key, value, sync=True)
    finally:
        db.close()


# --- round trips ----------------------------------------------------------------------------


def test_fresh_store_is_empty(tmp_path: Path) -> None:
    with BlockStore.open(tmp_path / "new" / "db") as store:
        assert store.tip() is None
        assert store.genesis_hash() is None
        assert store.get_block(1) is None


def test_genesis_round_trip(tmp_path: Path, chain: tuple[Genesis, ChainBuilder]) -> None:
    genesis, _ = chain
    with BlockStore.open(tmp_path) as store:
        store.init_genesis(genesis.hash(), genesis.initial_state())
    with BlockStore.open(tmp_path) as store:
        assert store.genesis_hash() == genesis.hash()
        assert store.tip() == (0, genesis.hash())
        assert store.get_block(0) is None
        assert store.load_state().root() == genesis.initial_state().root()


def test_blocks_and_state_round_trip(tmp_path: Path, store: BlockStore,
                                     chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    blocks = commit_blocks(store, builder, N_BLOCKS)
    store.close()
    with BlockStore.open(tmp_path / "db") as reopened:
        check_store_matches(reopened, blocks, builder.state)
        seen = [block.last_commit for block in blocks[1:]] + [builder.last_commit]
        for block, commit in zip(blocks, seen, strict=True):
            assert reopened.get_seen_commit(block.height) == commit
        assert reopened.get_seen_commit(len(blocks) + 1) is None


def check_store_matches(store: BlockStore, blocks: list[Block], state: State) -> None:
    loaded = store.load_state()
    assert loaded.root() == state.root()
    assert loaded.accounts == state.accounts
    assert store.tip() == (blocks[-1].height, blocks[-1].hash())
    for block in blocks:
        assert store.get_block(block.height) == block.encode()
        assert store.get_block_by_hash(block.hash()) == block.encode()
        assert decode_block(store.get_block(block.height)) == block
        for index, raw_tx in enumerate(block.txs):
            assert store.get_tx_location(sha256(raw_tx)) == (block.height, index)
    assert store.get_block(blocks[-1].height + 1) is None
    assert store.get_block_by_hash(bytes(32)) is None
    assert store.get_tx_location(bytes(32)) is None


def test_loaded_state_extends_the_chain(store: BlockStore,
                                        chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    commit_blocks(store, builder, 2)
    resumed = ChainBuilder(store.load_state(), builder.validator_key, builder.account_keys,
                           random.Random(SEED + 1), builder.last_commit)
    block, state = resumed.next_block(TXS_PER_BLOCK)
    store.commit_block(block, state)  # the seen commit is optional
    assert store.load_state().root() == state.root()
    assert store.get_seen_commit(block.height) is None


def test_new_accounts_are_stored(store: BlockStore, chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    commit_blocks(store, builder, N_BLOCKS)
    funded = {address_of(k) for k in builder.account_keys} | {builder.state.validators[0].address}
    created = set(builder.state.accounts) - funded
    assert created, "the test chain should pay some fresh addresses"
    assert created <= set(store.load_state().accounts)


# --- refused writes -------------------------------------------------------------------------


def test_refuses_a_gap(store: BlockStore, chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    commit_blocks(store, builder, 1)
    builder.next_block(TXS_PER_BLOCK)  # block 2, never committed
    block3, state3 = builder.next_block(TXS_PER_BLOCK)
    with pytest.raises(StoreError, match="tip is block 1, so the next block must be 2"):
        store.commit_block(block3, state3)
    assert store.tip()[0] == 1


def test_refuses_a_duplicate_height(store: BlockStore,
                                    chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    (block1,) = commit_blocks(store, builder, 1)
    with pytest.raises(StoreError, match="cannot commit block 1"):
        store.commit_block(block1, builder.state)
    assert store.tip() == (1, block1.hash())


def test_refuses_a_state_that_is_not_after_the_block(
        store: BlockStore, chain: tuple[Genesis, ChainBuilder]) -> None:
    genesis, builder = chain
    block, _ = builder.next_block(TXS_PER_BLOCK)
    with pytest.raises(StoreError, match="not the state after block 1"):
        store.commit_block(block, genesis.initial_state())
    assert store.tip() == (0, genesis.hash())


def test_refuses_a_seen_commit_for_another_block(
        store: BlockStore, chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    commit_blocks(store, builder, 1)
    commit1 = builder.last_commit
    block2, state2 = builder.next_block(TXS_PER_BLOCK)
    with pytest.raises(StoreError, match="seen commit is for block 1"):
        store.commit_block(block2, state2, seen_commit=commit1)
    assert store.tip()[0] == 1


def test_refuses_a_block_on_another_tip(tmp_path: Path) -> None:
    genesis_a, _, _ = make_genesis(N_ACCOUNTS, 1)
    genesis_b, vkey_b, keys_b = make_genesis(N_ACCOUNTS, 2)
    block_b, state_b = ChainBuilder(genesis_b.initial_state(), vkey_b, keys_b,
                                    random.Random(1)).next_block(1)
    with BlockStore.open(tmp_path) as store:
        store.init_genesis(genesis_a.hash(), genesis_a.initial_state())
        with pytest.raises(StoreError, match="does not extend the stored tip"):
            store.commit_block(block_b, state_b)


def test_refuses_blocks_and_state_before_genesis(tmp_path: Path,
                                                 chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    block, state = builder.next_block(TXS_PER_BLOCK)
    with BlockStore.open(tmp_path) as store:
        with pytest.raises(StoreError, match="has no genesis"):
            store.commit_block(block, state)
        with pytest.raises(StoreError, match="has no genesis"):
            store.load_state()


def test_init_genesis_is_idempotent(store: BlockStore,
                                    chain: tuple[Genesis, ChainBuilder]) -> None:
    genesis, builder = chain
    commit_blocks(store, builder, 2)
    store.init_genesis(genesis.hash(), genesis.initial_state())
    assert store.tip()[0] == 2
    assert store.load_state().root() == builder.state.root()


def test_refuses_a_different_genesis(store: BlockStore) -> None:
    other, _, _ = make_genesis(N_ACCOUNTS, SEED + 1)
    with pytest.raises(StoreError, match="holds the chain of genesis"):
        store.init_genesis(other.hash(), other.initial_state())


def test_refuses_a_genesis_state_of_another_hash(tmp_path: Path,
                                                 chain: tuple[Genesis, ChainBuilder]) -> None:
    genesis, _ = chain
    with BlockStore.open(tmp_path) as store, pytest.raises(StoreError, match="height-0 state"):
        store.init_genesis(bytes(32), genesis.initial_state())


# --- opening and locking --------------------------------------------------------------------


def test_second_open_in_one_process_is_refused(tmp_path: Path) -> None:
    with BlockStore.open(tmp_path) as store:
        with pytest.raises(StoreError, match="already open in this process"):
            BlockStore.open(tmp_path)
        assert store.tip() is None
    with BlockStore.open(tmp_path) as again:  # the lock went with close()
        assert again.tip() is None


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = BlockStore.open(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.tip()


def test_open_on_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create store directory"):
        BlockStore.open(path)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    BlockStore.open(tmp_path).close()
    put_raw(tmp_path, keys.META_FORMAT, b"jevons-store/v999")
    with pytest.raises(StoreError, match="this node reads"):
        BlockStore.open(tmp_path)


# --- corrupt values -------------------------------------------------------------------------


def corrupt_and_reopen(store: BlockStore, key: bytes, value: bytes) -> BlockStore:
    store.close()
    put_raw(store.path, key, value)
    return BlockStore.open(store.path)


def test_corrupt_account_is_named(store: BlockStore,
                                  chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    address = address_of(builder.account_keys[0])
    with corrupt_and_reopen(store, keys.account_key(address), b"\xc1") as damaged, \
            pytest.raises(StoreError, match=f"corrupt: value under key a:{address.hex()}"):
        damaged.load_state()


def test_non_canonical_account_is_corrupt(store: BlockStore,
                                          chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    key = keys.account_key(address_of(builder.account_keys[1]))
    with corrupt_and_reopen(store, key, encode([-5, 0])) as damaged, \
            pytest.raises(StoreError, match=r"account\.balance"):
        damaged.load_state()


def test_account_key_of_wrong_length_is_corrupt(store: BlockStore) -> None:
    key = keys.ACCOUNT + b"short"
    with corrupt_and_reopen(store, key, encode([1, 0])) as damaged, \
            pytest.raises(StoreError, match="address is 5 bytes"):
        damaged.load_state()


@pytest.mark.parametrize(("key", "value", "read"), [
    (keys.META_TIP, encode([1]), "tip"),
    (keys.META_GENESIS, b"short", "genesis_hash"),
    (keys.META_STATE, encode([1, 2, 3]), "load_state"),
    (keys.META_STATE, encode(["x", [], b"", 0, 0, b"", 5, [], [0, 0, 0, 0]]), "load_state"),
    (keys.META_STATE, encode([*GENESIS_META[:6], 5, *GENESIS_META[7:]]), "load_state"),
])
def test_corrupt_meta_is_named(store: BlockStore, key: bytes, value: bytes, read: str) -> None:
    with corrupt_and_reopen(store, key, value) as damaged, \
            pytest.raises(StoreError, match=f"value under key {key.decode()}"):
        getattr(damaged, read)()


def test_state_behind_the_tip_is_corrupt(store: BlockStore,
                                         chain: tuple[Genesis, ChainBuilder]) -> None:
    genesis, builder = chain
    commit_blocks(store, builder, 1)
    stale_meta = encode(genesis.initial_state().meta_fields())
    with corrupt_and_reopen(store, keys.META_STATE, stale_meta) as damaged, \
            pytest.raises(StoreError, match="is for block 0, but the tip is block 1"):
        damaged.load_state()


def test_corrupt_indices_are_named(store: BlockStore,
                                   chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    (block,) = commit_blocks(store, builder, 1)
    tx_hash = sha256(block.txs[0])
    store.close()
    put_raw(store.path, keys.tx_key(tx_hash), b"\x92\x01")
    put_raw(store.path, keys.block_hash_key(block.hash()), b"\x00\x01")
    with BlockStore.open(store.path) as damaged:
        with pytest.raises(StoreError, match=f"t:{tx_hash.hex()}"):
            damaged.get_tx_location(tx_hash)
        with pytest.raises(StoreError, match=f"h:{block.hash().hex()}"):
            damaged.get_block_by_hash(block.hash())


def test_corrupt_seen_commit_is_named(store: BlockStore,
                                      chain: tuple[Genesis, ChainBuilder]) -> None:
    _, builder = chain
    commit_blocks(store, builder, 1)
    key = keys.seen_commit_key(1)
    with corrupt_and_reopen(store, key, encode([1, 0, b"short", []])) as damaged, \
            pytest.raises(StoreError, match=f"value under key c:{keys.encode_height(1).hex()}"):
        damaged.get_seen_commit(1)


def test_hash_index_to_a_missing_block_is_corrupt(store: BlockStore) -> None:
    key = keys.block_hash_key(bytes(32))
    with corrupt_and_reopen(store, key, keys.encode_height(9)) as damaged, \
            pytest.raises(StoreError, match="points at block 9, which is not stored"):
        damaged.get_block_by_hash(bytes(32))
