"""The process's monitoring listener: `GET /metrics`, `/healthz` and `/readyz` on METRICS_HOST:PORT.

One listener per process, whatever services it runs (`omnibot run all` included), and never on
ingress's webhook port, which faces the internet. Services say whether they are ready through
`ReadinessBoard.register`; the board is process-wide for the same reason the metrics registry is.
`METRICS_PORT=0` takes any free port (logged), `off` serves nothing (tests and several processes
on one machine). With `METRICS_ENABLED=false` nothing is recorded and `/metrics` answers 404, so a
scrape fails loudly (Prometheus's `up` is 0) instead of reading families that never move.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from omnibot.shared.metrics import enabled as metrics_enabled
from omnibot.shared.settings import Settings

log = logging.getLogger(__name__)

Check = Callable[[], bool]


class ReadinessBoard:
    """What each service of this process says about its readiness (broker connected, consuming)."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    @contextlib.contextmanager
    def registered(self, name: str, check: Check) -> Iterator[None]:
        self._checks[name] = check
        try:
            yield
        finally:
            if self._checks.get(name) is check:
                del self._checks[name]

    def report(self) -> dict[str, bool]:
        report = {}
        for name, check in self._checks.items():
            try:
                report[name] = bool(check())
            except Exception:  # noqa: BLE001 - a broken check means not ready, not a 500
                report[name] = False
        return report


BOARD = ReadinessBoard()

BOARD_KEY = web.AppKey("board", ReadinessBoard)


async def metrics(_: web.Request) -> web.Response:
    if not metrics_enabled():
        return web.Response(status=404, text="metrics are off in this process (METRICS_ENABLED=false)\n")
    # The text exposition format: what Prometheus and `promtool check metrics` read.
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def healthz(_: web.Request) -> web.Response:
    # Answering at all is the proof: the event loop runs.
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    report = request.app[BOARD_KEY].report()
    ready = bool(report) and all(report.values())
    body = {"status": "ready" if ready else "not_ready", "services": report}
    return web.json_response(body, status=200 if ready else 503)


def build_probe_app(board: ReadinessBoard) -> web.Application:
    app = web.Application()
    app[BOARD_KEY] = board
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_probes(
    stack: contextlib.AsyncExitStack, settings: Settings, board: ReadinessBoard = BOARD
) -> int | None:
    """Start the listener inside `stack`; returns the port it listens on (None when off)."""
    if settings.metrics_port == "off":
        log.info("metrics listener off (METRICS_PORT=off)")
        return None
    runner = web.AppRunner(build_probe_app(board), access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, settings.metrics_host, settings.metrics_port, reuse_address=True)
    await site.start()
    port = _bound_port(runner, settings.metrics_port)
    served = "/metrics, /healthz, /readyz" if metrics_enabled() else "/healthz, /readyz; metrics off"
    log.info("metrics listening on %s:%d (%s)", settings.metrics_host, port, served)
    return port


def _bound_port(runner: web.AppRunner, wanted: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return wanted
