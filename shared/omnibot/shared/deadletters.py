"""Dead letters: what a stage gave up on, with the reason, listed and re-driven from RabbitMQ.

A dead letter is a copy of the message published to `<stage>.dead` with headers saying why
(`x-error`), after how many attempts (`x-attempt`) and when (`x-dead-at`); its routing key is the
original partition's. A message the broker dead-lettered itself (a partition queue's delivery
limit: its consumers died with it or gave it back again and again) has no `x-error`; its reason
and count come from the broker's `x-death` record instead. Listing takes the messages and gives
them back in order; re-driving publishes the chosen ones to their stage again, marked
`x-redrive` (egress then performs the action even though its chat has moved on), and removes
them from the dead-letter queue.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

import msgspec
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from omnibot.shared.settle import persistent_copy
from omnibot.shared.topology import DELIVERY_LIMIT, Stage, Topology

StageName = Literal["inbound", "outbound"]
BOTH: tuple[StageName, ...] = ("inbound", "outbound")
DEAD_HEADERS = ("x-error", "x-dead-at", "x-attempt")
# What the broker adds when it dead-letters or redelivers; a re-driven copy starts afresh.
BROKER_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
)
REDRIVE_HEADER = "x-redrive"
MAX_LISTED = 10_000


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True):
    id: str  # the message id: inbound event id or outbound action id
    stage: StageName
    channel_id: int | None
    chat_id: str | None
    kind: str  # the message's type tag, e.g. "outbound.text.v1"
    error: str
    attempts: int
    dead_at: float
    body: dict[str, Any]


def _stage(topology: Topology, name: StageName) -> Stage:
    return topology.inbound if name == "inbound" else topology.outbound


def _describe(message: AbstractIncomingMessage, stage: StageName) -> DeadLetter:
    headers = message.headers or {}
    try:
        body = msgspec.json.decode(message.body)
    except msgspec.DecodeError:
        body = {"undecodable": message.body[:200].decode(errors="replace")}
    if not isinstance(body, dict):
        body = {"value": body}
    channel_id = body.get("channel_id")
    attempts = headers.get("x-attempt", 1)
    dead_at = headers.get("x-dead-at", 0.0)
    error = str(headers.get("x-error", ""))
    if not error:
        error, attempts, dead_at = _broker_reason(headers, attempts, dead_at)
    return DeadLetter(
        id=message.message_id or "",
        stage=stage,
        channel_id=channel_id if isinstance(channel_id, int) else None,
        chat_id=str(body["chat_id"]) if "chat_id" in body else None,
        kind=str(body.get("type", "")),
        error=error,
        attempts=attempts if isinstance(attempts, int) else 1,
        dead_at=float(dead_at) if isinstance(dead_at, int | float) else 0.0,
        body=body,
    )


def _broker_reason(headers: dict[str, Any], attempts: Any, dead_at: Any) -> tuple[str, Any, Any]:
    """The reason, deliveries and time of a dead-lettering done by the broker (`x-death`)."""
    deaths = headers.get("x-death")
    death = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    reason = str(death.get("reason", headers.get("x-first-death-reason", "")))
    if not reason:
        return "", attempts, dead_at
    queue = str(death.get("queue", headers.get("x-first-death-queue", "")))
    when = death.get("time")
    if isinstance(when, datetime.datetime):
        dead_at = when.timestamp()
    if reason == "delivery_limit":
        return (
            f"delivery limit reached in {queue}: handed out {DELIVERY_LIMIT + 1} times without an "
            "outcome (its consumers died with it or gave it back each time)",
            DELIVERY_LIMIT + 1,
            dead_at,
        )
    return f"dead-lettered by the broker from {queue}: {reason}", attempts, dead_at


@contextlib.asynccontextmanager
async def _taken(channel: AbstractChannel, stage: Stage) -> AsyncIterator[list[AbstractIncomingMessage]]:
    """Every message of the dead-letter queue, held unacknowledged; the unsettled go back on exit."""
    queue = await channel.get_queue(stage.dead, ensure=False)
    messages: list[AbstractIncomingMessage] = []
    try:
        while len(messages) < MAX_LISTED:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            messages.append(message)
        yield messages
    finally:
        for message in messages:
            if not message.processed:
                await message.nack(requeue=True)


async def list_dead(
    connection: AbstractRobustConnection,
    topology: Topology,
    stages: Iterable[StageName] = BOTH,
) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    async with connection.channel() as channel:
        for name in stages:
            async with _taken(channel, _stage(topology, name)) as messages:
                found.extend(_describe(m, name) for m in messages)
    return found


async def replay_dead(
    connection: AbstractRobustConnection,
    topology: Topology,
    ids: set[str] | None,
    stages: Iterable[StageName] = BOTH,
) -> list[DeadLetter]:
    """Re-drive the dead letters with these ids (None: all); returns what was re-driven."""
    replayed: list[DeadLetter] = []
    async with connection.channel(publisher_confirms=True) as channel:
        for name in stages:
            stage = _stage(topology, name)
            exchange = await channel.get_exchange(stage.name, ensure=False)
            async with _taken(channel, stage) as messages:
                for message in messages:
                    if ids is not None and message.message_id not in ids:
                        continue
                    headers = {
                        k: v
                        for k, v in (message.headers or {}).items()
                        if k not in DEAD_HEADERS and k not in BROKER_HEADERS
                    }
                    headers[REDRIVE_HEADER] = True
                    await exchange.publish(
                        persistent_copy(message, headers), routing_key=message.routing_key or "", timeout=10
                    )
                    await message.ack()
                    replayed.append(_describe(message, name))
    return replayed
