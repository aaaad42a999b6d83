"""The overview's "Replies delivered today": text replies egress delivered since midnight UTC, each
once, from stored times (not yesterday's, not files, notes or transfers, not the cursors' totals)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.console.stats import ConsoleStats
from omnibot.shared.deliveries import MongoDeliveryStore
from omnibot.shared.mongo import ensure_indexes


def at(hour: int, minute: int = 0, second: int = 0, day: int = 1) -> float:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=UTC).timestamp()


async def deliver_reply(store: MongoDeliveryStore, key: str, when: float | None) -> bool:
    """Egress's move of a chat's cursor by one action: a text reply at `when`, or (None) a file."""
    cursor = await store.cursor(key)
    tally = cursor.with_reply(when) if when is not None else None
    return await store.advance(key, cursor.seq, cursor.seq + 1, None, tally=tally)


async def test_replies_today_counts_todays_text_replies_once(db: AsyncDatabase[dict[str, Any]]) -> None:
    await ensure_indexes(db)
    replies = MongoDeliveryStore(db)
    assert await deliver_reply(replies, "1:7", datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC).timestamp())
    before = await replies.cursor("1:7")  # yesterday's reply, then a worker delivers today's
    assert await deliver_reply(replies, "1:7", at(0, 0, 0))
    # The same reply performed again by another worker from the old cursor: refused, still one.
    assert not await replies.advance("1:7", before.seq, before.seq + 1, None, tally=before.with_reply(at(9)))
    assert await deliver_reply(replies, "1:8", None)  # a file (or a note, a transfer): no reply
    assert await deliver_reply(replies, "1:8", at(11, 30))
    stats = ConsoleStats(db)
    await stats.ensure_indexes()

    assert (await stats.today(at(12))).replies_today == 2  # 00:00:00 and 11:30, not 23:59:59 yesterday
    assert (await stats.today(at(0, 0, 1, day=2))).replies_today == 0  # a new day
    assert await deliver_reply(replies, "1:7", at(8, day=2))
    assert (await stats.today(at(9, day=2))).replies_today == 1  # the tally starts again each day


async def test_transfers_today_are_todays_transfer_lines(db: AsyncDatabase[dict[str, Any]]) -> None:
    await ensure_indexes(db)
    stats = ConsoleStats(db)
    await stats.ensure_indexes()
    lines = [
        ("system", "[transferred to an operator]", at(9)),
        ("system", "[handed to an operator from the console]", at(10)),
        ("system", "[handed back to the bot]", at(10, 5)),
        ("customer", "[transferred to an operator]", at(10, 6)),  # a customer typing it is no transfer
        ("system", "[transferred to an operator]", datetime(2026, 11, 30, 23, 0, tzinfo=UTC).timestamp()),
    ]
    await db.transcripts.insert_many(
        [
            {"_id": f"1:7:{n}", "chat": "1:7", "seq": n, "role": role, "text": text, "at": when}
            for n, (role, text, when) in enumerate(lines)
        ]
    )
    assert (await stats.today(at(12))).transfers_today == 2
