"""The channel cache against the real MongoDB-protocol server: refusals re-check from one budget."""

from __future__ import annotations

from typing import Any

from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel, MongoChannelStore
from omnibot.shared.crypto import fingerprint


async def test_refusals_beyond_the_budget_read_nothing(db: Any) -> None:
    store = MongoChannelStore(db)
    await store.insert(
        Channel(
            id=1,
            domain="https://x.omnidesk.ru",
            email="bot@x.ru",
            api_key_enc="",
            webhook_secret_enc="",
            webhook_secret_hash=fingerprint("s" * 40),
            agent="a",
        )
    )
    reads = 0

    async def counted(channel_id: int) -> Channel | None:
        nonlocal reads
        reads += 1
        return await store.get(channel_id)

    now = 100.0
    directory = ChannelDirectory(counted, recheck_per_s=5, recheck_burst=10, clock=lambda: now)
    for _ in range(500):  # a scanner: wrong secrets on a known channel, and unknown ids
        assert await directory.recheck(1) is not None
        assert await directory.recheck(999) is None
    assert reads == 10  # the burst; after it, refusals are decided from the cache
    now += 1.0  # one second later the budget allows five more fresh reads
    for _ in range(100):
        await directory.recheck(1)
    assert reads == 10 + 5
