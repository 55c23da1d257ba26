"""Ed25519 signatures with domain separation by object kind and chain id."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.crypto import (
    DOMAIN_PROPOSAL,
    DOMAIN_TX,
    DOMAIN_VOTE,
    SIG_LEN,
    PrivateKey,
    signing_domain,
    verify,
    verify_signature,
)
from consensus.errors import InvalidSignature
from consensus.hashing import sha256
from consensus.tx import Transfer, Tx
from consensus.vote import Vote, VoteType, vote_sign_message
from tests.unit.helpers import CHAIN_ID, addr, flip_byte, key

ALICE = key("crypto/alice")
BOB = key("crypto/bob")
KINDS = [DOMAIN_TX, DOMAIN_VOTE, DOMAIN_PROPOSAL]


@given(st.binary(max_size=200))
@settings(deadline=None, max_examples=50)
def test_sign_then_verify(payload: bytes) -> None:
    sig = ALICE.sign(DOMAIN_TX, CHAIN_ID, payload)
    assert len(sig) == SIG_LEN
    verify(ALICE.public, sig, DOMAIN_TX, CHAIN_ID, payload)
    assert verify_signature(ALICE.public, sig, signing_domain(DOMAIN_TX, CHAIN_ID) + payload)


def test_signatures_are_deterministic_and_keys_come_from_the_seed() -> None:
    seed = sha256(b"crypto/seed")
    a, b = PrivateKey.from_seed(seed), PrivateKey.from_seed(seed)
    assert a.public == b.public
    assert a.sign(DOMAIN_TX, CHAIN_ID, b"x") == b.sign(DOMAIN_TX, CHAIN_ID, b"x")
    assert a.public != ALICE.public


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_seed_must_be_32_bytes(length: int) -> None:
    with pytest.raises(ValueError):
        PrivateKey.from_seed(bytes(length))


def test_repr_does_not_leak_the_seed() -> None:
    assert ALICE.seed.hex() not in repr(ALICE)
    assert ALICE.public.hex() in repr(ALICE)


@pytest.mark.parametrize("signed_as", KINDS)
@pytest.mark.parametrize("checked_as", KINDS)
def test_a_signature_verifies_only_in_its_own_kind(signed_as: str, checked_as: str) -> None:
    sig = ALICE.sign(signed_as, CHAIN_ID, b"payload")
    if signed_as == checked_as:
        verify(ALICE.public, sig, checked_as, CHAIN_ID, b"payload")
    else:
        with pytest.raises(InvalidSignature):
            verify(ALICE.public, sig, checked_as, CHAIN_ID, b"payload")


def test_a_signature_does_not_verify_for_another_chain() -> None:
    sig = ALICE.sign(DOMAIN_TX, CHAIN_ID, b"payload")
    verify(ALICE.public, sig, DOMAIN_TX, CHAIN_ID, b"payload")
    for other in ("jevons-other", CHAIN_ID + "x", CHAIN_ID[:-1]):
        with pytest.raises(InvalidSignature):
            verify(ALICE.public, sig, DOMAIN_TX, other, b"payload")


def test_domain_boundaries_are_unambiguous() -> None:
    """Moving bytes between chain id and payload must change the signed message."""
    assert (signing_domain(DOMAIN_TX, "ab") + b"c") != (signing_domain(DOMAIN_TX, "a") + b"bc")
    sig = ALICE.sign(DOMAIN_TX, "ab", b"c")
    with pytest.raises(InvalidSignature):
        verify(ALICE.public, sig, DOMAIN_TX, "a", b"bc")


def test_tx_signature_is_not_a_vote_signature() -> None:
    """The same payload bytes signed as a tx do not make a valid vote, and vice versa."""
    vote = Vote(VoteType.PRECOMMIT, 3, 0, b"\x01" * 32, addr(ALICE))
    payload = vote.sign_message(CHAIN_ID)[len(signing_domain(DOMAIN_VOTE, CHAIN_ID)):]
    tx_sig = ALICE.sign(DOMAIN_TX, CHAIN_ID, payload)
    forged = Vote(vote.type, vote.height, vote.round, vote.block_hash, vote.validator, tx_sig)
    assert not forged.verify(CHAIN_ID, ALICE.public)
    assert vote.signed(ALICE, CHAIN_ID).verify(CHAIN_ID, ALICE.public)
    assert not vote.signed(ALICE, "jevons-other").verify(CHAIN_ID, ALICE.public)
    assert vote_sign_message(CHAIN_ID, 2, 3, 0, b"\x01" * 32, addr(ALICE)) == \
        vote.sign_message(CHAIN_ID)


def test_tx_sign_message_is_in_the_tx_domain_of_its_chain() -> None:
    tx = Tx(CHAIN_ID, ALICE.public, 0, 100, Transfer(addr(BOB), 5)).signed(ALICE)
    assert tx.sign_message().startswith(signing_domain(DOMAIN_TX, CHAIN_ID))
    assert verify_signature(ALICE.public, tx.signature, tx.sign_message())
    other_chain = Tx("jevons-other", tx.sender_pubkey, tx.nonce, tx.fee, tx.body, tx.signature)
    assert not verify_signature(ALICE.public, tx.signature, other_chain.sign_message())
    with pytest.raises(ValueError):
        Tx(CHAIN_ID, ALICE.public, 0, 100, Transfer(addr(BOB), 5)).signed(BOB)


def test_wrong_key_tampered_payload_or_signature_fail() -> None:
    sig = ALICE.sign(DOMAIN_TX, CHAIN_ID, b"payload")
    with pytest.raises(InvalidSignature):
        verify(BOB.public, sig, DOMAIN_TX, CHAIN_ID, b"payload")
    with pytest.raises(InvalidSignature):
        verify(ALICE.public, sig, DOMAIN_TX, CHAIN_ID, b"payloae")
    for i in (0, 31, 32, 63):
        with pytest.raises(InvalidSignature):
            verify(ALICE.public, flip_byte(sig, i), DOMAIN_TX, CHAIN_ID, b"payload")


@pytest.mark.parametrize(("public", "signature"), [
    (b"", b"s" * 64), (b"p" * 31, b"s" * 64), (b"p" * 33, b"s" * 64),
    (ALICE.public, b""), (ALICE.public, b"s" * 63), (ALICE.public, b"s" * 65),
    (bytes(32), bytes(64)), (b"\xff" * 32, b"\xff" * 64),
])
def test_malformed_keys_and_signatures_return_false(public: bytes, signature: bytes) -> None:
    assert verify_signature(public, signature, b"message") is False


@given(st.binary(min_size=64, max_size=64))
@settings(max_examples=50)
def test_random_signatures_do_not_verify(signature: bytes) -> None:
    assert not verify_signature(ALICE.public, signature, b"message")
