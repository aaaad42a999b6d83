"""Unit tests of the sandbox's rules: the webhook body, placeholders, which rules fire, and the
delivery order per case (with the HTTP post injected, so no timing is involved)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from omnibot.sandbox.records import Case, NewFile
from omnibot.sandbox.rules import (
    DEFAULT_WEBHOOK_BODY,
    RuleRunner,
    changed_rules,
    describe_message,
    placeholder_values,
    render_body,
)
from omnibot.sandbox.state import SandboxState

BASE = "http://sandbox.test"


def new_case(state: SandboxState, *, text: str, email: str = "", phone: str = "") -> Case:
    user = state.user_for(email=email, name="Мария Петрова", phone=phone)
    case = state.open_case(user=user, subject="subject")
    state.add_customer_message(case.case_id, text=text, files=[], base_url=BASE)
    return case


def test_default_body_is_product_md_with_placeholders_as_strings() -> None:
    state = SandboxState(filler_staff=0)
    email = f"{uuid.uuid4().hex}@example.com"
    case = new_case(state, text='Где мой заказ? "123"', email=email)
    message = case.messages[-1]
    body = render_body(DEFAULT_WEBHOOK_BODY, placeholder_values(state, case, message))
    assert body == {
        "event": "new_message",
        "message": {"kind": "text", "text": 'Где мой заказ? "123"'},
        "visitor": {
            "id": str(case.user_id),
            "fields": {"email": email, "login": str(case.user_id), "name": "Мария Петрова", "phone": ""},
        },
        "chat_id": str(case.case_id),
    }


def test_unknown_placeholders_become_empty_and_other_values_are_kept() -> None:
    values = {"case_id": "2001"}
    template = {"a": "[case_id]/[nope]", "b": [1, True, None, "[case_id]"], "[case_id]": "key kept"}
    assert render_body(template, values) == {
        "a": "2001/",
        "b": [1, True, None, "2001"],
        "[case_id]": "key kept",
    }


def test_description_lists_customer_files_like_omnidesk_chats() -> None:
    state = SandboxState(filler_staff=0)
    case = new_case(state, text="first")
    files = [
        NewFile(name="a.jpg", content=b"1", mime_type="image/jpeg"),
        NewFile(name="b.pdf", content=b"2", mime_type="application/pdf"),
    ]
    message = state.add_customer_message(case.case_id, text="Фото", files=files, base_url=BASE)
    first, second = (a.url for a in message.attachments)
    assert describe_message(message) == f"Фото\n—————\nВложенные файлы:\n{first}\n{second}"
    assert first.startswith(f"{BASE}/attachment/download/chat/")
    assert first.endswith(f"/{message.message_id}_file_0.jpg")
    assert describe_message(None) == ""


def test_changed_rules_respect_the_label_condition() -> None:
    state = SandboxState(filler_staff=0)
    strict = state.add_rule(webhook_url="http://a", on="changed", require_label=True, body={})
    loose = state.add_rule(webhook_url="http://b", on="changed", require_label=False, body={})
    state.add_rule(webhook_url="http://c", on="incoming", require_label=True, body={})
    case = new_case(state, text="x")
    assert changed_rules(state, case) == [loose]
    state.edit_case(case.case_id, add_labels=[state.bot_label_id])
    assert changed_rules(state, case) == [strict, loose]


class HeldPosts:
    """An injected webhook post that holds every delivery until released."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def __call__(self, url: str, body: Any) -> tuple[int | None, str | None]:
        self.started.append(body["n"])
        self.arrived.set()
        await self.release.wait()
        return 200, None


async def settle() -> None:
    """Let every runnable task run until it blocks (scheduling, not timing)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_webhooks_of_one_case_are_delivered_in_order_other_cases_concurrently() -> None:
    state = SandboxState(filler_staff=0)
    posts = HeldPosts()
    runner = RuleRunner(state, post=posts)
    state.add_rule(
        webhook_url="http://hook", on="changed", require_label=False, body={"n": "[case_description]"}
    )
    first, other = new_case(state, text="a-1"), new_case(state, text="b-1")

    a1 = asyncio.create_task(runner.customer_message(first, first.messages[-1], new_case=False))
    await asyncio.wait_for(posts.arrived.wait(), timeout=5)
    second_message = state.add_customer_message(first.case_id, text="a-2", files=[], base_url=BASE)
    a2 = asyncio.create_task(runner.customer_message(first, second_message, new_case=False))
    b1 = asyncio.create_task(runner.customer_message(other, other.messages[-1], new_case=False))
    await settle()
    # a-2 waits behind a-1, which is held; the other case is not held up by it.
    assert posts.started == ["a-1", "b-1"]

    posts.release.set()
    results = await asyncio.wait_for(asyncio.gather(a1, a2, b1), timeout=5)
    assert [[d.body["n"] for d in deliveries] for deliveries in results] == [["a-1"], ["a-2"], ["b-1"]]
    assert posts.started == ["a-1", "b-1", "a-2"]
    assert [d.status for d in state.webhook_deliveries] == [200, 200, 200]
    await runner.close()


async def test_incoming_rule_assigns_the_bot_and_adds_its_label_before_the_webhook() -> None:
    state = SandboxState(filler_staff=0)
    seen: list[tuple[int, list[int]]] = []

    async def post(url: str, body: Any) -> tuple[int | None, str | None]:
        case = state.case(int(body["chat_id"]))
        seen.append((case.staff_id, list(case.labels)))
        return 200, None

    runner = RuleRunner(state, post=post)
    state.add_rule(
        webhook_url="http://hook", on="incoming", require_label=True, body=dict(DEFAULT_WEBHOOK_BODY)
    )
    case = new_case(state, text="hello")
    deliveries = await runner.customer_message(case, case.messages[-1], new_case=True)
    assert [d.status for d in deliveries] == [200]
    assert seen == [(state.bot_staff_id, [state.bot_label_id])]
    await runner.close()
