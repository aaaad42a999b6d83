"""AMQP plumbing: confirmed publishing and the one consumer wrapper that turns outcomes into verbs.

Handlers never ack. They return (success → ack) or raise:
- `TransientError` → try again later: in place (the message stays unacked and holds its chat, which
  keeps the chat's order) or through a delay tier (frees the slot; the handler must tolerate
  reordering, as egress does with its per-chat sequence numbers);
- `PermanentError`, or a body that cannot be decoded → dead letter, with the reason in headers;
- anything else → treated as transient, dead-lettered after `max_attempts`.
Messages of one chat (`chat_key` header) are handled one at a time, in delivery order; different
chats run concurrently up to the prefetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from omnibot.shared import amqp_connection
from omnibot.shared.backoff import backoff_delay
from omnibot.shared.errors import Deferred, PermanentError, TransientError
from omnibot.shared.logs import bind
from omnibot.shared.masking import mask_text
from omnibot.shared.topology import DELIVERY_COUNT_HEADER, DELIVERY_LIMIT, Stage, retry_tier_ms

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-attempt"
DEFERRALS_HEADER = "x-deferrals"
AMBIGUOUS_HEADER = "x-ambiguous"
CHAT_KEY_HEADER = "chat_key"


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
        all_headers = {CHAT_KEY_HEADER: chat_key, **(headers or {})}
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
                message, routing_key=self._stage.route(chat_key), mandatory=True, timeout=self._timeout_s
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


@dataclass
class ConsumerStats:
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    in_flight: int = 0


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
        retry_mode: Literal["in_place", "delayed"],
        max_attempts: int = 10,
        max_unexpected_attempts: int = 5,
        max_backoff_s: float = 60.0,
        name: str,
    ) -> None:
        self._connection = connection
        self._stage = stage
        self._handler = handler
        self._prefetch = prefetch
        self._retry_mode = retry_mode
        self._max_attempts = max_attempts
        self._max_unexpected_attempts = max_unexpected_attempts
        self._max_backoff_s = max_backoff_s
        self._name = name
        self._serializer = ChatSerializer()
        self._tasks: dict[int, set[asyncio.Task[None]]] = {}
        self._consumers: dict[int, tuple[AbstractQueue, str]] = {}
        self._draining: dict[int, asyncio.Event] = {}
        self._channel: AbstractChannel | None = None
        self._publish_channel: AbstractChannel | None = None
        self._stopping = asyncio.Event()
        self.stats = ConsumerStats()

    @property
    def partitions(self) -> set[int]:
        """The partitions this consumer currently receives from."""
        return set(self._consumers)

    async def start(self, partitions: Iterable[int] = ()) -> None:
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
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
        if self._stopping.is_set() or self._draining[partition].is_set():
            # Stopping or handing the partition over: give it back untouched, in its place.
            await message.nack(requeue=True)
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
            await self._process(message, partition)
        except asyncio.CancelledError:
            # Cut off by a stop that ran out of time: give the message back for someone else.
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
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
        while True:
            with bind(message_id=message.message_id, attempt=attempt, consumer=self._name):
                try:
                    await self._handler(message)
                except PermanentError as exc:
                    await self._dead_letter(message, brief(exc), attempt)
                    return
                except Deferred as exc:
                    deferrals = _int_header(message, DEFERRALS_HEADER, 0)
                    # Short: a deferral costs one cursor read, and each waiting action of a chat
                    # adds its wait to the chat's catch-up once the earlier action is through.
                    delay = min(exc.delay_s * (2 ** min(deferrals, 3)), 1.0)
                    await self._schedule_retry(message, {DEFERRALS_HEADER: deferrals + 1}, delay)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every other failure is retried, then parked
                    transient = isinstance(exc, TransientError)
                    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
                    if not transient:
                        # The traceback, but the message bounded: libraries put whole payloads in them.
                        trace = "".join(traceback.format_tb(exc.__traceback__))
                        log.error(
                            "handler failed unexpectedly: %s: %s\n%s", type(exc).__name__, brief(exc), trace
                        )
                    limit = (
                        self._max_attempts
                        if transient
                        else min(self._max_attempts, self._max_unexpected_attempts)
                    )
                    if attempt >= limit:
                        await self._dead_letter(
                            message, f"gave up after {attempt} attempts: {brief(exc)}", attempt
                        )
                        return
                    delay = backoff_delay(attempt, cap_s=self._max_backoff_s, retry_after=retry_after)
                    self.stats.retried += 1
                    log.warning("attempt %d failed (%s); retrying in %.1fs", attempt, brief(exc), delay)
                    if self._retry_mode == "delayed":
                        headers: dict[str, Any] = {ATTEMPT_HEADER: attempt + 1}
                        if isinstance(exc, TransientError) and exc.ambiguous:
                            headers[AMBIGUOUS_HEADER] = True
                        await self._schedule_retry(message, headers, delay)
                        return
                    if self._stopping.is_set() or self._draining[partition].is_set():
                        await message.nack(requeue=True)
                        return
                    await self._sleep_unless_stopping(delay, partition)
                    attempt += 1
                    continue
                await message.ack()
                self.stats.acked += 1
                return

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

    async def _republish(
        self, exchange_name: str, message: AbstractIncomingMessage, headers: dict[str, Any]
    ) -> None:
        assert self._publish_channel is not None
        exchange = await self._publish_channel.get_exchange(exchange_name, ensure=False)
        copy = persistent_copy(message, {**(message.headers or {}), **headers})
        await exchange.publish(copy, routing_key=message.routing_key or "", timeout=10)

    async def _schedule_retry(
        self, message: AbstractIncomingMessage, headers: dict[str, Any], delay: float
    ) -> None:
        tier = retry_tier_ms(delay)
        try:
            await self._republish(self._stage.retry_exchange(tier), message, headers)
        except Exception:
            log.warning("could not schedule a retry; requeueing", exc_info=True)
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str, attempt: int) -> None:
        log.error("dead-lettering: %s", reason)
        headers = {
            "x-error": mask_text(reason)[:2000],  # dead letters are shown and exported
            ATTEMPT_HEADER: attempt,
            "x-dead-at": time.time(),
            "x-stage": self._stage.name,
        }
        try:
            await self._republish(self._stage.dead, message, headers)
        except Exception:
            log.warning("could not dead-letter; requeueing", exc_info=True)
            await message.nack(requeue=True)
            return
        await message.ack()
        self.stats.dead_lettered += 1

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
