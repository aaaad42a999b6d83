"""A huge published agent is parsed off the event loop (issue 10, item 14): other chats go on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from omnibot.dialog.catalog import AgentCatalog
from omnibot.shared.agents import AgentVersion


def huge_agent(slots: int) -> dict[str, Any]:
    chain = [
        {"id": f"s{i}", "type": "text", "text": f"step {i}", "next": f"s{i + 1}"} for i in range(slots - 1)
    ]
    return {
        "format": "omnibot/agent@1",
        "name": "huge",
        "variables": {},
        "start": "s0",
        "slots": [*chain, {"id": f"s{slots - 1}", "type": "end", "text": "end"}],
    }


class OneVersion:
    def __init__(self, body: dict[str, Any]) -> None:
        self.version = AgentVersion(name="huge", version=1, body=body, imported_at=0.0)

    async def published(self, name: str) -> AgentVersion | None:
        return self.version

    async def get_version(self, name: str, version: int) -> AgentVersion | None:
        return self.version


async def test_the_loop_keeps_ticking_while_a_huge_agent_is_parsed() -> None:
    catalog = AgentCatalog(OneVersion(huge_agent(20_000)))
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beating = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    agent = await catalog.get("huge", 1)
    parse_s = time.perf_counter() - started
    done.set()
    await beating
    assert agent.slot("s0") is not None
    # Parsing takes far longer than any single gap of the loop: it ran beside it, not on it.
    assert gaps, "the loop never ran while the agent was parsed"
    assert max(gaps) < max(0.25, parse_s / 2), (max(gaps), parse_s)
