"""Opening MongoDB: the URL from settings (or the development server) and the indexes we rely on."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.shared.devmongo import ensure_dev_mongo
from omnibot.shared.settings import Settings

Document = dict[str, Any]
S = TypeVar("S", bound=msgspec.Struct)


def to_document(value: msgspec.Struct, key: str) -> Document:
    """A Struct as a MongoDB document, its field `key` as the `_id`."""
    doc: Document = msgspec.to_builtins(value)
    doc["_id"] = doc.pop(key)
    return doc


def from_document(doc: Document, kind: type[S], key: str) -> S:
    """The Struct a document holds (`to_document` backwards)."""
    data = dict(doc)
    data[key] = data.pop("_id")
    return msgspec.convert(data, kind)


def mongodb_url(settings: Settings) -> str:
    return settings.mongodb_url or ensure_dev_mongo(settings.data_dir)


def open_client(settings: Settings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(mongodb_url(settings), serverSelectionTimeoutMS=10_000, tz_aware=True)


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    """Idempotent; every process that writes a collection calls it at start-up."""
    await db.channels.create_index([("domain", ASCENDING), ("email", ASCENDING)])
    await db.agent_versions.create_index([("name", ASCENDING), ("version", ASCENDING)], unique=True)
    await db.chats.create_index([("channel_id", ASCENDING), ("updated_at", ASCENDING)])
    await db.transcripts.create_index([("chat", ASCENDING), ("seq", ASCENDING)])
    await db.delivery_cursors.create_index([("replies_day", ASCENDING)])
