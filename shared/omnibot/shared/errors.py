"""The error vocabulary shared by every consumer: what failed, and whether trying again can help."""

from __future__ import annotations


class OmnibotError(Exception):
    """Base of omnibot's own errors. The message is safe to log: it never contains a secret."""


class PermanentError(OmnibotError):
    """Trying again cannot help (bad data, refused by the remote side): dead-letter it."""


class TransientError(OmnibotError):
    """Trying again later may help (a dependency is down, overloaded or timed out).

    `retry_after` is the remote side's own wish in seconds (Omnidesk's `retry_after`), if any.
    `ambiguous` means the operation may have taken effect although it reported failure.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class Deferred(OmnibotError):
    """Not an error: the message cannot be handled yet (an earlier one must go first).

    Retried after `delay_s` without counting as a failed attempt.
    """

    def __init__(self, message: str, *, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s
