"""The whole pipeline, in this process: ingress, dialog, egress, the sandbox Omnidesk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import running_sandbox
from omnibot.testkit.services import ServiceTask, running_services
from tests.harness import add_rules, setup_channel


@dataclass
class Pipeline:
    settings: Settings
    sandbox: SandboxState
    sandbox_url: str
    channel: dict[str, Any]
    services: dict[str, ServiceTask]

    @property
    def webhook_url(self) -> str:
        return str(self.channel["webhook_url"])


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[tuple[SandboxState, str]]:
    async with running_sandbox(free_port()) as running:
        yield running


@pytest.fixture
async def pipeline(
    settings: Settings, broker: object, db: object, sandbox: tuple[SandboxState, str]
) -> AsyncIterator[Pipeline]:
    state, url = sandbox
    async with running_services(settings) as services:
        channel = await setup_channel(settings, state, url)
        await add_rules(url, channel["webhook_url"])
        yield Pipeline(settings, state, url, channel, services)
