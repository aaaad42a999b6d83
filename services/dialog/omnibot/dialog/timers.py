"""Chats' inactivity timers on the broker: durable, so they survive restarts and replicas.

A timer (`ChatTimer`) is published into one of the inbound stage's delay tiers with the chat's
routing key; when its TTL runs out the broker dead-letters it back into the chat's partition
queue, where the dialog consumer takes it like any message of that chat (in order, one replica).
A timer that arrives early is sent on for the rest of its wait (`TurnRunner.handle_timer`).
"""

from __future__ import annotations

import time

import aio_pika
from aio_pika.abc import AbstractChannel

from omnibot.shared.amqp import CHAT_KEY_HEADER
from omnibot.shared.errors import TransientError
from omnibot.shared.messages import ChatTimer, chat_key, encoder
from omnibot.shared.topology import Stage, timer_tier_ms


class TimerScheduler:
    def __init__(self, channel: AbstractChannel, stage: Stage) -> None:
        self._channel = channel  # with publisher confirms
        self._stage = stage

    async def schedule(self, timer: ChatTimer) -> None:
        key = chat_key(timer.channel_id, timer.chat_id)
        tier = timer_tier_ms(timer.due_at - time.time())
        exchange = await self._channel.get_exchange(self._stage.retry_exchange(tier), ensure=False)
        message = aio_pika.Message(
            encoder.encode(timer),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=f"timer:{key}:{timer.activity!r}",
            headers={CHAT_KEY_HEADER: key},
        )
        try:
            await exchange.publish(message, routing_key=self._stage.route(key), timeout=10)
        except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise TransientError(f"broker did not confirm the timer: {type(exc).__name__}") from exc
