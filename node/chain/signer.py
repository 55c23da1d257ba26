"""The validator's signer: the double-sign guard, persisted before a signature leaves.

Every proposal and vote goes through `check_sign` (consensus/bft/guard.py). A new position
is signed, then the sign state (height, round, step, sign bytes, signature) is made durable,
and only then is the signature returned. The very same message is answered with the stored
signature; anything else at or before the last position is refused. An exclusive lock file
stops a second process from using the same key (the "twins" failure), and no command ever
resets the state file.

The state file holds two fixed 4 KiB slots, each a counter, the public key it belongs to, a
length, a CRC32 and one encoded SignState. An update overwrites the older slot in place and
fdatasyncs: one disk flush per signature, where a temp file, a rename and a directory fsync
took two or more (every vote waits for it, so on a slow disk this is most of a height's
latency). A write torn by a power cut fails its CRC and the other slot, the previous state,
is used; the signature of the torn write was never released. At start the state read is
written again into the other slot and flushed (a write whose flush failed before a restart
may still be in the page cache and not on disk).

The file is created with the key (`create_sign_state`, called by `jevons init` and
`jevons testnet`), so a missing file means a lost one: the signer refuses to start rather
than sign as if it had never signed (a wiped data directory, a key moved to a new machine
without it). `new_state=True` (`jevons node start --new-sign-state`) is the operator's
explicit word that this key has not signed at the chain's current height or later. A file
that belongs to another key is refused too. Files from before the key was recorded (the
"JSS2" slot form and the single-record form written whole by rename) are read as this key's
and rewritten in the current form at start.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from pathlib import Path

from consensus.address import address_from_pubkey, to_bech32
from consensus.bft.guard import SignState, SignStep, check_sign
from consensus.bft.messages import Proposal
from consensus.crypto import (
    DOMAIN_PROPOSAL,
    DOMAIN_VOTE,
    PUBKEY_LEN,
    PrivateKey,
    signing_domain,
)
from consensus.errors import DecodeError
from consensus.vote import Vote, VoteType
from node.errors import NodeError
from node.fsutil import atomic_write

STATE_FILE = "sign_state.bin"
LOCK_FILE = "signer.lock"
SLOT_BYTES = 4096
SLOT_MAGIC = b"JSS3"
SLOT_HEADER = struct.Struct(f">4sQ{PUBKEY_LEN}sII")  # magic, counter, owner, length, CRC
OLD_SLOT_MAGIC = b"JSS2"  # the form before the owner was recorded
OLD_SLOT_HEADER = struct.Struct(">4sQII")  # magic, counter, payload length, CRC32
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class SignerError(NodeError):
    pass


class FileSigner:
    def __init__(self, directory: Path, key: PrivateKey, chain_id: str, *,
                 new_state: bool = False) -> None:
        """`new_state`: start from a fresh state if the file is missing (never overwrites)."""
        self.key, self.chain_id = key, chain_id
        self.path = directory / STATE_FILE
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _take_lock(directory / LOCK_FILE)
        except OSError as exc:
            raise SignerError(f"{directory}: cannot use the signer directory ({exc}); the "
                              "validator cannot sign without it") from exc
        self._fd = -1  # the slot file, open once it is in the current form
        self._closed = False
        try:
            loaded = _load(self.path)
            if loaded is None and not new_state:
                raise _missing(self.path)
            self.state, self._counter, owner, current = loaded or (SignState(), 0, None, False)
            if owner is not None and owner != key.public:
                raise _foreign(self.path, owner, key.public)
            if current:
                self._fd = os.open(self.path, os.O_RDWR)
            # What was read may be a write whose fdatasync failed before a restart (the page
            # cache still holds it; the disk may not). Write it again into the other slot and
            # flush, so it is durable before it can be re-released. A missing file, or one in
            # an older form, is written whole in the current form.
            self._persist(self.state)
        except OSError as exc:
            self.close()
            raise SignerError(f"{self.path}: cannot read or update the sign state ({exc}); "
                              "the validator cannot sign without it") from exc
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._closed = True
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
        if self._closed:  # its lock is gone: another process may hold the key now
            raise SignerError(f"{self.path}: the signer is closed; nothing more is signed")
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
        slot = _encode_slot(counter, self.key.public, state)
        if self._fd >= 0:  # overwrite the older slot in place
            written = os.pwrite(self._fd, slot, (counter % 2) * SLOT_BYTES)
            if written != SLOT_BYTES:  # e.g. a full disk: the other slot still holds the state
                raise SignerError(f"{self.path}: wrote {written} of {SLOT_BYTES} bytes of the "
                                  "sign state; the signature was not released")
            _fdatasync(self._fd)
        else:  # a new file, or one in an older form: write it whole
            atomic_write(self.path, _image(counter, slot), mode=0o600)
            self._fd = os.open(self.path, os.O_RDWR)
        self._counter = counter


def create_sign_state(directory: Path, public: bytes) -> None:
    """Write the fresh sign state of a new key `public` into `directory` (made if needed);
    refuse to replace an existing one."""
    path = directory / STATE_FILE
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        raise SignerError(f"{path} already exists; a sign state is never replaced")
    atomic_write(path, _image(0, _encode_slot(0, public, SignState())), mode=0o600)


def _image(counter: int, slot: bytes) -> bytes:
    """A whole file holding `slot` in the place of `counter`, the other slot empty."""
    image = bytearray(2 * SLOT_BYTES)
    start = (counter % 2) * SLOT_BYTES
    image[start:start + SLOT_BYTES] = slot
    return bytes(image)


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise SignerError(f"{path}: the validator key is in use by another process; two "
                          "processes signing with one key would double-sign") from exc
    return fd


def _encode_slot(counter: int, owner: bytes, state: SignState) -> bytes:
    payload = state.encode()
    slot = SLOT_HEADER.pack(SLOT_MAGIC, counter, owner, len(payload),
                            _slot_crc(counter, owner + payload))
    slot += payload
    if len(slot) > SLOT_BYTES:  # SignState.decode bounds it far below (about 2.2 KB)
        raise SignerError(f"sign state of {len(payload)} bytes does not fit a slot")
    return slot.ljust(SLOT_BYTES, b"\0")


def _slot_crc(counter: int, covered: bytes) -> int:
    """The checksum covers the counter too: a slot cannot pass with another slot's count."""
    return zlib.crc32(struct.pack(">Q", counter) + covered)


