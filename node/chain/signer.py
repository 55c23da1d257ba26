"""The validator's signer: the double-sign guard, persisted before a signature leaves.

Every proposal and vote goes through `check_sign` (consensus/bft/guard.py). A new position
is signed, then the sign state (height, round, step, sign bytes, signature) is written
atomically and fsynced, and only then is the signature returned. The very same message is
answered with the stored signature; anything else at or before the last position is
refused. An exclusive lock file stops a second process from using the same key (the
"twins" failure), and no command ever resets the state file.
"""

from __future__ import annotations

import fcntl
import os
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


class SignerError(NodeError):
    pass


class FileSigner:
    def __init__(self, directory: Path, key: PrivateKey, chain_id: str) -> None:
        self.key, self.chain_id = key, chain_id
        self.path = directory / STATE_FILE
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _take_lock(directory / LOCK_FILE)
        try:
            self.state = _load(self.path)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

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
        atomic_write(self.path, new_state.encode(), mode=0o600)  # durable before release
        self.state = new_state
        return signature


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise SignerError(f"{path}: the validator key is in use by another process; two "
                          "processes signing with one key would double-sign") from exc
    return fd


def _load(path: Path) -> SignState:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return SignState()
    try:
        return SignState.decode(raw)
    except (DecodeError, ValueError) as exc:
        raise SignerError(f"{path} is corrupt ({exc}). Do not delete it: restore it from a "
                          "backup, or wait until the chain is past its height and write "
                          "that height by hand; signing without it risks double-signing "
                          "and slashing") from exc
