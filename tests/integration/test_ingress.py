"""ingress against the real broker: what it accepts is queued, what it refuses is not."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiohttp
import pytest

from omnibot.ingress.service import serve_ingress
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.channels import management
from omnibot.testkit.services import ServiceTask, monitoring_listener
from tests.harness import queued, setup_channel

SEED = {
    "event": "new_message",
    "message": {"kind": "text", "text": "Добрый день"},
    "visitor": {"id": "7", "fields": {"email": "a@b.ru", "login": "7", "name": "Anna", "phone": ""}},
    "chat_id": "2000",
}


@pytest.fixture
async def ingress(
    settings: Settings,
    broker: aio_pika.abc.AbstractRobustConnection,
    db: object,
    sandbox: tuple[SandboxState, str],
) -> AsyncIterator[dict[str, Any]]:
    service = ServiceTask("ingress", serve_ingress, settings)
    await service.wait_ready()
    channel = await setup_channel(settings, *sandbox)
    yield channel
    await service.stop()


async def post(url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as response:
        return response.status, await response.json()


async def test_accepted_webhook_is_queued_once(
    settings: Settings, broker: Any, ingress: dict[str, Any]
) -> None:
    status, body = await post(ingress["webhook_url"], json=SEED)
    assert status == 200
    assert body["status"] == "accepted"
    assert await queued(settings, broker) == 1


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_body"),
        ({"data": b"[1]", "headers": {"Content-Type": "application/json"}}, 400, "invalid_body"),
        (
            {"data": b"chat_id=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            415,
            "unsupported_media_type",
        ),
        ({"json": {**SEED, "chat_id": ""}}, 400, "invalid_body"),
        ({"json": {k: v for k, v in SEED.items() if k != "chat_id"}}, 400, "invalid_body"),
        ({"json": {**SEED, "message": "text"}}, 400, "invalid_body"),
        ({"json": {**SEED, "visitor": ["x"]}}, 400, "invalid_body"),
        (
            {
                "data": io.BytesIO(json.dumps({**SEED, "message": {"text": "x" * (1 << 20)}}).encode()),
                "headers": {"Content-Type": "application/json"},
            },
            413,
            "too_large",
        ),
    ],
)
async def test_bad_input_is_refused_and_publishes_nothing(
    settings: Settings, broker: Any, ingress: dict[str, Any], kwargs: dict[str, Any], status: int, code: str
) -> None:
    got_status, body = await post(ingress["webhook_url"], **kwargs)
    assert (got_status, body["error"]) == (status, code)
    assert body["message"]
    assert await queued(settings, broker) == 0


async def test_unknown_channel_and_wrong_secret_look_the_same(
    settings: Settings, broker: Any, ingress: dict[str, Any]
) -> None:
    url = ingress["webhook_url"]
    wrong_secret = url.rsplit("/", 1)[0] + "/not-the-secret"
    unknown_channel = url.replace(f"/omnidesk/{ingress['id']}/", "/omnidesk/999/")
    answers = [await post(u, json=SEED) for u in (wrong_secret, unknown_channel)]
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    assert await queued(settings, broker) == 0


async def test_inactive_channel_accepts_nothing(
    settings: Settings, broker: Any, ingress: dict[str, Any]
) -> None:
    ops, client = await management(settings)
    try:
        await ops.channels.deactivate_channel(ingress["id"])
    finally:
        await client.close()
    status, body = await post(ingress["webhook_url"], json=SEED)
    assert (status, body["error"]) == (409, "channel_inactive")
    assert await queued(settings, broker) == 0


async def test_health_and_readiness_on_the_monitoring_listener(
    settings: Settings, ingress: dict[str, Any]
) -> None:
    async with monitoring_listener(settings) as port, aiohttp.ClientSession() as session:
        for path, body in (
            ("/healthz", {"status": "alive"}),
            ("/readyz", {"status": "ready", "services": {"ingress": True}}),
        ):
            async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                assert (response.status, await response.json()) == (200, body)


async def test_webhook_port_serves_no_health_readiness_or_metrics(
    settings: Settings, ingress: dict[str, Any]
) -> None:
    # That port faces the internet: these paths are unknown there, like any other.
    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/readyz", "/metrics"):
            async with session.get(settings.public_base_url + path) as response:
                assert response.status == 404, path
