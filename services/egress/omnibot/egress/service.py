"""Composition root of egress: consumes chat.outbound and performs each action in Omnidesk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec
from aio_pika.abc import AbstractIncomingMessage
from pymongo.errors import PyMongoError

from omnibot.egress.deliver import Deliverer
from omnibot.egress.download import FileDownloader
from omnibot.shared import amqp, telemetry
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import MongoChannelStore
from omnibot.shared.deadletters import REDRIVE_HEADER
from omnibot.shared.deliveries import DeliveryStore, MongoDeliveryStore
from omnibot.shared.errors import PermanentError, TransientError
from omnibot.shared.messages import OutboundAction, outbound_decoder
from omnibot.shared.net.policy import NetworkPolicy
from omnibot.shared.settings import Settings
from omnibot.shared.settle import RetryPolicy
from omnibot.shared.topology import Topology
from omnibot.shared.worker import omnidesk_client, open_broker, open_database, work_until_stopped

log = logging.getLogger(__name__)

# Delayed: a chat waiting out a rate limit must not hold a worker; the per-chat cursor keeps its
# actions in order regardless. With the backoff capped at 120 s (full jitter), about seven minutes
# of retries on average before a dead letter, rarely under four: an Omnidesk outage of a few
# minutes loses nothing and needs no re-drive.
# The one budget of the stage: the consumer gives up by it, and the deliverer asks it whether an
# attempt is the last (to move the chat's cursor past an action that goes to the dead letters).
RETRY_POLICY = RetryPolicy(mode="delayed", max_attempts=14, max_backoff_s=120.0)


def outbound_handler(deliverer: Deliverer) -> amqp.Handler:
    async def handle(message: AbstractIncomingMessage) -> None:
        try:
            action = outbound_decoder.decode(message.body)
        except msgspec.DecodeError as exc:
            raise PermanentError(f"undecodable outbound action: {exc}") from None
        try:
            await deliverer.deliver(
                action,
                attempt=amqp.attempt_of(message),
                maybe_done=amqp.was_ambiguous(message),
                force=(message.headers or {}).get(REDRIVE_HEADER) is True,
            )
        except PyMongoError as exc:
            # Ambiguous: it may have failed after the action was performed (the cursor write),
            # so the retry reads the case back before posting again.
            raise TransientError(f"database unavailable: {type(exc).__name__}", ambiguous=True) from exc

    return handle


async def serve_egress(
    settings: Settings,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    deliveries: DeliveryStore | None = None,
    on_delivered: Callable[[OutboundAction], Awaitable[None]] | None = None,
) -> None:
    """Run until `stop` is set. `deliveries` replaces the MongoDB cursor store and `on_delivered`
    hears of each action performed (both for benchmarks)."""
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions, settings.amqp_queue_type)
    async with contextlib.AsyncExitStack() as stack:
        db, box = await open_database(stack, settings)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200, limit_per_host=50),
            trace_configs=telemetry.client_trace_configs(),
        )
        stack.push_async_callback(session.close)
        files = FileDownloader(NetworkPolicy.from_setting(settings.external_request_allow_networks))
        await files.start()
        stack.push_async_callback(files.close)
        deliverer = Deliverer(
            client=omnidesk_client(session, settings, db),
            channels=ChannelDirectory(MongoChannelStore(db).get),
            deliveries=deliveries or MongoDeliveryStore(db),
            secrets=box,
            files=files,
            policy=RETRY_POLICY,
            on_done=on_delivered,
        )
        connection = await open_broker(stack, settings, topology, name="omnibot-egress")
        await work_until_stopped(
            connection,
            topology.outbound,
            outbound_handler(deliverer),
            name="egress",
            prefetch=settings.egress_prefetch,
            policy=RETRY_POLICY,
            db=db,
            settings=settings,
            stop=stop,
            ready=ready,
        )
