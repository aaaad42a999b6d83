"""Egress's per-chat delivery cursor: the last action performed in Omnidesk, and its message id.

Actions carry per-chat sequence numbers; egress performs action N only when the cursor says N-1,
and moves the cursor with a conditional write. That makes delivery idempotent (N ≤ cursor: done
already) and ordered (N > cursor + 1: an earlier action is still on its way), whichever replica
holds the message.

Each text reply delivered is also noted with its time (`delivered_replies`, one document per
action id, so a reply noted twice counts once; kept `REPLIES_KEPT_S`), for the console's count of
the day's replies.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Protocol

import msgspec
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from omnibot.shared.mongo import Document

REPLIES_KEPT_S = 2 * 86400  # today's count needs today's; a day more for time zones and late readers


class Cursor(msgspec.Struct, kw_only=True, frozen=True):
    key: str
    seq: int = 0  # last performed (or deliberately skipped) action
    last_message_id: int = 0  # Omnidesk id of the last message we created in the case
    updated_at: float = 0.0


class DeliveryStore(Protocol):
    async def cursor(self, key: str) -> Cursor: ...

    async def advance(self, key: str, from_seq: int, to_seq: int, last_message_id: int | None) -> bool:
        """Move the cursor from `from_seq` to `to_seq`; False if it was not at `from_seq`."""
        ...

    async def note_reply(self, action_id: str, at: float) -> None:
        """A text reply was delivered at `at` (once per action id, however often it is noted)."""
        ...

    async def replies_since(self, since: float) -> int:
        """How many text replies were delivered at or after `since`."""
        ...


class MongoDeliveryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._cursors = db.delivery_cursors
        self._replies = db.delivered_replies

    async def cursor(self, key: str) -> Cursor:
        doc = await self._cursors.find_one({"_id": key})
        if doc is None:
            return Cursor(key=key)
        return Cursor(
            key=key,
            seq=doc["seq"],
            last_message_id=doc.get("last_message_id", 0),
            updated_at=doc["updated_at"],
        )

    async def advance(self, key: str, from_seq: int, to_seq: int, last_message_id: int | None) -> bool:
        fields: Document = {"seq": to_seq, "updated_at": time.time()}
        if last_message_id is not None:
            fields["last_message_id"] = last_message_id
        if from_seq == 0:
            try:
                result = await self._cursors.update_one({"_id": key, "seq": 0}, {"$set": fields}, upsert=True)
            except DuplicateKeyError:  # exists with another seq
                return False
            return result.matched_count == 1 or result.upserted_id is not None
        result = await self._cursors.update_one({"_id": key, "seq": from_seq}, {"$set": fields})
        return result.matched_count == 1

    async def note_reply(self, action_id: str, at: float) -> None:
        expires = datetime.fromtimestamp(at + REPLIES_KEPT_S, tz=UTC)
        with contextlib.suppress(DuplicateKeyError):  # noted by an earlier attempt of the same action
            await self._replies.insert_one({"_id": action_id, "at": at, "expires": expires})

    async def replies_since(self, since: float) -> int:
        return int(await self._replies.count_documents({"at": {"$gte": since}}))


class MemoryDeliveryStore:
    def __init__(self) -> None:
        self.cursors: dict[str, Cursor] = {}
        self.replies: dict[str, float] = {}

    async def cursor(self, key: str) -> Cursor:
        return self.cursors.get(key, Cursor(key=key))

    async def advance(self, key: str, from_seq: int, to_seq: int, last_message_id: int | None) -> bool:
        current = self.cursors.get(key, Cursor(key=key))
        if current.seq != from_seq:
            return False
        self.cursors[key] = Cursor(
            key=key,
            seq=to_seq,
            last_message_id=current.last_message_id if last_message_id is None else last_message_id,
            updated_at=time.time(),
        )
        return True

    async def note_reply(self, action_id: str, at: float) -> None:
        self.replies.setdefault(action_id, at)

    async def replies_since(self, since: float) -> int:
        return sum(1 for at in self.replies.values() if at >= since)
