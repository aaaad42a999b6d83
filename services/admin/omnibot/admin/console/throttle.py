"""Slowing down repeated wrong passwords, per account and per address. Pure, clock passed in.

After `FREE_FAILURES` wrong attempts within `WINDOW_S`, each further attempt for that account or
from that address must wait `BASE_DELAY_S * 2^(extra failures)` (capped at `MAX_DELAY_S`) after the
last failure; an attempt made sooner is refused without the password being checked. A success
clears the account's count (not the address's: one right password must not unlock guessing at
other accounts from the same address). Kept in memory: each admin replica counts on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

FREE_FAILURES = 3
BASE_DELAY_S = 2.0
MAX_DELAY_S = 300.0
WINDOW_S = 900.0
MAX_KEYS = 100_000


@dataclass
class _Failures:
    count: int
    last: float


class SignInThrottle:
    def __init__(self) -> None:
        self._failures: dict[str, _Failures] = {}

    def wait_s(self, account: str, address: str, now: float) -> float:
        """Seconds until an attempt for this account from this address is allowed (0: now)."""
        return max(self._wait(f"a:{account}", now), self._wait(f"ip:{address}", now))

    def failed(self, account: str, address: str, now: float) -> None:
        if len(self._failures) > MAX_KEYS:
            self._forget(now)
        for key in (f"a:{account}", f"ip:{address}"):
            entry = self._failures.get(key)
            if entry is None or now - entry.last > WINDOW_S:
                entry = _Failures(0, now)
            self._failures[key] = _Failures(entry.count + 1, now)

    def succeeded(self, account: str) -> None:
        self._failures.pop(f"a:{account}", None)

    def _wait(self, key: str, now: float) -> float:
        entry = self._failures.get(key)
        if entry is None or entry.count < FREE_FAILURES or now - entry.last > WINDOW_S:
            return 0.0
        delay = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (entry.count - FREE_FAILURES))
        return float(max(0.0, entry.last + delay - now))

    def _forget(self, now: float) -> None:
        self._failures = {k: v for k, v in self._failures.items() if now - v.last <= WINDOW_S}
