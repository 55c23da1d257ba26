"""SHA-256 Merkle trees against a direct RFC 6962 reference, and audit paths."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.hashing import (
    EMPTY_ROOT,
    leaf_hash,
    merkle_proof,
    merkle_root,
    merkle_root_of_hashes,
    node_hash,
    verify_merkle_proof,
)


def reference_root(items: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, written out: split at the largest power of two below n."""
    n = len(items)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + items[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(items[:k]) + reference_root(items[k:])).digest()


def reference_path(items: list[bytes], m: int) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n]): siblings from the leaf up."""
    n = len(items)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*reference_path(items[:k], m), reference_root(items[k:])]
    return [*reference_path(items[k:], m - k), reference_root(items[:k])]


def items_of(n: int, tag: bytes = b"item") -> list[bytes]:
    return [tag + i.to_bytes(2, "big") for i in range(n)]


@pytest.mark.parametrize("n", range(71))
def test_root_matches_rfc6962_reference(n: int) -> None:
    items = items_of(n)
    assert merkle_root(items) == reference_root(items)
    assert merkle_root_of_hashes([leaf_hash(x) for x in items]) == reference_root(items)


def test_small_trees_by_hand() -> None:
    a, b, c = b"a", b"b", b"c"
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert merkle_root([a]) == leaf_hash(a) == hashlib.sha256(b"\x00a").digest()
    assert merkle_root([a, b]) == node_hash(leaf_hash(a), leaf_hash(b))
    assert merkle_root([a, b, c]) == node_hash(node_hash(leaf_hash(a), leaf_hash(b)),
                                               leaf_hash(c))


@given(st.lists(st.binary(max_size=8), max_size=40))
def test_root_matches_reference_for_arbitrary_items(items: list[bytes]) -> None:
    assert merkle_root(items) == reference_root(items)


@given(st.lists(st.binary(max_size=4), min_size=1, max_size=12), st.data())
def test_different_lists_have_different_roots(items: list[bytes], data: st.DataObject) -> None:
    """No CVE-2012-2459: duplicating the last item, or any change, changes the root."""
    assert merkle_root(items) != merkle_root([*items, items[-1]])
    other = data.draw(st.lists(st.binary(max_size=4), min_size=1, max_size=12))
    if other != items:
        assert merkle_root(other) != merkle_root(items)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = leaf_hash(b"l"), leaf_hash(b"r")
    # A 64-byte leaf equal to two child hashes must not hash like the node over them.
    assert leaf_hash(left + right) != node_hash(left, right)
    assert merkle_root([left + right]) != merkle_root([b"l", b"r"])


@pytest.mark.parametrize("n", range(1, 71))
def test_every_proof_verifies_and_matches_the_reference_path(n: int) -> None:
    items = items_of(n)
    leaves = [leaf_hash(x) for x in items]
    root = merkle_root(items)
    for i in range(n):
        path = merkle_proof(leaves, i)
        assert path == reference_path(items, i)
        assert verify_merkle_proof(leaves[i], i, n, path, root)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 13, 33])
def test_proofs_fail_when_anything_is_wrong(n: int) -> None:
    items = items_of(n)
    leaves = [leaf_hash(x) for x in items]
    root = merkle_root(items)
    wrong_leaf = leaf_hash(b"not an item")
    for i in range(n):
        path = merkle_proof(leaves, i)
        assert not verify_merkle_proof(wrong_leaf, i, n, path, root)
        assert not verify_merkle_proof(items[i], i, n, path, root)  # unhashed leaf
        assert not verify_merkle_proof(leaves[i], i, n, path, leaf_hash(b"other root"))
        for j in range(n):
            if j != i:
                assert not verify_merkle_proof(leaves[i], j, n, path, root)
        assert not verify_merkle_proof(leaves[i], i, n, [*path, leaves[i]], root)
        assert not verify_merkle_proof(leaves[i], n + i, n, path, root)
        assert not verify_merkle_proof(leaves[i], -1, n, path, root)
        if path:
            assert not verify_merkle_proof(leaves[i], i, n, path[:-1], root)
            assert not verify_merkle_proof(leaves[i], i, n, path[1:], root)
            for k in range(len(path)):
                bad = [*path[:k], wrong_leaf, *path[k + 1:]]
                assert not verify_merkle_proof(leaves[i], i, n, bad, root)


def sides(index: int, count: int) -> list[int]:
    """Which side each sibling sits on, from the leaf up (the shape a path encodes)."""
    out = []
    i, n = index, count
    while n > 1:
        if i ^ 1 < n:
            out.append(i % 2)
        i //= 2
        n = (n + 1) // 2
    return out


@pytest.mark.parametrize("n", range(1, 40))
def test_wrong_count_fails_unless_the_tree_shape_is_the_same(n: int) -> None:
    """A path does not encode the tree size: a wrong count can only pass where the leaf's
    path has the same shape in both trees (as in RFC 6962, e.g. leaf 0 of 5 and of 6)."""
    items = items_of(n)
    leaves = [leaf_hash(x) for x in items]
    root = merkle_root(items)
    failures = 0
    for i in range(n):
        path = merkle_proof(leaves, i)
        for m in range(0, n + 5):
            if m == n:
                continue
            if verify_merkle_proof(leaves[i], i, m, path, root):
                assert sides(i, m) == sides(i, n)
            else:
                failures += 1
    assert failures > 0  # at least the counts that exclude the index fail


def test_last_leaf_with_a_count_one_larger_fails() -> None:
    items = items_of(6)
    leaves = [leaf_hash(x) for x in items]
    root = merkle_root(items)
    path = merkle_proof(leaves, 5)
    assert verify_merkle_proof(leaves[5], 5, 6, path, root)
    assert not verify_merkle_proof(leaves[5], 5, 7, path, root)
    assert not verify_merkle_proof(leaves[4], 4, 5, merkle_proof(leaves, 4), root)


@pytest.mark.parametrize("index", [-1, 3, 100])
def test_proof_index_out_of_range_raises(index: int) -> None:
    with pytest.raises(IndexError):
        merkle_proof([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")], index)


@given(st.lists(st.binary(max_size=6), min_size=1, max_size=50), st.data())
@settings(max_examples=100)
def test_proof_property(items: list[bytes], data: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in items]
    root = merkle_root(items)
    i = data.draw(st.integers(0, len(items) - 1))
    path = merkle_proof(leaves, i)
    assert verify_merkle_proof(leaves[i], i, len(items), path, root)
    j = data.draw(st.integers(0, len(items) - 1))
    if leaves[j] != leaves[i]:
        assert not verify_merkle_proof(leaves[j], i, len(items), path, root)
