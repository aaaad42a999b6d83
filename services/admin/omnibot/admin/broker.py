"""The RabbitMQ connection of management, opened on first use.

Only the dead-letter operations need the broker, so the admin API and the command line do not
connect at start: managing channels keeps working while RabbitMQ is down, and says so only when a
dead-letter operation is asked for.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractRobustConnection

from omnibot.shared import amqp
from omnibot.shared.errors import TransientError
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology, declare_topology


class BrokerLink:
    def __init__(self, settings: Settings, *, name: str) -> None:
        self._url = settings.amqp_url
        self._name = name
        self.topology = Topology.build(
            settings.amqp_namespace, settings.chat_partitions, settings.amqp_queue_type
        )
        self._connection: AbstractRobustConnection | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> AbstractRobustConnection:
        async with self._lock:
            if self._connection is None:
                try:
                    connection = await amqp.connect(self._url, name=self._name)
                except Exception as exc:  # noqa: BLE001 - aio-pika raises OSError, TimeoutError, AMQP errors
                    # Not the URL: it holds the broker's credentials.
                    raise TransientError(
                        f"RabbitMQ did not answer at AMQP_URL ({type(exc).__name__})"
                    ) from None
                try:
                    async with connection.channel() as channel:
                        await declare_topology(channel, self.topology)
                except BaseException:
                    await connection.close()
                    raise
                self._connection = connection
            return self._connection

    async def close(self) -> None:
        async with self._lock:
            if self._connection is not None:
                await self._connection.close()
                self._connection = None
