"""Component tests of the sandbox's Omnidesk API over real HTTP (aiohttp TestServer/TestClient):
auth, list shape and paging, replies (JSON and multipart), notes, labels, rate limit, faults."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from yarl import URL

from omnibot.sandbox.app import SANDBOX_STATE, build_app
from omnibot.sandbox.control import demo_file_bytes
from omnibot.sandbox.faults import FaultResponse
from omnibot.sandbox.records import MAX_FILE_BYTES
from omnibot.sandbox.state import SandboxState

Client = TestClient[Any, Any]


class FakeClock:
    def __init__(self, now: float = 5000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    tag = uuid.uuid4().hex[:8]
    return SandboxState(api_key=f"key-{tag}", bot_email=f"bot-{tag}@sandbox.local", clock=clock)


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[Client]:
    app = build_app(state)
    assert app[SANDBOX_STATE] is state
    async with TestServer(app) as server, TestClient(server) as test_client:
        yield test_client


def auth(state: SandboxState, email: str | None = None, api_key: str | None = None) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(email or state.bot_email, api_key or state.api_key)}


async def new_case(client: Client, text: str | None = None) -> int:
    response = await client.post(
        "/sandbox/customer-messages",
        json={
            "text": text or f"hello {uuid.uuid4().hex}",
            "user": {"email": f"{uuid.uuid4().hex}@example.com"},
        },
    )
    assert response.status == 200
    case_id: int = (await response.json())["case_id"]
    return case_id


def items(body: dict[str, Any], root: str) -> list[dict[str, Any]]:
    """The objects of an Omnidesk list body, in key order."""
    keys = sorted((k for k in body if k != "total_count"), key=int)
    assert keys == [str(n) for n in range(len(keys))]
    return [body[k][root] for k in keys]


# --- auth ---------------------------------------------------------------------------------------


async def test_wrong_or_missing_credentials_are_401_with_rate_headers(
    client: Client, state: SandboxState
) -> None:
    for headers in (
        {},
        auth(state, api_key="wrong"),
        auth(state, email="nobody@example.com"),
        {"Authorization": "Bearer x"},
    ):
        response = await client.get("/api/staff.json", headers=headers)
        assert response.status == 401
        assert await response.json() == {"error": "unauthorized"}
        assert response.headers["rate_limit_per_minute"] == "600"
        assert "api_calls_left" in response.headers


async def test_inactive_staff_is_403(client: Client, state: SandboxState) -> None:
    member = state.add_staff(email=f"{uuid.uuid4().hex}@sandbox.local", full_name="Ушёл", active=False)
    response = await client.get("/api/labels.json", headers=auth(state, email=member.email))
    assert response.status == 403
    assert await response.json() == {"error": "staff_not_active"}


# --- staff and labels ---------------------------------------------------------------------------


async def test_staff_list_is_paged_and_the_bot_is_on_page_two(client: Client, state: SandboxState) -> None:
    first = await client.get("/api/staff.json", headers=auth(state))
    assert first.status == 200
    first_body = await first.json()
    assert first_body["total_count"] == 121
    first_page = items(first_body, "staff")
    assert len(first_page) == 100
    assert state.bot_email not in {s["staff_email"] for s in first_page}

    second = await (
        await client.get("/api/staff.json", params={"page": 2, "limit": 100}, headers=auth(state))
    ).json()
    bot = next(s for s in items(second, "staff") if s["staff_email"] == state.bot_email)
    assert len(items(second, "staff")) == 21
    assert (bot["staff_id"], bot["active"]) == (state.bot_staff_id, True)
    assert {"staff_full_name", "status_id", "created_at", "updated_at"} <= set(bot)

    one = await client.get(f"/api/staff/{state.bot_staff_id}.json", headers=auth(state))
    assert (await one.json())["staff"]["staff_email"] == state.bot_email

    bad_page = await client.get("/api/staff.json", params={"limit": 101}, headers=auth(state))
    assert (bad_page.status, await bad_page.json()) == (400, {"error": "incorrect_limit"})


async def test_labels_list_and_create(client: Client, state: SandboxState) -> None:
    title = f"VIP {uuid.uuid4().hex}"
    created = await client.post(
        "/api/labels.json", json={"label": {"label_title": title}}, headers=auth(state)
    )
    assert created.status == 201
    label = (await created.json())["label"]
    listed = items(await (await client.get("/api/labels.json", headers=auth(state))).json(), "label")
    assert listed == [{"label_id": state.bot_label_id, "label_title": "На боте"}, label]
    assert label["label_title"] == title


# --- cases and messages -------------------------------------------------------------------------


async def test_get_case_and_not_found(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client)
    response = await client.get(f"/api/cases/{case_id}.json", headers=auth(state))
    case = (await response.json())["case"]
    assert (case["case_id"], case["status"], case["labels"], case["closed_at"]) == (case_id, "open", [], "-")
    for path in (f"/api/cases/{case_id + 999}.json", "/api/cases/abc.json"):
        missing = await client.get(path, headers=auth(state))
        assert (missing.status, await missing.json()) == (404, {"error": "case_not_found"})
    other = await client.get("/api/unknown.json", headers=auth(state))
    assert (other.status, await other.json()) == (404, {"error": "not_found"})
    wrong_method = await client.delete("/api/labels.json", headers=auth(state))
    assert (wrong_method.status, await wrong_method.json()) == (404, {"error": "not_found"})


async def test_post_message_as_json(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client)
    body = {
        "message": {
            "staff_id": str(state.bot_staff_id),
            "content": "Здравствуйте!",
            "content_html": "<p>Здравствуйте!</p>",
        }
    }
    response = await client.post(f"/api/cases/{case_id}/messages.json", json=body, headers=auth(state))
    assert response.status == 201
    message = (await response.json())["message"]
    assert (message["staff_id"], message["user_id"], message["note"]) == (state.bot_staff_id, 0, False)
    assert message["content"] == "Здравствуйте!"
    assert [m.content for m in state.staff_messages(case_id)] == ["Здравствуйте!"]
    assert state.case(case_id).status == "waiting"

    omitted = await client.post(
        f"/api/cases/{case_id}/messages.json", json={"message": {"content": "2"}}, headers=auth(state)
    )
    assert (await omitted.json())["message"]["staff_id"] == state.bot_staff_id

    other_staff = await client.post(
        f"/api/cases/{case_id}/messages.json",
        json={"message": {"staff_id": state.bot_staff_id - 1, "content": "x"}},
        headers=auth(state),
    )
    assert (other_staff.status, (await other_staff.json())["error"]) == (400, "incorrect_staff_id")
    empty = await client.post(
        f"/api/cases/{case_id}/messages.json", json={"message": {}}, headers=auth(state)
    )
    assert (empty.status, (await empty.json())["error"]) == (400, "content_required")
    assert len(state.staff_messages(case_id)) == 2


async def test_post_message_as_multipart_with_files(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client)
    photo, report = b"\x89PNG" + uuid.uuid4().bytes * 100, uuid.uuid4().bytes * 1000
    form = aiohttp.FormData()
    form.add_field("message[staff_id]", str(state.bot_staff_id))
    form.add_field("message[content]", "Документы во вложении")
    form.add_field("message[content_html]", "<p>Документы во вложении</p>")
    form.add_field("message[attachments][0]", photo, filename="photo.png", content_type="image/png")
    form.add_field("message[attachments][1]", report, filename="report.pdf")
    form.add_field(
        "message[attachments][2]", "строка", filename="notes.txt", content_type="text/plain; charset=utf-8"
    )
    form.add_field("attachments[0]", b"ignored", filename="wrong-field.bin")  # not Omnidesk's field name
    response = await client.post(f"/api/cases/{case_id}/messages.json", data=form, headers=auth(state))
    assert response.status == 201
    wire = (await response.json())["message"]
    assert [(a["file_name"], a["file_size"], a["mime_type"]) for a in wire["attachments"]] == [
        ("photo.png", len(photo), "image/png"),
        ("report.pdf", len(report), "application/pdf"),
        ("notes.txt", len("строка".encode()), "text/plain"),
    ]
    (stored,) = state.staff_messages(case_id)
    assert [a.sha256 for a in stored.attachments] == [
        hashlib.sha256(photo).hexdigest(),
        hashlib.sha256(report).hexdigest(),
        hashlib.sha256("строка".encode()).hexdigest(),
    ]
    assert stored.content == "Документы во вложении"

    download = await client.get(URL(wire["attachments"][0]["url"]).path)
    assert (download.status, await download.read()) == (200, photo)

    record = state.requests[-2]  # the download was recorded after the post
    assert record.form["message[content]"] == "Документы во вложении"
    assert [(f.field, f.name) for f in record.files] == [
        ("message[attachments][0]", "photo.png"),
        ("message[attachments][1]", "report.pdf"),
        ("message[attachments][2]", "notes.txt"),
        ("attachments[0]", "wrong-field.bin"),
    ]
    assert record.files[0].size == len(photo)


async def test_multipart_file_over_25_mb_is_refused(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client)
    form = aiohttp.FormData()
    form.add_field("message[content]", "big")
    form.add_field("message[attachments][0]", io.BytesIO(b"\0" * (MAX_FILE_BYTES + 1)), filename="big.bin")
    response = await client.post(f"/api/cases/{case_id}/messages.json", data=form, headers=auth(state))
    assert (response.status, await response.json()) == (400, {"error": "file_too_large"})
    assert state.staff_messages(case_id) == []


async def test_attachment_urls_are_fetched(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client)
    url = str(client.make_url("/files/contract.pdf").with_query(size=5000))
    body = {"message": {"content": "Договор", "attachment_urls": [url]}}
    response = await client.post(f"/api/cases/{case_id}/messages.json", json=body, headers=auth(state))
    assert response.status == 201
    (attachment,) = state.staff_messages(case_id)[0].attachments
    assert (attachment.file_name, attachment.file_size, attachment.mime_type) == (
        "contract.pdf",
        5000,
        "application/pdf",
    )
    assert attachment.sha256 == hashlib.sha256(demo_file_bytes("contract.pdf", 5000)).hexdigest()


async def test_note(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client)
    body = {"note": {"content": "Бот передал диалог оператору", "content_html": "<p>Бот передал</p>"}}
    response = await client.post(f"/api/cases/{case_id}/note.json", json=body, headers=auth(state))
    assert response.status == 201
    message = (await response.json())["message"]
    assert (message["note"], message["staff_id"]) == (True, state.bot_staff_id)
    assert [n.content for n in state.notes(case_id)] == ["Бот передал диалог оператору"]
    assert state.staff_messages(case_id) == []
    assert state.case(case_id).status == "open"


async def test_messages_list_order_and_paging(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client, text="c0")
    for n in range(1, 4):
        await client.post(
            f"/api/cases/{case_id}/messages.json", json={"message": {"content": f"s{n}"}}, headers=auth(state)
        )
    path = f"/api/cases/{case_id}/messages.json"
    asc = await (await client.get(path, headers=auth(state))).json()
    assert [m["content"] for m in items(asc, "message")] == ["c0", "s1", "s2", "s3"]
    assert asc["total_count"] == 4
    customer = items(asc, "message")[0]
    assert customer["user_id"] != 0 and customer["staff_id"] == 0
    desc = await (await client.get(path, params={"order": "desc", "limit": 2}, headers=auth(state))).json()
    assert [m["content"] for m in items(desc, "message")] == ["s3", "s2"]
    page2 = await (await client.get(path, params={"page": 2, "limit": 3}, headers=auth(state))).json()
    assert [m["content"] for m in items(page2, "message")] == ["s3"]


# --- labels on a case ---------------------------------------------------------------------------


async def test_delete_labels_and_the_unsupported_variant(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client)
    path, label = f"/api/cases/{case_id}.json", state.bot_label_id

    async def put(case: dict[str, Any]) -> list[int]:
        response = await client.put(path, json={"case": case}, headers=auth(state))
        assert response.status == 200
        labels: list[int] = (await response.json())["case"]["labels"]
        return labels

    assert await put({"add_labels": [str(label)]}) == [label]  # ids as strings are accepted
    assert await put({"delete_labels": [label]}) == []

    state.delete_labels_supported = False
    assert await put({"add_labels": [label]}) == [label]
    assert await put({"delete_labels": [label]}) == [label]  # silently ignored
    assert await put({"labels": []}) == []  # the fallback works
    assert await put({"status": "open", "group_id": 42, "staff_id": 0}) == []
    assert (state.case(case_id).group_id, state.case(case_id).status) == (42, "open")

    unknown = await client.put(path, json={"case": {"add_labels": [1]}}, headers=auth(state))
    assert (unknown.status, await unknown.json()) == (400, {"error": "label_not_found"})
    invalid = await client.put(path, json={"case": {"status": "sleeping"}}, headers=auth(state))
    assert (invalid.status, (await invalid.json())["error"]) == (400, "invalid_request")


# --- rate limit and faults ----------------------------------------------------------------------


async def test_429_with_retry_after_once_the_budget_is_spent(
    client: Client, state: SandboxState, clock: FakeClock
) -> None:
    state.set_rate_limit(3)
    lefts = []
    for _ in range(3):
        response = await client.get("/api/labels.json", headers=auth(state))
        assert response.status == 200
        assert response.headers["rate_limit_per_minute"] == "3"
        lefts.append(response.headers["api_calls_left"])
    assert lefts == ["2", "1", "0"]

    refused = await client.get("/api/labels.json", headers=auth(state))
    assert refused.status == 429
    assert await refused.json() == {"error": "rate_limit_exceeded"}
    assert (refused.headers["retry_after"], refused.headers["api_calls_left"]) == ("60", "0")

    clock.now += 45
    assert (await client.get("/api/labels.json", headers=auth(state))).headers["retry_after"] == "15"
    clock.now += 15
    assert (await client.get("/api/labels.json", headers=auth(state))).status == 200


async def test_fault_sequence_then_the_real_answer(client: Client, state: SandboxState) -> None:
    case_id = await new_case(client)
    fault = {
        "method": "POST",
        "path": r"^/api/cases/\d+/messages\.json$",
        "responses": [
            {"status": 502, "body": "<html>Bad Gateway</html>"},
            {"status": 503, "headers": {"retry_after": "2"}},
        ],
    }
    assert (await client.post("/sandbox/faults", json=fault)).status == 201
    path, body = f"/api/cases/{case_id}/messages.json", {"message": {"content": "once"}}
    first = await client.post(path, json=body, headers=auth(state))
    assert (first.status, await first.text()) == (502, "<html>Bad Gateway</html>")
    second = await client.post(path, json=body, headers=auth(state))
    assert (second.status, second.headers["retry_after"], await second.json()) == (
        503,
        "2",
        {"error": "sandbox_fault"},
    )
    assert "rate_limit_per_minute" in second.headers
    third = await client.post(path, json=body, headers=auth(state))
    assert third.status == 201
    assert len(state.staff_messages(case_id)) == 1
    assert [r.status for r in state.requests if r.method == "POST"] == [502, 503, 201]


async def test_after_accept_fault_stores_the_message_but_answers_502(
    client: Client, state: SandboxState
) -> None:
    case_id = await new_case(client)
    fault = {"path": "/messages.json", "responses": [{"status": 502, "after_accept": True}]}
    assert (await client.post("/sandbox/faults", json=fault)).status == 201
    response = await client.post(
        f"/api/cases/{case_id}/messages.json",
        json={"message": {"content": "lost answer"}},
        headers=auth(state),
    )
    assert response.status == 502
    assert [m.content for m in state.staff_messages(case_id)] == ["lost answer"]
    faults = await (await client.get("/sandbox/faults")).json()
    assert faults == {"faults": []}


async def test_late_answer_lets_a_client_time_out_after_the_operation(
    client: Client, state: SandboxState
) -> None:
    case_id = await new_case(client)
    fault = {"method": "POST", "path": "/messages.json", "responses": [{"delay_s": 0.5}]}
    assert (await client.post("/sandbox/faults", json=fault)).status == 201
    with pytest.raises(asyncio.TimeoutError):
        await client.post(
            f"/api/cases/{case_id}/messages.json",
            json={"message": {"content": "slow"}},
            headers=auth(state),
            timeout=aiohttp.ClientTimeout(total=0.05),
        )
    await state.wait_for(lambda s: len(s.staff_messages(case_id)) == 1, timeout=5)
    # The client left before the late answer (TestServer cancels the handler then: 499).
    await state.wait_for(lambda s: s.requests[-1].status in (201, 499), timeout=5)


async def test_request_log_redacts_credentials_and_keeps_the_body(
    client: Client, state: SandboxState
) -> None:
    case_id = await new_case(client)
    state.clear_requests()
    await client.put(
        f"/api/cases/{case_id}.json?x=1",
        json={"case": {"add_labels": [state.bot_label_id]}},
        headers=auth(state),
    )
    (record,) = state.requests
    assert (record.method, record.path, record.query, record.status) == (
        "PUT",
        f"/api/cases/{case_id}.json",
        {"x": "1"},
        200,
    )
    assert record.headers["Authorization"] == "Basic <redacted>"
    assert state.api_key not in str(record.headers)
    assert record.staff_email == state.bot_email
    assert record.json == {"case": {"add_labels": [state.bot_label_id]}}
    logged = await (await client.get("/sandbox/requests", params={"method": "put"})).json()
    assert logged["count"] == 1
    assert logged["requests"][0]["json"] == record.json


async def test_shutdown_cuts_a_scripted_delay_short(state: SandboxState) -> None:
    # AppRunner as in production: handlers are not cancelled when the client leaves.
    runner = web.AppRunner(build_app(state))
    await runner.setup()
    port = unused_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        case = state.open_case(user=state.user_for(name="Ольга"), subject="s")
        state.faults.add(
            method="POST", path="/messages.json", responses=[FaultResponse(delay_s=60, after_accept=True)]
        )
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                await session.post(
                    f"http://127.0.0.1:{port}/api/cases/{case.case_id}/messages.json",
                    json={"message": {"content": "accepted, answer lost"}},
                    headers=auth(state),
                    timeout=aiohttp.ClientTimeout(total=0.2),
                )
        await state.wait_for(lambda s: len(s.staff_messages(case.case_id)) == 1, timeout=5)
    finally:
        await asyncio.wait_for(runner.cleanup(), timeout=10)  # not the 60 s of the scripted delay
