"""Component tests of the sandbox's control API over real HTTP: the customer firing rules at a tiny
aiohttp receiver (exact body), label-driven "changed" rules, customer files, the wait endpoint,
staff and rate-limit control, request log, reset, and the demo files."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from yarl import URL

from omnibot.sandbox.app import build_app, run_sandbox
from omnibot.sandbox.control import demo_file_bytes
from omnibot.sandbox.state import SandboxState

Client = TestClient[Any, Any]


class Receiver:
    """Stands in for omnibot's ingress: records every webhook body."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.content_types: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        self.bodies.append(await request.json())
        return web.json_response({"ok": True})


@pytest.fixture
def state() -> SandboxState:
    tag = uuid.uuid4().hex[:8]
    return SandboxState(api_key=f"key-{tag}", bot_email=f"bot-{tag}@sandbox.local", filler_staff=5)


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[Client]:
    async with TestServer(build_app(state)) as server, TestClient(server) as test_client:
        yield test_client


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{secret}", target.handle)
    async with TestServer(app) as server:
        yield target, str(server.make_url(f"/hook/{uuid.uuid4().hex}"))


def auth(state: SandboxState) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(state.bot_email, state.api_key)}


async def add_rule(client: Client, url: str, on: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/sandbox/rules", json={"webhook_url": url, "on": on, **extra})
    assert response.status == 201
    rule: dict[str, Any] = (await response.json())["rule"]
    return rule


async def customer_says(client: Client, text: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/sandbox/customer-messages", json={"text": text, **extra})
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


# --- rules --------------------------------------------------------------------------------------


async def test_new_case_fires_the_incoming_rule_with_the_exact_body(
    client: Client, state: SandboxState, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    await add_rule(client, url, "incoming")
    email, text = f"{uuid.uuid4().hex}@example.com", f'Где заказ "{uuid.uuid4().hex}"?'
    answer = await customer_says(client, text, user={"email": email, "name": "Анна", "phone": "+79990001122"})

    case_id, user_id = answer["case_id"], answer["user_id"]
    assert answer["webhooks"] == [{"url": url, "status": 200, "error": None}]
    assert target.content_types == ["application/json"]
    assert target.bodies == [
        {
            "event": "new_message",
            "message": {"kind": "text", "text": text},
            "visitor": {
                "id": str(user_id),
                "fields": {"email": email, "login": str(user_id), "name": "Анна", "phone": "+79990001122"},
            },
            "chat_id": str(case_id),
        }
    ]
    case = state.case(case_id)
    assert (case.staff_id, case.labels, case.status) == (state.bot_staff_id, [state.bot_label_id], "open")
    assert state.webhook_deliveries[-1].body == target.bodies[0]


async def test_changed_rule_follows_the_bot_label(
    client: Client, state: SandboxState, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    await add_rule(client, url, "incoming")
    await add_rule(client, url, "changed")
    case_id = (await customer_says(client, "first"))["case_id"]
    assert len((await customer_says(client, "second", case_id=case_id))["webhooks"]) == 1
    assert target.bodies[-1]["message"]["text"] == "second"

    # The bot hands over: label removed, so neither the label change nor the next message fires.
    put = await client.put(
        f"/api/cases/{case_id}.json",
        json={"case": {"delete_labels": [state.bot_label_id]}},
        headers=auth(state),
    )
    assert put.status == 200
    assert (await customer_says(client, "third", case_id=case_id))["webhooks"] == []
    assert len(state.webhook_deliveries) == 2

    # Handed back: the label change itself fires (in the background), with the latest customer text.
    put = await client.put(
        f"/api/cases/{case_id}.json", json={"case": {"add_labels": [state.bot_label_id]}}, headers=auth(state)
    )
    assert put.status == 200
    await state.wait_for(lambda s: len(s.webhook_deliveries) == 3, timeout=5)
    assert target.bodies[-1]["message"]["text"] == "third"
    assert target.bodies[-1]["chat_id"] == str(case_id)


async def test_custom_body_and_rules_without_the_label_condition(
    client: Client, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    template = {"chat": "[case_id]", "who": "[user_full_name]", "what": "[case_description]", "x": "[nope]"}
    await add_rule(client, url, "changed", require_label=False, body=template)
    case_id = (await customer_says(client, "one", user={"name": "Пётр"}))["case_id"]  # no incoming rule
    assert target.bodies == []
    await customer_says(client, "two", case_id=case_id)
    assert target.bodies == [{"chat": str(case_id), "who": "Пётр", "what": "two", "x": ""}]
    rules = await (await client.get("/sandbox/rules")).json()
    assert [r["body"] for r in rules["rules"]] == [template]


async def test_customer_files_are_listed_in_the_text_and_downloadable(
    client: Client, state: SandboxState, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    await add_rule(client, url, "incoming")
    photo = uuid.uuid4().bytes * 50
    files = [{"name": "photo.jpg", "content_base64": base64.b64encode(photo).decode()}]
    answer = await customer_says(client, "Смотрите", files=files)
    (file_url,) = answer["attachments"]

    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/attachment/download/chat/[0-9a-f]{32}/\d+_file_0\.jpg", file_url
    )
    assert target.bodies[0]["message"]["text"] == f"Смотрите\n—————\nВложенные файлы:\n{file_url}"
    download = await client.get(URL(file_url).path)
    assert (download.status, download.content_type, await download.read()) == (200, "image/jpeg", photo)

    (message,) = state.customer_messages(answer["case_id"])
    assert message.attachments[0].sha256 == hashlib.sha256(photo).hexdigest()
    api_view = await client.get(f"/api/cases/{answer['case_id']}/messages.json", headers=auth(state))
    wire = (await api_view.json())["0"]["message"]
    assert wire["attachments"][0]["url"] == file_url


async def test_an_unreachable_webhook_is_recorded_not_fatal(client: Client, state: SandboxState) -> None:
    async with TestServer(web.Application()) as gone:
        url = str(gone.make_url("/hook"))
    await add_rule(client, url, "incoming")
    answer = await customer_says(client, "hello?")
    (webhook,) = answer["webhooks"]
    assert webhook["status"] is None and webhook["error"]
    deliveries = await (await client.get("/sandbox/webhooks")).json()
    assert deliveries["deliveries"][0]["case_id"] == answer["case_id"]


# --- reading and waiting ------------------------------------------------------------------------


async def test_wait_returns_once_the_bot_has_answered(client: Client, state: SandboxState) -> None:
    case_id = (await customer_says(client, "hi"))["case_id"]
    waiting = asyncio.create_task(
        client.get(f"/sandbox/cases/{case_id}/wait", params={"staff_messages": 1, "notes": 1, "timeout": 10})
    )
    reply = await client.post(
        f"/api/cases/{case_id}/messages.json",
        json={"message": {"content": "Здравствуйте"}},
        headers=auth(state),
    )
    assert reply.status == 201
    note = await client.post(
        f"/api/cases/{case_id}/note.json", json={"note": {"content": "summary"}}, headers=auth(state)
    )
    assert note.status == 201
    response = await asyncio.wait_for(waiting, timeout=10)
    assert response.status == 200
    detail = await response.json()
    assert [m["content"] for m in detail["messages"]] == ["hi", "Здравствуйте"]
    assert [n["content"] for n in detail["notes"]] == ["summary"]
    assert detail["case"]["status"] == "waiting"

    seen = await (await client.get(f"/sandbox/cases/{case_id}")).json()
    assert seen["case"]["case_id"] == case_id


async def test_wait_times_out_with_408(client: Client) -> None:
    case_id = (await customer_says(client, "anyone?"))["case_id"]
    response = await client.get(f"/sandbox/cases/{case_id}/wait", params={"notes": 1, "timeout": 0.05})
    assert response.status == 408
    assert (await response.json())["error"] == "timeout"
    missing = await client.get(f"/sandbox/cases/{case_id + 1000}/wait")
    assert (missing.status, await missing.json()) == (404, {"error": "case_not_found"})


# --- control of the account ---------------------------------------------------------------------


async def test_staff_can_be_added_and_deactivated(client: Client, state: SandboxState) -> None:
    email = f"{uuid.uuid4().hex}@sandbox.local"
    created = await client.post(
        "/sandbox/staff", json={"email": email, "full_name": "Оператор", "active": True}
    )
    assert created.status == 201
    staff_id = (await created.json())["staff"]["staff_id"]
    headers = {"Authorization": aiohttp.encode_basic_auth(email, state.api_key)}
    assert (await client.get("/api/labels.json", headers=headers)).status == 200
    assert (await client.put(f"/sandbox/staff/{staff_id}", json={"active": False})).status == 200
    refused = await client.get("/api/labels.json", headers=headers)
    assert (refused.status, await refused.json()) == (403, {"error": "staff_not_active"})
    duplicate = await client.post("/sandbox/staff", json={"email": email})
    assert (duplicate.status, (await duplicate.json())["error"]) == (400, "email_already_exist")


async def test_rate_limit_and_settings_are_controllable(client: Client, state: SandboxState) -> None:
    assert (await client.post("/sandbox/rate-limit", json={"per_minute": 1})).status == 200
    assert (await client.get("/api/labels.json", headers=auth(state))).status == 200
    refused = await client.get("/api/labels.json", headers=auth(state))
    assert refused.status == 429
    assert int(refused.headers["retry_after"]) > 0
    assert (await client.post("/sandbox/rate-limit", json={"per_minute": 0})).status == 400

    settings = await client.post("/sandbox/settings", json={"delete_labels_supported": False})
    assert await settings.json() == {"delete_labels_supported": False}
    assert state.delete_labels_supported is False


async def test_bad_control_input_is_a_clear_4xx(client: Client) -> None:
    bad = [
        ("/sandbox/rules", {"webhook_url": "ftp://x", "on": "incoming"}),
        ("/sandbox/rules", {"webhook_url": "http://x", "on": "sometimes"}),
        ("/sandbox/faults", {"path": "(", "responses": [{"status": 500}]}),
        ("/sandbox/faults", {"path": "x", "responses": []}),
        ("/sandbox/customer-messages", {"text": ""}),
        ("/sandbox/customer-messages", {"text": "x", "case_id": "not a number"}),
        ("/sandbox/customer-messages", {"text": "x", "files": [{"name": "a", "content_base64": "!!"}]}),
    ]
    for path, body in bad:
        response = await client.post(path, json=body)
        assert response.status == 400, (path, body)
        assert "error" in await response.json()
    unknown = await client.get("/sandbox/nothing-here")
    assert (unknown.status, await unknown.json()) == (404, {"error": "not_found"})


async def test_request_log_and_reset(client: Client, state: SandboxState) -> None:
    case_id = (await customer_says(client, "x"))["case_id"]
    await client.get(f"/api/cases/{case_id}.json", headers=auth(state))
    log = await (await client.get("/sandbox/requests", params={"path": r"^/api/cases/"})).json()
    assert [(r["method"], r["status"], r["staff_email"]) for r in log["requests"]] == [
        ("GET", 200, state.bot_email)
    ]
    assert (await client.delete("/sandbox/requests")).status == 200
    assert state.requests == []

    bot_id = state.bot_staff_id
    info = await (await client.get("/sandbox")).json()
    assert (info["bot_email"], info["bot_staff_id"], info["api_key"]) == (
        state.bot_email,
        bot_id,
        state.api_key,
    )
    assert (await client.post("/sandbox/reset")).status == 200
    assert state.cases == {}
    assert state.bot_staff_id == bot_id
    gone = await client.get(f"/api/cases/{case_id}.json", headers=auth(state))
    assert gone.status == 404


async def test_demo_files_have_the_asked_size_and_type(client: Client, state: SandboxState) -> None:
    name = f"{uuid.uuid4().hex}.pdf"
    response = await client.get(f"/files/{name}", params={"size": 70_000})
    body = await response.read()
    assert (response.status, response.content_type, len(body)) == (200, "application/pdf", 70_000)
    assert body == demo_file_bytes(name, 70_000)
    assert (await client.get("/files/a.bin", params={"size": -1})).status == 400
    assert state.requests[0].path == f"/files/{name}"  # downloads are logged like API calls


class _SignalOnLog(logging.Handler):
    def __init__(self, event: asyncio.Event) -> None:
        super().__init__(logging.INFO)
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


async def test_run_sandbox_serves_until_cancelled(state: SandboxState) -> None:
    started = asyncio.Event()
    logger = logging.getLogger("omnibot.sandbox.app")
    handler, previous_level = _SignalOnLog(started), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    port = unused_port()
    serving = asyncio.create_task(run_sandbox("127.0.0.1", port, state))
    try:
        await asyncio.wait_for(started.wait(), timeout=10)  # logged once the port is bound
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/sandbox") as response,
        ):
            info = await response.json()
        assert (response.status, info["bot_staff_id"]) == (200, state.bot_staff_id)
        assert info["omnidesk_domain"] == f"http://127.0.0.1:{port}"
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    assert serving.cancelled()
