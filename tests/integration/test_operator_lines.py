"""What an operator writes in Omnidesk reaches the chat's transcript, once, in both inbound modes,
without the bot saying anything or taking the chat back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from pymongo import AsyncMongoClient

from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from tests.harness import (
    chat_record,
    customer_says,
    edit_case_via_api,
    eventually,
    operator_says,
    post_json,
    wait_bot_messages,
)
from tests.integration.conftest import Pipeline, handoff_pipeline


@pytest.fixture(params=["confirm", "webhook"])
async def operated(
    request: pytest.FixtureRequest,
    settings: Settings,
    broker: object,
    db: object,
    sandbox: tuple[SandboxState, str],
) -> AsyncIterator[Pipeline]:
    async with handoff_pipeline(
        msgspec.structs.replace(settings, inbound_mode=request.param), sandbox
    ) as pipeline:
        yield pipeline


async def transcript(p: Pipeline, case: int) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(p.settings.mongodb_url)
    try:
        cursor = client[p.settings.mongodb_db].transcripts.find({"chat": f"{p.channel['id']}:{case}"})
        return sorted([doc async for doc in cursor], key=lambda line: int(line["seq"]))
    finally:
        await client.close()


def bot_only(sandbox: SandboxState, case: int) -> list[str]:
    return [m.content for m in sandbox.staff_messages(case) if m.staff_id == sandbox.bot_staff_id]


async def test_operator_replies_are_recorded_once_in_order_and_the_bot_stays_quiet(
    operated: Pipeline,
) -> None:
    p, sandbox = operated, operated.sandbox
    case = (await customer_says(p.sandbox_url, "Здравствуйте"))["case_id"]
    await wait_bot_messages(sandbox, case, 2)
    await customer_says(p.sandbox_url, "1", case_id=case)
    await wait_bot_messages(sandbox, case, 3)
    await customer_says(p.sandbox_url, "Не приходит заказ 4711", case_id=case)
    await wait_bot_messages(sandbox, case, 4)
    await sandbox.wait_for(lambda s: s.bot_label_id not in s.case(case).labels, 10)

    async def lines_of(role: str) -> list[str]:
        return [line["text"] for line in await transcript(p, case) if line["role"] == role]

    await operator_says(p.sandbox_url, case, "Добрый день, я Ольга. Смотрю заказ.")
    await operator_says(p.sandbox_url, case, "Заказ 4711 уже в пути.")
    await customer_says(p.sandbox_url, "Спасибо!", case_id=case)

    async def recorded() -> bool:
        return "Спасибо!" in await lines_of("customer")

    await eventually(recorded, what="the customer's message reaching the transcript")
    lines = await transcript(p, case)
    said = [(line["role"], line["text"]) for line in lines[-3:]]
    assert said == [
        ("operator", "Добрый день, я Ольга. Смотрю заказ."),
        ("operator", "Заказ 4711 уже в пути."),
        ("customer", "Спасибо!"),
    ]
    written = {m.content: m.created_at for m in sandbox.staff_messages(case)}
    assert lines[-3]["at"] == pytest.approx(written["Добрый день, я Ольга. Смотрю заказ."], abs=1.0)
    # The bot said nothing and the chat is still the operator's.
    assert len(bot_only(sandbox, case)) == 4
    record = await chat_record(p.settings, p.channel["id"], case)
    assert record is not None and record["owner"] == "operator"

    # Omnidesk delivering the same webhook again records nothing twice; the bot's own replies
    # never pass for the operator's.
    assert await post_json(p.webhook_url, sandbox.webhook_deliveries[-1].body) == 200
    await customer_says(p.sandbox_url, "Жду", case_id=case)

    async def waited() -> bool:
        return "Жду" in await lines_of("customer")

    await eventually(waited, what="the next customer message reaching the transcript")
    assert await lines_of("operator") == ["Добрый день, я Ольга. Смотрю заказ.", "Заказ 4711 уже в пути."]

    # The operator's last word, then the case goes back to the bot (its label returns): the
    # hand-back's read catches it up before the bot speaks again.
    await operator_says(p.sandbox_url, case, "Передаю вас боту.")
    await edit_case_via_api(sandbox, p.sandbox_url, case, {"add_labels": [sandbox.bot_label_id]})

    async def caught_up() -> bool:
        return "Передаю вас боту." in await lines_of("operator")

    await eventually(caught_up, what="the operator's last message reaching the transcript")
    assert len(bot_only(sandbox, case)) == 4
