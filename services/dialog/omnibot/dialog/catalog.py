"""Agents as dialog needs them: each version parsed once (versions never change).

Which version is published is read afresh for every new chat (one small read; new chats are rare
next to messages), so a chat that starts right after `omnibot agent publish` gets the new version.
A large agent is parsed and validated in a worker thread: a published file of a hundred thousand
slots takes seconds of CPU, which on the event loop would hold every other chat of the process.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from omnibot.agents.agent import Agent, load_agent
from omnibot.shared.agents import AgentVersion
from omnibot.shared.errors import PermanentError


class AgentSource(Protocol):
    async def published(self, name: str) -> AgentVersion | None: ...

    async def get_version(self, name: str, version: int) -> AgentVersion | None: ...


# Up to this many slots an agent parses in about a millisecond: a thread hop would cost more.
INLINE_PARSE_SLOTS: Final = 200


class AgentCatalog:
    def __init__(self, store: AgentSource) -> None:
        self._store = store
        self._parsed: dict[tuple[str, int], Agent] = {}

    async def published_version(self, name: str) -> int | None:
        version = await self._store.published(name)
        if version is None:
            return None
        if (version.name, version.version) not in self._parsed:
            await self._remember(version)
        return version.version

    async def get(self, name: str, version: int) -> Agent:
        agent = self._parsed.get((name, version))
        if agent is None:
            stored = await self._store.get_version(name, version)
            if stored is None:
                raise PermanentError(f"agent {name} version {version} does not exist")
            agent = await self._remember(stored)
        return agent

    async def _remember(self, stored: AgentVersion) -> Agent:
        slots = stored.body.get("slots")
        if not isinstance(slots, list) or len(slots) <= INLINE_PARSE_SLOTS:
            agent, _warnings = load_agent(stored.body)
        else:
            agent, _warnings = await asyncio.to_thread(load_agent, stored.body)
        self._parsed[(stored.name, stored.version)] = agent
        return agent
