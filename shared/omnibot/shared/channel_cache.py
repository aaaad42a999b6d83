"""A short-lived cache of channels in front of MongoDB, for the services that read them per message.

Entries live for `ttl_s` seconds, so a deactivated channel or a rotated secret takes effect within
that time on every replica, while a burst of webhooks costs one lookup per channel. The cache is
only trusted to accept: a refusal (inactive, wrong secret) is re-checked with a fresh read, so a
channel activated or re-keyed a moment ago works at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from omnibot.shared.channels import Channel
from omnibot.shared.errors import TransientError

Lookup = Callable[[int], Awaitable[Channel | None]]


class ChannelDirectory:
    def __init__(
        self, lookup: Lookup, *, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[int, tuple[float, Channel | None]] = {}

    async def get(self, channel_id: int, *, fresh: bool = False) -> Channel | None:
        """The channel; `fresh` skips the cache (callers re-check before refusing anything)."""
        now = self._clock()
        hit = self._cache.get(channel_id)
        if hit is not None and hit[0] > now and not fresh:
            return hit[1]
        try:
            channel = await self._lookup(channel_id)
        except Exception as exc:
            raise TransientError(f"channel lookup failed: {type(exc).__name__}") from exc
        if len(self._cache) > 10_000:  # unknown ids from scanners must not grow memory forever
            self._cache.clear()
        self._cache[channel_id] = (now + self._ttl_s, channel)
        return channel
