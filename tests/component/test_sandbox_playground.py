"""Component tests of the sandbox playground's endpoints over real HTTP: the page and its headers,
escaping, the static files, the event stream (snapshot, live change, Last-Event-ID, coalescing),
the customer's multipart upload, label toggles (rules and responsible staff), the operator's reply,
replacing the rules, and serving a case's files to the page."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from omnibot.sandbox.app import build_app
from omnibot.sandbox.playground.render import REGIONS
from omnibot.sandbox.records import MAX_FILE_BYTES
from omnibot.sandbox.state import SandboxState

Client = TestClient[Any, Any]
pytestmark = pytest.mark.timeout(30)


class Receiver:
    """Stands in for omnibot's ingress: records every webhook body."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.json_response({"ok": True})


@pytest.fixture
def state() -> SandboxState:
    tag = uuid.uuid4().hex[:8]
    return SandboxState(api_key=f"key-{tag}", bot_email=f"bot-{tag}@sandbox.local", filler_staff=3)


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[Client]:
    async with TestServer(build_app(state)) as server, TestClient[Any, Any](server) as test_client:
        yield test_client


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    async with TestServer(app) as server:
        yield target, str(server.make_url("/hook"))


async def save_rules(client: Client, url: str) -> None:
    rules = [{"webhook_url": url, "on": on} for on in ("incoming", "changed")]
    response = await client.put("/sandbox/rules", json={"rules": rules})
    assert response.status == 200, await response.text()


def customer_form(text: str, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)  # as browsers send it
    form.add_field("text", text)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


