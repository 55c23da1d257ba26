"""Errors raised by the node layer (IO, configuration, homes). All derive from JevonsError."""

from __future__ import annotations

from consensus.errors import JevonsError


class NodeError(JevonsError):
    """An operational error with a message meant for the person running the node."""


class ConfigError(NodeError):
    """config.toml or a flag has a bad value; the message names it."""


class HomeError(NodeError):
    """A node home directory is missing, incomplete or would be overwritten."""
