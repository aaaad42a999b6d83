"""Channels: one Omnidesk connection each. The record, and its MongoDB store.

Secrets (the API key, the webhook secret) are stored encrypted; the webhook secret also as a
SHA-256 fingerprint, so ingress can check a webhook URL without holding SECRET_KEY.
`verify_secret_key` is the start-up check that SECRET_KEY can read what is stored.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.shared.crypto import SecretBox, SecretKeyError
from omnibot.shared.mongo import Document, from_document, to_document


class Channel(msgspec.Struct, kw_only=True):
    id: int
    title: str = "New channel"
    domain: str  # e.g. "https://test-ru.omnidesk.ru" (no trailing slash)
    email: str  # the bot's staff member in Omnidesk
    api_key_enc: str
    webhook_secret_enc: str
    webhook_secret_hash: str
    agent: str  # default agent name
    active: bool = False
    bot_label_id: int | None = None
    bot_label_title: str = ""
    transfer_status: str = ""
    transfer_group_id: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # The channel's own language model for `llm` slots; "" takes LLM_BASE_URL / LLM_MODEL / LLM_API_KEY.
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key_enc: str = ""


def _to_doc(channel: Channel) -> Document:
    return to_document(channel, "id")


def _from_doc(doc: Document) -> Channel:
    return from_document(doc, Channel, "id")


class MongoChannelStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._channels = db.channels
        self._counters = db.counters

    async def next_id(self) -> int:
        doc = await self._counters.find_one_and_update(
            {"_id": "channels"}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None
        return int(doc["value"])

    async def insert(self, channel: Channel) -> None:
        await self._channels.insert_one(_to_doc(channel))

    async def get(self, channel_id: int) -> Channel | None:
        doc = await self._channels.find_one({"_id": channel_id})
        return None if doc is None else _from_doc(doc)

    async def all(self) -> list[Channel]:
        return [_from_doc(doc) async for doc in self._channels.find({}).sort("_id", 1)]

    async def update(self, channel_id: int, fields: dict[str, Any]) -> Channel | None:
        doc = await self._channels.find_one_and_update(
            {"_id": channel_id},
            {"$set": {**fields, "updated_at": time.time()}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _from_doc(doc)

    async def delete(self, channel_id: int) -> bool:
        result = await self._channels.delete_one({"_id": channel_id})
        return result.deleted_count == 1

    async def active_with(self, domain: str, email: str) -> list[Channel]:
        cursor = self._channels.find({"domain": domain, "email": email, "active": True})
        return [_from_doc(doc) async for doc in cursor]


async def verify_secret_key(db: AsyncDatabase[Document], box: SecretBox) -> None:
    """Fail fast, at start-up, if SECRET_KEY cannot decrypt the stored channel secrets.

    Decrypts one stored secret (if there is any channel); raises SecretKeyError saying what to do
    instead of letting the first request that needs a secret fail deep inside.
    """
    doc = await db.channels.find_one({}, {"api_key_enc": 1, "webhook_secret_enc": 1}, sort=[("_id", 1)])
    if doc is None:
        return
    try:
        for field in ("api_key_enc", "webhook_secret_enc"):
            if doc.get(field):
                box.decrypt(str(doc[field]))
    except SecretKeyError:
        raise SecretKeyError(
            f"SECRET_KEY cannot decrypt the secrets stored for channel {doc['_id']}: it is not the key "
            "they were encrypted with. Set SECRET_KEY to that key; while rotating keys, keep the old "
            "key after the new one (SECRET_KEY=new,old) until `omnibot secrets rotate` has run"
        ) from None
