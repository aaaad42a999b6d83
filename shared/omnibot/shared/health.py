"""Liveness for workers without an HTTP port: a heartbeat file that `omnibot health NAME` checks.

Kubernetes runs the check as an exec probe; the file is only touched while the worker's broker
connection is open, so a worker stuck without its broker is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STALE_AFTER_S = 30.0


def heartbeat_path(service: str) -> Path:
    return Path(os.environ.get("OMNIBOT_HEALTH_DIR", tempfile.gettempdir())) / f"omnibot-{service}.alive"


async def heartbeat(service: str, healthy: Callable[[], bool], *, every_s: float = 5.0) -> None:
    path = heartbeat_path(service)
    try:
        while True:
            if healthy():
                path.write_text(str(time.time()))
            await asyncio.sleep(every_s)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def is_alive(service: str, *, now: float | None = None) -> bool:
    try:
        beat = float(heartbeat_path(service).read_text())
    except (OSError, ValueError):
        return False
    return (now if now is not None else time.time()) - beat < STALE_AFTER_S
