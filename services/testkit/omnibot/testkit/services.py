"""omnibot's services as tasks of this process: started in order, each awaited until ready, stopped
like a SIGTERM would stop them (the stop event set, then awaited)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.shared.probes import serve_probes
from omnibot.shared.settings import Settings

Serve = Callable[..., Coroutine[Any, Any, None]]

PIPELINE: tuple[tuple[str, Serve], ...] = (
    ("ingress", serve_ingress),
    ("dialog", serve_dialog),
    ("egress", serve_egress),
)


class ServiceTask:
    """A service running as a task of this process, stoppable like a SIGTERM would."""

    def __init__(self, name: str, serve: Serve, settings: Settings, **kwargs: Any) -> None:
        self.name = name
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(serve(settings, self._stop, ready=self._ready, **kwargs), name=name)

    async def wait_ready(self, timeout: float = 20) -> None:
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self._task in done:
            ready.cancel()
            self._task.result()  # raises what the service died of
        if ready not in done:
            ready.cancel()
            raise TimeoutError(f"{self.name} not ready in {timeout}s")

    async def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        await asyncio.wait_for(self._task, timeout)


@contextlib.asynccontextmanager
async def running_services(
    settings: Settings, services: Sequence[tuple[str, Serve]] = PIPELINE, *, ready_timeout: float = 20
) -> AsyncIterator[dict[str, ServiceTask]]:
    """The services (ingress, dialog, egress by default) running against `settings`, each ready
    before the next starts; stopped in reverse order afterwards, as a SIGTERM would."""
    started: dict[str, ServiceTask] = {}
    try:
        for name, serve in services:
            started[name] = ServiceTask(name, serve, settings)
            await started[name].wait_ready(ready_timeout)
        yield started
    finally:
        # Every service is stopped; the first that failed to stop cleanly then says so.
        failures: list[BaseException] = []
        for service in reversed(list(started.values())):
            try:
                await service.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others first
                failures.append(exc)
        if failures:
            raise failures[0]


@contextlib.asynccontextmanager
async def monitoring_listener(settings: Settings) -> AsyncIterator[int]:
    """The monitoring listener (`/metrics`, `/healthz`, `/readyz`) that `omnibot run` serves beside
    its services, for services run as tasks here; yields the port it listens on, the one the
    system chose when METRICS_PORT is 0 (as the test settings have it)."""
    async with contextlib.AsyncExitStack() as stack:
        port = await serve_probes(stack, settings)
        if port is None:
            raise ValueError("METRICS_PORT=off: there is no monitoring listener to serve")
        yield port
