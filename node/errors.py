"""Errors raised by the node layer (IO, configuration, homes). All derive from JevonsError."""

from __future__ import annotations

from typing import TypeVar

from consensus.errors import JevonsError

E = TypeVar("E", bound=BaseException)


def first_of(error: BaseException, kind: type[E]) -> E | None:
    """`error` if it is a `kind`, else the first `kind` inside it (trio and hypercorn wrap
    a task's error in exception groups, nested as deep as their nurseries)."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := first_of(inner, kind)) is not None:
                return found
    return None


class NodeError(JevonsError):
    """An operational error with a message meant for the person running the node."""


class ConfigError(NodeError):
    """config.toml or a flag has a bad value; the message names it."""


class HomeError(NodeError):
    """A node home directory is missing, incomplete or would be overwritten."""
