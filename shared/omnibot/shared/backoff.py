"""Retry timing: capped exponential backoff with full jitter. Pure; randomness is a parameter."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    *,
    base_s: float = 0.5,
    cap_s: float = 60.0,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1).

    Full jitter (a uniform pick below the exponential ceiling `base_s * 2**(attempt-1)`, capped at
    `cap_s`) spreads replicas that failed together. The pick starts at half the base delay rather
    than at zero, so that no retry comes at once. A server's `retry_after` is a floor: waiting less
    would only earn another refusal.
    """
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    floor = min(base_s / 2, ceiling)
    delay = floor + rand() * (ceiling - floor)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return float(delay)
