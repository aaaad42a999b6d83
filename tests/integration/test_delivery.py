"""egress against a misbehaving Omnidesk, through the real queues: nothing lost, nothing twice."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.sandbox.faults import FaultResponse
from omnibot.sandbox.state import SandboxState
from omnibot.shared.deadletters import list_dead, replay_dead
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology
from omnibot.testkit.services import ServiceTask
from tests.harness import add_rules, bot_texts, customer_says, setup_channel, wait_bot_messages
from tests.integration.conftest import Pipeline

MESSAGES = r"/api/cases/\d+/messages\.json"


def files_agent(size: int) -> dict[str, Any]:
    return {
        "format": "omnibot/agent@1",
        "name": "files",
        "variables": {"files": ""},
        "start": "hi",
        "slots": [
            {"id": "hi", "type": "text", "text": "Вот отчёт", "next": "file"},
            {
                "id": "file",
                "type": "attachment",
                "url": "{{files}}/files/report.pdf?size=" + str(size),
                "name": "report.pdf",
                "as": "file",
                "text": "Отчёт за месяц",
                "next": "bye",
            },
            {"id": "bye", "type": "end", "text": "Что-нибудь ещё?"},
        ],
    }


@pytest.fixture
async def files(
    settings: Settings,
    broker: object,
    db: object,
    sandbox: tuple[SandboxState, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Pipeline]:
    state, url = sandbox
    agent = files_agent(request.param)
    agent["variables"]["files"] = url
    (tmp_path / "files.json").write_text(json.dumps(agent))
    services = {
        n: ServiceTask(n, s, settings)
        for n, s in (("ingress", serve_ingress), ("dialog", serve_dialog), ("egress", serve_egress))
    }
    for service in services.values():
        await service.wait_ready()
    channel = await setup_channel(settings, state, url, agent_file=str(tmp_path / "files.json"))
    await add_rules(url, channel["webhook_url"])
    yield Pipeline(settings, state, url, channel, services)
    for service in reversed(list(services.values())):
        await service.stop()


async def dead_letters(settings: Settings) -> list[Any]:
    connection = await aio_pika.connect_robust(settings.amqp_url)
    try:
        return await list_dead(connection, Topology.build(settings.amqp_namespace, settings.chat_partitions))
    finally:
        await connection.close()


async def test_a_429_storm_is_waited_out_in_order(pipeline: Pipeline) -> None:
    storm = [
        FaultResponse(status=429, headers={"retry_after": "1"}, body={"error": "rate_limit_exceeded"})
    ] * 3
    pipeline.sandbox.faults.add(method="POST", path=MESSAGES, responses=storm)
    started = time.monotonic()
    case = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    texts = await wait_bot_messages(pipeline.sandbox, case, 2, timeout=20)
    assert texts == ["Здравствуйте, Anna!", "Чем помочь?\n1. Статус заказа\n2. Оператор"]
    assert time.monotonic() - started >= 1.0  # retry_after was honoured, not hammered
    refused = [r for r in pipeline.sandbox.requests if r.status == 429]
    assert len(refused) == 3


async def test_a_5xx_burst_is_retried_and_posts_once(pipeline: Pipeline) -> None:
    burst = [FaultResponse(status=502), FaultResponse(status=503), FaultResponse(status=500)]
    pipeline.sandbox.faults.add(method="POST", path=MESSAGES, responses=burst)
    case = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    await wait_bot_messages(pipeline.sandbox, case, 2, timeout=20)
    await customer_says(pipeline.sandbox_url, "2", case_id=case)
    await wait_bot_messages(pipeline.sandbox, case, 3, timeout=20)
    assert bot_texts(pipeline.sandbox, case)[-1] == "Всего доброго!"
    assert len(bot_texts(pipeline.sandbox, case)) == 3


async def test_a_timeout_after_acceptance_leaves_exactly_one_message(pipeline: Pipeline) -> None:
    # Omnidesk stores the reply but answers after egress gave up waiting (OMNIDESK_TIMEOUT_S=3).
    pipeline.sandbox.faults.add(
        method="POST", path=MESSAGES, responses=[FaultResponse(delay_s=5, after_accept=True)]
    )
    case = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    await wait_bot_messages(pipeline.sandbox, case, 2, timeout=20)
    assert bot_texts(pipeline.sandbox, case) == [
        "Здравствуйте, Anna!",
        "Чем помочь?\n1. Статус заказа\n2. Оператор",
    ]


async def test_a_permanent_error_is_dead_lettered_at_once_readably_and_can_be_redriven(
    pipeline: Pipeline,
) -> None:
    refusal = FaultResponse(status=403, body={"error": "staff_has_not_access"})
    pipeline.sandbox.faults.add(method="POST", path=MESSAGES, responses=[refusal])
    case = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    # The greeting is refused for good; the menu after it is not held up by it.
    assert await wait_bot_messages(pipeline.sandbox, case, 1) == [
        "Чем помочь?\n1. Статус заказа\n2. Оператор"
    ]
    dead = await dead_letters(pipeline.settings)
    assert len(dead) == 1
    letter = dead[0]
    assert (letter.stage, letter.chat_id, letter.kind, letter.attempts) == (
        "outbound",
        str(case),
        "outbound.text.v1",
        1,
    )
    assert "403 staff_has_not_access" in letter.error
    connection = await aio_pika.connect_robust(pipeline.settings.amqp_url)
    try:
        topology = Topology.build(pipeline.settings.amqp_namespace, pipeline.settings.chat_partitions)
        replayed = await replay_dead(connection, topology, {letter.id})
    finally:
        await connection.close()
    assert [r.id for r in replayed] == [letter.id]
    await wait_bot_messages(pipeline.sandbox, case, 2)
    assert sorted(bot_texts(pipeline.sandbox, case)) == sorted(
        ["Здравствуйте, Anna!", "Чем помочь?\n1. Статус заказа\n2. Оператор"]
    )
    assert await dead_letters(pipeline.settings) == []


@pytest.mark.parametrize("files", [10 * 1024 * 1024], indirect=True)
async def test_a_10_mb_file_is_attached(files: Pipeline) -> None:
    case = (await customer_says(files.sandbox_url, "Отчёт"))["case_id"]
    await wait_bot_messages(files.sandbox, case, 3, timeout=30)
    with_file = files.sandbox.staff_messages(case)[1]
    assert with_file.content == "Отчёт за месяц"
    assert [(a.file_name, a.file_size, a.mime_type) for a in with_file.attachments] == [
        ("report.pdf", 10 * 1024 * 1024, "application/pdf")
    ]


@pytest.mark.parametrize("files", [25 * 1024 * 1024 + 1], indirect=True)
async def test_a_file_over_omnideskss_cap_is_refused_clearly(files: Pipeline) -> None:
    case = (await customer_says(files.sandbox_url, "Отчёт"))["case_id"]
    assert await wait_bot_messages(files.sandbox, case, 2, timeout=30) == ["Вот отчёт", "Что-нибудь ещё?"]
    dead = await dead_letters(files.settings)
    assert len(dead) == 1
    assert "over 25.0 MiB" in dead[0].error or "over 25 MiB" in dead[0].error, dead[0].error


async def test_a_throttled_account_does_not_hold_up_another(pipeline: Pipeline) -> None:
    from omnibot.testkit.ports import free_port
    from omnibot.testkit.sandbox import running_sandbox

    storm = [FaultResponse(status=429, headers={"retry_after": "60"}, body={"error": "rate_limit_exceeded"})]
    pipeline.sandbox.faults.add(method="POST", path=MESSAGES, responses=storm, times=50)
    throttled = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    await pipeline.sandbox.wait_for(lambda s: any(r.status == 429 for r in s.requests), 10)
    async with running_sandbox(free_port()) as (other, other_url):
        channel = await setup_channel(pipeline.settings, other, other_url)
        await add_rules(other_url, channel["webhook_url"])
        started = time.monotonic()
        case = (await customer_says(other_url, "Привет", name="Boris"))["case_id"]
        assert await wait_bot_messages(other, case, 2, timeout=10) == [
            "Здравствуйте, Boris!",
            "Чем помочь?\n1. Статус заказа\n2. Оператор",
        ]
        assert time.monotonic() - started < 5
    assert bot_texts(pipeline.sandbox, throttled) == []  # still waiting out its minute