def _decode_slot(raw: bytes) -> tuple[int, bytes | None, SignState] | None:
    """(counter, owner, state) of an intact slot, the owner None in the older "JSS2" form;
    None for an empty or torn one."""
    magic = raw[:len(SLOT_MAGIC)]
    if magic == SLOT_MAGIC and len(raw) >= SLOT_HEADER.size:
        _, counter, owner, length, crc = SLOT_HEADER.unpack_from(raw)
        payload = raw[SLOT_HEADER.size:SLOT_HEADER.size + length]
        covered = owner + payload
    elif magic == OLD_SLOT_MAGIC and len(raw) >= OLD_SLOT_HEADER.size:
        _, counter, length, crc = OLD_SLOT_HEADER.unpack_from(raw)
        owner, payload = None, raw[OLD_SLOT_HEADER.size:OLD_SLOT_HEADER.size + length]
        covered = payload
    else:
        return None
    if len(payload) != length or _slot_crc(counter, covered) != crc:
        return None
    try:
        return counter, owner, SignState.decode(payload)
    except (DecodeError, ValueError):
        return None


def _load(path: Path) -> tuple[SignState, int, bytes | None, bool] | None:
    """(state, counter of its slot, owner key or None if not recorded, whether the file is
    in the current form); None if there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    magics = {raw[:4], raw[SLOT_BYTES:SLOT_BYTES + 4]}
    if SLOT_MAGIC in magics or OLD_SLOT_MAGIC in magics:
        slots = [_decode_slot(raw[i * SLOT_BYTES:(i + 1) * SLOT_BYTES]) for i in (0, 1)]
        # a slot counts only in its own place (counter parity), and only in the file's
        # form: no writer mixes forms (a conversion rewrites the whole file)
        intact = [slot for i, slot in enumerate(slots) if slot is not None
                  and slot[0] % 2 == i and (slot[1] is not None or SLOT_MAGIC not in magics)]
        if len(raw) == 2 * SLOT_BYTES and intact:
            counter, owner, state = max(intact, key=lambda slot: slot[0])
            return state, counter, owner, SLOT_MAGIC in magics
        raise _corrupt(path, "neither slot is intact" if len(raw) == 2 * SLOT_BYTES
                       else f"{len(raw)} bytes, expected {2 * SLOT_BYTES}")
    try:
        return SignState.decode(raw), 0, None, False
    except (DecodeError, ValueError) as exc:
        raise _corrupt(path, str(exc)) from exc


def _missing(path: Path) -> SignerError:
    return SignerError(
        f"{path} is missing: this validator would sign as if it had never signed, and could "
        "sign twice at a height it already signed (slashing). The file is created with the "
        "key (by `jevons init` or `jevons testnet`; earlier versions wrote it at the first "
        "signature) and must travel with it: restore it from a backup. Only if it is truly "
        "lost, and the chain is past the last height this key signed, or the key has never "
        "signed on this chain (a home made by an earlier version that never signed), start "
        "once with --new-sign-state")


def _foreign(path: Path, owner: bytes, public: bytes) -> SignerError:
    return SignerError(
        f"{path} belongs to validator {to_bech32(address_from_pubkey(owner))}, not to this "
        f"home's key ({to_bech32(address_from_pubkey(public))}): the key or the sign state "
        "was replaced. Put back the matching pair (a key moved to a new home needs its "
        "sign_state.bin moved with it); if the key's own sign state is truly lost, remove "
        "this file and follow the advice for a missing one")


def _corrupt(path: Path, detail: str) -> SignerError:
    return SignerError(f"{path} is corrupt ({detail}). Do not delete it: restore it from a "
                       "backup, or wait until the chain is past its height and write that "
                       "height by hand (a single encoded SignState record, the older form, "
                       "is accepted); signing without it risks double-signing and slashing")
