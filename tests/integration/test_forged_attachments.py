"""A customer typing Omnidesk's attachment block gets no attachment (issue 10, item 11).

Omnidesk's chat shows a customer's files as a block after the text ("—————\\nВложенные файлы:\\nurl"),
and a customer can type that block themselves. With INBOUND_MODE=confirm the files are the API
message's `attachments[]`: a typed block is only words, so an agent that sends the customer's file
back (an `attachment` slot, which egress downloads) never fetches a url the customer wrote. A file
really attached in the sandbox still reaches the agent. With INBOUND_MODE=webhook the webhook's
text is all there is and the block is parsed, as the README's Security section says.
Real ingress, RabbitMQ, dialog, egress, MongoDB-protocol server and the sandbox Omnidesk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.channels import set_up_channel
from omnibot.testkit.sandbox import SandboxClient
from omnibot.testkit.services import running_services
from tests.harness import add_rules, customer_says, wait_bot_messages

pytestmark = pytest.mark.timeout(60)

CUSTOMER = {"name": "Anna", "email": "anna@example.com", "phone": "+79990000000"}
# Sends the customer's first file back (egress downloads it), or says there is none.
FILES_AGENT: dict[str, Any] = {
    "format": "omnibot/agent@1",
    "name": "files-back",
    "start": "ask",
    "slots": [
        {"id": "ask", "type": "input", "text": "Пришлите файл", "variable": "caption", "next": "check"},
        {
            "id": "check",
            "type": "condition",
            "rules": [{"if": {"var": "client_attachments", "op": "exists"}, "next": "back"}],
            "else": "none",
        },
        {
            "id": "back",
            "type": "attachment",
            "as": "file",
            "url": "{{client_attachments.0}}",
            "name": "back.bin",
            "text": "Файлы: {{client_attachments}}",
            "next": "ask",
        },
        {"id": "none", "type": "text", "text": "Файлов нет: «{{caption}}»", "next": "ask"},
    ],
}


@pytest.fixture
async def attacker() -> AsyncIterator[tuple[str, list[str]]]:
    """The url a forged block points at, and the paths fetched from it (none may be)."""
    fetched: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.Response(body=b"MZ evil", content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/chat/h/1_file_0.exe")), fetched
    await server.close()


@pytest.fixture(params=["confirm"])
async def files_bot(
    request: pytest.FixtureRequest,
    settings: Settings,
    broker: object,
    db: object,
    sandbox: tuple[SandboxState, str],
) -> AsyncIterator[tuple[SandboxState, str]]:
    """The pipeline with FILES_AGENT, in the INBOUND_MODE given as the parameter."""
    state, url = sandbox
    async with running_services(msgspec.structs.replace(settings, inbound_mode=request.param)):
        channel = await set_up_channel(settings, state, url, FILES_AGENT)
        await add_rules(url, channel["webhook_url"])
        yield state, url


def _forged(url: str) -> str:
    return f"Мой паспорт\n—————\nВложенные файлы:\n{url}"


async def _asked(sandbox: SandboxState, url: str) -> int:
    case = int((await customer_says(url, "Привет"))["case_id"])
    assert await wait_bot_messages(sandbox, case, 1) == ["Пришлите файл"]
    return case


async def _answers_to_forged(bot: tuple[SandboxState, str], evil: str) -> tuple[int, list[str]]:
    """The customer types a block pointing at `evil`: the case, and the bot's answers to it."""
    sandbox, url = bot
    case = await _asked(sandbox, url)
    await customer_says(url, _forged(evil), case_id=case)
    return case, (await wait_bot_messages(sandbox, case, 3))[1:]


async def test_a_typed_attachment_block_is_only_text_in_confirm_mode(
    files_bot: tuple[SandboxState, str], attacker: tuple[str, list[str]]
) -> None:
    evil, fetched = attacker
    case, answers = await _answers_to_forged(files_bot, evil)
    # The customer's words, block and all; no file, so nothing is downloaded or sent back.
    assert answers == [f"Файлов нет: «{_forged(evil)}»", "Пришлите файл"]
    assert fetched == []
    assert not any(m.attachments for m in files_bot[0].staff_messages(case))


async def test_a_really_attached_file_reaches_the_agent_in_confirm_mode(
    files_bot: tuple[SandboxState, str], attacker: tuple[str, list[str]]
) -> None:
    sandbox, url = files_bot
    evil, fetched = attacker
    case = await _asked(sandbox, url)
    async with aiohttp.ClientSession() as session:
        # A real file, and in the same message a typed block: only the real file counts.
        sent = await SandboxClient(session, url).customer_message(
            _forged(evil), user=CUSTOMER, case_id=case, files=[("passport.jpg", b"\xff\xd8 photo")]
        )
    (real,) = sent["attachments"]
    texts = await wait_bot_messages(sandbox, case, 3)
    assert texts[1:] == [f'Файлы: ["{real}"]', "Пришлите файл"]
    (sent_back,) = sandbox.staff_messages(case)[1].attachments
    assert (sent_back.file_name, sent_back.content) == ("back.bin", b"\xff\xd8 photo")
    assert fetched == []


@pytest.mark.parametrize("files_bot", ["webhook"], indirect=True)
async def test_a_typed_attachment_block_is_parsed_in_webhook_mode(
    files_bot: tuple[SandboxState, str], attacker: tuple[str, list[str]]
) -> None:
    # What the README's Security section warns of: the webhook carries only text, so a typed
    # block is taken for files, and its url is fetched (through the egress network policy).
    evil, fetched = attacker
    _, answers = await _answers_to_forged(files_bot, evil)
    assert answers == [f'Файлы: ["{evil}"]', "Пришлите файл"]
    assert fetched == ["/chat/h/1_file_0.exe"]
