"""Agents: import (a new version), validate, publish, export, list, show, delete.

Validating and exporting an agent is CPU work in proportion to its size (an old version may be far
larger than an import may be today): it runs in a worker thread, so the event loop, and whatever
else runs in this process, is never held up by it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from omnibot.admin.ops.context import Context, Refused, not_found
from omnibot.admin.ops.views import check_page, iso_time, page, problem_text
from omnibot.admin.schemas import (
    DEFAULT_PAGE,
    AgentDeleted,
    AgentImported,
    AgentPublished,
    AgentValid,
    AgentVersionView,
    AgentView,
    Page,
)
from omnibot.admin.validation import version_problem
from omnibot.agents.agent import Agent, AgentInvalid, AgentUnreadable, Problem, dump_agent, load_agent


class AgentOperations:
    def __init__(self, context: Context) -> None:
        self._ctx = context

    async def import_agent(self, raw: bytes | str, *, publish: bool = False) -> AgentImported:
        agent, warnings = await _load(raw)
        body = msgspec.json.decode(await asyncio.to_thread(dump_agent, agent))
        await self._ctx.store.continue_numbering(agent.name)
        version = await self._ctx.agents.add_version(agent.name, body)
        if publish:
            await self._ctx.agents.publish(agent.name, version.version)
        return AgentImported(
            name=agent.name,
            version=version.version,
            published=publish,
            warnings=[problem_text(w) for w in warnings],
        )

    async def validate_agent(self, raw: bytes | str) -> AgentValid:
        """What import would say, without importing."""
        agent, warnings = await _load(raw)
        return AgentValid(name=agent.name, valid=True, warnings=[problem_text(w) for w in warnings])

    async def publish_agent(self, name: str, version: int | None = None) -> AgentPublished:
        _check_version(version)
        published = await self._ctx.agents.publish(name, version)
        if published is None:
            raise not_found(f"agent {name}" + (f" version {version}" if version is not None else ""))
        return AgentPublished(name=name, published_version=published)

    async def export_agent(self, name: str, version: int | None = None) -> bytes:
        """The version as an importable file (the latest by default)."""
        _check_version(version)
        summary = await self._ctx.agents.summary(name)
        if summary is None:
            raise not_found(f"agent {name}")
        stored = await self._ctx.agents.get_version(name, version or summary.latest_version)
        if stored is None:
            raise not_found(f"agent {name} version {version}")
        return await asyncio.to_thread(_export, stored.body)

    async def list_agents(self, *, limit: int = DEFAULT_PAGE, offset: int = 0) -> Page[AgentView]:
        check_page(limit, offset)
        views = [
            AgentView(name=s.name, latest_version=s.latest_version, published_version=s.published_version)
            for s in await self._ctx.agents.all()
        ]
        return page(views[offset : offset + limit], len(views), limit, offset)

    async def show_agent(self, name: str) -> AgentView:
        summary = await self._ctx.agents.summary(name)
        if summary is None:
            raise not_found(f"agent {name}")
        return AgentView(
            name=name, latest_version=summary.latest_version, published_version=summary.published_version
        )

    async def list_agent_versions(
        self, name: str, *, limit: int = DEFAULT_PAGE, offset: int = 0
    ) -> Page[AgentVersionView]:
        check_page(limit, offset)
        summary = await self._ctx.agents.summary(name)
        if summary is None:
            raise not_found(f"agent {name}")
        rows, total = await self._ctx.store.agent_versions(name, limit=limit, offset=offset)
        views = [
            AgentVersionView(
                name=name,
                version=row.version,
                published=row.version == summary.published_version,
                imported_at=iso_time(row.imported_at),
                slots=row.slots,
            )
            for row in rows
        ]
        return page(views, total, limit, offset)

    async def delete_agent(self, name: str) -> AgentDeleted:
        """Refused while a channel uses the agent as its default agent."""
        summary = await self._ctx.agents.summary(name)
        if summary is None:
            raise not_found(f"agent {name}")
        users = [c for c in await self._ctx.channels.all() if c.agent == name]
        if users:
            raise Refused(
                "agent_in_use",
                [
                    f"channel {c.id} ({c.title}) uses agent {name} as its default agent: "
                    f"give it another one first (omnibot channel update {c.id} --agent NAME)"
                    for c in users
                ],
            )
        versions = await self._ctx.store.delete_agent(name, summary.latest_version)
        return AgentDeleted(name=name, deleted=True, versions=versions)


async def _load(raw: bytes | str) -> tuple[Agent, list[Problem]]:
    try:
        return await asyncio.to_thread(load_agent, raw)
    except AgentUnreadable as exc:
        raise Refused("bad_request", [problem_text(p) for p in exc.problems]) from None
    except AgentInvalid as exc:
        raise Refused("agent_invalid", [problem_text(p) for p in exc.problems]) from None


def _check_version(version: int | None) -> None:
    problem = version_problem(version)
    if problem:
        raise Refused("invalid", [problem])


def _export(body: dict[str, Any]) -> bytes:
    try:
        agent, _ = load_agent(body)
    except AgentInvalid:
        # Valid when it was imported; the rules have grown stricter since: give it back as stored.
        return msgspec.json.format(msgspec.json.encode(body), indent=2) + b"\n"
    return dump_agent(agent)
