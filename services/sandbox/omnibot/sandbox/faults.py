"""What the sandbox does to a request besides answering it: the account's per-minute rate limit,
scripted fault answers and a timed outage of the whole API. Pure: time comes from injected clocks.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    left: int
    retry_after_s: int  # meaningful when not allowed


class RateLimiter:
    """Per-minute request budget of the account, as a sliding 60 s window over the injected clock.

    A refused request does not consume budget (the caller is told to come back later).
    """

    WINDOW_S = 60.0

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.per_minute = per_minute
        self._taken: deque[float] = deque()

    def reset(self, per_minute: int) -> None:
        """A fresh budget of `per_minute` (what tests expect after changing the limit)."""
        self.per_minute = per_minute
        self._taken.clear()

    def take(self) -> RateDecision:
        now = self._clock()
        while self._taken and self._taken[0] <= now - self.WINDOW_S:
            self._taken.popleft()
        if len(self._taken) >= self.per_minute:
            retry_after = math.ceil(self._taken[0] + self.WINDOW_S - now)
            return RateDecision(
                allowed=False, limit=self.per_minute, left=0, retry_after_s=max(1, retry_after)
            )
        self._taken.append(now)
        left = self.per_minute - len(self._taken)
        return RateDecision(allowed=True, limit=self.per_minute, left=left, retry_after_s=0)


# --- faults -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultResponse:
    """One scripted answer. `status=None` answers normally (used with `delay_s` to answer late)."""

    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    after_accept: bool = False

    @property
    def performs_operation(self) -> bool:
        """Whether the real operation runs before this answer (accepted-but-lost, or just late)."""
        return self.after_accept or self.status is None


@dataclass(kw_only=True, slots=True)
class Fault:
    method: str | None  # None: any method
    path: re.Pattern[str]  # searched in the request path
    responses: deque[FaultResponse]


class FaultQueue:
    """Scripted answers for matching requests, consumed one per request in registration order."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._faults: list[Fault] = []
        self._on_change = on_change or (lambda: None)  # the account's change counter

    def add(
        self, *, method: str | None, path: str, responses: Sequence[FaultResponse], times: int = 1
    ) -> None:
        """Queue `responses` (repeated `times` times); raises `re.error` for a bad pattern."""
        self._faults.append(
            Fault(
                method=method.upper() if method else None,
                path=re.compile(path),
                responses=deque(list(responses) * times),
            )
        )
        self._on_change()

    def take(self, method: str, path: str) -> FaultResponse | None:
        for fault in self._faults:
            if fault.method not in (None, method.upper()) or not fault.path.search(path):
                continue
            response = fault.responses.popleft()
            if not fault.responses:
                self._faults.remove(fault)
            self._on_change()
            return response
        return None

    def pending(self) -> list[Fault]:
        return list(self._faults)

    def clear(self) -> None:
        self._faults.clear()
        self._on_change()


@dataclass(frozen=True, slots=True)
class Outage:
    """The whole Omnidesk API down: every `/api` request answers `status` until `until` (the
    state's clock). Unlike a queued fault it does not run out after N requests, so a client that
    retries faster or slower meets the same outage for the same time."""

    until: float
    status: int


# --- pure helpers -----------------------------------------------------------------------------
