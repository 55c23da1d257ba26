"""Key layout of the block store: one LevelDB, every key starts with a short prefix.

    m:format              -> FORMAT (the layout version of this file)
    m:genesis             -> genesis hash (32 bytes)
    m:tip                 -> [height, block hash]  (height 0 = genesis, hash = genesis hash)
    m:state               -> State.meta_fields()   (everything but accounts)
    b:<height, 8 B BE>    -> raw canonical block bytes
    h:<block hash>        -> height (8 B BE)
    t:<tx hash>           -> [height, index in block]
    c:<height, 8 B BE>    -> the commit this node saw for that block (Commit.to_fields())
    a:<address, 20 B>     -> Account.to_fields()

Heights are big-endian so blocks sort by height. Values in [] are canonical msgpack arrays.
"""

from __future__ import annotations

from consensus.codec import MAX_UINT64

FORMAT = b"jevons-store/v1"

META_FORMAT = b"m:format"
META_GENESIS = b"m:genesis"
META_TIP = b"m:tip"
META_STATE = b"m:state"

BLOCK = b"b:"
BLOCK_HASH = b"h:"
TX = b"t:"
SEEN_COMMIT = b"c:"
ACCOUNT = b"a:"

HEIGHT_LEN = 8


def encode_height(height: int) -> bytes:
    if not 0 <= height <= MAX_UINT64:
        raise ValueError(f"height {height} outside [0, {MAX_UINT64}]")
    return height.to_bytes(HEIGHT_LEN, "big")


def block_key(height: int) -> bytes:
    return BLOCK + encode_height(height)


def block_hash_key(block_hash: bytes) -> bytes:
    return BLOCK_HASH + block_hash


def seen_commit_key(height: int) -> bytes:
    return SEEN_COMMIT + encode_height(height)


def tx_key(tx_hash: bytes) -> bytes:
    return TX + tx_hash


def account_key(address: bytes) -> bytes:
    return ACCOUNT + address


def key_name(key: bytes) -> str:
    """A readable form of a key for error messages: `m:tip`, `a:<hex address>`."""
    prefix, _, rest = key.partition(b":")
    if prefix == b"m":
        return key.decode("ascii", "backslashreplace")
    return f"{prefix.decode('ascii', 'backslashreplace')}:{rest.hex()}"
