"""Fixtures of the replay tests: the pipeline in this process, the sandbox, the fake external service.

The broker, database and settings come from tests/conftest.py (unique names per test); here the
services start once per test, as in tests/integration/conftest.py, next to a sandbox Omnidesk and
a fake external service on 127.0.0.1 (which the test settings allow `external_request` to reach).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pytest

from omnibot.replay.engine_runner import LLM_PATH
from omnibot.replay.external import FakeExternalServer, running_fake_external
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import running_sandbox
from omnibot.testkit.services import running_services


@dataclass
class ReplayPipeline:
    settings: Settings
    sandbox: SandboxState
    sandbox_url: str
    external: FakeExternalServer
    external_url: str


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[tuple[SandboxState, str]]:
    async with running_sandbox(free_port()) as running:
        yield running


@pytest.fixture
async def fake_external() -> AsyncIterator[tuple[FakeExternalServer, str]]:
    async with running_fake_external() as running:
        yield running


@pytest.fixture
async def replay_pipeline(
    settings: Settings,
    broker: object,
    db: object,
    sandbox: tuple[SandboxState, str],
    fake_external: tuple[FakeExternalServer, str],
) -> AsyncIterator[ReplayPipeline]:
    # `llm` slots ask the fake external service, as in the engine runs (LLM_PATH).
    with_llm = msgspec.structs.replace(
        settings, llm_base_url=fake_external[1] + LLM_PATH, llm_model="replay-model"
    )
    async with running_services(with_llm):
        yield ReplayPipeline(settings, *sandbox, *fake_external)
