"""Agents as dialog needs them: parsed once per version, the published pointer cached briefly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from omnibot.dialog.agent import Agent, load_agent
from omnibot.shared.agents import AgentVersion
from omnibot.shared.errors import PermanentError


class AgentSource(Protocol):
    async def published(self, name: str) -> AgentVersion | None: ...

    async def get_version(self, name: str, version: int) -> AgentVersion | None: ...


class AgentCatalog:
    def __init__(
        self, store: AgentSource, *, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ):
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._parsed: dict[tuple[str, int], Agent] = {}  # versions are immutable: cache forever
        self._published: dict[str, tuple[float, AgentVersion | None]] = {}

    async def published_version(self, name: str) -> int | None:
        now = self._clock()
        hit = self._published.get(name)
        if hit is None or hit[0] <= now:
            version = await self._store.published(name)
            hit = (now + self._ttl_s, version)
            self._published[name] = hit
            if version is not None:
                self._remember(version)
        return None if hit[1] is None else hit[1].version

    async def get(self, name: str, version: int) -> Agent:
        agent = self._parsed.get((name, version))
        if agent is None:
            stored = await self._store.get_version(name, version)
            if stored is None:
                raise PermanentError(f"agent {name} version {version} does not exist")
            agent = self._remember(stored)
        return agent

    def _remember(self, stored: AgentVersion) -> Agent:
        agent, _warnings = load_agent(stored.body)
        self._parsed[(stored.name, stored.version)] = agent
        return agent
