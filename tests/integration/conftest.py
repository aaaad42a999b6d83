"""The whole pipeline, in this process: ingress, dialog, egress, the sandbox Omnidesk."""

from __future__ import annotations

import contextlib
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


@contextlib.asynccontextmanager
async def handoff_pipeline(settings: Settings, sandbox: tuple[SandboxState, str]) -> AsyncIterator[Pipeline]:
    """The pipeline with the `handoff` agent and the seed's rules conditioned on the case status
    only (`require_label=False`): the customer's words reach omnibot while an operator has the chat."""
    state, url = sandbox
    async with running_services(settings) as services:
        channel = await setup_channel(settings, state, url, agent_file="handoff.json")
        await add_rules(url, channel["webhook_url"], require_label=False)
        yield Pipeline(settings, state, url, channel, services)
