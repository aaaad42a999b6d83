"""Agents as dialog needs them: each version parsed once (versions never change).

Which version is published is read afresh for every new chat (one small read; new chats are rare
next to messages), so a chat that starts right after `omnibot agent publish` gets the new version.
"""

from __future__ import annotations

from typing import Protocol

from omnibot.agents.agent import Agent, load_agent
from omnibot.shared.agents import AgentVersion
from omnibot.shared.errors import PermanentError


class AgentSource(Protocol):
    async def published(self, name: str) -> AgentVersion | None: ...

    async def get_version(self, name: str, version: int) -> AgentVersion | None: ...


class AgentCatalog:
    def __init__(self, store: AgentSource) -> None:
        self._store = store
        self._parsed: dict[tuple[str, int], Agent] = {}

    async def published_version(self, name: str) -> int | None:
        version = await self._store.published(name)
        if version is None:
            return None
        if (version.name, version.version) not in self._parsed:
            self._remember(version)
        return version.version

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
