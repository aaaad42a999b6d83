"""Composition root of ingress: opens the broker and the database, serves HTTP until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from omnibot.ingress.app import build_app
from omnibot.ingress.routes import readiness
from omnibot.shared import amqp
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import MongoChannelStore
from omnibot.shared.http import ConnectionLimits, serve_app
from omnibot.shared.mongo import open_client
from omnibot.shared.probes import BOARD
from omnibot.shared.replicas import announced
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology, declare_topology

log = logging.getLogger(__name__)


async def serve_ingress(
    settings: Settings, stop: asyncio.Event, *, ready: asyncio.Event | None = None
) -> None:
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions, settings.amqp_queue_type)
    async with contextlib.AsyncExitStack() as stack:
        connection = await amqp.connect(settings.amqp_url, name="omnibot-ingress")
        stack.push_async_callback(connection.close)
        async with connection.channel() as channel:
            await declare_topology(channel, topology)
        publisher = await amqp.Publisher.open(connection, topology.inbound)
        mongo = open_client(settings)
        stack.push_async_callback(mongo.close)
        channels = ChannelDirectory(MongoChannelStore(mongo[settings.mongodb_db]).get)
        app = build_app(
            publisher=publisher,
            channels=channels,
            max_body_bytes=settings.max_body_bytes,
            body_timeout_s=settings.ingress_body_timeout_s,
        )
        await serve_app(
            stack,
            app,
            settings.ingress_host,
            settings.ingress_port,
            shutdown_timeout_s=settings.shutdown_timeout_s,
            header_timeout_s=settings.ingress_header_timeout_s,
            limits=ConnectionLimits(
                per_address=settings.ingress_max_connections_per_address,
                total=settings.ingress_max_connections,
            ),
        )
        log.info("ingress listening on %s:%d", settings.ingress_host, settings.ingress_port)
        stack.enter_context(BOARD.registered("ingress", readiness(publisher)))
        await stack.enter_async_context(announced(mongo[settings.mongodb_db], "ingress"))
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("ingress stopping: no new webhooks; finishing the ones in progress")
