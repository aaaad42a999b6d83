"""A channel pointed at the sandbox, set up the way an administrator would (the management
operations): the agent imported and published, the channel created and activated."""

from __future__ import annotations

from typing import Any

import msgspec
from pymongo import AsyncMongoClient

from omnibot.admin.operations import Management
from omnibot.sandbox.state import SandboxState
from omnibot.shared.crypto import SecretBox, dev_secret_key
from omnibot.shared.settings import Settings


async def management(settings: Settings) -> tuple[Management, AsyncMongoClient[dict[str, Any]]]:
    """The management operations on `settings`' database, and the client to close afterwards."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    box = SecretBox(settings.secret_key or dev_secret_key(settings.data_dir))
    return Management(client[settings.mongodb_db], box, settings), client


async def set_up_channel(
    settings: Settings,
    sandbox: SandboxState,
    sandbox_url: str,
    agent: bytes | dict[str, Any],
    *,
    title: str | None = None,
    activate: bool = True,
) -> dict[str, Any]:
    """Import and publish `agent` (its JSON, or the document), create a channel on the sandbox's
    account (and activate it: a channel that does not activate is an error). The channel as the
    API shows it; its title names the agent unless given."""
    ops, client = await management(settings)
    try:
        body = agent if isinstance(agent, bytes) else msgspec.json.encode(agent)
        imported = await ops.agents.import_agent(body, publish=True)
        created = await ops.channels.create_channel(
            title=title or f"replay {imported.name}",
            domain=sandbox_url,
            api_key=sandbox.api_key,
            email=sandbox.bot_email,
            agent=imported.name,
            activate=activate,
            bot_label_id=sandbox.bot_label_id,
        )
    finally:
        await client.close()
    if activate and not created.active:
        raise RuntimeError(f"the channel did not activate: {created.checks}")
    channel: dict[str, Any] = msgspec.to_builtins(created)
    return channel
