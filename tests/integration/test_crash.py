"""A worker killed with SIGKILL in the middle of its work loses nothing and posts nothing twice.

The workers run as real OS processes (`omnibot run dialog|egress`) so that the kill is a real
kill: no cleanup, no ack, the broker redelivers what was in flight to the next process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.sandbox.faults import FaultResponse
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.channels import management
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ServiceProcess
from omnibot.testkit.services import ServiceTask
from tests.harness import add_rules, bot_texts, customer_says, setup_channel, wait_bot_messages

MENU = "Чем помочь?\n1. Статус заказа\n2. Оператор"


@pytest.fixture
async def ingress(settings: Settings, broker: object, db: object) -> AsyncIterator[None]:
    service = ServiceTask("ingress", serve_ingress, settings)
    await service.wait_ready()
    yield
    await service.stop()


async def test_egress_killed_after_omnidesk_accepted_posts_each_reply_once(
    settings: Settings, ingress: None, sandbox: tuple[SandboxState, str], tmp_path: Path
) -> None:
    state, url = sandbox
    dialog = ServiceTask("dialog", serve_dialog, settings)
    await dialog.wait_ready()
    channel = await setup_channel(settings, state, url)
    await add_rules(url, channel["webhook_url"])
    # Omnidesk stores the greeting, but its answer never comes back in time.
    state.faults.add(
        method="POST",
        path=r"/api/cases/\d+/messages\.json",
        responses=[FaultResponse(delay_s=60, after_accept=True)],
    )
    egress = ServiceProcess("egress", settings, tmp_path)
    try:
        await egress.wait_log("egress consuming")
        case = (await customer_says(url, "Добрый день"))["case_id"]
        await wait_bot_messages(state, case, 1)  # accepted by Omnidesk, unanswered: kill now
        egress.kill()
        egress = ServiceProcess("egress", settings, tmp_path)
        assert await wait_bot_messages(state, case, 2, timeout=20) == ["Здравствуйте, Anna!", MENU]
        await customer_says(url, "2", case_id=case)
        await wait_bot_messages(state, case, 3, timeout=20)
        assert bot_texts(state, case) == ["Здравствуйте, Anna!", MENU, "Всего доброго!"]
        assert "found in Omnidesk already" in egress.log_path.read_text()
    finally:
        egress.terminate()
        await dialog.stop()


class SlowLookup:
    """The agent's external service: holds the first request until the test lets it go."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.arrived.set()
        if self.calls == 1:
            await self.release.wait()
        return web.json_response({"status": "shipped"})


@pytest.fixture
async def lookup() -> AsyncIterator[tuple[SlowLookup, str]]:
    service = SlowLookup()
    app = web.Application()
    app.router.add_get("/status/{chat}", service.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield service, f"http://127.0.0.1:{port}"
    service.release.set()
    await runner.cleanup()


def slow_agent(lookup_url: str) -> dict[str, Any]:
    return {
        "format": "omnibot/agent@1",
        "name": "slow-lookup",
        "variables": {"lookup_url": lookup_url},
        "start": "hi",
        "slots": [
            {"id": "hi", "type": "text", "text": "Проверяю заказ…", "next": "call"},
            {
                "id": "call",
                "type": "external_request",
                "method": "GET",
                "url": "{{lookup_url}}/status/{{chat_id}}",
                "headers": {},
                "timeout_s": 30,
                "save": {"order_status": "status"},
                "next": "say",
                "on_error": "fail",
            },
            {"id": "say", "type": "end", "text": "Статус: {{order_status}}"},
            {"id": "fail", "type": "end", "text": "Не получилось"},
        ],
    }


async def test_dialog_killed_mid_turn_resumes_the_turn_without_repeating_replies(
    settings: Settings,
    ingress: None,
    sandbox: tuple[SandboxState, str],
    lookup: tuple[SlowLookup, str],
    tmp_path: Path,
) -> None:
    state, url = sandbox
    service, lookup_url = lookup
    egress = ServiceTask("egress", serve_egress, settings)
    await egress.wait_ready()
    ops, client = await management(settings)
    try:
        await ops.agents.import_agent(json.dumps(slow_agent(lookup_url)), publish=True)
    finally:
        await client.close()
    agent_file = tmp_path / "slow.json"
    agent_file.write_text(json.dumps(slow_agent(lookup_url)))
    channel = await setup_channel(settings, state, url, agent_file=str(agent_file))
    await add_rules(url, channel["webhook_url"])
    dialog = ServiceProcess("dialog", settings, tmp_path)
    try:
        await dialog.wait_log("dialog consuming")
        case = (await customer_says(url, "Где мой заказ?"))["case_id"]
        await asyncio.wait_for(service.arrived.wait(), 20)
        # The first half of the turn is committed and delivered; the request is in flight.
        assert await wait_bot_messages(state, case, 1) == ["Проверяю заказ…"]
        dialog.kill()
        service.release.set()
        dialog = ServiceProcess("dialog", settings, tmp_path)
        assert await wait_bot_messages(state, case, 2, timeout=20) == ["Проверяю заказ…", "Статус: shipped"]
        assert service.calls == 2  # the interrupted request was made again (at-least-once)
    finally:
        dialog.terminate()
        await egress.stop()
