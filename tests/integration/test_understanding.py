"""Issue 15 through the whole pipeline: free text and intents, the `llm` slot against a real
chat-completions server (fast, slow, failing, refused by the network policy), and the inactivity
timeout running once across replicas and a restart (the broker's delay tiers are the timer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from aiohttp import web

from omnibot.admin.operations import Management
from omnibot.admin.schemas import ChannelChanges
from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.shared.chats import MongoChatStore
from omnibot.shared.crypto import SecretBox
from omnibot.shared.messages import chat_key
from omnibot.shared.mongo import open_client
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.services import ServiceTask
from tests.harness import add_rules, bot_texts, customer_says, setup_channel, wait_bot_messages

MENU = "Чем помочь?\n1. Статус заказа\n2. Оператор"
TIMED_OUT = "Диалог завершён из-за отсутствия ответа"
API_KEY = "sk-test-secret-key-123"
CHANNEL_KEY = "sk-channel-own-key-456"


@dataclass
class FakeModel:
    """A chat-completions server: answers in turn from `script` ("slow", "error" or a text)."""

    script: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    slow: asyncio.Event = field(default_factory=asyncio.Event)

    async def complete(self, request: web.Request) -> web.Response:
        self.requests.append(await request.json())
        self.authorizations.append(request.headers.get("Authorization", ""))
        what = self.script.pop(0) if self.script else "ok"
        if what == "slow":
            await asyncio.wait_for(self.slow.wait(), 30)  # longer than the slot's timeout_s
        if what == "error":
            return web.json_response({"error": {"message": "overloaded", "type": "server_error"}}, status=503)
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "test-model",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": what}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26},
            }
        )


@contextlib.asynccontextmanager
async def serving_model() -> AsyncIterator[tuple[FakeModel, str]]:
    """A FakeModel on a port of its own; its base URL."""
    fake = FakeModel()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.complete)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield fake, f"http://127.0.0.1:{port}/v1"
    finally:
        fake.slow.set()
        await runner.cleanup()


@pytest.fixture
async def model() -> AsyncIterator[tuple[FakeModel, str]]:
    """The environment's language model (LLM_BASE_URL)."""
    async with serving_model() as served:
        yield served


@pytest.fixture
async def channel_model() -> AsyncIterator[tuple[FakeModel, str]]:
    """Another one, that a channel names as its own."""
    async with serving_model() as served:
        yield served


@dataclass
class Running:
    settings: Settings
    sandbox: Any
    sandbox_url: str
    services: list[ServiceTask]

    async def start_dialog(self) -> ServiceTask:
        task = ServiceTask("dialog", serve_dialog, self.settings)
        await task.wait_ready()
        self.services.append(task)
        return task


@pytest.fixture
async def running(
    settings: Settings, broker: object, db: object, sandbox: tuple[Any, str], model: tuple[FakeModel, str]
) -> AsyncIterator[Running]:
    with_model = msgspec.structs.replace(
        settings, llm_base_url=model[1], llm_api_key=API_KEY, llm_model="test-model"
    )
    services = [ServiceTask("ingress", serve_ingress, with_model)]
    for name, serve in (("dialog", serve_dialog), ("egress", serve_egress)):
        services.append(ServiceTask(name, serve, with_model))
    for service in services:
        await service.wait_ready()
    yield Running(with_model, sandbox[0], sandbox[1], services)
    for service in reversed(services):
        await service.stop()


async def _channel(running: Running, agent_file: str) -> None:
    channel = await setup_channel(
        running.settings, running.sandbox, running.sandbox_url, agent_file=agent_file
    )
    await add_rules(running.sandbox_url, channel["webhook_url"])


async def _chat_state(settings: Settings, case: int) -> dict[str, Any]:
    client = open_client(settings)
    try:
        chats = MongoChatStore(client[settings.mongodb_db])
        for channel_id in range(1, 10):
            record = await chats.load(chat_key(channel_id, str(case)))
            if record is not None:
                return dict(record.state)
    finally:
        await client.close()
    raise AssertionError("no chat record")


