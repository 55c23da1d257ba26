"""Request/response over raw libp2p streams, one stream per request.

Wire format (all integers big-endian):

    request   u32 length || payload                 then the requester half-closes
    response  u8 status || u32 length || body       then the responder closes

    status 0  OK        body is the handler's response
    status 1  REJECTED  body is the handler's UTF-8 reason (RequestRejected)
    status 2  FAILED    the handler raised; body is a short UTF-8 note

The responder reads the 4-byte header first and resets the stream without reading the body
when the length is over the protocol's `max_request`; the requester does the same with
`max_response`. Reads loop until the announced length arrived (py-libp2p's own
request/response helper gives up after 101 partial reads, about 6.5 MiB).

A responder cannot be starved by peers that open streams and say nothing: the request must
arrive whole within `read_deadline` (5 s plus 1 s per MiB announced; our requesters write
it at once), or the stream is reset and the peer reported; each peer has at most
`per_peer` requests open per protocol (more are reset unread); and the protocol's
`concurrency` slots are taken only once a request has arrived, for the handler and the
response.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from libp2p.protocol_muxer.exceptions import MultiselectClientError

from node.p2p.errors import (
    PeerUnavailable,
    ProtocolError,
    RemoteError,
    RequestRejected,
    RequestTimeout,
    RequestTooLarge,
    ResponseTooLarge,
)
from node.p2p.settings import MAX_FRAME_BYTES, MAX_REASON_BYTES

log = logging.getLogger(__name__)

REQUEST_HEADER = struct.Struct(">I")
RESPONSE_HEADER = struct.Struct(">BI")
STATUS_OK, STATUS_REJECTED, STATUS_FAILED = 0, 1, 2
READ_CHUNK = 1 << 20
ABORT_TIMEOUT_S = 1.0
REQUEST_READ_S = 5.0
"""Time a requester has to deliver a request, plus 1 s per MiB it announced."""
REQUEST_READ_S_PER_MIB = 1.0

Handler = Callable[[str, bytes], Awaitable[bytes]]
"""async handler(peer_id, request) -> response; raise RequestRejected(reason) to refuse."""


class _Truncated(ProtocolError):
    """The stream ended cleanly before the announced number of bytes arrived."""

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


def read_deadline(length: int) -> float:
    """Seconds a requester has to deliver a request of `length` bytes, header included."""
    return REQUEST_READ_S + REQUEST_READ_S_PER_MIB * length / (1 << 20)


@dataclass(frozen=True)
class Route:
    """One registered protocol: its handler and the limits the responder enforces."""

    protocol: str
    handler: Handler
    max_request: int
    timeout_s: float
    limiter: trio.CapacityLimiter
    per_peer: int = 4
    open: dict[str, int] = field(default_factory=dict)  # peer -> requests being served

    def take(self, peer: str) -> bool:
        """Count a request from `peer`; False (not counted) when it has `per_peer` open."""
        held = self.open.get(peer, 0)
        if held >= self.per_peer:
            return False
        self.open[peer] = held + 1
        return True

    def give(self, peer: str) -> None:
        held = self.open.pop(peer) - 1
        if held:
            self.open[peer] = held


async def read_exactly(stream: INetStream, n: int) -> bytes:
    """Read exactly `n` bytes; `_Truncated` if the stream ends first."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = await stream.read(min(n - len(buf), READ_CHUNK))
        except EOFError:
            chunk = b""
        if not chunk:
            raise _Truncated(f"stream ended after {len(buf)} of {n} bytes", len(buf))
        buf += chunk
    return bytes(buf)


async def abort(stream: INetStream) -> None:
    """Reset a stream, bounded in time and safe to call while being cancelled."""
    with trio.CancelScope(shield=True), trio.move_on_after(ABORT_TIMEOUT_S):
        try:
            await stream.reset()
        except Exception as exc:
            log.debug("reset of a stream failed: %r", exc)


async def close(stream: INetStream) -> None:
    with trio.move_on_after(ABORT_TIMEOUT_S):
        try:
            await stream.close()
        except Exception as exc:
            log.debug("close of a stream failed: %r", exc)


class _Silent(ProtocolError):
    """The requester did not deliver its request within `read_deadline`."""


async def serve(stream: INetStream, route: Route, report_bad: Callable[[str, str], None],
                is_banned: Callable[[str], bool],
                report_slow: Callable[[str, str], None] | None = None) -> None:
    """Answer one inbound stream on `route`. Never raises: an exception here would tear
    down the whole connection inside py-libp2p. `report_bad` gets malformed requests,
    `report_slow` (default `report_bad`) requests not delivered in time."""
    peer = stream.muxed_conn.peer_id.to_base58()
    if is_banned(peer):
        await abort(stream)
        return
    if not route.take(peer):
        log.debug("refused a request on %s from %s: %d already open", route.protocol, peer,
                  route.per_peer)
        await abort(stream)
        return
    try:
        with trio.fail_after(route.timeout_s):
            await _serve(stream, route, peer, report_bad)
    except trio.TooSlowError:
        log.debug("request on %s from %s took over %.1f s", route.protocol, peer,
                  route.timeout_s)
        await abort(stream)
    except _Silent as exc:
        (report_slow or report_bad)(peer, f"{exc} on {route.protocol}")
        await abort(stream)
    except _Truncated as exc:
        if exc.received:  # some bytes, then silence: a malformed request
            report_bad(peer, f"truncated request on {route.protocol}: {exc}")
        else:  # nothing at all: the requester stopped or restarted, which is no offence
            log.debug("empty request on %s from %s", route.protocol, peer)
        await abort(stream)
    except Exception as exc:  # the requester went away (reset, EOF, closed connection)
        log.debug("request on %s from %s failed: %r", route.protocol, peer, exc)
        await abort(stream)
    finally:
        route.give(peer)