class Events:
    """Reads a server-sent event stream one event at a time."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                assert raw, "the stream ended"
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in fields:
                        return {"id": fields.get("id"), **json.loads(fields["data"])}
                    fields.clear()
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value


# --- the page ----------------------------------------------------------------------------------


async def test_page_has_the_labels_a_strict_csp_and_escapes_what_customers_write(
    client: Client, state: SandboxState
) -> None:
    await client.post(
        "/sandbox/customer-messages",
        json={"text": "<script>alert(1)</script>", "user": {"name": "<b>Eve</b>"}},
    )
    case_id = next(iter(state.cases))
    response = await client.get(f"/?case={case_id}")
    assert response.status == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = await response.text()
    for label in (
        "Incoming cases webhook",
        "Changed cases webhook",
        "Save rules",
        "New chat",
        "Customer name",
        ">Message<",
        ">Send<",
        "Attach file",
        "Operator reply",
        "Reply as operator",
        "Reset",
        "На боте",
    ):
        assert label in html, label
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Eve</b>" not in html and "&lt;b&gt;Eve&lt;/b&gt;" in html
    # No inline script or style anywhere: the CSP would block it.
    assert "<script>" not in html and "style=" not in html and "onclick" not in html
    assert state.api_key in html and str(state.bot_label_id) in html and state.bot_email in html
    assert '"chat_id": "[case_id]"' in html.replace("&#34;", '"')  # the rule body, as the seed has it
    assert state.requests == []  # the page is not Omnidesk traffic


async def test_static_files_are_served_typed_and_nothing_else(client: Client) -> None:
    js = await client.get("/sandbox/static/playground.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    css = await client.get("/sandbox/static/playground.css")
    assert css.status == 200 and css.content_type == "text/css"
    assert (await client.get("/sandbox/static/../app.py")).status == 404
    missing = await client.get("/sandbox/static/other.js")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"


async def test_an_unknown_case_in_the_page_address_is_a_new_chat_and_garbage_is_a_400(client: Client) -> None:
    assert (await client.get("/?case=999999")).status == 200
    bad = await client.get("/?case=abc")
    assert bad.status == 400 and (await bad.json())["error"] == "incorrect_case"


# --- the event stream ---------------------------------------------------------------------------


async def test_stream_starts_with_every_region_then_sends_what_changed_within_a_second(
    client: Client, state: SandboxState
) -> None:
    first = await client.post(
        "/sandbox/customer-messages", json={"text": "Добрый день", "user": {"name": "Анна"}}
    )
    case_id = (await first.json())["case_id"]
    async with client.get(f"/sandbox/events?case={case_id}") as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        events = Events(response)
        snapshot = await events.next()
        assert set(snapshot["regions"]) == set(REGIONS)
        assert snapshot["case"] == case_id and snapshot["id"].endswith(f".{state.version}")
        assert "Добрый день" in snapshot["regions"]["customer"]

        started = time.monotonic()
        reply = await client.post(f"/sandbox/cases/{case_id}/operator-messages", json={"text": "Иду <i>"})
        assert reply.status == 201
        update = await events.next()
        while "Иду" not in update["regions"].get("customer", ""):
            update = await events.next()
        assert time.monotonic() - started < 1.0
        assert "Иду &lt;i&gt;" in update["regions"]["customer"]
        assert "rules" not in update["regions"]  # unchanged regions are not sent again


async def test_reconnecting_with_the_current_event_id_gets_nothing_until_a_change(
    client: Client, state: SandboxState
) -> None:
    async with client.get("/sandbox/events") as response:
        snapshot = await Events(response).next()
    async with client.get("/sandbox/events", headers={"Last-Event-ID": snapshot["id"]}) as response:
        events = Events(response)
        with pytest.raises(TimeoutError):
            await events.next(timeout=0.3)  # up to date: no snapshot
        await client.post("/sandbox/customer-messages", json={"text": "Новое", "user": {"name": "Бо"}})
        update = await events.next()
        assert "Бо" in update["regions"]["cases"]
        assert set(update["regions"]) == set(REGIONS)  # a fresh connection sends every region once


async def test_reconnecting_with_an_old_or_foreign_event_id_gets_a_snapshot_at_once(client: Client) -> None:
    async with client.get("/sandbox/events") as response:
        old = (await Events(response).next())["id"]
    await client.post("/sandbox/customer-messages", json={"text": "Пропущено", "user": {"name": "Вера"}})
    for last in (old, "restarted.0"):
        async with client.get("/sandbox/events", headers={"Last-Event-ID": last}) as response:
            snapshot = await Events(response).next(timeout=2)
            assert "Вера" in snapshot["regions"]["cases"]


async def test_a_burst_of_changes_is_coalesced_into_one_event(client: Client, state: SandboxState) -> None:
    async with client.get("/sandbox/events") as response:
        events = Events(response)
        await events.next()
        for n in range(100):
            state.open_case(user=state.user_for(name=f"burst-{n}"), subject="x")
        update = await events.next()
        assert update["id"].endswith(f".{state.version}")  # 200 changes, one event
        assert "burst-99" in update["regions"]["cases"]


async def test_stream_ends_when_the_server_stops(state: SandboxState) -> None:
    server = TestServer(build_app(state))
    await server.start_server()
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url("/sandbox/events")) as response,
    ):
        await Events(response).next()
        started = time.monotonic()
        await server.close()
        assert await response.content.read() == b""
        assert time.monotonic() - started < 5


# --- the customer's upload ----------------------------------------------------------------------


async def test_customer_files_by_multipart_reach_the_webhook_as_the_attachment_block(
    client: Client, state: SandboxState, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    await save_rules(client, url)
    form = customer_form("Вот фото", name="Анна")
    form.add_field("file", b"\x89PNG fake", filename="фото.png", content_type="image/png")
    form.add_field("file", b"", filename="")  # an empty file input sends a nameless, empty part
    response = await client.post("/sandbox/customer-messages", data=form)
    assert response.status == 200, await response.text()
    answer = await response.json()
    case = state.case(answer["case_id"])
    message = case.messages[0]
    assert [(a.file_name, a.mime_type, a.content) for a in message.attachments] == [
        ("фото.png", "image/png", b"\x89PNG fake")
    ]
    assert state.users[case.user_id].full_name == "Анна"
    text = target.bodies[0]["message"]["text"]
    assert text == f"Вот фото\n—————\nВложенные файлы:\n{message.attachments[0].url}"

    follow_up = await client.post(
        "/sandbox/customer-messages", data=customer_form("ещё", case_id=str(case.case_id))
    )
    assert follow_up.status == 200
    assert [m.content for m in case.messages] == ["Вот фото", "ещё"]


async def test_oversized_or_empty_customer_uploads_are_refused_and_change_nothing(
    client: Client, state: SandboxState
) -> None:
    form = customer_form("big")
    form.add_field("file", io.BytesIO(b"x" * (MAX_FILE_BYTES + 1)), filename="big.bin")
    response = await client.post("/sandbox/customer-messages", data=form)
    assert response.status == 400 and (await response.json())["error"] == "file_too_large"
    empty = await client.post("/sandbox/customer-messages", data=customer_form(""))
    assert empty.status == 400 and (await empty.json())["error"] == "content_required"
    bad = await client.post("/sandbox/customer-messages", data=customer_form("x", case_id="abc"))
    assert bad.status == 400 and (await bad.json())["error"] == "incorrect_case_id"
    assert state.cases == {}


async def test_case_files_are_served_to_the_page_images_inline_the_rest_as_downloads(
    client: Client, state: SandboxState
) -> None:
    form = customer_form("файлы")
    form.add_field("file", b"\x89PNG", filename="a.png", content_type="image/png")
    form.add_field("file", b"<script>alert(1)</script>", filename="page.html", content_type="text/html")
    form.add_field("file", b"<svg onload=alert(1)>", filename="x.svg", content_type="image/svg+xml")
    await client.post("/sandbox/customer-messages", data=form)
    png, page, svg = next(iter(state.cases.values())).messages[0].attachments
    shown = await client.get(f"/sandbox/attachments/{png.url_hash}/{png.stored_name}")
    assert shown.status == 200 and shown.content_type == "image/png" and await shown.read() == b"\x89PNG"
    assert shown.headers["Content-Disposition"] == "inline"
    for risky in (page, svg):
        answer = await client.get(f"/sandbox/attachments/{risky.url_hash}/{risky.stored_name}")
        assert answer.content_type == "application/octet-stream"
        assert answer.headers["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in answer.headers["Content-Security-Policy"]
    missing = await client.get(f"/sandbox/attachments/{png.url_hash}/other.png")
    assert missing.status == 404
    assert state.requests == []  # not Omnidesk traffic


# --- labels, operator, rules --------------------------------------------------------------------


async def test_taking_the_bot_label_off_hands_the_case_to_an_operator_and_back(
    client: Client, state: SandboxState, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    await save_rules(client, url)
    case_id = (await (await client.post("/sandbox/customer-messages", json={"text": "hi"})).json())["case_id"]
    case = state.case(case_id)
    assert (case.staff_id, case.labels) == (state.bot_staff_id, [state.bot_label_id])
    fired = len(target.bodies)

    off = await client.delete(f"/sandbox/cases/{case_id}/labels/{state.bot_label_id}")
    assert off.status == 200 and (await off.json())["labels"] == []
    assert case.labels == [] and case.staff_id == state.staff_list()[0].staff_id  # the seed's rule
    assert case.staff_id != state.bot_staff_id
    again = await client.delete(f"/sandbox/cases/{case_id}/labels/{state.bot_label_id}")
    assert again.status == 200  # already off: nothing changes, nothing fires

    target.arrived.clear()
    on = await client.put(f"/sandbox/cases/{case_id}/labels/{state.bot_label_id}")
    assert on.status == 200 and [label["label_title"] for label in (await on.json())["labels"]] == ["На боте"]
    await asyncio.wait_for(target.arrived.wait(), 5)  # the changed rule fired: omnibot looks again
    assert len(target.bodies) == fired + 1 and target.bodies[-1]["chat_id"] == str(case_id)
    assert case.staff_id == state.bot_staff_id


async def test_label_toggles_refuse_unknown_cases_and_labels(client: Client, state: SandboxState) -> None:
    case_id = (await (await client.post("/sandbox/customer-messages", json={"text": "hi"})).json())["case_id"]
    assert (await client.put(f"/sandbox/cases/{case_id}/labels/1")).status == 404
    assert (await client.put(f"/sandbox/cases/{case_id}/labels/x")).status == 404
    assert (await client.put(f"/sandbox/cases/99999/labels/{state.bot_label_id}")).status == 404
    assert state.case(case_id).labels == []  # no rules: the incoming rule never ran


async def test_a_toggle_works_whatever_the_api_says_about_delete_labels(
    client: Client, state: SandboxState
) -> None:
    state.set_delete_labels_supported(False)  # an API variant; a person in the interface can still
    case_id = (await (await client.post("/sandbox/customer-messages", json={"text": "hi"})).json())["case_id"]
    await client.put(f"/sandbox/cases/{case_id}/labels/{state.bot_label_id}")
    await client.delete(f"/sandbox/cases/{case_id}/labels/{state.bot_label_id}")
    assert state.case(case_id).labels == []


async def test_operator_reply_comes_from_the_operator_not_the_bot(
    client: Client, state: SandboxState
) -> None:
    case_id = (await (await client.post("/sandbox/customer-messages", json={"text": "hi"})).json())["case_id"]
    reply = await client.post(f"/sandbox/cases/{case_id}/operator-messages", json={"text": "Здравствуйте"})
    assert reply.status == 201
    message = state.staff_messages(case_id)[-1]
    assert message.content == "Здравствуйте" and message.staff_id not in (0, state.bot_staff_id)
    assert state.case(case_id).status == "waiting"
    empty = await client.post(f"/sandbox/cases/{case_id}/operator-messages", json={"text": "  "})
    assert empty.status == 400 and (await empty.json())["error"] == "content_required"
    assert (await client.post("/sandbox/cases/99999/operator-messages", json={"text": "x"})).status == 404


async def test_operator_reply_needs_an_operator(client: Client) -> None:
    lonely = SandboxState(filler_staff=0)
    async with TestServer(build_app(lonely)) as server, TestClient[Any, Any](server) as other:
        case_id = (await (await other.post("/sandbox/customer-messages", json={"text": "hi"})).json())[
            "case_id"
        ]
        answer = await other.post(f"/sandbox/cases/{case_id}/operator-messages", json={"text": "x"})
        assert answer.status == 400 and (await answer.json())["error"] == "no_operator"


async def test_saving_rules_replaces_those_of_the_kinds_given_and_a_bad_set_changes_nothing(
    client: Client, state: SandboxState
) -> None:
    await save_rules(client, "http://127.0.0.1:1/a")
    await save_rules(client, "http://127.0.0.1:1/b")
    assert [(r.on, r.webhook_url, r.require_label) for r in state.rules] == [
        ("incoming", "http://127.0.0.1:1/b", True),
        ("changed", "http://127.0.0.1:1/b", True),
    ]
    only_changed = {
        "rules": [{"webhook_url": "http://127.0.0.1:1/c", "on": "changed", "require_label": False}]
    }
    assert (await client.put("/sandbox/rules", json=only_changed)).status == 200
    assert sorted((r.on, r.webhook_url, r.require_label) for r in state.rules) == [
        ("changed", "http://127.0.0.1:1/c", False),
        ("incoming", "http://127.0.0.1:1/b", True),  # an empty field keeps the rule
    ]
    bad = await client.put(
        "/sandbox/rules",
        json={
            "rules": [
                {"webhook_url": "http://ok/", "on": "incoming"},
                {"webhook_url": "ftp://x", "on": "changed"},
            ]
        },
    )
    assert bad.status == 400
    wrong = await client.put(
        "/sandbox/rules", json={"rules": [{"webhook_url": "http://ok/", "on": "sometimes"}]}
    )
    assert wrong.status == 400
    assert sorted(r.webhook_url for r in state.rules) == ["http://127.0.0.1:1/b", "http://127.0.0.1:1/c"]
    assert (await client.delete("/sandbox/rules")).status == 200 and state.rules == []


async def test_the_page_shows_which_url_a_rule_posts_to_but_not_its_secret(
    client: Client, state: SandboxState
) -> None:
    secret = "KqQx9fd345iK8V6Nep_Z9aH-VQ7_fqr9ETqvQuOf0AQ"
    await save_rules(client, f"http://127.0.0.1:8080/webhooks/omnidesk/1/{secret}")
    await client.post("/sandbox/customer-messages", json={"text": "hi"})
    case_id = next(iter(state.cases))
    html = await (await client.get(f"/?case={case_id}")).text()
    assert secret not in html
    assert "http://127.0.0.1:8080/webhooks/omnidesk/1/KqQx…AQ" in html
    async with client.get(f"/sandbox/events?case={case_id}") as response:
        snapshot = await Events(response).next()
    assert all(secret not in region for region in snapshot["regions"].values())


async def test_another_sites_page_cannot_drive_the_sandbox(client: Client, state: SandboxState) -> None:
    evil = {"Origin": "http://evil.example"}
    refused = await client.post("/sandbox/reset", headers=evil)
    assert refused.status == 403 and (await refused.json())["error"] == "cross_origin_request"
    refused = await client.post("/sandbox/customer-messages", json={"text": "x"}, headers=evil)
    assert refused.status == 403 and state.cases == {}
    own = {"Origin": str(client.make_url("")).rstrip("/")}
    assert (await client.post("/sandbox/customer-messages", json={"text": "x"}, headers=own)).status == 200
    assert (await client.get("/sandbox", headers=evil)).status == 200  # reading is harmless
