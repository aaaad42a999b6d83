"""A short-lived cache of channels in front of MongoDB, for the services that read them per message.

Entries live for `ttl_s` seconds, so a deactivated channel or a rotated secret takes effect within
that time on every replica, while a burst of webhooks costs one lookup per channel. The cache is
only trusted to accept: a refusal (inactive, wrong secret, unknown id) is re-checked with a fresh
read, so a channel activated or re-keyed a moment ago works at once. Those re-checks share one
budget (`recheck_per_s`, a token bucket), so refusals cannot be turned into a MongoDB read each:
past the budget a refusal is decided from the cache alone, and a change then takes effect within
`ttl_s` as it does for an acceptance.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from omnibot.shared.channels import Channel
from omnibot.shared.errors import TransientError

Lookup = Callable[[int], Awaitable[Channel | None]]


class ChannelDirectory:
    def __init__(
        self,
        lookup: Lookup,
        *,
        ttl_s: float = 2.0,
        recheck_per_s: float = 5.0,
        recheck_burst: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[int, tuple[float, Channel | None]] = {}
        self._recheck_per_s = recheck_per_s
        self._recheck_burst = float(recheck_burst)
        self._recheck_tokens = float(recheck_burst)
        self._recheck_at = clock()

    async def recheck(self, channel_id: int) -> Channel | None:
        """Before a refusal: a fresh read while the re-check budget lasts, else the cached entry."""
        now = self._clock()
        self._recheck_tokens = min(
            self._recheck_burst, self._recheck_tokens + (now - self._recheck_at) * self._recheck_per_s
        )
        self._recheck_at = now
        if self._recheck_tokens >= 1.0:
            self._recheck_tokens -= 1.0
            return await self.get(channel_id, fresh=True)
        return await self.get(channel_id)

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
