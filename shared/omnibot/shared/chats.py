"""Chats: the state of one Omnidesk case on one channel, and its stores (MongoDB and in-memory).

The chat document is small and bounded: engine state, owner, the outbox of the last turn and the
ids of recently processed inbound messages. The transcript lives in its own collection, one
document per line, so a chat with 10,000 messages loads as fast as a new one.

Writes are optimistic: a commit names the version it read and fails if another writer got there
first, so two workers can never both apply a turn to the same state. The rules every writer follows
(versions, the outbox, ownership, transcript numbering) are in `omnibot.shared.chat_record`.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol

import msgspec
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from omnibot.shared.messages import OutboundAction
from omnibot.shared.mongo import Document, from_document, to_document

Owner = Literal["bot", "operator"]
Role = Literal["customer", "bot", "operator", "system"]
RECENT_INBOUND_KEPT = 50


class ChatRecord(msgspec.Struct, kw_only=True):
    key: str
    channel_id: int
    chat_id: str
    agent_name: str
    agent_version: int
    owner: Owner = "bot"
    state: dict[str, Any] = {}  # the engine's ChatState as plain data
    version: int = 0  # optimistic concurrency: incremented by every commit
    out_seq: int = 0  # the last outbound sequence number handed out
    pending: list[OutboundAction] = []  # the outbox: actions committed but not known to be published
    recent_inbound: list[str] = []  # ids of the last processed inbound messages (redelivery check)
    turn_event: str = ""  # the inbound message whose turn waits on an external request, if any
    last_customer_message_id: int = 0  # the newest Omnidesk message of the customer taken (confirm mode)
    last_operator_message_id: int = 0  # the newest Omnidesk message of an operator looked at
    operator_unread: bool = False  # an operator may have written since the case was last read back
    recent_fingerprints: list[tuple[str, float]] = []  # content taken lately, and when (webhook mode)
    bot_label_id: int | None = None  # the label that means "on the bot", as of the last transfer
    transfer_seq: int = 0  # the outbound action that hands the case over (0: done by the agent itself)
    last_error: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


class TranscriptLine(msgspec.Struct, kw_only=True, frozen=True):
    chat: str
    seq: int  # ordering within the chat: turn version * 1000 + index
    role: Role
    text: str
    at: float


class ChatStore(Protocol):
    async def load(self, key: str) -> ChatRecord | None: ...

    async def commit(self, record: ChatRecord, expected_version: int) -> bool:
        """Write `record` (whose version is expected_version + 1) if nobody wrote in between."""
        ...

    async def clear_pending(self, key: str, version: int) -> None: ...

    async def append_transcript(self, lines: list[TranscriptLine]) -> None: ...

    async def transcript(self, key: str, limit: int = 200) -> list[TranscriptLine]: ...


def _doc(record: ChatRecord) -> Document:
    return to_document(record, "key")


def _record(doc: Document) -> ChatRecord:
    return from_document(doc, ChatRecord, "key")


class MongoChatStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._chats = db.chats
        self._transcripts = db.transcripts

    async def load(self, key: str) -> ChatRecord | None:
        doc = await self._chats.find_one({"_id": key})
        return None if doc is None else _record(doc)

    async def commit(self, record: ChatRecord, expected_version: int) -> bool:
        record.updated_at = time.time()
        doc = _doc(record)
        if expected_version == 0:
            try:
                await self._chats.insert_one(doc)
            except DuplicateKeyError:
                return False
            return True
        result = await self._chats.replace_one({"_id": record.key, "version": expected_version}, doc)
        return result.matched_count == 1

    async def clear_pending(self, key: str, version: int) -> None:
        await self._chats.update_one({"_id": key, "version": version}, {"$set": {"pending": []}})

    async def append_transcript(self, lines: list[TranscriptLine]) -> None:
        if not lines:
            return
        docs = [{"_id": f"{line.chat}:{line.seq}", **msgspec.to_builtins(line)} for line in lines]
        try:
            await self._transcripts.insert_many(docs, ordered=False)
        except Exception as exc:
            if "E11000" not in str(exc) and "duplicate key" not in str(exc).lower():
                raise

    async def transcript(self, key: str, limit: int = 200) -> list[TranscriptLine]:
        cursor = self._transcripts.find({"chat": key}, {"_id": 0}).sort("seq", -1).limit(limit)
        lines = [msgspec.convert(doc, TranscriptLine) async for doc in cursor]
        return lines[::-1]


class MemoryChatStore:
    """The same contract in memory: for benchmarks that isolate the pipeline, and component tests."""

    def __init__(self) -> None:
        self.chats: dict[str, ChatRecord] = {}
        self.lines: dict[str, dict[int, TranscriptLine]] = {}

    async def load(self, key: str) -> ChatRecord | None:
        record = self.chats.get(key)
        return None if record is None else msgspec.structs.replace(record)

    async def commit(self, record: ChatRecord, expected_version: int) -> bool:
        current = self.chats.get(record.key)
        if (current.version if current else 0) != expected_version:
            return False
        record.updated_at = time.time()
        self.chats[record.key] = msgspec.convert(msgspec.to_builtins(record), ChatRecord)
        return True

    async def clear_pending(self, key: str, version: int) -> None:
        current = self.chats.get(key)
        if current is not None and current.version == version:
            current.pending = []

    async def append_transcript(self, lines: list[TranscriptLine]) -> None:
        for line in lines:
            self.lines.setdefault(line.chat, {})[line.seq] = line

    async def transcript(self, key: str, limit: int = 200) -> list[TranscriptLine]:
        lines = self.lines.get(key, {})
        return [lines[seq] for seq in sorted(lines)][-limit:]
