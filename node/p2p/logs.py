"""py-libp2p's logging, made visible and formatted.

`import libp2p` sets the `libp2p` logger to WARNING with `propagate=False` and no handler,
so its warnings reach stderr through logging's last-resort handler as bare lines (no time,
level or logger name) and the application's logging config never sees them. We give it a
formatted handler of our own (or let it propagate to the application's handlers).
"""

from __future__ import annotations

import logging
import os
import sys

LIBP2P_LOGGER = "libp2p"
FORCED_INFO_LOGGERS = ("libp2p.network.auto_connector",)  # set to INFO by libp2p itself
TCP_LOGGER = "libp2p.transport.tcp.tcp"


class _DropRefusedDials(logging.Filter):
    """Drops the ERROR line the TCP transport logs for every refused dial; an unreachable
    peer is normal (it restarts, it left) and the adapter reports it once, at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to open TCP stream")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _AdapterHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so a second call replaces it."""


def configure_libp2p_logging(level: int = logging.WARNING, propagate: bool = False) -> None:
    """Route the `libp2p` logger: level `level`; with `propagate` to the application's own
    handlers, otherwise to a formatted stderr handler. Idempotent. Leaves libp2p alone when
    LIBP2P_DEBUG is set (its own debug setup writes to a file then)."""
    import libp2p  # noqa: F401  (its import runs setup_logging, which we then adjust)

    if os.environ.get("LIBP2P_DEBUG"):
        return
    logger = logging.getLogger(LIBP2P_LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _AdapterHandler)]:
        logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate
    for name in FORCED_INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    tcp = logging.getLogger(TCP_LOGGER)
    if not any(isinstance(f, _DropRefusedDials) for f in tcp.filters):
        tcp.addFilter(_DropRefusedDials())
    if not propagate:
        handler = _AdapterHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
