"""The last error of each Omnidesk account, kept in MongoDB for `omnibot status`.

Written by whichever process met the error (dialog reading cases, egress delivering), at most once
per account every `MIN_INTERVAL_S` per process, so an outage costs a few writes, not one a call.
The text is the client's own error message: method, path and status, never the API key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from omnibot.shared.mongo import Document

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 5.0


class AccountErrorLog:
    def __init__(self, db: AsyncDatabase[Document], *, clock: Callable[[], float] = time.time) -> None:
        self._collection = db.omnidesk_accounts
        self._clock = clock
        self._written: dict[str, float] = {}

    async def record(self, account: str, error: str) -> None:
        now = self._clock()
        if now - self._written.get(account, 0.0) < MIN_INTERVAL_S:
            return
        self._written[account] = now
        try:
            await self._collection.update_one(
                {"_id": account},
                {"$set": {"last_error": error[:300], "at": now}},
                upsert=True,
            )
        except PyMongoError as exc:
            log.debug("cannot record the Omnidesk account error: %s", type(exc).__name__)


async def last_errors(db: AsyncDatabase[Document]) -> list[Document]:
    return [doc async for doc in db.omnidesk_accounts.find({}).sort("_id", 1)]
