"""Agent versions: a chat keeps the version it started with; publishing changes new chats only."""

from __future__ import annotations

import json

import msgspec

from omnibot.testkit.channels import management
from tests.harness import FIXTURES, customer_says, wait_bot_messages
from tests.integration.conftest import Pipeline


async def test_publishing_a_new_version_changes_new_chats_only(pipeline: Pipeline) -> None:
    old_chat = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    await wait_bot_messages(pipeline.sandbox, old_chat, 2)

    agent = json.loads((FIXTURES / "agents" / "pipeline-demo.json").read_text())
    agent["slots"][0]["text"] = "Добрый день, {{channel_visitor_name}}!"
    agent["slots"][4]["text"] = "До свидания!"
    ops, client = await management(pipeline.settings)
    try:
        imported = msgspec.to_builtins(await ops.agents.import_agent(json.dumps(agent)))
        assert imported["version"] == 2
        assert not imported["published"]
        new_chat = (await customer_says(pipeline.sandbox_url, "Привет", name="Vera"))["case_id"]
        assert (await wait_bot_messages(pipeline.sandbox, new_chat, 2))[
            0
        ] == "Здравствуйте, Vera!"  # v2 unpublished
        await ops.agents.publish_agent("pipeline-demo", 2)
    finally:
        await client.close()

    newest = (await customer_says(pipeline.sandbox_url, "Привет", name="Gleb"))["case_id"]
    assert (await wait_bot_messages(pipeline.sandbox, newest, 2))[0] == "Добрый день, Gleb!"
    await customer_says(pipeline.sandbox_url, "2", case_id=old_chat)
    assert (await wait_bot_messages(pipeline.sandbox, old_chat, 3))[-1] == "Всего доброго!"  # still v1
    await customer_says(pipeline.sandbox_url, "2", case_id=newest)
    assert (await wait_bot_messages(pipeline.sandbox, newest, 3))[-1] == "До свидания!"
