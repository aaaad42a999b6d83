"""The consumer policy: outcome → verdict (pure), and the settler that performs verdicts.

The settler runs against a fake channel: a small in-memory class with the two channel methods it
uses (`get_exchange`, and the exchange's `publish`), and fake deliveries with `ack` and `nack`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from omnibot.shared.errors import Deferred, PermanentError, TransientError
from omnibot.shared.settle import (
    AMBIGUOUS_HEADER,
    ATTEMPT_HEADER,
    DEFERRALS_HEADER,
    Ack,
    ConsumerStats,
    DeadLetter,
    GiveBack,
    Retry,
    RetryPolicy,
    Settler,
    decide,
)
from omnibot.shared.topology import DELIVERY_COUNT_HEADER, Topology

DELAYED = RetryPolicy(mode="delayed", max_attempts=4, max_backoff_s=120.0)
IN_PLACE = RetryPolicy(mode="in_place", max_attempts=4, max_backoff_s=30.0)


def verdict(
    error: BaseException | None, attempt: int = 1, *, policy: RetryPolicy = DELAYED, deferrals: int = 0
) -> Any:
    return decide(error, attempt=attempt, deferrals=deferrals, policy=policy, rand=lambda: 1.0)


def test_success_is_acked() -> None:
    assert verdict(None) == Ack()


def test_permanent_failures_are_dead_lettered_at_once_with_the_reason() -> None:
    assert verdict(PermanentError("channel 9 does not exist")) == DeadLetter(
        reason="channel 9 does not exist", attempt=1
    )


def test_transient_failures_are_retried_with_backoff_then_dead_lettered() -> None:
    assert verdict(TransientError("503"), 2) == Retry(delay_s=1.0, headers={ATTEMPT_HEADER: 3})
    assert verdict(TransientError("503"), 2, policy=IN_PLACE) == Retry(delay_s=1.0, in_place=True)
    assert verdict(TransientError("503"), 4) == DeadLetter(reason="gave up after 4 attempts: 503", attempt=4)


def test_retry_after_is_a_floor_and_an_ambiguous_failure_is_marked() -> None:
    result = verdict(TransientError("429", retry_after=30.0, ambiguous=True))

    assert result == Retry(delay_s=30.0, headers={ATTEMPT_HEADER: 2, AMBIGUOUS_HEADER: True})


def test_unexpected_failures_have_the_smaller_budget() -> None:
    policy = RetryPolicy(mode="delayed", max_attempts=10, max_unexpected_attempts=2)

    assert isinstance(verdict(KeyError("x"), 1, policy=policy), Retry)
    assert verdict(KeyError("x"), 2, policy=policy) == DeadLetter(
        reason="gave up after 2 attempts: 'x'", attempt=2
    )
    assert policy.exhausted(2, KeyError("x")) and not policy.exhausted(2, TransientError("x"))


def test_a_deferral_waits_briefly_through_a_delay_tier_and_is_not_an_attempt() -> None:
    assert verdict(Deferred("later", delay_s=0.25), 3, policy=IN_PLACE, deferrals=1) == Retry(
        delay_s=0.5, headers={DEFERRALS_HEADER: 2}, deferred=True
    )
    assert verdict(Deferred("later", delay_s=0.25), deferrals=9).delay_s == 1.0


def test_a_long_reason_is_bounded() -> None:
    result = verdict(PermanentError("x" * 5000))

    assert len(result.reason) < 600 and result.reason.endswith("(5000 characters)")


@dataclass
class FakeExchange:
    name: str
    channel: FakeChannel

    async def publish(
        self, message: aio_pika.Message, routing_key: str, timeout: float | None = None
    ) -> None:
        if self.channel.fail:
            raise ConnectionError("broker gone")
        self.channel.published.append((self.name, routing_key, message))


@dataclass
class FakeChannel:
    fail: bool = False
    published: list[tuple[str, str, aio_pika.Message]] = field(default_factory=list)

    async def get_exchange(self, name: str, *, ensure: bool = True) -> FakeExchange:
        return FakeExchange(name, self)


@dataclass
class FakeDelivery:
    headers: dict[str, Any] = field(default_factory=lambda: {"chat_key": "1:7", DELIVERY_COUNT_HEADER: 2})
    body: bytes = b"{}"
    message_id: str = "1:7:3"
    routing_key: str = "chat.outbound.0"
    content_type: str = "application/json"
    timestamp: None = None
    verbs: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.verbs.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.verbs.append(f"nack requeue={requeue}")


STAGE = Topology.build("settle-test", 2).outbound


def settler(channel: FakeChannel) -> tuple[Settler, ConsumerStats]:
    stats = ConsumerStats()
    return Settler(cast(AbstractChannel, channel), STAGE, stats), stats


async def settle(channel: FakeChannel, verdict: Any) -> tuple[FakeDelivery, ConsumerStats]:
    performer, stats = settler(channel)
    delivery = FakeDelivery()
    await performer.settle(cast(AbstractIncomingMessage, delivery), verdict)
    return delivery, stats


async def test_ack_and_give_back() -> None:
    acked, stats = await settle(FakeChannel(), Ack())
    given_back, _ = await settle(FakeChannel(), GiveBack())

    assert (acked.verbs, stats.acked, given_back.verbs) == (["ack"], 1, ["nack requeue=True"])


async def test_a_delayed_retry_is_republished_to_its_tier_then_acked() -> None:
    channel = FakeChannel()

    delivery, _ = await settle(channel, Retry(delay_s=1.0, headers={ATTEMPT_HEADER: 3}))

    [(exchange, routing_key, copy)] = channel.published
    assert (exchange, routing_key) == (STAGE.retry_exchange(1000), "chat.outbound.0")
    assert copy.headers == {"chat_key": "1:7", ATTEMPT_HEADER: 3}  # no delivery count carried over
    assert copy.delivery_mode == aio_pika.DeliveryMode.PERSISTENT and copy.message_id == "1:7:3"
    assert delivery.verbs == ["ack"]


async def test_a_dead_letter_carries_its_reason() -> None:
    channel = FakeChannel()

    delivery, stats = await settle(channel, DeadLetter(reason="gave up after 4 attempts: 503", attempt=4))

    [(exchange, _, copy)] = channel.published
    assert exchange == STAGE.dead
    assert copy.headers is not None
    assert (copy.headers["x-error"], copy.headers[ATTEMPT_HEADER], copy.headers["x-stage"]) == (
        "gave up after 4 attempts: 503",
        4,
        STAGE.name,
    )
    assert (delivery.verbs, stats.dead_lettered) == (["ack"], 1)


@pytest.mark.parametrize("verdict", [Retry(delay_s=1.0), DeadLetter(reason="r", attempt=1)])
async def test_a_republish_that_fails_gives_the_message_back(verdict: Any) -> None:
    delivery, stats = await settle(FakeChannel(fail=True), verdict)

    assert (delivery.verbs, stats.dead_lettered) == (["nack requeue=True"], 0)


async def test_a_retry_in_place_is_not_a_verb() -> None:
    with pytest.raises(ValueError, match="in place"):
        await settle(FakeChannel(), Retry(delay_s=1.0, in_place=True))
