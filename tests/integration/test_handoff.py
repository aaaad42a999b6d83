"""Operator handoff in Omnidesk, and telling new customer messages from repeats and echoes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.services import ServiceTask
from tests.harness import (
    add_rules,
    bot_texts,
    chat_record,
    customer_says,
    edit_case_via_api,
    eventually,
    post_json,
    setup_channel,
    wait_bot_messages,
)
from tests.integration.conftest import Pipeline, handoff_pipeline

MENU = "Что нужно?\n1. Оператор\n2. Ничего"


@pytest.fixture
async def handoff(
    settings: Settings, broker: object, db: object, sandbox: tuple[SandboxState, str]
) -> AsyncIterator[Pipeline]:
    async with handoff_pipeline(settings, sandbox) as pipeline:
        yield pipeline


async def owner(p: Pipeline, case: int) -> str | None:
    record = await chat_record(p.settings, p.channel["id"], case)
    return None if record is None else str(record["owner"])


async def transcript_has(p: Pipeline, case: int, text: str) -> bool:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(p.settings.mongodb_url)
    try:
        found = await client[p.settings.mongodb_db].transcripts.find_one(
            {"chat": f"{p.channel['id']}:{case}", "text": text}
        )
    finally:
        await client.close()
    return found is not None


async def test_transfer_note_label_silence_and_return_to_the_bot(handoff: Pipeline) -> None:
    p, sandbox = handoff, handoff.sandbox
    case = (await customer_says(p.sandbox_url, "Здравствуйте"))["case_id"]
    assert sandbox.bot_label_id in sandbox.case(case).labels  # the incoming rule put it there
    await wait_bot_messages(sandbox, case, 2)
    await customer_says(p.sandbox_url, "1", case_id=case)
    await wait_bot_messages(sandbox, case, 3)
    await customer_says(p.sandbox_url, "Не приходит заказ 4711", case_id=case)
    assert (await wait_bot_messages(sandbox, case, 4))[-1] == "Перевожу на оператора"
    await sandbox.wait_for(lambda s: bool(s.notes(case)) and s.bot_label_id not in s.case(case).labels, 10)
    note = sandbox.notes(case)[0].content
    assert "Не приходит заказ 4711" in note
    assert "question=Не приходит заказ 4711" in note
    assert await owner(p, case) == "operator"

    # The operator has the chat: the customer's words are kept, the bot says nothing.
    await customer_says(p.sandbox_url, "Алло, есть кто?", case_id=case)
    await eventually(lambda: transcript_has(p, case, "Алло, есть кто?"), what="the message reaching dialog")
    assert len(bot_texts(sandbox, case)) == 4

    # Omnidesk's rule (here: the operator) puts the bot label back; its webhook hands the chat back.
    await edit_case_via_api(sandbox, p.sandbox_url, case, {"add_labels": [sandbox.bot_label_id]})
    await eventually(lambda: _is_bot(p, case), what="the chat returning to the bot")
    assert len(bot_texts(sandbox, case)) == 4  # a label change is not a customer message
    await customer_says(p.sandbox_url, "Снова я", case_id=case)
    assert (await wait_bot_messages(sandbox, case, 6))[-2:] == ["Здравствуйте!", MENU]


async def _is_bot(p: Pipeline, case: int) -> bool:
    return await owner(p, case) == "bot"


async def test_repeated_webhooks_and_echoes_make_no_turn_but_real_repeats_do(handoff: Pipeline) -> None:
    p, sandbox = handoff, handoff.sandbox
    case = (await customer_says(p.sandbox_url, "Привет"))["case_id"]
    await wait_bot_messages(sandbox, case, 2)
    delivered = sandbox.webhook_deliveries[-1].body
    # Omnidesk delivering the same event again, twice: no new customer message, no turn.
    assert await post_json(p.webhook_url, delivered) == 200
    assert await post_json(p.webhook_url, delivered) == 200
    # An echo: a change of the case by someone else (another label) fires the changed-case rule.
    other = sandbox.add_label("VIP").label_id
    echoes = len(sandbox.webhook_deliveries)
    await edit_case_via_api(sandbox, p.sandbox_url, case, {"add_labels": [other]})
    await sandbox.wait_for(lambda s: len(s.webhook_deliveries) > echoes, 5)  # the changed rule fired
    # The customer really writes "2" twice; each gets its turn. Per-chat order means the replies
    # to these arrive after the duplicates and the echo were processed.
    await customer_says(p.sandbox_url, "2", case_id=case)
    assert (await wait_bot_messages(sandbox, case, 3))[-1] == "Хорошо!"
    await customer_says(p.sandbox_url, "2", case_id=case)
    await wait_bot_messages(sandbox, case, 5)
    assert bot_texts(sandbox, case) == ["Здравствуйте!", MENU, "Хорошо!", "Здравствуйте!", MENU]


async def test_seed_way_transfer_by_external_request_silences_the_bot(
    settings: Settings, broker: object, db: object, sandbox: tuple[SandboxState, str], tmp_path: Path
) -> None:
    state, url = sandbox
    agent = {
        "format": "omnibot/agent@1",
        "name": "seed-transfer",
        "variables": {"bot_label_id": 0},
        "start": "label",
        "slots": [
            {"id": "label", "type": "memory", "set": {"bot_label_id": state.bot_label_id}, "next": "say"},
            {"id": "say", "type": "text", "text": "Перевожу на оператора", "next": "remove"},
            {
                "id": "remove",
                "type": "external_request",
                "method": "PUT",
                "url": "{{channel_webhook_url}}/api/cases/{{chat_id}}.json",
                "headers": {"Content-Type": "application/json"},
                "auth": {"basic": "{{channel_webhook_token}}"},
                "body": {"case": {"delete_labels": ["{{bot_label_id}}"]}},
                "timeout_s": 5,
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    }
    (tmp_path / "seed.json").write_text(json.dumps(agent))
    services = [
        ServiceTask(n, s, settings)
        for n, s in (("ingress", serve_ingress), ("dialog", serve_dialog), ("egress", serve_egress))
    ]
    for service in services:
        await service.wait_ready()
    try:
        channel = await setup_channel(settings, state, url, agent_file=str(tmp_path / "seed.json"))
        await add_rules(url, channel["webhook_url"], require_label=False)
        case = (await customer_says(url, "Позовите человека"))["case_id"]
        assert await wait_bot_messages(state, case, 1) == ["Перевожу на оператора"]
        await state.wait_for(lambda s: s.bot_label_id not in s.case(case).labels, 10)
        puts = [r.json for r in state.requests if r.method == "PUT"]
        assert puts == [{"case": {"delete_labels": [state.bot_label_id]}}]  # the typed placeholder
        record = await chat_record(settings, channel["id"], case)
        assert record is not None
        assert record["owner"] == "operator"
        await customer_says(url, "Алло?", case_id=case)
        await eventually(
            lambda: _recent_count(settings, channel["id"], case, 2), what="second webhook processed"
        )
        assert bot_texts(state, case) == ["Перевожу на оператора"]
    finally:
        for service in reversed(services):
            await service.stop()


async def _recent_count(settings: Settings, channel_id: int, case: int, count: int) -> bool:
    record = await chat_record(settings, channel_id, case)
    return record is not None and len(record["recent_inbound"]) >= count
