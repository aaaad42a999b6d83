"""Per-account pacing of Omnidesk API calls, learned from the rate-limit headers of every response.

Omnidesk limits calls per minute per account and says so in `rate_limit_per_minute`,
`api_calls_left` and, once the limit is hit, `retry_after`. Each account has its own state, so a
busy or throttled account never slows another. Short waits are taken in place; a long one is
raised as a TransientError so the message goes to a delay queue and frees its worker.
This state is per process: with several egress replicas each learns from its own responses, and
all obey the server's `retry_after`, which is what keeps them within the account's budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from omnibot.shared.omnidesk_errors import OmnideskRateLimited

WINDOW_S = 60.0
DEFAULT_RETRY_AFTER_S = 60.0


@dataclass
class _Account:
    blocked_until: float = 0.0
    limit: int | None = None
    left: int | None = None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Header lookup that tolerates `api_calls_left`, `Api-Calls-Left` and `api-calls-left`."""
    wanted = name.lower().replace("-", "_")
    for key, value in headers.items():
        if key.lower().replace("-", "_") == wanted:
            return value
    return None


def parse_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


class AccountThrottle:
    def __init__(
        self,
        *,
        max_wait_in_place_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._accounts: dict[str, _Account] = {}
        self._max_wait = max_wait_in_place_s
        self._clock = clock
        self._sleep = sleep

    def delay_for(self, account: str) -> float:
        state = self._accounts.get(account)
        if state is None:
            return 0.0
        return max(0.0, state.blocked_until - self._clock())

    async def acquire(self, account: str) -> None:
        delay = self.delay_for(account)
        if delay > self._max_wait:
            raise OmnideskRateLimited(f"Omnidesk rate limit: waiting {delay:.0f}s", retry_after=delay)
        if delay > 0:
            await self._sleep(delay)
        state = self._accounts.setdefault(account, _Account())
        if state.left is not None:
            state.left -= 1
            if state.left <= 0:
                # The budget is spent: pace the rest of the window instead of collecting 429s.
                state.blocked_until = max(
                    state.blocked_until, self._clock() + WINDOW_S / max(state.limit or 60, 1)
                )

    def observe(self, account: str, status: int, headers: Mapping[str, str]) -> float | None:
        """Learn from a response; returns the retry-after (s) if the response was a rate-limit refusal."""
        state = self._accounts.setdefault(account, _Account())
        limit = header(headers, "rate_limit_per_minute")
        left = header(headers, "api_calls_left")
        if limit is not None and limit.strip().isdigit():
            state.limit = int(limit)
        if left is not None and left.strip().lstrip("-").isdigit():
            state.left = int(left)
        if status in (429, 403) and (status == 429 or header(headers, "retry_after") is not None):
            wait = parse_seconds(header(headers, "retry_after")) or DEFAULT_RETRY_AFTER_S
            state.blocked_until = max(state.blocked_until, self._clock() + wait)
            return wait
        return None
