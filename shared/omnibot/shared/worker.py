"""The life of a queue worker (dialog, egress): open its database and broker, consume its share of
a stage's partitions until told to stop, then stop taking work, finish what is in progress, hand
the partitions back."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from aio_pika.abc import AbstractRobustConnection
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.shared import amqp
from omnibot.shared.account_errors import AccountErrorLog
from omnibot.shared.amqp import Handler, StageConsumer
from omnibot.shared.channels import verify_secret_key
from omnibot.shared.crypto import SecretBox, dev_secret_key
from omnibot.shared.depths import sample_depths
from omnibot.shared.health import heartbeat
from omnibot.shared.mongo import Document, ensure_indexes, open_client
from omnibot.shared.omnidesk import OmnideskClient
from omnibot.shared.partitions import PartitionBalancer, PartitionLeases
from omnibot.shared.probes import BOARD
from omnibot.shared.ratelimit import AccountThrottle
from omnibot.shared.replicas import announced
from omnibot.shared.settings import Settings
from omnibot.shared.settle import RetryPolicy
from omnibot.shared.topology import Stage, Topology, declare_topology

log = logging.getLogger(__name__)


async def open_database(
    stack: contextlib.AsyncExitStack, settings: Settings
) -> tuple[AsyncDatabase[Document], SecretBox]:
    """The database (indexes ensured) and the secret box; a wrong SECRET_KEY stops the start, clearly."""
    mongo = open_client(settings)
    stack.push_async_callback(mongo.close)
    db = mongo[settings.mongodb_db]
    await ensure_indexes(db)
    box = SecretBox(settings.secret_key or dev_secret_key(settings.data_dir))
    await verify_secret_key(db, box)
    return db, box


async def open_broker(
    stack: contextlib.AsyncExitStack, settings: Settings, topology: Topology, *, name: str
) -> AbstractRobustConnection:
    """A robust connection to the broker, with the topology declared (idempotent)."""
    connection = await amqp.connect(settings.amqp_url, name=name)
    stack.push_async_callback(connection.close)
    async with connection.channel() as channel:
        await declare_topology(channel, topology)
    return connection


def omnidesk_client(
    session: aiohttp.ClientSession, settings: Settings, db: AsyncDatabase[Document]
) -> OmnideskClient:
    """A worker's Omnidesk client: its own per-account throttle, the settings' timeout, and every
    failure recorded per account (the admin status shows them)."""
    return OmnideskClient(
        session, AccountThrottle(), timeout_s=settings.omnidesk_timeout_s, on_error=AccountErrorLog(db).record
    )


async def work_until_stopped(
    connection: AbstractRobustConnection,
    stage: Stage,
    handler: Handler,
    *,
    name: str,
    prefetch: int,
    policy: RetryPolicy,
    db: AsyncDatabase[Document],
    settings: Settings,
    stop: asyncio.Event,
    ready: asyncio.Event | None,
) -> None:
    """Consume `stage` with `handler` (the replica's share of its partitions) until `stop` is set."""
    consumer = StageConsumer(connection, stage, handler, prefetch=prefetch, policy=policy, name=name)
    await consumer.start()
    # Partitions are shared out among the replicas through leases (shared/partitions.py).
    balancer = PartitionBalancer(
        PartitionLeases(db, stage.name, settings.chat_partitions),
        consumer,
        drain_timeout_s=settings.shutdown_timeout_s,
    )
    await balancer.rebalance()
    balancing = asyncio.create_task(balancer.run(stop))
    beat = asyncio.create_task(heartbeat(name, lambda: not connection.is_closed))
    # The queue gauges (omnibot_queue_messages, omnibot_dead_letters) of this stage.
    depths = asyncio.create_task(sample_depths(connection, stage, stop))
    log.info("%s consuming partitions %s of %d", name, sorted(consumer.partitions), settings.chat_partitions)
    async with announced(db, name):
        # Ready while the broker connection is open: the monitoring listener's /readyz.
        with BOARD.registered(name, lambda: not connection.is_closed):
            if ready is not None:
                ready.set()
            await stop.wait()
    log.info("%s stopping: finishing the work in progress (up to %.0fs)", name, settings.shutdown_timeout_s)
    await consumer.stop(settings.shutdown_timeout_s)
    await balancing
    await balancer.leave()
    beat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await depths
    s = consumer.stats
    log.info("%s stopped: %d done, %d retried, %d dead-lettered", name, s.acked, s.retried, s.dead_lettered)
