"""Which omnibot processes are alive, by role: a `replicas` document each, beaten every few seconds.

`omnibot status` counts the replicas seen within `ALIVE_WITHIN_S`; documents of processes gone for
good are removed by a TTL index (and by the process itself when it stops cleanly).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from omnibot.shared.metrics import VERSION
from omnibot.shared.mongo import Document

log = logging.getLogger(__name__)

BEAT_S = 5.0
ALIVE_WITHIN_S = 15.0
FORGET_AFTER_S = 3600


@contextlib.asynccontextmanager
async def announced(db: AsyncDatabase[Document], role: str) -> AsyncIterator[None]:
    """This process is a live replica of `role` for the duration of the block."""
    task = asyncio.create_task(_announce(db, role), name=f"replica-{role}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _announce(db: AsyncDatabase[Document], role: str) -> None:
    """Heartbeat this replica until cancelled, then remove its document."""
    replica_id = f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    started = time.time()
    with contextlib.suppress(PyMongoError):
        await db.replicas.create_index([("seen", ASCENDING)], expireAfterSeconds=FORGET_AFTER_S)
    try:
        while True:
            now = time.time()
            try:
                await db.replicas.update_one(
                    {"_id": replica_id},
                    {
                        "$set": {
                            "role": role,
                            "host": socket.gethostname(),
                            "pid": os.getpid(),
                            "version": VERSION,
                            "started_at": started,
                            "seen_at": now,
                            "seen": datetime.datetime.fromtimestamp(now, tz=datetime.UTC),
                        }
                    },
                    upsert=True,
                )
            except PyMongoError as exc:
                log.debug("replica heartbeat failed: %s", type(exc).__name__)
            await asyncio.sleep(BEAT_S)
    finally:
        with contextlib.suppress(PyMongoError, TimeoutError):
            async with asyncio.timeout(2):
                await db.replicas.delete_one({"_id": replica_id})


async def alive(db: AsyncDatabase[Document], *, now: float | None = None) -> dict[str, list[Document]]:
    """The live replicas, by role."""
    since = (now if now is not None else time.time()) - ALIVE_WITHIN_S
    found: dict[str, list[Document]] = {}
    async for doc in db.replicas.find({"seen_at": {"$gte": since}}).sort("_id", ASCENDING):
        found.setdefault(str(doc.get("role")), []).append(doc)
    return found
