"""Serving an aiohttp application inside a service's exit stack (ingress, admin), slow clients bounded.

aiohttp reads a request's headers without a deadline of its own; what closes a connection that
never completes them is its keep-alive timer, armed when the connection is made and again after
each response. `header_timeout_s` sets that timer, so a client that opens a connection (or keeps
one alive) and trickles a partial request is dropped after that many seconds. Body reads are
bounded by the handlers themselves (ingress: `INGRESS_BODY_TIMEOUT_S`), and what aiohttp reads
and discards after answering early (its lingering close) by `min(2, header_timeout_s)`.

`ConnectionLimits` caps the connections held at once, in total and per client address: past a
cap a new connection is closed at once, so idle or slow clients cannot take every file descriptor
(the service's own sockets to RabbitMQ and MongoDB need some too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections import Counter
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

# File descriptors kept for everything but client connections (broker, database, logs, files).
_FD_RESERVE = 128


@dataclass(frozen=True)
class ConnectionLimits:
    per_address: int = 0  # 0: no per-address cap (e.g. behind a proxy, every client is one address)
    total: int = 0  # 0: derived from the open-files limit


def _total_cap(configured: int) -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    derived = max(16, soft - _FD_RESERVE) if soft != resource.RLIM_INFINITY else 65536
    return min(configured, derived) if configured > 0 else derived


class ConnectionGate:
    """Counts connections as aiohttp's server makes and loses them; closes those over a cap."""

    def __init__(self, server: web.Server, limits: ConnectionLimits) -> None:
        self._per_address = limits.per_address
        self._total = _total_cap(limits.total)
        self._by_address: Counter[str] = Counter()
        self._addresses: dict[RequestHandler, str] = {}
        self.refused = 0  # connections closed for being over a cap
        self._made = server.connection_made
        self._lost = server.connection_lost
        # aiohttp calls these two on its server for every connection; there is no other hook
        # that runs before a request is read.
        server.connection_made = self._connection_made  # type: ignore[method-assign]
        server.connection_lost = self._connection_lost  # type: ignore[method-assign]

    @property
    def open_connections(self) -> int:
        return len(self._addresses)

    def _connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        address = _address(transport)
        self._addresses[handler] = address
        self._by_address[address] += 1
        over_address = self._per_address > 0 and self._by_address[address] > self._per_address
        if over_address or len(self._addresses) > self._total:
            self.refused += 1
            # Once aiohttp has set the handler up (it does right after this call): closing now
            # would tear the handler down before its own start-up ran. connection_lost follows
            # and undoes the counts.
            asyncio.get_running_loop().call_soon(transport.abort)

    def _connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._lost(handler, exc)
        address = self._addresses.pop(handler, None)
        if address is None:
            return
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]


def _address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "?"


async def serve_app(
    stack: contextlib.AsyncExitStack,
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout_s: float,
    header_timeout_s: float = 10.0,
    limits: ConnectionLimits | None = None,
) -> ConnectionGate:
    """Start listening; the stack stops it, letting requests in progress finish for the timeout.

    Signals are the service runner's business, and access logging is the application's own."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout_s,
        keepalive_timeout=header_timeout_s,
        # After an answer to a request whose body was not read (413, 408), aiohttp reads on and
        # discards for this long so the client sees the answer; bounded like the headers.
        lingering_time=min(2.0, header_timeout_s),
    )
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    assert runner.server is not None
    gate = ConnectionGate(runner.server, limits or ConnectionLimits())
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return gate
