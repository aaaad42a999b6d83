"""Egress's per-chat delivery cursor: the last action performed in Omnidesk, and its message id.

Actions carry per-chat sequence numbers; egress performs action N only when the cursor says N-1,
and moves the cursor with a conditional write. That makes delivery idempotent (N ≤ cursor: done
already) and ordered (N > cursor + 1: an earlier action is still on its way), whichever replica
holds the message.

The cursor also tallies the chat's text replies of the current UTC day (`replies_day`, `replies`),
for the console's "Replies delivered today". The tally moves in the cursor's own conditional write,
so each reply counts exactly once (the write that performs action N happens once) and costs
no write of its own: a separate insert per reply slowed egress enough to show in the chaos suite.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

import msgspec
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from omnibot.shared.mongo import Document


def utc_day(at: float) -> str:
    """The UTC date of a time, as the tally stores it ("2026-12-01")."""
    return datetime.fromtimestamp(at, tz=UTC).date().isoformat()


class DayTally(msgspec.Struct, kw_only=True, frozen=True):
    day: str
    replies: int


class Cursor(msgspec.Struct, kw_only=True, frozen=True):
    key: str
    seq: int = 0  # last performed (or deliberately skipped) action
    last_message_id: int = 0  # Omnidesk id of the last message we created in the case
    updated_at: float = 0.0
    replies_day: str = ""  # the UTC day `replies` counts
    replies: int = 0  # text replies delivered in this chat that day

    def with_reply(self, at: float) -> DayTally:
        """The tally once one more text reply was delivered at `at`."""
        day = utc_day(at)
        return DayTally(day=day, replies=self.replies + 1 if self.replies_day == day else 1)


class DeliveryStore(Protocol):
    async def cursor(self, key: str) -> Cursor: ...

    async def advance(
        self,
        key: str,
        from_seq: int,
        to_seq: int,
        last_message_id: int | None,
        *,
        tally: DayTally | None = None,
    ) -> bool:
        """Move the cursor from `from_seq` to `to_seq` (with the day's reply tally, when the action
        was a text reply); False if it was not at `from_seq`."""
        ...

    async def replies_on(self, day: str) -> int:
        """How many text replies were delivered on a UTC day (`utc_day`), over all chats."""
        ...


class MongoDeliveryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._cursors = db.delivery_cursors

    async def cursor(self, key: str) -> Cursor:
        doc = await self._cursors.find_one({"_id": key})
        if doc is None:
            return Cursor(key=key)
        return Cursor(
            key=key,
            seq=doc["seq"],
            last_message_id=doc.get("last_message_id", 0),
            updated_at=doc["updated_at"],
            replies_day=doc.get("replies_day", ""),
            replies=doc.get("replies", 0),
        )

    async def advance(
        self,
        key: str,
        from_seq: int,
        to_seq: int,
        last_message_id: int | None,
        *,
        tally: DayTally | None = None,
    ) -> bool:
        fields: Document = {"seq": to_seq, "updated_at": time.time()}
        if last_message_id is not None:
            fields["last_message_id"] = last_message_id
        if tally is not None:
            fields["replies_day"], fields["replies"] = tally.day, tally.replies
        if from_seq == 0:
            try:
                result = await self._cursors.update_one({"_id": key, "seq": 0}, {"$set": fields}, upsert=True)
            except DuplicateKeyError:  # exists with another seq
                return False
            return result.matched_count == 1 or result.upserted_id is not None
        result = await self._cursors.update_one({"_id": key, "seq": from_seq}, {"$set": fields})
        return result.matched_count == 1

    async def replies_on(self, day: str) -> int:
        # By the `replies_day` index: only the cursors of chats that had a reply that day.
        found = self._cursors.find({"replies_day": day}, {"_id": 0, "replies": 1})
        return sum([int(doc.get("replies") or 0) async for doc in found])


class MemoryDeliveryStore:
    def __init__(self) -> None:
        self.cursors: dict[str, Cursor] = {}

    async def cursor(self, key: str) -> Cursor:
        return self.cursors.get(key, Cursor(key=key))

    async def advance(
        self,
        key: str,
        from_seq: int,
        to_seq: int,
        last_message_id: int | None,
        *,
        tally: DayTally | None = None,
    ) -> bool:
        current = self.cursors.get(key, Cursor(key=key))
        if current.seq != from_seq:
            return False
        self.cursors[key] = Cursor(
            key=key,
            seq=to_seq,
            last_message_id=current.last_message_id if last_message_id is None else last_message_id,
            updated_at=time.time(),
            replies_day=current.replies_day if tally is None else tally.day,
            replies=current.replies if tally is None else tally.replies,
        )
        return True

    async def replies_on(self, day: str) -> int:
        return sum(c.replies for c in self.cursors.values() if c.replies_day == day)
