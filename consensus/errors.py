"""One rooted exception tree for the core. Every validity rule raises a typed error."""

from __future__ import annotations


class JevonsError(Exception):
    """Root of every error the project raises on purpose."""


class DecodeError(JevonsError):
    """Bytes are not the one canonical encoding of the expected object."""


class InvalidSignature(JevonsError):
    """A signature does not verify for the given key and message."""


class InvalidAddress(JevonsError):
    """A bech32 address is malformed, has a bad checksum or the wrong prefix."""


class InvalidTx(JevonsError):
    """A transaction breaks a validity rule. Subclasses name the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadTxSignature(InvalidTx):
    pass


class WrongChainId(InvalidTx):
    pass


class NonceReused(InvalidTx):
    pass


class NonceGap(InvalidTx):
    pass


class InsufficientFunds(InvalidTx):
    pass


class AmountOverflow(InvalidTx):
    pass


class NonPositiveAmount(InvalidTx):
    pass


class FeeTooLow(InvalidTx):
    pass


class UnknownSender(InvalidTx):
    pass


class InsufficientStake(InvalidTx):
    """Unstaking more than is bonded."""


class ValidatorTombstoned(InvalidTx):
    """A validator slashed for double-signing may not stake again."""


class WouldHaltChain(InvalidTx):
    """The change would leave no validator able to sign."""


class MalformedTx(InvalidTx):
    """Bytes that do not decode to a transaction (including an unknown kind)."""


class InvalidBlock(JevonsError):
    """A block breaks a validity rule; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidEvidence(InvalidBlock):
    """Evidence in a block is malformed, unverifiable, too old or already punished."""


class InvalidCommit(InvalidBlock):
    """A commit certificate lacks a quorum, has a bad signature or names a wrong block."""


class InvalidGenesis(JevonsError):
    """A genesis document breaks a rule; the message names the field."""


class InvariantViolation(JevonsError):
    """A broken internal invariant (e.g. total supply). The node must stop."""


# --- compute market ---------------------------------------------------------------------


class InvalidProviderTerms(InvalidTx):
    """A provider registration with bad kernels, capacity, carbon figure, endpoint or stake."""


class InvalidJob(InvalidTx):
    """A job submission with a bad spec, price, deadline or size."""


class UnknownJob(InvalidTx):
    pass


class NotJobProvider(InvalidTx):
    """A result committed by someone other than the assigned provider."""


class WrongJobStatus(InvalidTx):
    """The job is not in the state this transaction acts on (e.g. already committed)."""


class DeadlinePassed(InvalidTx):
    pass


class NotInCommittee(InvalidTx):
    """A verdict from an address that is not on the job's verification committee."""


class DuplicateVerdict(InvalidTx):
    pass
