"""The persisted double-sign guard: refusals, re-release, durability (the two-slot state
file, torn writes, the older forms), one process per key, and a state that is missing or
belongs to another key refused."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from consensus.address import address_from_pubkey
from consensus.bft.guard import DoubleSignRefused, SignState, SignStep, check_sign
from consensus.bft.messages import Proposal
from consensus.crypto import PrivateKey
from consensus.vote import Vote, VoteType
from node.chain.signer import (
    SLOT_BYTES,
    SLOT_HEADER,
    FileSigner,
    SignerError,
    create_sign_state,
)

CHAIN = "jevons-test"
KEY = PrivateKey.from_seed(hashlib.sha256(b"signer").digest())
OTHER = PrivateKey.from_seed(hashlib.sha256(b"another signer").digest())
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


def new_signer(directory: Path, key: PrivateKey = KEY) -> FileSigner:
    """The signer of a new key, its state created as `jevons init` creates it."""
    create_sign_state(directory, key.public)
    return FileSigner(directory, key, CHAIN)


def test_file_signer_refuses_conflicts_across_restarts(tmp_path: Path) -> None:
    signer = new_signer(tmp_path)
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
    signer = new_signer(tmp_path)
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
    new_signer(tmp_path).close()


def slot_counters(path: Path) -> list[int | None]:
    raw = path.read_bytes()
    assert len(raw) == 2 * SLOT_BYTES
    return [int.from_bytes(raw[i * SLOT_BYTES + 4:i * SLOT_BYTES + 12], "big")
            if raw[i * SLOT_BYTES:i * SLOT_BYTES + 4] == b"JSS3" else None for i in (0, 1)]


def same_payloads(path: Path) -> bool:
    """Both slots hold the same state (their headers differ by counter and checksum)."""
    raw = path.read_bytes()
    return raw[SLOT_HEADER.size:SLOT_BYTES] == raw[SLOT_BYTES + SLOT_HEADER.size:]


def test_updates_alternate_between_two_slots_in_place(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    create_sign_state(tmp_path, KEY.public)
    assert slot_counters(path) == [0, None]
    signer = FileSigner(tmp_path, KEY, CHAIN)  # the state is written again at start
    assert slot_counters(path) == [0, 1] and same_payloads(path)
    inode = path.stat().st_ino
    signer.sign_vote(prevote(3, 0, A))
    assert slot_counters(path) == [2, 1]
    signer.sign_vote(precommit(3, 0, A))
    assert slot_counters(path) == [2, 3] and path.stat().st_ino == inode  # no rename
    signer.sign_proposal(Proposal(4, 0, B, -1, ME))
    assert slot_counters(path) == [4, 3]
    signer.close()
    restarted = FileSigner(tmp_path, KEY, CHAIN)  # the newest slot wins
    assert (restarted.state.height, restarted.state.step) == (4, SignStep.PROPOSAL)
    # and is written again into the other slot at start (a write whose flush failed
    # before a restart is still in the page cache: it is made durable before any use)
    assert slot_counters(path) == [4, 5] and same_payloads(path)
    with pytest.raises(DoubleSignRefused):
        restarted.sign_proposal(Proposal(4, 0, A, -1, ME))
    restarted.sign_vote(prevote(4, 0, B))
    assert slot_counters(path) == [6, 5]
    restarted.close()


def test_a_torn_slot_falls_back_to_the_previous_state(tmp_path: Path) -> None:
    """A power cut during an update leaves that slot torn; its signature was never
    released, so the state before it is the right one to resume from."""
    signer = new_signer(tmp_path)  # counter 1 (slot 1) at start
    signer.sign_vote(prevote(3, 0, A))  # counter 2, slot 0
    signer.sign_vote(precommit(3, 0, A))  # counter 3, slot 1
    signer.close()
    path = tmp_path / "sign_state.bin"
    raw = bytearray(path.read_bytes())
    at = SLOT_BYTES + SLOT_HEADER.size + 20
    raw[at:at + 20] = bytes(20)  # part of slot 1's payload never reached the disk
    path.write_bytes(bytes(raw))
    restarted = FileSigner(tmp_path, KEY, CHAIN)
    assert (restarted.state.height, restarted.state.step) == (3, SignStep.PREVOTE)
    # the torn slot was rewritten with that state
    assert slot_counters(path) == [2, 3] and same_payloads(path)
    with pytest.raises(DoubleSignRefused):
        restarted.sign_vote(prevote(3, 0, B))  # what did reach the disk is still guarded
    restarted.sign_vote(precommit(3, 0, A))
    assert slot_counters(path) == [4, 3]
    restarted.close()


def old_slot_file(state: SignState, counter: int) -> bytes:
    """The two-slot form before the owner key was recorded ("JSS2")."""
    payload = state.encode()
    crc = zlib.crc32(struct.pack(">Q", counter) + payload)
    slot = struct.pack(">4sQII", b"JSS2", counter, len(payload), crc) + payload
    image = bytearray(2 * SLOT_BYTES)
    start = (counter % 2) * SLOT_BYTES
    image[start:start + len(slot)] = slot
    return bytes(image)


@pytest.mark.parametrize("form", ["single record", "JSS2 slots"])
def test_a_file_in_an_older_form_is_read_and_converted_at_start(tmp_path: Path,
                                                                form: str) -> None:
    old = new_signer(tmp_path)
    first = old.sign_vote(prevote(3, 0, A))
    old.close()
    path = tmp_path / "sign_state.bin"
    state = SignState(3, 0, SignStep.PREVOTE, first.sign_message(CHAIN), first.signature)
    path.write_bytes(state.encode() if form == "single record" else old_slot_file(state, 7))
    signer = FileSigner(tmp_path, KEY, CHAIN)
    assert signer.state == state
    counter = 1 if form == "single record" else 8
    assert slot_counters(path) == ([None, counter] if counter % 2 else [counter, None])
    assert signer.sign_vote(prevote(3, 0, A)).signature == first.signature
    with pytest.raises(DoubleSignRefused):
        signer.sign_vote(prevote(3, 0, B))
    signer.sign_vote(precommit(3, 0, A))
    signer.close()
    restarted = FileSigner(tmp_path, KEY, CHAIN)
    assert restarted.state.step == SignStep.PRECOMMIT
    restarted.close()
    # converted, it now records its key: another key is refused
    with pytest.raises(SignerError, match="belongs to validator"):
        FileSigner(tmp_path, OTHER, CHAIN)


@pytest.mark.parametrize("damage", ["both slots", "truncated"])
def test_a_slot_file_without_an_intact_slot_stops_the_signer(tmp_path: Path,
                                                             damage: str) -> None:
    signer = new_signer(tmp_path)
    signer.sign_vote(prevote(3, 0, A))
    signer.sign_vote(precommit(3, 0, A))
    signer.close()
    path = tmp_path / "sign_state.bin"
    raw = bytearray(path.read_bytes())
    if damage == "both slots":
        raw[SLOT_HEADER.size + 5] ^= 1
        raw[SLOT_BYTES + SLOT_HEADER.size + 5] ^= 1
    else:
        raw = raw[:SLOT_BYTES + 100]
    path.write_bytes(bytes(raw))
    with pytest.raises(SignerError, match="corrupt"):
        FileSigner(tmp_path, KEY, CHAIN)


def test_a_slot_counts_only_in_its_own_place_and_form(tmp_path: Path) -> None:
    """Files no writer produces (a hand restore gone wrong): a slot whose counter does not
    match its place, or an older-form slot beside a current one, is not believed."""
    signer = new_signer(tmp_path)  # counter 1
    signer.sign_vote(prevote(3, 0, A))  # 2
    signer.sign_vote(precommit(3, 0, A))  # 3
    signer.sign_proposal(Proposal(4, 0, B, -1, ME))  # 4, slot 0
    path = tmp_path / "sign_state.bin"
    at_four = path.read_bytes()
    signer.sign_vote(prevote(4, 0, B))  # 5
    signer.sign_vote(precommit(4, 0, B))  # 6, slot 0
    signer.close()
    at_six = path.read_bytes()
    path.write_bytes(at_four[:SLOT_BYTES] + at_six[:SLOT_BYTES])  # counter 6 in slot 1
    restarted = FileSigner(tmp_path, KEY, CHAIN)
    assert (restarted.state.height, restarted.state.step) == (4, SignStep.PROPOSAL)
    restarted.close()
    # another key's current slot beside an older-form slot with a higher counter
    other = tmp_path / "other"
    new_signer(other, OTHER).sign_vote(prevote(3, 0, A))  # counter 2, slot 0
    legacy = old_slot_file(SignState(9, 0, SignStep.PREVOTE, b"m", b"s"), 3)
    path.write_bytes((other / "sign_state.bin").read_bytes()[:SLOT_BYTES]
                     + legacy[SLOT_BYTES:])
    with pytest.raises(SignerError, match="belongs to validator"):
        FileSigner(tmp_path, KEY, CHAIN)


def test_a_missing_sign_state_is_refused_unless_the_operator_says_it_is_new(
        tmp_path: Path) -> None:
    """A lost file (a wiped data directory, a key moved without it) must not read as a key
    that never signed: it could sign a second vote at the height it was at."""
    with pytest.raises(SignerError, match=r"is missing.*--new-sign-state"):
        FileSigner(tmp_path, KEY, CHAIN)
    assert not (tmp_path / "sign_state.bin").exists()  # nothing created behind our back
    signer = FileSigner(tmp_path, KEY, CHAIN, new_state=True)
    assert signer.state == SignState()
    signer.sign_vote(prevote(3, 0, A))
    signer.close()
    again = FileSigner(tmp_path, KEY, CHAIN, new_state=True)  # never overwrites a file
    with pytest.raises(DoubleSignRefused):
        again.sign_vote(prevote(3, 0, B))
    again.close()


def test_a_sign_state_of_another_key_is_refused(tmp_path: Path) -> None:
    """A key copied into a home made for another one (or the reverse) gets the other key's
    record of what was signed: a fresh one, where this key may have signed already."""
    new_signer(tmp_path, OTHER).close()
    before = (tmp_path / "sign_state.bin").read_bytes()
    with pytest.raises(SignerError, match=r"belongs to validator .* not to this home's key"):
        FileSigner(tmp_path, KEY, CHAIN, new_state=True)
    assert (tmp_path / "sign_state.bin").read_bytes() == before
    FileSigner(tmp_path, OTHER, CHAIN).close()  # its own key still uses it


def test_a_sign_state_is_created_once_and_a_closed_signer_signs_nothing(
        tmp_path: Path) -> None:
    signer = new_signer(tmp_path)
    signer.sign_vote(prevote(3, 0, A))
    signer.close()
    with pytest.raises(SignerError, match="closed"):
        signer.sign_vote(precommit(3, 0, A))
    before = (tmp_path / "sign_state.bin").read_bytes()
    with pytest.raises(SignerError, match="already exists"):
        create_sign_state(tmp_path, KEY.public)
    assert (tmp_path / "sign_state.bin").read_bytes() == before


def test_a_sign_state_that_cannot_be_used_stops_the_signer_at_start(tmp_path: Path) -> None:
    (tmp_path / "sign_state.bin").mkdir()  # e.g. a botched restore
    with pytest.raises(SignerError, match="cannot read or update the sign state"):
        FileSigner(tmp_path, KEY, CHAIN)
    (tmp_path / "sign_state.bin").rmdir()  # the lock was released
    new_signer(tmp_path).close()


def test_a_signer_directory_that_is_a_file_stops_the_signer(tmp_path: Path) -> None:
    (tmp_path / "signer").write_bytes(b"")
    with pytest.raises(SignerError, match="cannot use the signer directory"):
        FileSigner(tmp_path / "signer", KEY, CHAIN)
