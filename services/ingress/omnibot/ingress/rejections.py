"""Refused webhooks: counted by reason, and logged at a bounded rate.

A scanner or a misconfigured rule can send thousands of refused requests a second; a log line for
each would cost more than the refusal and drown the log. The first refusal after a quiet period is
logged at once; the rest are counted and summed up in one line per `interval_s` at most. The
counts by reason are kept for the metrics (`omnibot_webhook_rejections_total{reason}`) and tests.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)


class RejectionLog:
    def __init__(self, *, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self.totals: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()
        self._next_line_at = 0.0

    def record(self, reason: str) -> None:
        self.totals[reason] += 1
        self._pending[reason] += 1
        now = self._clock()
        if now < self._next_line_at:
            return
        summary = ", ".join(f"{name}={count}" for name, count in sorted(self._pending.items()))
        log.warning("webhooks refused since the last report: %s", summary)
        self._pending.clear()
        self._next_line_at = now + self._interval_s
