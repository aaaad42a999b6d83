"""The consumer policy: what becomes of a delivery once its handler is done, and the one place that does it.

`decide` is pure: from the handler's outcome (nothing raised, or what it raised), the attempt and
the stage's `RetryPolicy` to a verdict:
- nothing raised → `Ack`;
- `PermanentError` (an undecodable body included) → `DeadLetter`, with the reason;
- `Deferred` (an earlier message must go first) → `Retry` through a delay tier, not counted as a
  failed attempt;
- `TransientError` → `Retry` after a capped, jittered backoff (the remote side's `retry_after` a
  floor), in place or through a delay tier as the stage says; anything else is treated as
  transient with a smaller budget; past the stage's budget → `DeadLetter` ("gave up after N attempts").
`Settler.settle` turns a verdict into AMQP verbs; `GiveBack` (stopping, handing a partition over)
puts the message back in its place untouched. Retrying in place is the consumer's loop, not a verb.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aio_pika
import msgspec
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from omnibot.shared.backoff import backoff_delay
from omnibot.shared.errors import Deferred, PermanentError, TransientError
from omnibot.shared.masking import mask_text
from omnibot.shared.topology import DELIVERY_COUNT_HEADER, Stage, retry_tier_ms

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-attempt"
DEFERRALS_HEADER = "x-deferrals"
AMBIGUOUS_HEADER = "x-ambiguous"
MAX_DEFERRAL_S = 1.0


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """A stage's retry budget and how it waits: the one place that says when to give up."""

    # In place: the message keeps its place (and holds its chat) while it waits. Delayed: it waits
    # in a delay tier and frees the slot; the handler must tolerate reordering.
    mode: Literal["in_place", "delayed"]
    max_attempts: int = 10
    max_unexpected_attempts: int = 5  # for failures that are not a TransientError (bugs)
    max_backoff_s: float = 60.0

    def limit(self, error: BaseException) -> int:
        if isinstance(error, TransientError):
            return self.max_attempts
        return min(self.max_attempts, self.max_unexpected_attempts)

    def exhausted(self, attempt: int, error: BaseException) -> bool:
        """Is `attempt` (counted from 1), failed with `error`, the last one of the budget?"""
        return attempt >= self.limit(error)


class Ack(msgspec.Struct, frozen=True):
    """Done: take it off the queue."""


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    """Try again after `delay_s`: in place, or republished to a delay tier with `headers` added."""

    delay_s: float
    in_place: bool = False
    headers: dict[str, Any] = {}
    deferred: bool = False  # waiting for an earlier message, not a failed attempt


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """Park it in the stage's dead letters with the reason."""

    reason: str
    attempt: int


class GiveBack(msgspec.Struct, frozen=True):
    """Not this consumer's to settle now (stopping, handing over, cut off): back in its place."""


Verdict = Ack | Retry | DeadLetter | GiveBack


def decide(
    error: BaseException | None,
    *,
    attempt: int,
    deferrals: int,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> Verdict:
    """The verdict on one handler run. Pure; randomness (the backoff's jitter) is a parameter."""
    if error is None:
        return Ack()
    if isinstance(error, PermanentError):
        return DeadLetter(reason=brief(error), attempt=attempt)
    if isinstance(error, Deferred):
        # Short: a deferral costs one cursor read, and each waiting action of a chat adds its
        # wait to the chat's catch-up once the earlier action is through.
        delay = min(error.delay_s * (2 ** min(deferrals, 3)), MAX_DEFERRAL_S)
        return Retry(delay_s=delay, headers={DEFERRALS_HEADER: deferrals + 1}, deferred=True)
    if policy.exhausted(attempt, error):
        return DeadLetter(reason=f"gave up after {attempt} attempts: {brief(error)}", attempt=attempt)
    retry_after = error.retry_after if isinstance(error, TransientError) else None
    delay = backoff_delay(attempt, cap_s=policy.max_backoff_s, retry_after=retry_after, rand=rand)
    if policy.mode == "in_place":
        return Retry(delay_s=delay, in_place=True)
    headers: dict[str, Any] = {ATTEMPT_HEADER: attempt + 1}
    if isinstance(error, TransientError) and error.ambiguous:
        headers[AMBIGUOUS_HEADER] = True
    return Retry(delay_s=delay, headers=headers)


@dataclass
class ConsumerStats:
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    in_flight: int = 0


class Settler:
    """Performs verdicts on deliveries of one stage: the only code that acks, nacks or republishes
    a consumed message. Republishing goes through `channel` (publisher confirms on)."""

    def __init__(self, channel: AbstractChannel, stage: Stage, stats: ConsumerStats) -> None:
        self._channel = channel
        self._stage = stage
        self._stats = stats

    async def settle(self, message: AbstractIncomingMessage, verdict: Verdict) -> None:
        match verdict:
            case Ack():
                await message.ack()
                self._stats.acked += 1
            case GiveBack():
                await message.nack(requeue=True)
            case Retry(in_place=True):
                raise ValueError("a retry in place is the consumer's to run, not a verb")
            case Retry():
                exchange = self._stage.retry_exchange(retry_tier_ms(verdict.delay_s))
                if await self._republish(exchange, message, verdict.headers, "could not schedule a retry"):
                    await message.ack()
            case DeadLetter():
                log.error("dead-lettering: %s", verdict.reason)
                headers = {
                    "x-error": mask_text(verdict.reason)[:2000],  # dead letters are shown
                    ATTEMPT_HEADER: verdict.attempt,
                    "x-dead-at": time.time(),
                    "x-stage": self._stage.name,
                }
                if await self._republish(self._stage.dead, message, headers, "could not dead-letter"):
                    await message.ack()
                    self._stats.dead_lettered += 1

    async def _republish(
        self, exchange_name: str, message: AbstractIncomingMessage, headers: dict[str, Any], failure: str
    ) -> bool:
        """Publish a copy; if that fails, give the message back (requeued) and say False."""
        try:
            exchange = await self._channel.get_exchange(exchange_name, ensure=False)
            copy = persistent_copy(message, {**(message.headers or {}), **headers})
            await exchange.publish(copy, routing_key=message.routing_key or "", timeout=10)
        except Exception:  # whatever the broker did, the message must not be lost
            log.warning("%s; requeueing", failure, exc_info=True)
            await message.nack(requeue=True)
            return False
        return True


def persistent_copy(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A received message, to publish again (retry, dead letter, re-drive) with these headers.

    Without the quorum queue's delivery count: it counts deliveries from one queue, and a copy
    carrying it would look redelivered (and closer to the limit) in the next one.
    """
    return aio_pika.Message(
        message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        timestamp=message.timestamp,
        headers={k: v for k, v in headers.items() if k != DELIVERY_COUNT_HEADER},
    )


def brief(exc: BaseException, limit: int = 500) -> str:
    """An exception's text for a log line or a dead letter: bounded, whatever a library put in it."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"
