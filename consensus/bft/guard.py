"""The double-sign guard: the pure rule a validator applies before releasing a signature.

The node makes the returned `SignState` durable (node/chain/signer.py) before the signature
leaves the process, and keeps a lock file so two processes cannot share a key (node/). Order of
signing steps within a round: proposal < prevote < precommit (as in CometBFT).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from consensus.codec import decode, encode, expect_bytes, expect_int, expect_list
from consensus.errors import JevonsError


class SignStep(IntEnum):
    NONE = 0
    PROPOSAL = 1
    PREVOTE = 2
    PRECOMMIT = 3


class DoubleSignRefused(JevonsError):
    """Signing this would contradict a signature already released."""


@dataclass(frozen=True, slots=True)
class SignState:
    height: int = 0
    round: int = 0
    step: SignStep = SignStep.NONE
    sign_bytes: bytes = b""
    signature: bytes = b""

    def encode(self) -> bytes:
        return encode([self.height, self.round, int(self.step), self.sign_bytes,
                       self.signature])

    @classmethod
    def decode(cls, raw: bytes) -> SignState:
        height, round_, step, sign_bytes, sig = expect_list(decode(raw, 4096), 5, "sign state")
        return cls(expect_int(height, "sign_state.height"),
                   expect_int(round_, "sign_state.round"),
                   SignStep(expect_int(step, "sign_state.step", 0, 3)),
                   expect_bytes(sign_bytes, "sign_state.sign_bytes", max_len=2048),
                   expect_bytes(sig, "sign_state.signature", max_len=64))


def check_sign(last: SignState, height: int, round_: int, step: SignStep,
               sign_bytes: bytes) -> bool:
    """May this (height, round, step, sign_bytes) be signed after `last`?

    Returns True for a new position (sign it, then persist), False for the very same
    message as last time (re-release the stored signature; never sign anew), and raises
    DoubleSignRefused for a regression or a different message at the same position.
    """
    position, previous = (height, round_, step), (last.height, last.round, last.step)
    if position > previous:
        return True
    if position == previous and sign_bytes == last.sign_bytes:
        return False
    if position == previous:
        raise DoubleSignRefused(
            f"already signed a different message at height {height} round {round_} "
            f"{step.name.lower()}")
    raise DoubleSignRefused(
        f"refusing to sign height {height} round {round_} {step.name.lower()}: already "
        f"signed height {last.height} round {last.round} {last.step.name.lower()}")
