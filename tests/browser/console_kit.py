"""What the console's browser tests share: the admin service (and, when asked, the whole pipeline
and the Omnidesk sandbox) running in the test's loop, two accounts, and signing in.

Fixtures are imported by the test modules (`from tests.browser.console_kit import ...`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from playwright.async_api import Page, expect
from pymongo import AsyncMongoClient

from omnibot.admin.schemas import ChannelView
from omnibot.admin.service import serve_admin
from omnibot.admin.users import MongoUserStore
from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.channels import management
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import running_sandbox
from omnibot.testkit.services import ServiceTask
from tests.harness import FIXTURES

ADMIN = ("lead@example.com", "admin-password-1")
VIEWER = ("watcher@example.com", "viewer-password-1")


@dataclass
class Console:
    settings: Settings
    url: str
    services: dict[str, ServiceTask] = field(default_factory=dict)
    sandbox: SandboxState | None = None
    sandbox_url: str = ""

    def at(self, path: str) -> str:
        return self.url + path


async def _users(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    try:
        users = MongoUserStore(client[settings.mongodb_db])
        await users.create(ADMIN[0], "admin", ADMIN[1])
        await users.create(VIEWER[0], "viewer", VIEWER[1])
    finally:
        await client.close()


def _console_settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, admin_port=free_port(), admin_host="127.0.0.1")


@pytest.fixture
async def console(settings: Settings, db: object) -> AsyncIterator[Console]:
    """The admin service alone (no RabbitMQ needed until a dead-letter page is opened)."""
    settings = _console_settings(settings)
    await _users(settings)
    admin = ServiceTask("admin", serve_admin, settings)
    await admin.wait_ready()
    yield Console(settings, f"http://127.0.0.1:{settings.admin_port}", {"admin": admin})
    await admin.stop()


@pytest.fixture
async def stack(settings: Settings, db: object, broker: object) -> AsyncIterator[Console]:
    """Sandbox, ingress, dialog, egress and admin: the whole of `make run`, no channel yet."""
    settings = _console_settings(settings)
    await _users(settings)
    async with running_sandbox(free_port()) as (state, sandbox_url):
        services: dict[str, ServiceTask] = {}
        try:
            for name, serve in (
                ("ingress", serve_ingress),
                ("dialog", serve_dialog),
                ("egress", serve_egress),
                ("admin", serve_admin),
            ):
                services[name] = ServiceTask(name, serve, settings)
                await services[name].wait_ready()
            yield Console(settings, f"http://127.0.0.1:{settings.admin_port}", services, state, sandbox_url)
        finally:
            for service in reversed(list(services.values())):
                await service.stop()


async def sign_in(page: Page, console: Console, who: tuple[str, str] = ADMIN) -> None:
    await page.goto(console.at("/sign-in"))
    await page.get_by_label("E-mail").fill(who[0])
    await page.get_by_label("Password").fill(who[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("navigation", name="Main navigation")).to_be_visible()


async def import_agent(page: Page, console: Console, file: str, *, publish: bool) -> None:
    await page.goto(console.at("/agents"))
    await page.get_by_label("Agent file").set_input_files(str(FIXTURES / "agents" / file))
    if publish:
        await page.get_by_label("Publish").check()
    await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("status")).to_contain_text("Imported")


async def demo_channel(settings: Settings) -> ChannelView:
    """The demo agent, imported and published, and an inactive channel using it (no checks run)."""
    ops, client = await management(settings)
    try:
        await ops.agents.import_agent((FIXTURES / "agents" / "pipeline-demo.json").read_bytes(), publish=True)
        return await ops.channels.create_channel(
            domain="https://acme.omnidesk.ru",
            api_key="key-of-acme-1234",
            email="bot@acme.ru",
            agent="pipeline-demo",
        )
    finally:
        await client.close()


def webhook_secret(url: str) -> str:
    match = re.search(r"/webhooks/omnidesk/\d+/([^/?#]+)$", url)
    assert match, url
    return match.group(1)
