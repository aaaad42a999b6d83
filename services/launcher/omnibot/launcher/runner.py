"""Running services as a process: signal handling, graceful stop, several services in one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from omnibot.shared import metrics
from omnibot.shared.probes import serve_probes
from omnibot.shared.settings import Settings
from omnibot.shared.telemetry import configure_tracing, shutdown_tracing

log = logging.getLogger(__name__)

Serve = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


def services() -> dict[str, Serve]:
    # Imported here so that `omnibot agent ...` does not pay for every service's imports.
    from omnibot.admin.service import serve_admin
    from omnibot.dialog.service import serve_dialog
    from omnibot.egress.service import serve_egress
    from omnibot.ingress.service import serve_ingress

    return {"ingress": serve_ingress, "dialog": serve_dialog, "egress": serve_egress, "admin": serve_admin}


async def run_services(names: list[str], settings: Settings) -> None:
    """Run the named services until SIGTERM/SIGINT; if one fails, stop the others and re-raise.

    The process has one monitoring listener (metrics, health) and one tracer, whatever it runs."""
    metrics.configure(enabled=settings.metrics_enabled)
    configure_tracing(names[0] if len(names) == 1 else "omnibot")
    try:
        async with contextlib.AsyncExitStack() as stack:
            await serve_probes(stack, settings)
            await _run_until_stopped(names, settings)
    finally:
        shutdown_tracing()


async def _run_until_stopped(names: list[str], settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    table = services()
    tasks: dict[asyncio.Task[None], str] = {
        asyncio.create_task(table[name](settings, stop), name=name): name for name in names
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                log.error("%s failed: %s", tasks[task], task.exception())
                stop.set()
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result


async def until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` until it returns or SIGTERM/SIGINT cancels it. A process without its own handler
    ignores SIGTERM when it is PID 1 (in a container) and waits for SIGKILL (the sandbox did)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run(main: Awaitable[None]) -> None:
    """asyncio.run with uvloop when it is installed (10-30% more throughput here)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]
