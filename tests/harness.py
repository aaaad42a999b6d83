"""What tests do with a running omnibot: a channel from a fixture agent, customers writing in the
sandbox, waiting for the bot. Starting things is the testing kit's (`omnibot.testkit`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from pymongo import AsyncMongoClient

from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology
from omnibot.testkit.channels import set_up_channel
from omnibot.testkit.sandbox import SandboxClient

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


async def setup_channel(
    settings: Settings,
    sandbox: SandboxState,
    sandbox_url: str,
    *,
    agent_file: str = "pipeline-demo.json",
    activate: bool = True,
) -> dict[str, Any]:
    """Import and publish the agent, create (and activate) a channel pointed at the sandbox."""
    agent = (FIXTURES / "agents" / agent_file).read_bytes()
    return await set_up_channel(
        settings, sandbox, sandbox_url, agent, title="Test channel", activate=activate
    )


async def add_rules(sandbox_url: str, webhook_url: str, *, require_label: bool = True) -> None:
    """The seed's two rules (incoming and changed cases) posting to the webhook URL.

    `require_label=False` fires them whether or not the case carries the bot label (the seed's
    rules condition on the case status only): omnibot itself must then keep quiet for a human.
    """
    async with aiohttp.ClientSession() as session:
        await SandboxClient(session, sandbox_url).add_seed_rules(webhook_url, require_label=require_label)


async def customer_says(
    sandbox_url: str, text: str, *, case_id: int | None = None, name: str = "Anna"
) -> dict[str, Any]:
    user = {"name": name, "email": f"{name.lower()}@example.com", "phone": "+79990000000"}
    async with aiohttp.ClientSession() as session:
        return await SandboxClient(session, sandbox_url).customer_message(text, user=user, case_id=case_id)


async def operator_says(sandbox_url: str, case_id: int, text: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        return await SandboxClient(session, sandbox_url).operator_reply(case_id, text)


def bot_texts(sandbox: SandboxState, case_id: int) -> list[str]:
    return [m.content for m in sandbox.staff_messages(case_id)]


async def wait_bot_messages(
    sandbox: SandboxState, case_id: int, count: int, timeout: float = 10
) -> list[str]:
    def enough(state: SandboxState) -> bool:
        try:
            return len(state.staff_messages(case_id)) >= count
        except KeyError:
            return False

    await sandbox.wait_for(enough, timeout)
    return bot_texts(sandbox, case_id)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10, what: str = "condition"
) -> None:
    """Wait until an async check holds. For state kept outside this process (MongoDB), where there
    is no event to wait on; polls briefly and gives up with a clear message."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout}s")
        await asyncio.sleep(0.05)


async def chat_record(settings: Settings, channel_id: int, case_id: int) -> dict[str, Any] | None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    try:
        return await client[settings.mongodb_db].chats.find_one({"_id": f"{channel_id}:{case_id}"})
    finally:
        await client.close()


async def post_json(url: str, body: Any) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status


async def edit_case_via_api(
    sandbox: SandboxState, sandbox_url: str, case_id: int, fields: dict[str, Any]
) -> None:
    """Change a case through Omnidesk's API (as a person or a rule would), firing the changed rules."""
    auth = aiohttp.encode_basic_auth(sandbox.bot_email, sandbox.api_key)
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{sandbox_url}/api/cases/{case_id}.json", json={"case": fields}, headers={"Authorization": auth}
        ) as response,
    ):
        assert response.status == 200, await response.text()


async def queued(settings: Settings, broker: aio_pika.abc.AbstractRobustConnection) -> int:
    """Messages waiting in the inbound partition queues of `settings`' namespace."""
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions)
    total = 0
    async with broker.channel() as channel:
        for name in topology.inbound.partition_queues:
            queue = await channel.declare_queue(name, passive=True)
            total += queue.declaration_result.message_count or 0
    return total
