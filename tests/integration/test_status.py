"""`omnibot status` and `GET /api/v1/status` against a running pipeline."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp
import msgspec
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.service import serve_admin
from omnibot.shared.account_errors import AccountErrorLog
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ROOT, child_env
from omnibot.testkit.services import ServiceTask
from tests.harness import customer_says, wait_bot_messages
from tests.integration.conftest import Pipeline


async def omnibot_status(p: Pipeline, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "omnibot.launcher",
        "status",
        *args,
        env=child_env(p.settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_status_shows_replicas_partitions_queues_channels_and_omnidesk_errors(
    pipeline: Pipeline, db: AsyncDatabase[dict[str, Any]]
) -> None:
    case = (await customer_says(pipeline.sandbox_url, "Здравствуйте"))["case_id"]
    await wait_bot_messages(pipeline.sandbox, case, 1)
    # What a failed call leaves behind (egress and dialog record it through the Omnidesk client).
    await AccountErrorLog(db).record(
        "acme.omnidesk.ru", "POST /api/cases/1/messages.json: Omnidesk answered 503"
    )

    code, out = await omnibot_status(pipeline, "--json")
    assert code == 0, out
    status = json.loads(out)
    alive = {r["role"]: r["alive"] for r in status["roles"]}
    assert alive["ingress"] >= 1 and alive["dialog"] >= 1 and alive["egress"] >= 1, alive
    assert [s["stage"] for s in status["stages"]] == ["chat.inbound", "chat.outbound"]
    for stage in status["stages"]:
        assert stage["without_consumer"] == 0
        assert len(stage["partitions"]) == pipeline.settings.chat_partitions
        assert all(p["owner"] and p["queued"] is not None for p in stage["partitions"])
        assert stage["dead_letters"] == 0
    assert status["channels"] == {"active": 1, "total": 1}
    assert status["broker"] == "ok"
    assert status["omnidesk_accounts"][0]["account"] == "acme.omnidesk.ru"
    assert "503" in status["omnidesk_accounts"][0]["last_error"]

    code, text = await omnibot_status(pipeline)
    assert code == 0, text
    assert "replicas alive" in text and "chat.outbound: queued" in text
    assert "channels: 1 active of 1" in text and "acme.omnidesk.ru" in text

    # The admin API answers the same.
    settings = msgspec.structs.replace(pipeline.settings, admin_port=free_port(), admin_token="t" * 32)
    admin = ServiceTask("admin", serve_admin, settings)
    await admin.wait_ready()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{settings.admin_port}/api/v1/status",
                headers={"Authorization": f"Bearer {settings.admin_token}"},
            ) as response,
        ):
            assert response.status == 200
            answer = await response.json()
    finally:
        await admin.stop()
    assert answer["channels"] == status["channels"]
    assert [s["stage"] for s in answer["stages"]] == ["chat.inbound", "chat.outbound"]
    assert {r["role"] for r in answer["roles"]} >= {"ingress", "dialog", "egress", "admin"}
