"""AMQP plumbing: confirmed publishing and the one consumer wrapper that runs handlers.

Handlers never ack. They return (success → ack) or raise; what each outcome becomes (ack, retry in
place or through a delay tier, dead letter) is the consumer policy of `settle.py`, and its
`Settler` is the only code that settles a delivery. Messages of one chat (`chat_key` header) are
handled one at a time, in delivery order; different chats run concurrently up to the prefetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from opentelemetry.trace import SpanKind

from omnibot.shared import amqp_connection, telemetry
from omnibot.shared.errors import Deferred, PermanentError, TransientError
from omnibot.shared.logs import bind
from omnibot.shared.metrics import stage_label
from omnibot.shared.settle import (
    AMBIGUOUS_HEADER,
    ATTEMPT_HEADER,
    DEFERRALS_HEADER,
    ConsumerStats,
    GiveBack,
    Retry,
    RetryPolicy,
    Settler,
    Verdict,
    brief,
    decide,
)
from omnibot.shared.topology import DELIVERY_COUNT_HEADER, DELIVERY_LIMIT, Stage

log = logging.getLogger(__name__)

CHAT_KEY_HEADER = "chat_key"
GIVE_BACK = GiveBack()


async def connect(url: str, *, name: str) -> AbstractRobustConnection:
    """A robust connection: reconnects (to the next broker node of `url`, see amqp_connection.py)
    and restores channels, consumers and QoS by itself."""
    return await amqp_connection.connect(url, name=name)


class Publisher:
    """Publishes persistent messages and returns only once the broker confirmed them."""

    def __init__(
        self, channel: AbstractChannel, exchange: AbstractExchange, stage: Stage, *, timeout_s: float = 10.0
    ):
        self._channel = channel
        self._exchange = exchange
        self._stage = stage
        self._timeout_s = timeout_s
        self._span_name = f"{stage_label(stage.name)} publish"
        self._span_attributes = {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.destination.name": stage_label(stage.name),
        }

    @classmethod
    async def open(cls, connection: AbstractRobustConnection, stage: Stage) -> Publisher:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(stage.name, ensure=False)
        return cls(channel, exchange, stage)

    @property
    def is_ready(self) -> bool:
        return not self._channel.is_closed

    async def publish(
        self, chat_key: str, body: bytes, *, message_id: str, headers: dict[str, Any] | None = None
    ) -> None:
        """Raises TransientError when the broker did not confirm (nothing is known to be queued),
        PermanentError (before sending anything) when the headers are too large to send."""
        all_headers: dict[str, Any] = {CHAT_KEY_HEADER: chat_key, **(headers or {})}
        routing_key = self._stage.route(chat_key)
        with telemetry.span(
            "omnibot.amqp", self._span_name, kind=SpanKind.PRODUCER, attributes=self._span_attributes
        ):
            telemetry.inject(all_headers)  # the trace goes on in the consumer (W3C traceparent)
            check_headers(all_headers)
            message = aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
                timestamp=time.time(),
                headers=all_headers,
            )
            try:
                await self._exchange.publish(
                    message, routing_key=routing_key, mandatory=True, timeout=self._timeout_s
                )
            except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                raise TransientError(f"broker did not confirm the publish: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self._channel.close()


# RabbitMQ closes the whole connection (FRAME_ERROR frame_too_large) when a message's properties do
# not fit in one frame (128 KiB by default), taking every other publish on it down too. Our headers
# are ids, counters and a bounded error text; anything near this limit is a bug or an attack.
MAX_HEADERS_BYTES = 16 * 1024


class HeadersTooLarge(PermanentError):
    """A message's headers would not fit the broker's frame; refused before anything is sent."""


def check_headers(headers: dict[str, Any]) -> None:
    size = sum(len(str(key)) + len(str(value).encode()) + 16 for key, value in headers.items())
    if size > MAX_HEADERS_BYTES:
        raise HeadersTooLarge(f"message headers of about {size} bytes exceed {MAX_HEADERS_BYTES}")


Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]


class ChatSerializer:
    """Runs the work of one key strictly after the previous work of that key, in arrival order."""

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}

    def claim(self, key: str) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        # Must be called synchronously on arrival: arrival order is the order of claims.
        previous = self._tails.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = mine
        return previous, mine

    def release(self, key: str, mine: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)
        if self._tails.get(key) is mine:
            del self._tails[key]


class StageConsumer:
    """Consumes partition queues of a stage through one handler.

    Which partitions is decided from outside (`add_partition` / `remove_partition`, driven by the
    partition leases): a partition is handed back only after its work in progress has finished, so
    the next owner starts where this one stopped, in order.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        stage: Stage,
        handler: Handler,
        *,
        prefetch: int,
        policy: RetryPolicy,
        name: str,
    ) -> None:
        self._connection = connection
        self._stage = stage
        self._handler = handler
        self._prefetch = prefetch
        self._policy = policy
        self._name = name
        self._serializer = ChatSerializer()
        self._tasks: dict[int, set[asyncio.Task[None]]] = {}
        self._consumers: dict[int, tuple[AbstractQueue, str]] = {}
        self._draining: dict[int, asyncio.Event] = {}
        self._channel: AbstractChannel | None = None
        self._publish_channel: AbstractChannel | None = None
        self._settler: Settler | None = None
        self._stopping = asyncio.Event()
        self.stats = ConsumerStats()

    @property
    def stage(self) -> Stage:
        return self._stage

    @property
    def partitions(self) -> set[int]:
        """The partitions this consumer currently receives from."""
        return set(self._consumers)

    async def start(self, partitions: Iterable[int] = ()) -> None:
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._settler = Settler(self._publish_channel, self._stage, self.stats)
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        for partition in partitions:
            await self.add_partition(partition)

    async def add_partition(self, partition: int) -> None:
        if partition in self._consumers or self._stopping.is_set():
            return
        assert self._channel is not None, "start() first"
        self._draining[partition] = asyncio.Event()
        self._tasks.setdefault(partition, set())
        # ensure=True (a passive declare): the robust channel only restores, after a reconnect, the
        # consumers of queues it saw declared; an unchecked queue object would be forgotten.
        queue = await self._channel.get_queue(self._stage.partition_queue(partition), ensure=True)
        tag = await queue.consume(functools.partial(self._on_message, partition))
        self._consumers[partition] = (queue, tag)
        log.info("%s took partition %d", self._name, partition)

    async def remove_partition(self, partition: int, timeout_s: float) -> None:
        """Stop receiving from a partition and let its work in progress finish (or hand it back)."""
        consumer = self._consumers.pop(partition, None)
        if consumer is None:
            return
        self._draining[partition].set()
        queue, tag = consumer
        try:
            await queue.cancel(tag)
        except Exception:  # the channel may already be gone; its messages are requeued then
            log.debug("cancel failed", exc_info=True)
        await self._finish(self._tasks.get(partition, set()), timeout_s)
        log.info("%s handed back partition %d", self._name, partition)

    async def _on_message(self, partition: int, message: AbstractIncomingMessage) -> None:
        if self._leaving(partition):
            # Stopping or handing the partition over: give it back untouched, in its place.
            await self._settle(message, GIVE_BACK)
            return
        key = (message.headers or {}).get(CHAT_KEY_HEADER)
        chat = key if isinstance(key, str) else f"message:{message.delivery_tag}"
        previous, mine = self._serializer.claim(chat)
        task = asyncio.current_task()
        tasks = self._tasks[partition]
        if task is not None:
            tasks.add(task)
        self.stats.in_flight += 1
        try:
            if previous is not None:
                # Shielded: cancelling this waiter must not cancel (and so release early) the
                # future of the work before it, which would let the next message overtake it.
                await asyncio.shield(previous)
            if not telemetry.enabled():
                await self._process(message, partition)
                return
            # The trace the publisher started (the webhook's, for a customer message) goes on here.
            with telemetry.span(
                "omnibot.amqp",
                f"{stage_label(self._stage.name)} process",
                kind=SpanKind.CONSUMER,
                parent_headers=message.headers or {},
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": stage_label(self._stage.name),
                    "messaging.destination.partition.id": str(partition),
                    "omnibot.attempt": _attempt_of(message),
                },
            ):
                await self._process(message, partition)
        except asyncio.CancelledError:
            # Cut off by a stop that ran out of time: give the message back for someone else.
            with contextlib.suppress(Exception):
                await self._settle(message, GIVE_BACK)
            raise
        finally:
            self.stats.in_flight -= 1
            self._serializer.release(chat, mine)
            if task is not None:
                tasks.discard(task)

    async def _process(self, message: AbstractIncomingMessage, partition: int) -> None:
        attempt = _attempt_of(message)
        deliveries = delivery_count_of(message)
        if deliveries >= DELIVERY_LIMIT // 2:
            # Given back this often without an outcome: its consumers died (or handed it over)
            # each time. The broker dead-letters it past DELIVERY_LIMIT; say so before that.
            log.warning(
                "message %s delivered %d times before (the broker dead-letters it after %d)",
                message.message_id,
                deliveries,
                DELIVERY_LIMIT,
            )
        deferrals = _int_header(message, DEFERRALS_HEADER, 0)
        while True:
            with bind(message_id=message.message_id, attempt=attempt, consumer=self._name):
                error: Exception | None = None
                try:
                    await self._handler(message)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every failure has a verdict
                    error = exc
                    if not isinstance(exc, (TransientError, PermanentError, Deferred)):
                        # The traceback, but the message bounded: libraries put whole payloads in them.
                        trace = "".join(traceback.format_tb(exc.__traceback__))
                        log.error(
                            "handler failed unexpectedly: %s: %s\n%s", type(exc).__name__, brief(exc), trace
                        )
                verdict = decide(error, attempt=attempt, deferrals=deferrals, policy=self._policy)
                if isinstance(verdict, Retry) and not verdict.deferred and error is not None:
                    self.stats.retried += 1
                    log.warning(
                        "attempt %d failed (%s); retrying in %.1fs", attempt, brief(error), verdict.delay_s
                    )
                if isinstance(verdict, Retry) and verdict.in_place:
                    if self._leaving(partition):
                        await self._settle(message, GIVE_BACK)
                        return
                    await self._sleep_unless_stopping(verdict.delay_s, partition)
                    attempt += 1
                    continue
                await self._settle(message, verdict)
                return

    def _leaving(self, partition: int) -> bool:
        return self._stopping.is_set() or self._draining[partition].is_set()

    async def _settle(self, message: AbstractIncomingMessage, verdict: Verdict) -> None:
        assert self._settler is not None, "start() first"
        await self._settler.settle(message, verdict)

    async def _sleep_unless_stopping(self, delay: float, partition: int) -> None:
        waits = [
            asyncio.create_task(self._stopping.wait()),
            asyncio.create_task(self._draining[partition].wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def stop(self, timeout_s: float) -> None:
        """Stop taking work, let in-flight work finish up to the timeout, cancel the rest."""
        self._stopping.set()
        for partition in list(self._consumers):
            # The balancer may be handing this very partition over at the same moment.
            consumer = self._consumers.pop(partition, None)
            if consumer is None:
                continue
            queue, tag = consumer
            try:
                await queue.cancel(tag)
            except Exception:  # the channel may already be gone
                log.debug("cancel failed", exc_info=True)
        await self._finish({t for tasks in self._tasks.values() for t in tasks}, timeout_s)
        for channel in (self._channel, self._publish_channel):
            if channel is not None and not channel.is_closed:
                await channel.close()

    @staticmethod
    async def _finish(tasks: set[asyncio.Task[None]], timeout_s: float) -> None:
        pending = set(tasks)
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=timeout_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=2)


def _int_header(message: AbstractIncomingMessage, name: str, default: int) -> int:
    value = (message.headers or {}).get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _attempt_of(message: AbstractIncomingMessage) -> int:
    return max(1, _int_header(message, ATTEMPT_HEADER, 1))


def attempt_of(message: AbstractIncomingMessage) -> int:
    """The attempt number of a delivery (1 for the first), for handlers that must know it."""
    return _attempt_of(message)


def delivery_count_of(message: AbstractIncomingMessage) -> int:
    """How often the queue handed this message out before (quorum queues say it in
    `x-delivery-count`, from the first redelivery on; 0 on a first delivery)."""
    return _int_header(message, DELIVERY_COUNT_HEADER, 0)


def was_ambiguous(message: AbstractIncomingMessage) -> bool:
    """True if this message may already have taken effect: redelivered (the flag, or a quorum
    queue's delivery count), or an unclear failure before."""
    return (
        bool(message.redelivered)
        or delivery_count_of(message) > 0
        or (message.headers or {}).get(AMBIGUOUS_HEADER) is True
    )
