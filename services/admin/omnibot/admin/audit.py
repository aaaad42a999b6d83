"""The audit log: who changed what, when; written by the console and the admin API, read by both.

One document per change in `audit_log`: the actor (a user's e-mail, or `api-token` for the JSON
API's automation token, or `cli` for the command line), the action (`channel.create`,
`agent.publish`, `user.disable`...), the target (a channel id, an agent name...), a short detail
without secrets, and the time. Entries are never changed; the newest come first.
"""

from __future__ import annotations

import time
import uuid

import msgspec
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.shared.mongo import Document

MAX_DETAIL = 500


class AuditEntry(msgspec.Struct, kw_only=True, frozen=True):
    actor: str
    action: str
    target: str
    detail: str
    at: float


class MongoAuditLog:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._log = db.audit_log

    async def ensure_indexes(self) -> None:
        await self._log.create_index([("at", DESCENDING)])

    async def record(self, actor: str, action: str, target: str = "", detail: str = "") -> AuditEntry:
        entry = AuditEntry(
            actor=actor, action=action, target=target, detail=detail[:MAX_DETAIL], at=time.time()
        )
        await self._log.insert_one({"_id": uuid.uuid4().hex, **msgspec.to_builtins(entry)})
        return entry

    async def page(self, *, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
        total = await self._log.count_documents({})
        cursor = self._log.find({}, {"_id": 0}).sort([("at", DESCENDING)]).skip(offset).limit(limit)
        return [msgspec.convert(doc, AuditEntry) async for doc in cursor], int(total)
