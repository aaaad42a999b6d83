"""Serving an aiohttp application inside a service's exit stack (ingress, admin)."""

from __future__ import annotations

import contextlib

from aiohttp import web


async def serve_app(
    stack: contextlib.AsyncExitStack, app: web.Application, host: str, port: int, *, shutdown_timeout_s: float
) -> None:
    """Start listening; the stack stops it, letting requests in progress finish for the timeout.

    Signals are the service runner's business, and access logging is the application's own."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, port, reuse_address=True).start()
