"""ingress when the broker cannot confirm: 503, and readiness (on the monitoring listener) says so."""

from __future__ import annotations

import aio_pika
import pytest
from aiohttp.test_utils import TestClient, TestServer

from omnibot.ingress.app import build_app
from omnibot.ingress.routes import readiness
from omnibot.shared.amqp import Publisher
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel
from omnibot.shared.crypto import fingerprint
from omnibot.shared.probes import ReadinessBoard, build_probe_app
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology, declare_topology

SECRET = "s" * 40


async def one_channel(channel_id: int) -> Channel | None:
    if channel_id != 1:
        return None
    return Channel(
        id=1,
        domain="https://x.omnidesk.ru",
        email="bot@x.ru",
        api_key_enc="",
        webhook_secret_enc="",
        webhook_secret_hash=fingerprint(SECRET),
        agent="a",
        active=True,
    )


@pytest.fixture
async def publisher(settings: Settings, broker: aio_pika.abc.AbstractRobustConnection) -> Publisher:
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions)
    async with broker.channel() as channel:
        await declare_topology(channel, topology)
    return await Publisher.open(broker, topology.inbound)


async def test_broker_failure_answers_503_and_not_ready(publisher: Publisher) -> None:
    app = build_app(publisher=publisher, channels=ChannelDirectory(one_channel), max_body_bytes=1 << 20)
    # Readiness is the monitoring listener's (METRICS_PORT), as `omnibot run ingress` serves it.
    board = ReadinessBoard()
    with board.registered("ingress", readiness(publisher)):
        async with (
            TestClient(TestServer(app)) as client,
            TestClient(TestServer(build_probe_app(board))) as probes,
        ):
            body = {"message": {"text": "hi"}, "chat_id": "5"}
            ok = await client.post(f"/webhooks/omnidesk/1/{SECRET}", json=body)
            assert ok.status == 200
            assert (await probes.get("/readyz")).status == 200
            await publisher.close()  # the broker channel is gone
            refused = await client.post(f"/webhooks/omnidesk/1/{SECRET}", json=body)
            assert refused.status == 503
            assert (await refused.json())["error"] == "broker_unavailable"
            not_ready = await probes.get("/readyz")
            assert not_ready.status == 503
            assert await not_ready.json() == {"status": "not_ready", "services": {"ingress": False}}
            assert (await probes.get("/healthz")).status == 200
