"""The overview's figures, read from MongoDB: what happened today and what went wrong last.

Read-only counts over the services' own collections: active channels, chats started since
midnight UTC, transfers to an operator since then (the system lines dialog and management write
into transcripts), text replies delivered since then (the day's tally on egress's delivery
cursors: files, notes and transfers are not replies), and the chats whose last turn failed. Indexes make
these counts cheap with many chats: each reads an index range of today's entries only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.shared.deliveries import MongoDeliveryStore, utc_day
from omnibot.shared.mongo import Document

TRANSFER_PREFIXES = ("[transferred", "[handed to an operator")


class ChatError(msgspec.Struct, kw_only=True, frozen=True):
    channel_id: int
    chat_id: str
    error: str
    at: float


class Today(msgspec.Struct, kw_only=True, frozen=True):
    active_channels: int
    chats_today: int
    transfers_today: int
    replies_today: int
    last_errors: list[ChatError]


def midnight_utc(now: float) -> float:
    day = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


class ConsoleStats:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._deliveries = MongoDeliveryStore(db)

    async def ensure_indexes(self) -> None:
        await self._db.chats.create_index([("created_at", ASCENDING)])
        await self._db.chats.create_index([("last_error", ASCENDING), ("updated_at", DESCENDING)])
        await self._db.transcripts.create_index([("role", ASCENDING), ("at", ASCENDING)])

    async def today(self, now: float, *, errors: int = 5) -> Today:
        since = midnight_utc(now)
        active = await self._db.channels.count_documents({"active": True})
        chats = await self._db.chats.count_documents({"created_at": {"$gte": since}})
        # Today's system lines by the (role, at) index, their prefixes checked here: a prefix
        # regex in the query made SecantusDB scan every transcript line (0.3-0.9 s with 30,000).
        system = self._db.transcripts.find({"role": "system", "at": {"$gte": since}}, {"_id": 0, "text": 1})
        transfers = len(
            [1 async for doc in system if str(doc.get("text") or "").startswith(TRANSFER_PREFIXES)]
        )
        replies = await self._deliveries.replies_on(utc_day(since))
        cursor = (
            self._db.chats.find(
                {"last_error": {"$gt": ""}},
                {"_id": 0, "channel_id": 1, "chat_id": 1, "last_error": 1, "updated_at": 1},
            )
            .sort([("updated_at", DESCENDING)])
            .limit(errors)
        )
        last: list[ChatError] = [_error(doc) async for doc in cursor]
        return Today(
            active_channels=int(active),
            chats_today=int(chats),
            transfers_today=int(transfers),
            replies_today=replies,
            last_errors=last,
        )


def _error(doc: dict[str, Any]) -> ChatError:
    return ChatError(
        channel_id=int(doc["channel_id"]),
        chat_id=str(doc["chat_id"]),
        error=str(doc.get("last_error") or ""),
        at=float(doc.get("updated_at") or 0.0),
    )
