"""Typed errors of the p2p adapter. No libp2p exception ever leaves node/p2p.

Every error derives from `P2PError` (a `NodeError`), so callers can catch the whole family
or one case. The message says what happened, with the values involved.
"""

from __future__ import annotations

from node.errors import NodeError


class P2PError(NodeError):
    """Something in the p2p layer failed; subclasses say what."""


class NotRunning(P2PError):
    """The node is used outside `async with node.running()`."""


class GossipTooLarge(P2PError):
    """A gossip payload is over the size limit; send it by request/response instead."""


class PeerUnavailable(P2PError):
    """The peer cannot be reached: not dialable, disconnected, banned, or a bad peer id."""


class RequestTimeout(P2PError):
    """A request did not complete within its timeout."""


class RequestTooLarge(P2PError):
    """A request payload is over the sender's own limit (see MAX_FRAME_BYTES)."""


class ResponseTooLarge(P2PError):
    """The peer announced a response longer than the caller's `max_response`."""


class ProtocolError(P2PError):
    """The peer broke the framing, reset the stream, or does not speak the protocol."""


class RemoteError(P2PError):
    """The peer's handler refused the request (`RequestRejected`) or failed; the message
    carries the peer's reason."""


class RequestRejected(P2PError):
    """Raised by a request handler to refuse a request with a reason for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