async def test_intent_and_free_text_menu(running: Running) -> None:
    await _channel(running, "understanding.json")
    case = (await customer_says(running.sandbox_url, "Здравствуйте, где мой заказ?"))["case_id"]
    assert await wait_bot_messages(running.sandbox, case, 2) == ["Заказ (order) в пути.", MENU]
    await customer_says(running.sandbox_url, "а когда привезут?", case_id=case)
    assert (await wait_bot_messages(running.sandbox, case, 4))[2] == "Заказ (orderСтатус заказа) в пути."
    await customer_says(running.sandbox_url, "позовите оператора", case_id=case)
    assert (await wait_bot_messages(running.sandbox, case, 5))[-1] == "Перевожу на оператора"


async def test_llm_answers_with_history_and_records_usage(
    running: Running, model: tuple[FakeModel, str]
) -> None:
    fake, _ = model
    fake.script = ["Здравствуйте! Чем могу помочь?", "Доставка — 300 ₽."]
    await _channel(running, "understanding.json")
    case = (await customer_says(running.sandbox_url, "вопрос к ассистенту"))["case_id"]
    assert await wait_bot_messages(running.sandbox, case, 1) == ["Здравствуйте! Чем могу помочь?"]
    await customer_says(running.sandbox_url, "спросить ассистента: сколько стоит доставка", case_id=case)
    assert (await wait_bot_messages(running.sandbox, case, 2))[1:] == ["Доставка — 300 ₽."]
    first, second = fake.requests
    assert first == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Ты вежливый оператор"},
            {"role": "user", "content": "вопрос к ассистенту"},
        ],
        "max_tokens": 50,
        "stream": False,
    }
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][3]["content"] == "спросить ассистента: сколько стоит доставка"
    assert second["messages"][2]["content"] == "Здравствуйте! Чем могу помочь?"
    assert fake.authorizations == [f"Bearer {API_KEY}"] * 2
    state = await _chat_state(running.settings, case)
    assert (state["llm_calls"], state["llm_tokens"]) == (2, 52)
    assert state["llm_ms"] > 0
    assert state["variables"]["ai_answer"] == "Доставка — 300 ₽."


@pytest.mark.parametrize("behaviour", ["slow", "error"])
async def test_llm_slow_or_failing_goes_to_on_error(
    running: Running, model: tuple[FakeModel, str], behaviour: str
) -> None:
    model[0].script = [behaviour]
    await _channel(running, "understanding.json")
    case = (await customer_says(running.sandbox_url, "вопрос к ассистенту"))["case_id"]
    assert await wait_bot_messages(running.sandbox, case, 2) == [
        "Ассистент не ответил.",
        "Перевожу на оператора",
    ]


async def test_llm_key_never_in_logs(
    running: Running, model: tuple[FakeModel, str], caplog: pytest.LogCaptureFixture
) -> None:
    model[0].script = ["error"]
    await _channel(running, "understanding.json")
    case = (await customer_says(running.sandbox_url, "вопрос к ассистенту"))["case_id"]
    await wait_bot_messages(running.sandbox, case, 2)
    assert "language model call failed" in caplog.text
    assert API_KEY not in caplog.text


