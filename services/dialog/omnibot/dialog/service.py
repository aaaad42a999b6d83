"""Composition root of dialog: consumes chat.inbound, runs turns, publishes to chat.outbound."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
import msgspec
from aio_pika.abc import AbstractIncomingMessage
from pymongo.errors import PyMongoError

from omnibot.dialog.catalog import AgentCatalog
from omnibot.dialog.fetch import ExternalFetcher, fetch_with
from omnibot.dialog.inbox import OmnideskInbox
from omnibot.dialog.llm import LLMCaller, LLMProvider
from omnibot.dialog.timers import TimerScheduler
from omnibot.dialog.turns import TurnRunner
from omnibot.shared import amqp, telemetry
from omnibot.shared.agents import MongoAgentStore
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import MongoChannelStore
from omnibot.shared.chats import ChatStore, MongoChatStore
from omnibot.shared.deliveries import MongoDeliveryStore
from omnibot.shared.errors import PermanentError, TransientError
from omnibot.shared.messages import ChatTimer, OutboundAction, chat_key, dialog_decoder, encoder
from omnibot.shared.net.policy import NetworkPolicy
from omnibot.shared.settings import Settings
from omnibot.shared.settle import RetryPolicy
from omnibot.shared.topology import Topology
from omnibot.shared.worker import omnidesk_client, open_broker, open_database, work_until_stopped

log = logging.getLogger(__name__)


# In place: a message that cannot be processed yet keeps its place in its chat, so a later
# message of that chat never overtakes it.
RETRY_POLICY = RetryPolicy(mode="in_place", max_attempts=1000, max_backoff_s=30.0)


def inbound_handler(runner: TurnRunner) -> amqp.Handler:
    async def handle(message: AbstractIncomingMessage) -> None:
        try:
            inbound = dialog_decoder.decode(message.body)
        except msgspec.DecodeError as exc:
            raise PermanentError(f"undecodable inbound message: {exc}") from None
        try:
            if isinstance(inbound, ChatTimer):
                await runner.handle_timer(inbound)
            else:
                await runner.handle(inbound)
        except PyMongoError as exc:
            raise TransientError(f"database unavailable: {type(exc).__name__}") from exc

    return handle


async def serve_dialog(
    settings: Settings,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    chats: ChatStore | None = None,
) -> None:
    """Run until `stop` is set. `chats` replaces the MongoDB chat store (benchmarks isolate it)."""
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions, settings.amqp_queue_type)
    async with contextlib.AsyncExitStack() as stack:
        db, box = await open_database(stack, settings)
        connection = await open_broker(stack, settings, topology, name="omnibot-dialog")
        publisher = await amqp.Publisher.open(connection, topology.outbound)

        async def publish(action: OutboundAction) -> None:
            await publisher.publish(
                chat_key(action.channel_id, action.chat_id),
                encoder.encode(action),
                message_id=action.action_id,
            )

        fetcher = ExternalFetcher(NetworkPolicy.from_setting(settings.external_request_allow_networks))
        await fetcher.start()
        stack.push_async_callback(fetcher.close)
        session = aiohttp.ClientSession(trace_configs=telemetry.client_trace_configs())
        stack.push_async_callback(session.close)
        omnidesk = omnidesk_client(session, settings, db)
        llm = LLMCaller(
            fetcher, LLMProvider(settings.llm_base_url, settings.llm_api_key, settings.llm_model), box
        )
        timer_channel = await connection.channel(publisher_confirms=True)
        stack.push_async_callback(timer_channel.close)
        timers = TimerScheduler(timer_channel, topology.inbound)
        runner = TurnRunner(
            chats=chats or MongoChatStore(db),
            agents=AgentCatalog(MongoAgentStore(db)),
            channels=ChannelDirectory(MongoChannelStore(db).get),
            secrets=box,
            publish=publish,
            fetch=fetch_with(fetcher),
            inbox=OmnideskInbox(omnidesk, box),
            deliveries=MongoDeliveryStore(db),
            inbound_mode=settings.inbound_mode,
            dedup_window_s=settings.dedup_window_s,
            return_to_bot=settings.return_to_bot,
            complete=llm.complete,
            schedule_timer=timers.schedule,
        )
        await work_until_stopped(
            connection,
            topology.inbound,
            inbound_handler(runner),
            name="dialog",
            prefetch=settings.dialog_prefetch,
            policy=RETRY_POLICY,
            db=db,
            settings=settings,
            stop=stop,
            ready=ready,
        )
