"""One rooted exception tree for the kernels package."""

from __future__ import annotations


class KernelError(Exception):
    """Base of every error raised by `kernels`."""


class BackendUnavailable(KernelError):
    """A backend was asked for by name but cannot run here (the message says why)."""


class InvalidKernelInput(KernelError, ValueError):
    """An operand, model or argument breaks a rule of the kernel (wrong dtype, shape, bound)."""


class ExactnessViolation(KernelError):
    """A backend's arithmetic gave a wrong integer: its results cannot be used for consensus."""


class BlobError(KernelError):
    """Base of the content-addressed blob store's errors."""


class BlobNotFound(BlobError):
    """No blob with this id is stored."""


class BlobCorrupt(BlobError):
    """Stored or received bytes do not hash to the id they were asked for under."""


class InvalidBlob(BlobError, ValueError):
    """Bytes that are not a canonical serialized array, or an id that is not a SHA-256 hex."""
