"""Console sessions in MongoDB: a random token in an HttpOnly cookie, its hash in `console_sessions`.

A session holds the user's e-mail, the account generation it was made under (a password reset, a
role change or disabling the account ends every older session), its CSRF token, and when it
expires (absolute: `SESSION_TTL_S` after sign-in; a TTL index removes expired ones). Only the
SHA-256 of the cookie is stored, so a read of the database does not give usable sessions.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime

import msgspec
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.shared.mongo import Document

SESSION_TTL_S = 12 * 3600


class Session(msgspec.Struct, kw_only=True, frozen=True):
    email: str
    generation: int
    csrf: str
    created_at: float
    expires_at: float


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class MongoSessionStore:
    def __init__(self, db: AsyncDatabase[Document], *, ttl_s: float = SESSION_TTL_S) -> None:
        self._sessions = db.console_sessions
        self._ttl_s = ttl_s

    async def ensure_indexes(self) -> None:
        await self._sessions.create_index("expires", expireAfterSeconds=0)

    async def open(self, email: str, generation: int) -> tuple[str, Session]:
        """A new session; returns the cookie value (never stored) and the session."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(
            email=email,
            generation=generation,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self._ttl_s,
        )
        await self._sessions.insert_one(
            {
                "_id": _key(token),
                **msgspec.to_builtins(session),
                "expires": datetime.fromtimestamp(session.expires_at, tz=UTC),
            }
        )
        return token, session

    async def get(self, token: str) -> Session | None:
        if not token or len(token) > 200:
            return None
        doc = await self._sessions.find_one({"_id": _key(token)}, {"_id": 0, "expires": 0})
        if doc is None:
            return None
        session = msgspec.convert(doc, Session)
        # The TTL monitor runs once a minute: do not trust a session it has not removed yet.
        return session if session.expires_at > time.time() else None

    async def close(self, token: str) -> None:
        await self._sessions.delete_one({"_id": _key(token)})

    async def close_all(self, email: str) -> None:
        await self._sessions.delete_many({"email": email})
