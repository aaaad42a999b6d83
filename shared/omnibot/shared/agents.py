"""Agent versions in MongoDB: every import is a new immutable version; one version is published.

The agent body is stored as the user's JSON (validated on import by omnibot.agents.agent), so an
export gives back an importable file.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.shared.mongo import Document


class AgentVersion(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    version: int
    body: dict[str, Any]
    imported_at: float


class AgentSummary(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    latest_version: int
    published_version: int | None


class MongoAgentStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._agents = db.agents
        self._versions = db.agent_versions

    async def add_version(self, name: str, body: dict[str, Any]) -> AgentVersion:
        doc = await self._agents.find_one_and_update(
            {"_id": name},
            {"$inc": {"latest_version": 1}, "$setOnInsert": {"published_version": None}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        version = AgentVersion(
            name=name, version=int(doc["latest_version"]), body=body, imported_at=time.time()
        )
        await self._versions.insert_one(msgspec.to_builtins(version))
        return version

    async def publish(self, name: str, version: int | None = None) -> int | None:
        """Publish a version (default: the latest). Returns it, or None if there is no such version."""
        summary = await self.summary(name)
        if summary is None:
            return None
        chosen = summary.latest_version if version is None else version
        if await self._versions.find_one({"name": name, "version": chosen}, {"_id": 1}) is None:
            return None
        await self._agents.update_one({"_id": name}, {"$set": {"published_version": chosen}})
        return chosen

    async def summary(self, name: str) -> AgentSummary | None:
        doc = await self._agents.find_one({"_id": name})
        if doc is None:
            return None
        return AgentSummary(
            name=name, latest_version=doc["latest_version"], published_version=doc.get("published_version")
        )

    async def all(self) -> list[AgentSummary]:
        return [
            AgentSummary(
                name=d["_id"],
                latest_version=d["latest_version"],
                published_version=d.get("published_version"),
            )
            async for d in self._agents.find({}).sort("_id", 1)
        ]

    async def get_version(self, name: str, version: int) -> AgentVersion | None:
        doc = await self._versions.find_one({"name": name, "version": version}, {"_id": 0})
        return None if doc is None else msgspec.convert(doc, AgentVersion)

    async def published(self, name: str) -> AgentVersion | None:
        summary = await self.summary(name)
        if summary is None or summary.published_version is None:
            return None
        return await self.get_version(name, summary.published_version)
