"""SHA-256 and Merkle trees (RFC 6962 shape: leaf = H(0x00||x), node = H(0x01||l||r)).

The tree over n leaves splits at the largest power of two below n, which is what pairing
level by level and carrying an odd last node upward produces. Leaves are never duplicated,
so two different lists cannot share a root (unlike Bitcoin's CVE-2012-2459 construction).
"""

from __future__ import annotations

import hashlib

from consensus.errors import JevonsError

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF = b"\x00"
_NODE = b"\x01"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def merkle_root_of_hashes(leaves: list[bytes]) -> bytes:
    """Root over already-hashed leaves (each a leaf_hash)."""
    if not leaves:
        return EMPTY_ROOT
    level = leaves
    h = hashlib.sha256
    while len(level) > 1:
        nxt = [h(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_root(items: list[bytes]) -> bytes:
    return merkle_root_of_hashes([leaf_hash(x) for x in items])


class InvalidProof(JevonsError):
    pass


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """Audit path (siblings from the leaf up) for leaves[index]; leaves are leaf hashes."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} outside 0..{len(leaves) - 1}")
    path: list[bytes] = []
    level = leaves
    i = index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        nxt = [node_hash(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        i //= 2
    return path


def verify_merkle_proof(leaf: bytes, index: int, count: int, path: list[bytes],
                        root: bytes) -> bool:
    """Check that `leaf` (a leaf hash) sits at `index` of a tree of `count` leaves with `root`."""
    if not 0 <= index < count:
        return False
    node = leaf
    i, n = index, count
    used = 0
    while n > 1:
        sibling = i ^ 1
        if sibling < n:
            if used >= len(path):
                return False
            if i % 2:
                node = node_hash(path[used], node)
            else:
                node = node_hash(node, path[used])
            used += 1
        i //= 2
        n = (n + 1) // 2
    return used == len(path) and node == root