async def _serve(stream: INetStream, route: Route, peer: str,
                 report_bad: Callable[[str, str], None]) -> None:
    opened = trio.current_time()
    with trio.move_on_at(opened + read_deadline(0)) as waited:
        (length,) = REQUEST_HEADER.unpack(await read_exactly(stream, REQUEST_HEADER.size))
    if waited.cancelled_caught:
        raise _Silent(f"no request header within {read_deadline(0):g} s")
    if length > route.max_request:
        report_bad(peer, f"request of {length} B on {route.protocol} is over its "
                         f"max_request of {route.max_request} B")
        await abort(stream)
        return
    with trio.move_on_at(opened + read_deadline(length)) as waited:
        request = await read_exactly(stream, length)
    if waited.cancelled_caught:
        raise _Silent(f"request of {length} B not delivered within "
                      f"{read_deadline(length):g} s")
    async with route.limiter:
        status, body = await _run_handler(route, peer, request)
        await stream.write(RESPONSE_HEADER.pack(status, len(body)))
        if body:
            await stream.write(body)
    await close(stream)


async def _run_handler(route: Route, peer: str, request: bytes) -> tuple[int, bytes]:
    try:
        response = await route.handler(peer, request)
    except RequestRejected as exc:
        return STATUS_REJECTED, exc.reason.encode()[:MAX_REASON_BYTES]
    except Exception:
        log.exception("handler for %s failed on a request from %s", route.protocol, peer)
        return STATUS_FAILED, b"handler failed"
    if not isinstance(response, bytes | bytearray | memoryview):
        log.error("handler for %s returned %s, not bytes", route.protocol,
                  type(response).__name__)
        return STATUS_FAILED, b"handler returned no bytes"
    if len(response) > MAX_FRAME_BYTES:
        log.error("handler for %s returned %d B, over MAX_FRAME_BYTES", route.protocol,
                  len(response))
        return STATUS_FAILED, b"response too large"
    return STATUS_OK, bytes(response)


async def request(host: IHost, peer: ID, protocol: str, payload: bytes, timeout_s: float,
                  max_response: int) -> bytes:
    """Send one request and return the response body; typed errors only."""
    if len(payload) > MAX_FRAME_BYTES:
        raise RequestTooLarge(f"request of {len(payload)} B is over MAX_FRAME_BYTES "
                              f"({MAX_FRAME_BYTES} B)")
    with trio.move_on_after(timeout_s):
        stream = await _open(host, peer, protocol)
        try:
            return await _exchange(stream, protocol, payload, max_response)
        except BaseException:
            await abort(stream)
            raise
    raise RequestTimeout(f"request on {protocol} to {peer} took over {timeout_s:g} s")


async def _open(host: IHost, peer: ID, protocol: str) -> INetStream:
    try:
        return await host.new_stream(peer, [TProtocol(protocol)])
    except SwarmException as exc:
        raise PeerUnavailable(f"cannot reach peer {peer}: {exc}") from None
    except Exception as exc:
        if isinstance(exc.__cause__, MultiselectClientError):
            raise ProtocolError(f"peer {peer} does not speak {protocol}") from None
        raise PeerUnavailable(f"cannot open a stream to peer {peer}: {exc!r}") from None


async def _exchange(stream: INetStream, protocol: str, payload: bytes,
                    max_response: int) -> bytes:
    try:
        await stream.write(REQUEST_HEADER.pack(len(payload)))
        if payload:
            await stream.write(payload)
        await stream.close_write()
        status, length = RESPONSE_HEADER.unpack(
            await read_exactly(stream, RESPONSE_HEADER.size))
        if length > min(max_response, MAX_FRAME_BYTES):
            raise ResponseTooLarge(f"peer announced a {length} B response on {protocol}; "
                                   f"max_response is {max_response} B")
        body = await read_exactly(stream, length)
    except (ResponseTooLarge, ProtocolError):
        raise
    except Exception as exc:
        raise ProtocolError(f"stream on {protocol} failed: {exc!r} (the peer may have "
                            "refused an oversized request)") from None
    await close(stream)
    if status == STATUS_OK:
        return body
    if status in (STATUS_REJECTED, STATUS_FAILED):
        kind = "rejected" if status == STATUS_REJECTED else "failed on"
        raise RemoteError(f"peer {kind} the request on {protocol}: "
                          f"{body.decode(errors='replace')}")
    raise ProtocolError(f"unknown response status {status} on {protocol}")
