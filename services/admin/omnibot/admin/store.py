"""The MongoDB queries of management that the services' stores have no use for.

Listing chats and agent versions, deleting agents, and re-encrypting channel secrets. The records
stay those of the shared package (`ChatRecord`, the channel documents); this module only reads them
in the ways an operator needs, and changes nothing that dialog, egress or ingress write concurrently
except through conditional updates.
"""

from __future__ import annotations

from typing import Any

import msgspec
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.shared.chats import ChatRecord
from omnibot.shared.crypto import SecretBox
from omnibot.shared.errors import TransientError
from omnibot.shared.mongo import Document

SECRET_FIELDS = ("api_key_enc", "webhook_secret_enc", "llm_api_key_enc")
MAX_CONFLICTS = 5


class AgentVersionRow(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    version: int
    imported_at: float
    slots: int


class MongoAdminStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    # --- agents ---------------------------------------------------------------------------

    async def agent_versions(
        self, name: str, *, limit: int, offset: int
    ) -> tuple[list[AgentVersionRow], int]:
        query = {"name": name}
        total = await self._db.agent_versions.count_documents(query)
        cursor = (
            self._db.agent_versions.find(query, {"_id": 0, "version": 1, "imported_at": 1, "body.slots": 1})
            .sort("version", ASCENDING)
            .skip(offset)
            .limit(limit)
        )
        rows = [
            AgentVersionRow(
                name=name,
                version=int(doc["version"]),
                imported_at=float(doc.get("imported_at") or 0.0),
                slots=len((doc.get("body") or {}).get("slots") or []),
            )
            async for doc in cursor
        ]
        return rows, total

    async def delete_agent(self, name: str, latest_version: int) -> int:
        """Delete every version, then the agent; returns how many versions there were.

        The last version number is remembered: dialog caches parsed versions by (name, version)
        for ever, so an agent imported again under this name must not reuse a number.
        """
        await self._db.counters.update_one(
            {"_id": f"agent:{name}"}, {"$max": {"value": latest_version}}, upsert=True
        )
        # Versions first: a crash in between leaves an agent without versions, which deleting again
        # clears, rather than versions that would collide with a new import's numbers.
        deleted = await self._db.agent_versions.delete_many({"name": name})
        await self._db.agents.delete_one({"_id": name})
        return int(deleted.deleted_count)

    async def continue_numbering(self, name: str) -> None:
        """Before importing: an agent deleted earlier under this name goes on from its last number."""
        floor = await self._db.counters.find_one({"_id": f"agent:{name}"})
        if floor is None:
            return
        await self._db.agents.update_one(
            {"_id": name},
            {"$setOnInsert": {"latest_version": int(floor["value"]), "published_version": None}},
            upsert=True,
        )

    # --- chats ----------------------------------------------------------------------------

    async def chats(
        self,
        channel_id: int,
        *,
        owner: str | None,
        updated_since: float | None,
        limit: int,
        offset: int,
    ) -> tuple[list[ChatRecord], int]:
        """A channel's chats, most recently updated first."""
        query: dict[str, Any] = {"channel_id": channel_id}
        if owner is not None:
            query["owner"] = owner
        if updated_since is not None:
            query["updated_at"] = {"$gte": updated_since}
        total = await self._db.chats.count_documents(query)
        cursor = (
            self._db.chats.find(query, {"pending": 0, "recent_inbound": 0})
            .sort([("updated_at", DESCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [_chat(doc) async for doc in cursor], total

    # --- secrets --------------------------------------------------------------------------

    async def rotate_channel_secrets(self, box: SecretBox) -> int:
        """Re-encrypt every channel's secrets under the first key; returns how many channels."""
        ids = [doc["_id"] async for doc in self._db.channels.find({}, {"_id": 1}).sort("_id", 1)]
        rotated = 0
        for channel_id in ids:
            for _ in range(MAX_CONFLICTS):
                doc = await self._db.channels.find_one({"_id": channel_id}, dict.fromkeys(SECRET_FIELDS, 1))
                if doc is None:
                    break  # deleted meanwhile
                old = {f: doc[f] for f in SECRET_FIELDS if doc.get(f)}
                new = {f: box.rotate(token) for f, token in old.items()}
                # Conditional on the tokens read: a secret changed meanwhile is not overwritten.
                result = await self._db.channels.update_one({"_id": channel_id, **old}, {"$set": new})
                if result.matched_count == 1:
                    rotated += 1
                    break
            else:
                raise TransientError(f"channel {channel_id} kept changing during the rotation; run it again")
        return rotated


def _chat(doc: Document) -> ChatRecord:
    data = dict(doc)
    data["key"] = data.pop("_id")
    return msgspec.convert(data, ChatRecord)
