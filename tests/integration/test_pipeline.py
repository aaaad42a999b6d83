"""The main flow end to end: a customer writes in Omnidesk, the agent answers in Omnidesk."""

from __future__ import annotations

import aiohttp

from tests.harness import bot_texts, customer_says, wait_bot_messages
from tests.integration.conftest import Pipeline

MENU = "Чем помочь?\n1. Статус заказа\n2. Оператор"


async def test_seed_webhook_gets_greeting_and_numbered_menu(pipeline: Pipeline) -> None:
    sent = await customer_says(pipeline.sandbox_url, "Добрый день")
    assert [w["status"] for w in sent["webhooks"]] == [200]
    texts = await wait_bot_messages(pipeline.sandbox, sent["case_id"], 2)
    assert texts == ["Здравствуйте, Anna!", MENU]
    message = pipeline.sandbox.staff_messages(sent["case_id"])[0]
    assert message.staff_id == pipeline.sandbox.bot_staff_id
    assert message.content_html == "<p>Здравствуйте, Anna!</p>"


async def test_numeric_choice_then_input_with_pattern_retry(pipeline: Pipeline) -> None:
    case = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    await wait_bot_messages(pipeline.sandbox, case, 2)
    await customer_says(pipeline.sandbox_url, " 1. ", case_id=case)
    assert (await wait_bot_messages(pipeline.sandbox, case, 3))[-1] == "Номер заказа?"
    await customer_says(pipeline.sandbox_url, "abc", case_id=case)
    assert (await wait_bot_messages(pipeline.sandbox, case, 4))[-1] == "Только цифры, пожалуйста"
    await customer_says(pipeline.sandbox_url, "4711", case_id=case)
    assert (await wait_bot_messages(pipeline.sandbox, case, 5))[-1] == "Заказ 4711 принят."


async def test_title_choice_is_case_insensitive(pipeline: Pipeline) -> None:
    case = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    await wait_bot_messages(pipeline.sandbox, case, 2)
    await customer_says(pipeline.sandbox_url, "  оПЕРАТОР ", case_id=case)
    assert (await wait_bot_messages(pipeline.sandbox, case, 3))[-1] == "Всего доброго!"


async def test_unknown_reply_shows_the_menu_again(pipeline: Pipeline) -> None:
    case = (await customer_says(pipeline.sandbox_url, "Привет"))["case_id"]
    await wait_bot_messages(pipeline.sandbox, case, 2)
    await customer_says(pipeline.sandbox_url, "7", case_id=case)
    assert (await wait_bot_messages(pipeline.sandbox, case, 3))[-1] == MENU


async def test_reply_to_a_chat_omnibot_never_saw_starts_the_agent(pipeline: Pipeline) -> None:
    # A case that exists in Omnidesk, but whose first webhook omnibot receives is a bare "2".
    case = pipeline.sandbox.open_case(user=pipeline.sandbox.user_for(name="Boris"), subject="old").case_id
    body = {
        "event": "new_message",
        "message": {"kind": "text", "text": "2"},
        "visitor": {"id": "5", "fields": {"name": "Boris"}},
        "chat_id": str(case),
    }
    async with aiohttp.ClientSession() as session, session.post(pipeline.webhook_url, json=body) as response:
        assert response.status == 200
    assert await wait_bot_messages(pipeline.sandbox, case, 2) == ["Здравствуйте, Boris!", MENU]


async def test_every_turn_answers_in_order_across_many_chats(pipeline: Pipeline) -> None:
    cases = [
        (await customer_says(pipeline.sandbox_url, f"hi {i}", name=f"C{i}"))["case_id"] for i in range(8)
    ]
    for i, case in enumerate(cases):
        assert await wait_bot_messages(pipeline.sandbox, case, 2) == [f"Здравствуйте, C{i}!", MENU]
    for case in cases:
        await customer_says(pipeline.sandbox_url, "2", case_id=case)
    for case in cases:
        await wait_bot_messages(pipeline.sandbox, case, 3)
        assert bot_texts(pipeline.sandbox, case) == [
            bot_texts(pipeline.sandbox, case)[0],
            MENU,
            "Всего доброго!",
        ]