@pytest.mark.parametrize("own_key", [CHANNEL_KEY, ""])
async def test_a_channel_with_its_own_language_model_uses_it(
    running: Running,
    model: tuple[FakeModel, str],
    channel_model: tuple[FakeModel, str],
    caplog: pytest.LogCaptureFixture,
    own_key: str,
) -> None:
    """The channel's llm_base_url, llm_model and llm_api_key (set through management) are what its
    `llm` slots use; without a key of its own the channel sends none, never LLM_API_KEY."""
    caplog.set_level(logging.DEBUG)
    environment, _ = model
    own, own_url = channel_model
    own.script = ["Отвечает модель канала."]
    channel = await setup_channel(
        running.settings, running.sandbox, running.sandbox_url, agent_file="understanding.json"
    )
    client = open_client(running.settings)
    try:
        ops = Management(
            client[running.settings.mongodb_db], SecretBox(running.settings.secret_key), running.settings
        )
        changes = ChannelChanges(llm_base_url=own_url, llm_model="channel-model", llm_api_key=own_key)
        updated = await ops.channels.update_channel(channel["id"], changes)
    finally:
        await client.close()
    assert (updated.llm_base_url, updated.llm_api_key_set) == (own_url, bool(own_key))
    await add_rules(running.sandbox_url, channel["webhook_url"])
    case = (await customer_says(running.sandbox_url, "вопрос к ассистенту"))["case_id"]
    assert await wait_bot_messages(running.sandbox, case, 1) == ["Отвечает модель канала."]
    assert environment.requests == []
    assert [r["model"] for r in own.requests] == ["channel-model"]
    assert own.authorizations == [f"Bearer {own_key}" if own_key else ""]
    assert API_KEY not in caplog.text and CHANNEL_KEY not in caplog.text


async def test_a_private_llm_url_needs_the_network_policy(
    settings: Settings, broker: object, db: object, sandbox: tuple[Any, str], model: tuple[FakeModel, str]
) -> None:
    strict = msgspec.structs.replace(
        settings, llm_base_url=model[1], llm_model="m", external_request_allow_networks=""
    )
    services = [
        ServiceTask(n, s, strict)
        for n, s in (("ingress", serve_ingress), ("dialog", serve_dialog), ("egress", serve_egress))
    ]
    for service in services:
        await service.wait_ready()
    try:
        run = Running(strict, sandbox[0], sandbox[1], services)
        await _channel(run, "understanding.json")
        case = (await customer_says(run.sandbox_url, "вопрос к ассистенту"))["case_id"]
        assert await wait_bot_messages(run.sandbox, case, 2) == [
            "Ассистент не ответил.",
            "Перевожу на оператора",
        ]
        assert model[0].requests == []
    finally:
        for service in reversed(services):
            await service.stop()


async def test_inactivity_timeout_runs_once_across_replicas_and_a_restart(running: Running) -> None:
    await running.start_dialog()  # a second replica
    await _channel(running, "understanding-timeout.json")
    case = (await customer_says(running.sandbox_url, "привет"))["case_id"]
    assert await wait_bot_messages(running.sandbox, case, 1) == [MENU]
    assert (await wait_bot_messages(running.sandbox, case, 2, timeout=15))[-1] == TIMED_OUT
    # A new session; this time every dialog replica is stopped while the timer waits in the broker.
    await customer_says(running.sandbox_url, "привет", case_id=case)
    assert (await wait_bot_messages(running.sandbox, case, 3))[-1] == MENU
    dialogs = [s for s in running.services if s.name == "dialog"]
    for dialog in dialogs:
        await dialog.stop()
        running.services.remove(dialog)
    await running.start_dialog()
    assert (await wait_bot_messages(running.sandbox, case, 4, timeout=15))[-1] == TIMED_OUT
    # The next message starts afresh and is answered; no timeout ran twice.
    await customer_says(running.sandbox_url, "когда привезут", case_id=case)
    await wait_bot_messages(running.sandbox, case, 5)
    assert bot_texts(running.sandbox, case).count(TIMED_OUT) == 2
    assert bot_texts(running.sandbox, case)[4] == MENU


async def test_no_timeout_for_a_chat_with_an_operator(running: Running) -> None:
    await _channel(running, "understanding-timeout.json")
    case = (await customer_says(running.sandbox_url, "привет"))["case_id"]
    await wait_bot_messages(running.sandbox, case, 1)
    await customer_says(running.sandbox_url, "2", case_id=case)
    assert (await wait_bot_messages(running.sandbox, case, 2))[-1] == "Перевожу на оператора"
    # The transfer made the chat the operator's: a reply from the customer stays unanswered...
    await customer_says(running.sandbox_url, "алло", case_id=case)
    # ...and, past the timeout, no on_timeout message arrives (the menu's timer went stale).
    with pytest.raises(TimeoutError):
        await wait_bot_messages(running.sandbox, case, 3, timeout=3)
