"""The validator's signer: the double-sign guard, persisted before a signature leaves.

Every proposal and vote goes through `check_sign` (consensus/bft/guard.py). A new position
is signed, then the sign state (height, round, step, sign bytes, signature) is made durable,
and only then is the signature returned. The very same message is answered with the stored
signature; anything else at or before the last position is refused. An exclusive lock file
stops a second process from using the same key (the "twins" failure), and no command ever
resets the state file.

The state file holds two fixed 4 KiB slots, each a counter, a length, a CRC32 and one
encoded SignState. An update overwrites the older slot in place and fdatasyncs: one disk
flush per signature, where a temp file, a rename and a directory fsync took two or more
(every vote waits for it, so on a slow disk this is most of a height's latency). A write
torn by a power cut fails its CRC and the other slot, the previous state, is used; the
signature of the torn write was never released. At start the state read is written again
into the other slot and flushed (a write whose flush failed before a restart may still be in
the page cache and not on disk). A file in the older single-record form (written whole by
rename) is read as is and rewritten in the slot form at its first update.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from pathlib import Path

from consensus.bft.guard import SignState, SignStep, check_sign
from consensus.bft.messages import Proposal
from consensus.crypto import DOMAIN_PROPOSAL, DOMAIN_VOTE, PrivateKey, signing_domain
from consensus.errors import DecodeError
from consensus.vote import Vote, VoteType
from node.errors import NodeError
from node.fsutil import atomic_write

STATE_FILE = "sign_state.bin"
LOCK_FILE = "signer.lock"
SLOT_BYTES = 4096
SLOT_MAGIC = b"JSS2"
SLOT_HEADER = struct.Struct(">4sQII")  # magic, counter, payload length, CRC32
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class SignerError(NodeError):
    pass


class FileSigner:
    def __init__(self, directory: Path, key: PrivateKey, chain_id: str) -> None:
        self.key, self.chain_id = key, chain_id
        self.path = directory / STATE_FILE
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _take_lock(directory / LOCK_FILE)
        except OSError as exc:
            raise SignerError(f"{directory}: cannot use the signer directory ({exc}); the "
                              "validator cannot sign without it") from exc
        self._fd = -1  # the slot file, open once it is in the slot form
        try:
            self.state, self._counter, slotted = _load(self.path)
            if slotted:
                self._fd = os.open(self.path, os.O_RDWR)
                # What was read may be a write whose fdatasync failed before a restart
                # (the page cache still holds it; the disk may not). Write it again into
                # the other slot and flush, so it is durable before it can be re-released.
                self._persist(self.state)
        except OSError as exc:
            self.close()
            raise SignerError(f"{self.path}: cannot read or update the sign state ({exc}); "
                              "the validator cannot sign without it") from exc
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        fds, self._fd, self._lock_fd = (self._fd, self._lock_fd), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def sign_vote(self, vote: Vote) -> Vote:
        step = SignStep.PREVOTE if vote.type == VoteType.PREVOTE else SignStep.PRECOMMIT
        sig = self._sign(vote.height, vote.round, step, DOMAIN_VOTE, vote.sign_payload())
        return Vote(vote.type, vote.height, vote.round, vote.block_hash, vote.validator, sig)

    def sign_proposal(self, proposal: Proposal) -> Proposal:
        sig = self._sign(proposal.height, proposal.round, SignStep.PROPOSAL, DOMAIN_PROPOSAL,
                         proposal.sign_payload())
        return Proposal(proposal.height, proposal.round, proposal.block_hash,
                        proposal.pol_round, proposal.proposer, sig)

    def _sign(self, height: int, round_: int, step: SignStep, domain: str,
              payload: bytes) -> bytes:
        message = signing_domain(domain, self.chain_id) + payload
        if not check_sign(self.state, height, round_, step, message):
            return self.state.signature  # the same message again: the same signature
        signature = self.key.sign(domain, self.chain_id, payload)
        new_state = SignState(height, round_, step, message, signature)
        self._persist(new_state)  # durable before release
        self.state = new_state
        return signature

    def _persist(self, state: SignState) -> None:
        counter = self._counter + 1
        slot = _encode_slot(counter, state)
        if self._fd >= 0:  # overwrite the older slot in place
            written = os.pwrite(self._fd, slot, (counter % 2) * SLOT_BYTES)
            if written != SLOT_BYTES:  # e.g. a full disk: the other slot still holds the state
                raise SignerError(f"{self.path}: wrote {written} of {SLOT_BYTES} bytes of the "
                                  "sign state; the signature was not released")
            _fdatasync(self._fd)
        else:  # first write, or a file in the single-record form: create the slot file
            image = bytearray(2 * SLOT_BYTES)
            start = (counter % 2) * SLOT_BYTES
            image[start:start + SLOT_BYTES] = slot
            atomic_write(self.path, bytes(image), mode=0o600)
            self._fd = os.open(self.path, os.O_RDWR)
        self._counter = counter


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise SignerError(f"{path}: the validator key is in use by another process; two "
                          "processes signing with one key would double-sign") from exc
    return fd


def _encode_slot(counter: int, state: SignState) -> bytes:
    payload = state.encode()
    slot = SLOT_HEADER.pack(SLOT_MAGIC, counter, len(payload), _slot_crc(counter, payload))
    slot += payload
    if len(slot) > SLOT_BYTES:  # SignState.decode bounds it far below (about 2.2 KB)
        raise SignerError(f"sign state of {len(payload)} bytes does not fit a slot")
    return slot.ljust(SLOT_BYTES, b"\0")


def _slot_crc(counter: int, payload: bytes) -> int:
    """The checksum covers the counter too: a slot cannot pass with another slot's count."""
    return zlib.crc32(struct.pack(">Q", counter) + payload)


