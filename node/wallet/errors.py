"""Wallet errors and the exit codes of `jevons wallet` (the one table; docs/wallet.md
repeats it).

| code | meaning |
|---|---|
| 0 | success |
| 1 | any other error: bad input (address, amount, mnemonic, name), a refused operation |
| 2 | usage error (unknown flag, missing argument, bad choice), printed by click |
| 3 | keystore: wrong password, or a key file that is missing, unreadable or corrupt |
| 4 | the node cannot be reached (connection refused, timeout, not a Jevons API) |
| 5 | the transaction was rejected (by the node, or by the local funds/stake check) |
| 6 | a compute job did not end accepted (rejected, failed, expired, undecided), has no
|   | result to fetch, or its output does not match the root committed on chain |
"""

from __future__ import annotations

from enum import IntEnum

from consensus.errors import JevonsError


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    KEYSTORE = 3
    NODE_UNREACHABLE = 4
    TX_REJECTED = 5
    JOB_FAILED = 6


class WalletError(JevonsError):
    """A wallet failure with a message for the person at the terminal and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR


class KeystoreError(WalletError):
    """A key file is missing, unreadable, corrupt or cannot be unlocked."""

    exit_code = ExitCode.KEYSTORE


class KeyNotFound(KeystoreError):
    pass


class WrongPassword(KeystoreError):
    pass


class KeystoreCorrupt(KeystoreError):
    """The file is not a valid keystore, or its contents disagree with each other."""


class InvalidMnemonic(WalletError):
    pass


class NodeUnreachable(WalletError):
    exit_code = ExitCode.NODE_UNREACHABLE


class TxRejected(WalletError):
    """The node refused a transaction (`code` is the node's stable code), or the local
    check did (`code` insufficient_funds / insufficient_stake)."""

    exit_code = ExitCode.TX_REJECTED

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"transaction rejected: {code}: {message}")
        self.code, self.reason = code, message


class JobFailed(WalletError):
    """A job ended other than accepted, has no result, or its result does not check out."""

    exit_code = ExitCode.JOB_FAILED


class ProviderUnavailable(WalletError):
    """The node could not fetch a job's output from its provider (HTTP 502): retryable."""
