"""The persisted double-sign guard: refusals, re-release, durability (the two-slot state
file, torn writes, the older single-record form), one process per key."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from consensus.address import address_from_pubkey
from consensus.bft.guard import DoubleSignRefused, SignState, SignStep, check_sign
from consensus.bft.messages import Proposal
from consensus.crypto import PrivateKey
from consensus.vote import Vote, VoteType
from node.chain.signer import SLOT_BYTES, FileSigner, SignerError

CHAIN = "jevons-test"
KEY = PrivateKey.from_seed(hashlib.sha256(b"signer").digest())
ME = address_from_pubkey(KEY.public)
A, B = hashlib.sha256(b"A").digest(), hashlib.sha256(b"B").digest()


def prevote(height: int, round_: int, value: bytes) -> Vote:
    return Vote(VoteType.PREVOTE, height, round_, value, ME)


def precommit(height: int, round_: int, value: bytes) -> Vote:
    return Vote(VoteType.PRECOMMIT, height, round_, value, ME)


@pytest.mark.parametrize(("last", "position", "outcome"), [
    ((5, 1, SignStep.PREVOTE), (5, 1, SignStep.PRECOMMIT), True),
    ((5, 1, SignStep.PREVOTE), (5, 2, SignStep.PROPOSAL), True),
    ((5, 1, SignStep.PREVOTE), (6, 0, SignStep.PREVOTE), True),
    ((5, 1, SignStep.PREVOTE), (5, 1, SignStep.PROPOSAL), "refuse"),
    ((5, 1, SignStep.PREVOTE), (5, 0, SignStep.PRECOMMIT), "refuse"),
    ((5, 1, SignStep.PREVOTE), (4, 9, SignStep.PRECOMMIT), "refuse"),
])
def test_check_sign_orders_positions(last: tuple, position: tuple, outcome: object) -> None:
    state = SignState(*last, sign_bytes=b"old")
    if outcome == "refuse":
        with pytest.raises(DoubleSignRefused):
            check_sign(state, *position, b"new")
    else:
        assert check_sign(state, *position, b"new") is outcome


def test_same_position_same_bytes_is_a_rerelease_different_bytes_refused() -> None:
    state = SignState(5, 1, SignStep.PREVOTE, b"msg")
    assert check_sign(state, 5, 1, SignStep.PREVOTE, b"msg") is False
    with pytest.raises(DoubleSignRefused, match="different message"):
        check_sign(state, 5, 1, SignStep.PREVOTE, b"other")


def test_file_signer_refuses_conflicts_across_restarts(tmp_path: Path) -> None:
    signer = FileSigner(tmp_path, KEY, CHAIN)
    first = signer.sign_vote(prevote(3, 0, A))
    assert first.verify(CHAIN, KEY.public)
    assert signer.sign_vote(prevote(3, 0, A)).signature == first.signature
    with pytest.raises(DoubleSignRefused):
        signer.sign_vote(prevote(3, 0, B))
    signer.close()
    restarted = FileSigner(tmp_path, KEY, CHAIN)  # state survived on disk
    with pytest.raises(DoubleSignRefused):
        restarted.sign_vote(prevote(3, 0, B))
    with pytest.raises(DoubleSignRefused):
        restarted.sign_proposal(Proposal(2, 5, A, -1, ME))
    assert restarted.sign_vote(prevote(3, 0, A)).signature == first.signature
    vote = restarted.sign_vote(precommit(3, 0, A))
    assert vote.verify(CHAIN, KEY.public)
    proposal = restarted.sign_proposal(Proposal(4, 0, B, -1, ME))
    assert proposal.signature and restarted.state.height == 4
    restarted.close()


def test_second_process_cannot_use_the_key(tmp_path: Path) -> None:
    signer = FileSigner(tmp_path, KEY, CHAIN)
    code = ("import sys, hashlib; from pathlib import Path; "
            "from consensus.crypto import PrivateKey; from node.chain.signer import FileSigner;"
            f"FileSigner(Path({str(tmp_path)!r}), PrivateKey.from_seed(b'1'*32), 'c')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "in use by another process" in result.stderr
    signer.close()
    again = FileSigner(tmp_path, KEY, CHAIN)  # released on close
    with pytest.raises(SignerError, match="in use"):
        FileSigner(tmp_path, KEY, CHAIN)  # a second signer in this process is refused too
    again.close()


def test_corrupt_state_file_stops_the_signer(tmp_path: Path) -> None:
    (tmp_path / "sign_state.bin").write_bytes(b"\x95garbage")
    with pytest.raises(SignerError, match="corrupt"):
        FileSigner(tmp_path, KEY, CHAIN)
    # the lock was released: a fixed file can be used at once
    (tmp_path / "sign_state.bin").unlink()
    FileSigner(tmp_path, KEY, CHAIN).close()


def slot_counters(path: Path) -> list[int | None]:
    raw = path.read_bytes()
    assert len(raw) == 2 * SLOT_BYTES
    return [int.from_bytes(raw[i * SLOT_BYTES + 4:i * SLOT_BYTES + 12], "big")
            if raw[i * SLOT_BYTES:i * SLOT_BYTES + 4] == b"JSS2" else None for i in (0, 1)]


def test_updates_alternate_between_two_slots_in_place(tmp_path: Path) -> None:
    signer = FileSigner(tmp_path, KEY, CHAIN)
    path = tmp_path / "sign_state.bin"
    signer.sign_vote(prevote(3, 0, A))
    inode = path.stat().st_ino
    assert slot_counters(path) == [None, 1]
    signer.sign_vote(precommit(3, 0, A))
    assert slot_counters(path) == [2, 1]
    signer.sign_proposal(Proposal(4, 0, B, -1, ME))
    assert slot_counters(path) == [2, 3] and path.stat().st_ino == inode  # no rename
    signer.close()
    restarted = FileSigner(tmp_path, KEY, CHAIN)  # the newest slot wins
    assert (restarted.state.height, restarted.state.step) == (4, SignStep.PROPOSAL)
    # and is written again into the other slot at start (a write whose flush failed
    # before a restart is still in the page cache: it is made durable before any use)
    raw = path.read_bytes()
    assert slot_counters(path) == [4, 3] and raw[20:SLOT_BYTES] == raw[SLOT_BYTES + 20:]
    with pytest.raises(DoubleSignRefused):
        restarted.sign_proposal(Proposal(4, 0, A, -1, ME))
    restarted.sign_vote(prevote(4, 0, B))
    assert slot_counters(path) == [4, 5]
    restarted.close()


def test_a_torn_slot_falls_back_to_the_previous_state(tmp_path: Path) -> None:
    """A power cut during an update leaves that slot torn; its signature was never
    released, so the state before it is the right one to resume from."""
    signer = FileSigner(tmp_path, KEY, CHAIN)
    signer.sign_vote(prevote(3, 0, A))
    signer.sign_vote(precommit(3, 0, A))  # counter 2, slot 0
    signer.close()
    path = tmp_path / "sign_state.bin"
    raw = bytearray(path.read_bytes())
    raw[40:60] = bytes(20)  # half of slot 0's payload never reached the disk
    path.write_bytes(bytes(raw))
    restarted = FileSigner(tmp_path, KEY, CHAIN)
    assert (restarted.state.height, restarted.state.step) == (3, SignStep.PREVOTE)
    raw = path.read_bytes()  # the torn slot was rewritten with that state
    assert slot_counters(path) == [2, 1] and raw[20:SLOT_BYTES] == raw[SLOT_BYTES + 20:]
    with pytest.raises(DoubleSignRefused):
        restarted.sign_vote(prevote(3, 0, B))  # what did reach the disk is still guarded
    restarted.sign_vote(precommit(3, 0, A))
    assert slot_counters(path) == [2, 3]
    restarted.close()


def test_a_single_record_file_is_read_and_converted_at_its_first_update(
        tmp_path: Path) -> None:
    old = FileSigner(tmp_path, KEY, CHAIN)
    first = old.sign_vote(prevote(3, 0, A))
    old.close()
    path = tmp_path / "sign_state.bin"
    state = SignState(3, 0, SignStep.PREVOTE, first.sign_message(CHAIN), first.signature)
    path.write_bytes(state.encode())  # the form earlier versions wrote
    signer = FileSigner(tmp_path, KEY, CHAIN)
    assert signer.sign_vote(prevote(3, 0, A)).signature == first.signature
    with pytest.raises(DoubleSignRefused):
        signer.sign_vote(prevote(3, 0, B))
    assert path.read_bytes() == state.encode()  # a re-release writes nothing
    signer.sign_vote(precommit(3, 0, A))
    assert slot_counters(path) == [None, 1]
    signer.close()
    assert FileSigner(tmp_path, KEY, CHAIN).state.step == SignStep.PRECOMMIT


@pytest.mark.parametrize("damage", ["both slots", "truncated"])
def test_a_slot_file_without_an_intact_slot_stops_the_signer(tmp_path: Path,
                                                             damage: str) -> None:
    signer = FileSigner(tmp_path, KEY, CHAIN)
    signer.sign_vote(prevote(3, 0, A))
    signer.sign_vote(precommit(3, 0, A))
    signer.close()
    path = tmp_path / "sign_state.bin"
    raw = bytearray(path.read_bytes())
    if damage == "both slots":
        raw[40] ^= 1
        raw[SLOT_BYTES + 40] ^= 1
    else:
        raw = raw[:SLOT_BYTES + 100]
    path.write_bytes(bytes(raw))
    with pytest.raises(SignerError, match="corrupt"):
        FileSigner(tmp_path, KEY, CHAIN)


def test_a_sign_state_that_cannot_be_used_stops_the_signer_at_start(tmp_path: Path) -> None:
    (tmp_path / "sign_state.bin").mkdir()  # e.g. a botched restore
    with pytest.raises(SignerError, match="cannot read or update the sign state"):
        FileSigner(tmp_path, KEY, CHAIN)
    (tmp_path / "sign_state.bin").rmdir()  # the lock was released
    FileSigner(tmp_path, KEY, CHAIN).close()


def test_a_signer_directory_that_is_a_file_stops_the_signer(tmp_path: Path) -> None:
    (tmp_path / "signer").write_bytes(b"")
    with pytest.raises(SignerError, match="cannot use the signer directory"):
        FileSigner(tmp_path / "signer", KEY, CHAIN)