def _decode_slot(raw: bytes) -> tuple[int, SignState] | None:
    """(counter, state) of an intact slot; None for an empty or torn one."""
    if len(raw) < SLOT_HEADER.size:
        return None
    magic, counter, length, crc = SLOT_HEADER.unpack_from(raw)
    payload = raw[SLOT_HEADER.size:SLOT_HEADER.size + length]
    if (magic != SLOT_MAGIC or len(payload) != length
            or _slot_crc(counter, payload) != crc):
        return None
    try:
        return counter, SignState.decode(payload)
    except (DecodeError, ValueError):
        return None


def _load(path: Path) -> tuple[SignState, int, bool]:
    """(state, counter of its slot, whether the file is in the slot form)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return SignState(), 0, False
    if raw[:len(SLOT_MAGIC)] == SLOT_MAGIC or raw[SLOT_BYTES:][:len(SLOT_MAGIC)] == SLOT_MAGIC:
        slots = [_decode_slot(raw[i * SLOT_BYTES:(i + 1) * SLOT_BYTES]) for i in (0, 1)]
        intact = [slot for slot in slots if slot is not None]
        if len(raw) == 2 * SLOT_BYTES and intact:
            counter, state = max(intact, key=lambda slot: slot[0])
            return state, counter, True
        raise _corrupt(path, "neither slot is intact" if len(raw) == 2 * SLOT_BYTES
                       else f"{len(raw)} bytes, expected {2 * SLOT_BYTES}")
    try:
        return SignState.decode(raw), 0, False
    except (DecodeError, ValueError) as exc:
        raise _corrupt(path, str(exc)) from exc


def _corrupt(path: Path, detail: str) -> SignerError:
    return SignerError(f"{path} is corrupt ({detail}). Do not delete it: restore it from a "
                       "backup, or wait until the chain is past its height and write that "
                       "height by hand (a single encoded SignState record, the older form, "
                       "is accepted); signing without it risks double-signing and slashing")
