"""Hostile agents and customers through the whole pipeline (issue 10): real ingress, RabbitMQ,
dialog, egress, MongoDB-protocol server and the sandbox Omnidesk.

- a catastrophic regex and a 33-character reply: answered at once, other chats keep going;
- the doubling agent: the apology and a transfer, once, nothing dead-lettered;
- `channel_webhook_token` copied into a variable: used by the request, never stored or shown;
- a Telegram-style token in a request's url path, and a customer's line break: not in the log.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from omnibot.sandbox.state import SandboxState
from omnibot.shared.logs import TextFormatter
from omnibot.shared.settings import Settings
from omnibot.testkit.channels import set_up_channel
from omnibot.testkit.services import running_services
from tests.harness import add_rules, customer_says, wait_bot_messages

pytestmark = pytest.mark.timeout(90)

TELEGRAM = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def hostile_agent(api: str) -> dict[str, Any]:
    doubling = [
        {"id": f"d{i}", "type": "memory", "set": {"x": "{{x}}{{x}}"}, "next": f"d{i + 1}"} for i in range(14)
    ]
    return {
        "format": "omnibot/agent@1",
        "name": "hostile",
        "variables": {"x": "a" * 1024},
        "start": "menu",
        "slots": [
            {
                "id": "menu",
                "type": "button_menu",
                "text": "Что проверить?",
                "buttons": [
                    {"title": "regex", "next": "ask"},
                    {"title": "double", "next": "d0"},
                    {"title": "token", "next": "copy"},
                ],
            },
            {
                "id": "ask",
                "type": "input",
                "variable": "a",
                "text": "Введите",
                "pattern": "^(a+)+$",
                "retry_text": "Только буквы a",
                "next": "ok",
            },
            {"id": "ok", "type": "end", "text": "Принято"},
            *doubling,
            {"id": "d14", "type": "end", "text": "{{x}}"},
            {"id": "copy", "type": "memory", "set": {"saved": "{{channel_webhook_token}}"}, "next": "say"},
            {"id": "say", "type": "text", "text": "Ваш токен: {{saved}}", "next": "call"},
            {
                "id": "call",
                "type": "external_request",
                "method": "POST",
                "url": f"{api}/bot{TELEGRAM}/check?word={{{{client_message}}}}",
                "headers": {"X-Token": "{{saved}}"},
                "body": {"t": "{{saved}}"},
                "timeout_s": 5,
                "save": {"seen": "seen"},
                "next": "op",
            },
            {"id": "op", "type": "transfer", "text": "Перевожу, {{seen}}"},
        ],
    }


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The agent's own API: records what it was sent, answers 500 (so its url gets logged)."""
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append({"headers": dict(request.headers), "body": await request.json()})
        return web.json_response({"seen": "ok"}, status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), seen
    await server.close()


@pytest.fixture
async def hostile(
    settings: Settings,
    broker: object,
    db: Any,
    sandbox: tuple[SandboxState, str],
    api: tuple[str, list[dict[str, Any]]],
) -> AsyncIterator[tuple[SandboxState, str, dict[str, Any]]]:
    state, url = sandbox
    async with running_services(settings):
        channel = await set_up_channel(settings, state, url, hostile_agent(api[0]))
        await add_rules(url, channel["webhook_url"])
        yield state, url, channel


async def test_a_catastrophic_regex_answers_at_once_and_other_chats_go_on(
    hostile: tuple[SandboxState, str, dict[str, Any]],
) -> None:
    sandbox, url, _ = hostile
    case = (await customer_says(url, "Привет"))["case_id"]
    await wait_bot_messages(sandbox, case, 1)
    await customer_says(url, "regex", case_id=case)
    await wait_bot_messages(sandbox, case, 2)
    # Python's re took 141 s on this; every chat of the process waited.
    attack, other = await asyncio.gather(
        customer_says(url, "a" * 32 + "!", case_id=case), customer_says(url, "Здравствуйте", name="Boris")
    )
    assert (await wait_bot_messages(sandbox, case, 3, timeout=5))[-1] == "Только буквы a"
    assert (await wait_bot_messages(sandbox, other["case_id"], 1, timeout=5))[0].startswith("Что проверить?")
    await customer_says(url, "aaaa", case_id=case)
    assert (await wait_bot_messages(sandbox, case, 4))[-1] == "Принято"
    assert attack["webhooks"][0]["status"] == 200


async def test_the_doubling_agent_apologises_and_transfers_once(
    hostile: tuple[SandboxState, str, dict[str, Any]], db: Any
) -> None:
    sandbox, url, _ = hostile
    case = (await customer_says(url, "Привет"))["case_id"]
    await wait_bot_messages(sandbox, case, 1)
    await customer_says(url, "double", case_id=case)

    async def transferred() -> bool:
        chat = await db.chats.find_one({"chat_id": str(case)})
        return chat is not None and chat.get("owner") == "operator" and not chat.get("pending")

    for _ in range(200):
        if await transferred():
            break
        await asyncio.sleep(0.05)  # state in MongoDB: no event to wait on
    texts = await wait_bot_messages(sandbox, case, 2)
    assert texts[1:] == ["Извините, что-то пошло не так. Перевожу вас на оператора."]
    assert await transferred()
    assert (
        await db.dead_letters.count_documents({}) == 0
        if "dead_letters" in await db.list_collection_names()
        else True
    )


async def test_the_channel_token_is_used_but_never_stored_shown_or_logged(
    hostile: tuple[SandboxState, str, dict[str, Any]],
    api: tuple[str, list[dict[str, Any]]],
    db: Any,
) -> None:
    sandbox, url, _ = hostile
    token = f"{sandbox.bot_email}:{sandbox.api_key}"
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(TextFormatter())
    omnibot_log = logging.getLogger("omnibot")
    level = omnibot_log.level
    omnibot_log.setLevel(logging.INFO)
    omnibot_log.addHandler(handler)
    try:
        case = (await customer_says(url, "Привет"))["case_id"]
        await wait_bot_messages(sandbox, case, 1)
        await customer_says(url, "token", case_id=case)
        _, seen = api
        for _ in range(200):
            if seen and len(sandbox.case(case).messages) >= 4:
                break
            await asyncio.sleep(0.05)  # the note is written by egress after the request
    finally:
        omnibot_log.removeHandler(handler)
        omnibot_log.setLevel(level)
    assert seen[0]["headers"]["X-Token"] == token  # the request authenticates with it
    assert seen[0]["body"] == {"t": token}
    shown = [m.content for m in sandbox.case(case).messages]  # replies and the operator's note
    assert any("Ваш токен: ⟪secret:channel_webhook_token:" in text for text in shown), shown
    assert not any(sandbox.api_key in text for text in shown)
    for name in await db.list_collection_names():  # chats, transcripts, outboxes, dead letters
        async for document in db[name].find({}):
            assert sandbox.api_key not in repr(document), name
    log = captured.getvalue()
    assert "external_request POST" in log
    assert TELEGRAM not in log
    assert sandbox.api_key not in log
