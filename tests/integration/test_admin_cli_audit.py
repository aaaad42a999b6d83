"""Every changing command of the command line is in the audit log, as the console's and the API's
changes are: actor `cli:<OS user>`, the console's action names, no secret; reads and refusals
write nothing."""

from __future__ import annotations

import getpass
from typing import Any

from omnibot.sandbox.state import SandboxState
from omnibot.shared.chats import ChatRecord, MongoChatStore
from tests.integration.test_admin_cli import AGENT, Omnibot, channel_args, ingress, omnibot

__all__ = ["ingress", "omnibot"]


async def test_changing_commands_write_one_audit_entry_each(
    omnibot: Omnibot, sandbox: tuple[SandboxState, str], db: Any, broker: Any, ingress: None
) -> None:
    state, _ = sandbox
    assert (await omnibot("agent", "import", AGENT, "--publish"))[0] == 0
    assert (await omnibot("agent", "import", AGENT))[0] == 0
    assert (await omnibot(*channel_args(sandbox)))[0] == 0
    assert (
        await omnibot(
            "channel", "update", "1", "--api-key", "-", "--title", "Desk", stdin=state.api_key + "\n"
        )
    )[0] == 0
    assert (await omnibot("channel", "activate", "1"))[0] == 0
    assert (await omnibot("channel", "deactivate", "1"))[0] == 0
    assert (await omnibot("agent", "publish", "pipeline-demo", "--version", "1"))[0] == 0
    record = ChatRecord(
        key="1:100", channel_id=1, chat_id="100", agent_name="pipeline-demo", agent_version=1, version=1
    )
    assert await MongoChatStore(db).commit(record, 0)
    assert (await omnibot("chat", "transfer", "1", "100"))[0] == 0
    assert (await omnibot("chat", "resume", "1", "100"))[0] == 0
    assert (await omnibot("dlq", "replay", "--all"))[0] == 0
    assert (
        await omnibot(
            "user",
            "create",
            "--email",
            "a@example.com",
            "--role",
            "viewer",
            "--password-stdin",
            stdin="long-password-1\n",
        )
    )[0] == 0
    before = await db.audit_log.count_documents({})
    # Reads and refusals change nothing, and write nothing.
    for argv in (
        ("agent", "list"),
        ("agent", "versions", "pipeline-demo"),
        ("agent", "export", "pipeline-demo"),
        ("channel", "list"),
        ("channel", "show", "1"),
        ("chat", "list", "1"),
        ("chat", "show", "1", "100"),
        ("dlq", "list"),
        ("status",),
    ):
        assert (await omnibot(*argv))[0] == 0, argv
    assert (await omnibot("channel", "delete", "99"))[0] == 1
    assert await db.audit_log.count_documents({}) == before

    entries = [doc async for doc in db.audit_log.find({}, {"_id": 0}).sort("at", 1)]
    assert {e["actor"] for e in entries} == {f"cli:{getpass.getuser()}"}
    assert [(e["action"], e["target"]) for e in entries] == [
        ("agent.import_publish", "pipeline-demo v1"),
        ("agent.import", "pipeline-demo v2"),
        ("channel.create", "1"),
        ("channel.update", "1"),
        ("channel.activate", "1"),
        ("channel.deactivate", "1"),
        ("agent.publish", "pipeline-demo v1"),
        ("chat.transfer", "1:100"),
        ("chat.return", "1:100"),
        ("dead_letters.replay", "all"),
        ("user.create", "a@example.com"),
    ]
    assert entries[3]["detail"] == "changed: api_key, title"
    assert not any(state.api_key in str(e) for e in entries)
