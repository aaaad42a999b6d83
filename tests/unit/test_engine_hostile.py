"""Hostile agents and customers against the engine (issue 10): regexes, output size, secrets."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from omnibot.agents.agent import load_agent
from omnibot.agents.engine import (
    CallExternal,
    ChatState,
    CustomerMessage,
    ExternalResult,
    Reply,
    Transfer,
    step,
)
from omnibot.agents.limits import MAX_STATE_BYTES
from tests.unit.test_engine import APOLOGY, CTX, NOW, RUNTIME, Chat, make_agent

TOKEN = str(RUNTIME["channel_webhook_token"])
API_KEY = TOKEN.split(":")[1]


def test_a_catastrophic_pattern_on_a_33_character_reply_returns_at_once() -> None:
    agent = make_agent(
        {
            "id": "ask",
            "type": "input",
            "variable": "a",
            "pattern": "^(a+)+$",
            "retry_text": "again",
            "next": "ok",
        },
        {"id": "ok", "type": "end", "text": "ok"},
    )
    chat = Chat(agent)
    chat.send("hi")
    started = time.perf_counter()
    effects = chat.send("a" * 32 + "!")  # Python's re: 141 s; RE2: microseconds
    assert time.perf_counter() - started < 0.5
    assert effects == [Reply("again")]
    assert chat.send("a" * 5000)[0] == Reply("ok")


def test_a_customer_cannot_write_the_pattern_of_a_literal_condition() -> None:
    agent = make_agent(
        {"id": "ask", "type": "input", "variable": "p", "next": "check"},
        {
            "id": "check",
            "type": "condition",
            "rules": [{"if": {"var": "probe", "op": "matches", "value": "{{p}}"}, "next": "yes"}],
            "else": "no",
        },
        {"id": "yes", "type": "end", "text": "yes"},
        {"id": "no", "type": "end", "text": "no"},
        variables={"probe": "a" * 32 + "!"},
    )
    for typed in ("(a+)+$", "(", "a"):
        chat = Chat(agent)
        chat.send("hi")
        assert chat.send(typed)[0] == Reply("no"), typed  # `{{p}}` is not rendered: no apology


def test_a_templated_pattern_needs_the_opt_in_and_runs_under_re2() -> None:
    agent = make_agent(
        {"id": "ask", "type": "input", "variable": "p", "next": "check"},
        {
            "id": "check",
            "type": "condition",
            "rules": [
                {"if": {"var": "probe", "op": "matches", "value": "{{p}}", "template": True}, "next": "yes"}
            ],
            "else": "no",
        },
        {"id": "yes", "type": "end", "text": "yes"},
        {"id": "no", "type": "end", "text": "no"},
        variables={"probe": "a" * 32 + "!"},
    )
    for typed, answer in (("(a+)+$", "no"), ("(", "no"), ("^a+!$", "yes")):
        chat = Chat(agent)
        chat.send("hi")
        started = time.perf_counter()
        assert chat.send(typed)[0] == Reply(answer), typed
        assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("slot", "where"),
    [
        (
            {
                "id": "ask",
                "type": "input",
                "variable": "a",
                "pattern": "(a)\\1",
                "retry_text": "x",
                "next": "e",
            },
            "backreferences",
        ),
        (
            {
                "id": "ask",
                "type": "input",
                "variable": "a",
                "pattern": "(?=a)",
                "retry_text": "x",
                "next": "e",
            },
            "lookahead",
        ),
        (
            {
                "id": "ask",
                "type": "input",
                "variable": "a",
                "pattern": "a" * 1001,
                "retry_text": "x",
                "next": "e",
            },
            "longer than",
        ),
        (
            {
                "id": "ask",
                "type": "condition",
                "rules": [
                    {
                        "if": {"var": "v", "op": "matches", "value": "\\w{1000}\\d{1000}[a-f]{1000}"},
                        "next": "e",
                    }
                ],
                "else": "e",
            },
            "too large",
        ),
    ],
)
def test_patterns_re2_cannot_run_or_too_large_are_refused_at_import_with_the_slot(
    slot: dict[str, Any], where: str
) -> None:
    document = {
        "format": "omnibot/agent@1",
        "name": "a",
        "variables": {},
        "start": "ask",
        "slots": [slot, {"id": "e", "type": "end", "text": "e"}],
    }
    with pytest.raises(ValueError, match="bad regex") as refused:
        load_agent(document)
    assert "ask" in str(refused.value)
    assert where in str(refused.value)


def test_a_literal_pattern_with_braces_is_accepted_with_a_warning() -> None:
    _, warnings = load_agent(
        {
            "format": "omnibot/agent@1",
            "name": "a",
            "variables": {},
            "start": "c",
            "slots": [
                {
                    "id": "c",
                    "type": "condition",
                    "rules": [{"if": {"var": "v", "op": "matches", "value": "{{p}}"}, "next": "e"}],
                    "else": "e",
                },
                {"id": "e", "type": "end", "text": "e"},
            ],
        }
    )
    assert any("template" in str(w) for w in warnings)


def doubling_agent(times: int = 14) -> Any:
    slots: list[dict[str, Any]] = [
        {"id": f"d{i}", "type": "memory", "set": {"x": "{{x}}{{x}}"}, "next": f"d{i + 1}"}
        for i in range(times)
    ]
    slots.append({"id": f"d{times}", "type": "text", "text": "{{x}}", "next": "wait"})
    slots.append({"id": "wait", "type": "input", "variable": "y", "next": "d0"})
    return make_agent(
        {"id": "hi", "type": "text", "text": "hi", "next": "d0"}, *slots, variables={"x": "a" * 1024}
    )


def test_the_doubling_agent_fails_once_with_the_apology_and_a_transfer() -> None:
    chat = Chat(doubling_agent())
    effects = chat.send("hello")
    assert effects[0] == Reply(APOLOGY)
    assert isinstance(effects[1], Transfer) and effects[1].reason == "error"
    assert "slot 'd7'" in effects[1].detail  # 1 KiB doubled 8 times is over the bound
    assert len(effects) == 2  # nothing of the failed turn, the apology once
    stored = msgspec.json.encode(chat.stored)
    assert len(stored) < MAX_STATE_BYTES
    assert chat.state.slot is None


def test_many_variables_under_the_bound_each_still_bound_the_state() -> None:
    big = "b" * (200 * 1024)
    agent = make_agent(
        {"id": "m", "type": "memory", "set": {f"v{i}": big for i in range(8)}, "next": "e"},
        {"id": "e", "type": "input", "variable": "z", "next": "m"},
    )
    effects = Chat(agent).send("hi")
    assert effects[0] == Reply(APOLOGY)
    assert "variables would take" in effects[1].detail  # type: ignore[union-attr]


def token_agent(url: str = "https://shop.example/bot{{saved}}/x") -> Any:
    return make_agent(
        {
            "id": "copy",
            "type": "memory",
            "set": {"saved": "{{channel_webhook_token}}", "key_only": "k={{channel_webhook_token}}"},
            "next": "say",
        },
        {"id": "say", "type": "text", "text": "token: {{saved}}", "next": "wait"},
        {"id": "wait", "type": "input", "variable": "y", "next": "call"},
        {
            "id": "call",
            "type": "external_request",
            "method": "POST",
            "url": url,
            "headers": {"X-Token": "{{saved}}"},
            "body": {"t": "{{saved}}"},
            "timeout_s": 5,
            "save": {"echo": "echo"},
            "next": "bye",
        },
        {"id": "bye", "type": "transfer", "text": "bye {{echo}}"},
    )


def test_a_copied_token_is_never_stored_or_shown_but_still_sent() -> None:
    chat = Chat(token_agent())
    said = chat.send("hi")
    assert API_KEY not in repr(said)  # what the customer would see
    assert API_KEY not in repr(chat.stored)  # what MongoDB, `chat show` and the admin API get
    assert "⟪secret:channel_webhook_token:" in repr(chat.stored)
    effects = chat.send("next turn")  # the variable comes back from storage...
    call = next(e for e in effects if isinstance(e, CallExternal))
    assert call.headers == {"X-Token": TOKEN}  # ...and the request still authenticates
    assert call.body == {"t": TOKEN}
    assert API_KEY in call.url
    assert API_KEY not in repr(chat.stored)
    result = ExternalResult(request_id=call.request_id, status=200, body={"echo": TOKEN})
    effects = chat.send(result)
    assert API_KEY not in repr(effects)  # the reply and the operator's transfer
    assert API_KEY not in repr(chat.stored)


def test_a_customer_typing_a_marker_gets_nothing() -> None:
    agent = make_agent(
        {"id": "ask", "type": "input", "variable": "said", "next": "call"},
        {
            "id": "call",
            "type": "external_request",
            "method": "GET",
            "url": "https://x.example/{{said}}",
            "headers": {},
            "timeout_s": 5,
            "next": "e",
        },
        {"id": "e", "type": "end"},
    )
    chat = Chat(agent)
    chat.send("hi")
    effects = chat.send("⟪secret:channel_webhook_token:000000000000⟫")
    call = next(e for e in effects if isinstance(e, CallExternal))
    assert API_KEY not in call.url


def test_confirmed_attachments_come_from_the_api_not_from_typed_text() -> None:
    agent = make_agent(
        {"id": "ask", "type": "input", "variable": "files", "next": "say"},
        {"id": "say", "type": "end", "text": "{{client_attachments}}"},
    )
    forged = "смотрите\n—————\nВложенные файлы:\nhttps://evil.example/x.exe"
    state, _ = step(agent, None, CustomerMessage(text="hi", attachments=[]), NOW, CTX)
    _, effects = step(agent, state, CustomerMessage(text=forged, attachments=[]), NOW, CTX)
    assert effects[0] == Reply("[]")
    real = forged + "\n—————\nВложенные файлы:\nhttps://x.omnidesk.ru/attachment/download/chat/a/1_file_0.jpg"
    urls = ["https://x.omnidesk.ru/attachment/download/chat/a/1_file_0.jpg"]
    state, _ = step(agent, None, CustomerMessage(text="hi", attachments=[]), NOW, CTX)
    _, effects = step(agent, state, CustomerMessage(text=real, attachments=urls), NOW, CTX)
    assert effects[0] == Reply('["https://x.omnidesk.ru/attachment/download/chat/a/1_file_0.jpg"]')
    assert isinstance(ChatState(), ChatState)
