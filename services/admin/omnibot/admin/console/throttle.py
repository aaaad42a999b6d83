"""Slowing down repeated wrong passwords, per account and per address, for every admin replica.

After `FREE_FAILURES` wrong attempts within `WINDOW_S`, each further attempt for that account or
from that address must wait `BASE_DELAY_S * 2^(extra failures)` (capped at `MAX_DELAY_S`) after the
last failure; an attempt made sooner is refused without the password being checked. A success
clears the account's count (not the address's: one right password must not unlock guessing at
other accounts from the same address).

The counts live in MongoDB (`sign_in_failures`, one document per account and per address), so
replicas behind one address share them: a failure is one atomic increment (or a fresh count when
the last one is older than the window), and MongoDB forgets a count `WINDOW_S` after its last
failure. Times are wall-clock seconds (replicas compare them). `wait_for` is the policy, pure.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from omnibot.shared.mongo import Document

FREE_FAILURES = 3
BASE_DELAY_S = 2.0
MAX_DELAY_S = 300.0
WINDOW_S = 900.0
_RACES = 5  # a fresh count started by another replica in between: count on theirs


def wait_for(count: int, last: float, now: float) -> float:
    """Seconds still to wait after `count` failures, the last at `last` (0: an attempt may be made)."""
    if count < FREE_FAILURES or now - last > WINDOW_S:
        return 0.0
    delay = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (count - FREE_FAILURES))
    return float(max(0.0, last + delay - now))


def _keys(account: str, address: str) -> tuple[str, str]:
    return f"a:{account}", f"ip:{address}"


class MongoSignInThrottle:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._failures = db.sign_in_failures

    async def ensure_indexes(self) -> None:
        await self._failures.create_index([("expires", ASCENDING)], expireAfterSeconds=0)

    async def wait_s(self, account: str, address: str, now: float) -> float:
        """Seconds until an attempt for this account from this address is allowed (0: now)."""
        waits = [
            wait_for(int(doc.get("count") or 0), float(doc.get("last") or 0.0), now)
            async for doc in self._failures.find({"_id": {"$in": list(_keys(account, address))}})
        ]
        return max(waits, default=0.0)

    async def failed(self, account: str, address: str, now: float) -> None:
        for key in _keys(account, address):
            await self._count(key, now)

    async def succeeded(self, account: str) -> None:
        await self._failures.delete_one({"_id": _keys(account, "")[0]})

    async def _count(self, key: str, now: float) -> None:
        expires = datetime.fromtimestamp(now + WINDOW_S, tz=UTC)
        stale = now - WINDOW_S
        for _ in range(_RACES):
            counted = await self._failures.update_one(
                {"_id": key, "last": {"$gte": stale}},
                {"$inc": {"count": 1}, "$max": {"last": now}, "$set": {"expires": expires}},
            )
            if counted.matched_count:
                return
            try:
                # None yet, or only one from before the window: this failure starts a new count.
                await self._failures.replace_one(
                    {"_id": key, "last": {"$lt": stale}},
                    {"count": 1, "last": now, "expires": expires},
                    upsert=True,
                )
                return
            except DuplicateKeyError:
                continue  # another replica counted one in between: add to theirs
