"""The dialog engine: every slot type, sessions, external requests, and never hanging a chat."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from omnibot.agents.agent import (
    Agent,
    AttachmentSlot,
    Button,
    ConditionSlot,
    EndSlot,
    InputSlot,
    JumpSlot,
    Rule,
    TextSlot,
    load_agent,
)
from omnibot.agents.chat_text import match_button, parse_client_message, render_menu
from omnibot.agents.engine import (
    CallExternal,
    ChatState,
    CustomerMessage,
    Effect,
    Event,
    ExternalResult,
    Reply,
    SendFile,
    SessionEnded,
    Transfer,
    TurnContext,
    step,
)

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
APOLOGY = TurnContext(runtime={}).apology_text
RUNTIME = {
    "chat_id": "9001",
    "channel_id": 7,
    "agent_name": "support-demo",
    "channel_webhook_url": "https://test-ru.omnidesk.ru",
    "channel_webhook_token": "bot@example.com:SECRET",
    "channel_visitor_id": "u1",
    "channel_visitor_email": "ivan@example.com",
    "channel_visitor_name": "Иван",
    "channel_visitor_phone": "+7 900",
    "channel_visitor_login": "u1",
}
CTX = TurnContext(runtime=RUNTIME)
DEMO = Path(__file__).parent.parent / "fixtures" / "agents" / "support-demo.json"
FILES = (
    "\n—————\nВложенные файлы:\n"
    "https://glilya.omnidesk.ru/attachment/download/chat/b0bde02aff7ea6c28152cd9fe14fd0d9/24629614_file_0.jpg\n"
    "https://glilya.omnidesk.ru/attachment/download/chat/b0bde02aff7ea6c28152cd9fe14fd0d9/24629615_file_1.pdf"
)
URLS = [
    "https://glilya.omnidesk.ru/attachment/download/chat/b0bde02aff7ea6c28152cd9fe14fd0d9/24629614_file_0.jpg",
    "https://glilya.omnidesk.ru/attachment/download/chat/b0bde02aff7ea6c28152cd9fe14fd0d9/24629615_file_1.pdf",
]


def make_agent(
    *slots: dict[str, Any], start: str | None = None, variables: dict[str, Any] | None = None
) -> Agent:
    agent, _ = load_agent(
        {
            "format": "omnibot/agent@1",
            "name": "test-agent",
            "variables": variables or {},
            "start": start or slots[0]["id"],
            "slots": list(slots),
        }
    )
    return agent


def demo() -> Agent:
    return load_agent(DEMO.read_bytes())[0]


class Chat:
    """A chat driven through `step`, persisting the state the way the service does (as builtins)."""

    def __init__(self, agent: Agent, ctx: TurnContext = CTX) -> None:
        self.agent, self.ctx = agent, ctx
        self.stored: dict[str, Any] | None = None

    @property
    def state(self) -> ChatState:
        assert self.stored is not None
        return msgspec.convert(self.stored, ChatState)

    def send(self, event: Event | str) -> list[Effect]:
        if isinstance(event, str):
            event = CustomerMessage(text=event)
        state = None if self.stored is None else msgspec.convert(self.stored, ChatState)
        new_state, effects = step(self.agent, state, event, NOW, self.ctx)
        self.stored = msgspec.to_builtins(new_state)
        return effects

    def say(self, text: str) -> list[str]:
        """Send a customer message; the texts of the replies."""
        return [e.text for e in self.send(text) if isinstance(e, Reply)]


# -- sessions ---------------------------------------------------------------------------------------


def test_the_first_message_starts_a_session_and_answers_nothing() -> None:
    agent = make_agent(
        {
            "id": "menu",
            "type": "button_menu",
            "text": "Чем помочь?",
            "buttons": [{"title": "A", "next": "a"}],
        },
        {"id": "a", "type": "end", "text": "chose A"},
        variables={"counter": 1, "tags": ["x"]},
    )
    chat = Chat(agent)
    assert chat.send("1") == [Reply("Чем помочь?\n1. A")]  # "1" opened the session: not a choice
    state = chat.state
    assert (state.slot, state.waiting, state.sessions) == ("menu", "reply", 1)
    assert state.variables == {"counter": 1, "tags": ["x"], "client_message": "1", "client_attachments": []}
    assert chat.send("1") == [Reply("chose A"), SessionEnded()]


def test_end_then_the_next_message_restarts_at_start_with_fresh_variables() -> None:
    agent = make_agent(
        {"id": "ask", "type": "input", "text": "Имя?", "variable": "name", "next": "bye"},
        {"id": "bye", "type": "end", "text": "Пока, {{name}}"},
        variables={"name": "гость"},
    )
    chat = Chat(agent)
    assert chat.say("hi") == ["Имя?"]
    assert chat.send("Оля") == [Reply("Пока, Оля"), SessionEnded()]
    assert (chat.state.slot, chat.state.waiting, chat.state.sessions) == (None, "none", 1)
    assert chat.state.variables["name"] == "Оля"  # kept until the next session starts
    assert chat.say("снова") == ["Имя?"]
    assert chat.state.sessions == 2
    assert chat.state.variables["name"] == "гость"


def test_end_without_text() -> None:
    chat = Chat(make_agent({"id": "e", "type": "end"}))
    assert chat.send("x") == [SessionEnded()]


def test_transfer_sends_its_text_and_ends_the_session() -> None:
    chat = Chat(make_agent({"id": "op", "type": "transfer", "text": "Перевожу на оператора"}))
    assert chat.send("x") == [Reply("Перевожу на оператора"), Transfer("slot", "op")]
    assert (chat.state.slot, chat.state.waiting) == (None, "none")
    chat = Chat(make_agent({"id": "op", "type": "transfer"}))
    assert chat.send("x") == [Transfer("slot", "op")]


# -- slots ------------------------------------------------------------------------------------------


def test_text_chain() -> None:
    agent = make_agent(
        {"id": "a", "type": "text", "text": "one", "next": "b"},
        {"id": "b", "type": "text", "text": "two {{missing}}", "next": "c"},
        {"id": "c", "type": "text", "text": "{{missing}}", "next": "d"},  # renders empty: not sent
        {"id": "d", "type": "end"},
    )
    assert Chat(agent).send("x") == [Reply("one"), Reply("two "), SessionEnded()]


MENU = (
    {
        "id": "menu",
        "type": "button_menu",
        "text": "Чем помочь?",
        "buttons": [{"title": "Статус заказа", "next": "status"}, {"title": "Оператор", "next": "op"}],
    },
    {"id": "status", "type": "end", "text": "status"},
    {"id": "op", "type": "end", "text": "op"},
    {"id": "sorry", "type": "end", "text": "не понял"},
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1", "status"),
        ("2", "op"),
        ("2.", "op"),
        (" 2 ", "op"),
        ("2)", "op"),
        ("оператор", "op"),
        ("  СТАТУС ЗАКАЗА ", "status"),
        ("2. Оператор", "op"),
        ("2" + FILES, "op"),  # the attachment block is not part of the answer
    ],
)
def test_menu_choice(reply: str, expected: str) -> None:
    chat = Chat(make_agent(*MENU))
    assert chat.say("hi") == ["Чем помочь?\n1. Статус заказа\n2. Оператор"]
    assert chat.say(reply) == [expected]


@pytest.mark.parametrize("reply", ["3", "0", "что?", "1. Оператор", ""])
def test_menu_fallback(reply: str) -> None:
    first, *rest = MENU
    chat = Chat(make_agent({**first, "fallback": "sorry"}, *rest))
    chat.send("hi")
    assert chat.say(reply) == ["не понял"]


def test_menu_default_fallback_shows_the_menu_again() -> None:
    chat = Chat(make_agent(*MENU))
    menu = chat.say("hi")
    assert chat.say("что?") == menu
    assert (chat.state.slot, chat.state.waiting) == ("menu", "reply")
    assert chat.say("1") == ["status"]


def test_menu_titles_and_text_are_templates() -> None:
    agent = make_agent(
        {
            "id": "m",
            "type": "button_menu",
            "text": "{{channel_visitor_name}}, выберите",
            "buttons": [{"title": "Заказ {{order}}", "next": "e"}],
        },
        {"id": "e", "type": "end", "text": "ok"},
        variables={"order": 42},
    )
    chat = Chat(agent)
    assert chat.say("hi") == ["Иван, выберите\n1. Заказ 42"]
    assert chat.say("заказ 42") == ["ok"]


def test_input_with_pattern_retries_until_it_matches() -> None:
    agent = make_agent(
        {
            "id": "ask",
            "type": "input",
            "text": "Номер заказа?",
            "variable": "order_id",
            "pattern": "^[0-9]+$",
            "retry_text": "Только цифры, пожалуйста",
            "next": "done",
        },
        {"id": "done", "type": "end", "text": "Заказ {{order_id}}"},
    )
    chat = Chat(agent)
    assert chat.say("hi") == ["Номер заказа?"]
    assert chat.say("abc") == ["Только цифры, пожалуйста"]
    assert (chat.state.slot, chat.state.waiting) == ("ask", "reply")
    assert "order_id" not in chat.state.variables
    assert chat.say("12a") == ["Только цифры, пожалуйста"]
    assert chat.say(" 12345 ") == ["Заказ 12345"]


def test_input_without_retry_text_asks_again() -> None:
    agent = make_agent(
        {
            "id": "ask",
            "type": "input",
            "text": "Да или нет?",
            "variable": "v",
            "pattern": "^(да|нет)$",
            "next": "e",
        },
        {"id": "e", "type": "end"},
    )
    chat = Chat(agent)
    chat.send("hi")
    assert chat.say("может") == ["Да или нет?"]


def test_input_without_text_or_pattern_stores_the_text_part() -> None:
    agent = make_agent(
        {"id": "ask", "type": "input", "variable": "photo_note", "next": "e"},
        {"id": "e", "type": "end", "text": "{{photo_note}} / {{client_attachments}}"},
    )
    chat = Chat(agent)
    assert chat.send("hi") == []
    assert chat.state.waiting == "reply"
    effects = chat.send("Вот фото" + FILES)
    assert effects[0] == Reply(f'Вот фото / ["{URLS[0]}","{URLS[1]}"]')
    assert chat.state.variables["photo_note"] == "Вот фото"
    assert chat.state.variables["client_attachments"] == URLS


def test_memory_sets_typed_values() -> None:
    agent = make_agent(
        {
            "id": "mem",
            "type": "memory",
            "set": {
                "bot_label_id": 123,
                "ratio": 0.5,
                "on": True,
                "nothing": None,
                "copy": "{{bot_label_id}}",
                "text": "label {{bot_label_id}} for {{channel_visitor_name}}",
                "labels": ["{{bot_label_id}}", "{{ratio}}"],
                "obj": {"chat": "{{chat_id}}", "n": "{{bot_label_id}}"},
            },
            "next": "e",
        },
        {"id": "e", "type": "end"},
    )
    chat = Chat(agent)
    chat.send("hi")
    v = chat.state.variables
    assert v["bot_label_id"] == 123
    assert v["ratio"] == 0.5
    assert v["on"] is True
    assert v["nothing"] is None
    assert v["copy"] == 123  # set earlier in the same slot, type kept
    assert v["text"] == "label 123 for Иван"
    assert v["labels"] == [123, 0.5]
    assert v["obj"] == {"chat": "9001", "n": 123}


def test_condition_takes_the_first_rule_that_holds_else_else() -> None:
    agent = make_agent(
        {"id": "ask", "type": "input", "variable": "n", "next": "c"},
        {
            "id": "c",
            "type": "condition",
            "rules": [
                {"if": {"var": "n", "op": "gt", "value": 100}, "next": "big"},
                {"if": {"var": "n", "op": "gt", "value": 10}, "next": "mid"},
                {
                    "if": {
                        "any": [{"var": "n", "op": "eq", "value": "0"}, {"not": {"var": "n", "op": "exists"}}]
                    },
                    "next": "zero",
                },
            ],
            "else": "small",
        },
        *({"id": name, "type": "end", "text": name} for name in ("big", "mid", "zero", "small")),
    )
    for answer, expected in [
        ("500", "big"),
        ("50", "mid"),
        ("0", "zero"),
        ("", "zero"),
        ("5", "small"),
        ("x", "small"),
    ]:
        chat = Chat(agent)
        chat.send("hi")
        assert chat.say(answer) == [expected], answer


def test_jump() -> None:
    agent = make_agent(
        {"id": "a", "type": "jump", "to": "c"},
        {"id": "b", "type": "text", "text": "skipped", "next": "c"},
        {"id": "c", "type": "end", "text": "here"},
    )
    assert Chat(agent).say("x") == ["here"]


def test_attachment_as_file() -> None:
    agent = make_agent(
        {
            "id": "f",
            "type": "attachment",
            "url": "https://shop.example/{{doc}}",
            "name": "Трек {{chat_id}}.pdf",
            "text": "Трек-лист для {{channel_visitor_name}}",
            "next": "g",
        },
        {"id": "g", "type": "attachment", "url": "https://shop.example/files/report.xlsx?sig=1", "next": "e"},
        {"id": "e", "type": "end"},
        variables={"doc": "track.pdf"},
    )
    assert Chat(agent).send("x") == [
        SendFile("https://shop.example/track.pdf", "Трек 9001.pdf", "Трек-лист для Иван"),
        SendFile("https://shop.example/files/report.xlsx?sig=1", "report.xlsx", ""),
        SessionEnded(),
    ]


def test_attachment_as_link() -> None:
    agent = make_agent(
        {
            "id": "l",
            "type": "attachment",
            "url": "https://x.example/a.pdf",
            "as": "link",
            "text": "Инструкция",
            "next": "m",
        },
        {"id": "m", "type": "attachment", "url": "https://x.example/b.pdf", "as": "link", "next": "e"},
        {"id": "e", "type": "end"},
    )
    assert Chat(agent).send("x") == [
        Reply("Инструкция\nhttps://x.example/a.pdf"),
        Reply("https://x.example/b.pdf"),
        SessionEnded(),
    ]


# -- external requests ------------------------------------------------------------------------------


def request_agent(**overrides: Any) -> Agent:
    return make_agent(
        {"id": "ask", "type": "input", "text": "Номер?", "variable": "order_id", "next": "call"},
        {
            "id": "call",
            "type": "external_request",
            "method": "post",
            "url": "https://shop.example/orders/{{order_id}}",
            "headers": {"X-Chat": "{{chat_id}}", "{{hdr}}": "v"},
            "auth": {"basic": "{{channel_webhook_token}}"},
            "body": {"id": "{{order_id}}", "label": ["{{label}}"], "note": "chat {{chat_id}}"},
            "timeout_s": 7,
            "delay_s": 1.5,
            "save": {"status": "order.status", "first_sku": "order.items.0.sku", "gone": "order.nope"},
            "next": "ok",
            **overrides,
        },
        {"id": "ok", "type": "end", "text": "{{status}} {{first_sku}} {{er_status}} [{{gone}}]"},
        {"id": "bad", "type": "transfer", "text": "ошибка {{er_status}}"},
        variables={"label": 55, "hdr": "X-Extra", "gone": "stale"},
    )


def test_external_request_effect_is_fully_rendered() -> None:
    chat = Chat(request_agent(on_error="bad"))
    chat.send("hi")
    effects = chat.send("12345")
    assert effects == [
        CallExternal(
            request_id="r0",
            method="POST",
            url="https://shop.example/orders/12345",
            headers={"X-Chat": "9001", "X-Extra": "v"},
            body={"id": "12345", "label": [55], "note": "chat 9001"},
            basic_auth="bot@example.com:SECRET",
            timeout_s=7.0,
            delay_s=1.5,
        )
    ]
    state = chat.state
    assert (state.slot, state.waiting, state.pending_request_id, state.request_counter) == (
        "call",
        "external",
        "r0",
        1,
    )
    assert "SECRET" not in msgspec.json.encode(chat.stored).decode()  # runtime secrets are never stored


def test_external_success_saves_paths_and_goes_to_next() -> None:
    chat = Chat(request_agent(on_error="bad"))
    chat.send("hi")
    chat.send("12345")
    body = {"order": {"status": "shipped", "items": [{"sku": "A-1"}, {"sku": "B-2"}]}}
    effects = chat.send(ExternalResult(request_id="r0", status=201, body=body))
    assert effects == [Reply("shipped A-1 201 []"), SessionEnded()]
    v = chat.state.variables
    assert (v["status"], v["first_sku"], v["er_status"]) == ("shipped", "A-1", 201)
    assert "gone" not in v  # missing path: unset, the stale value is gone
    assert chat.state.pending_request_id is None


@pytest.mark.parametrize(
    ("status", "body", "er_status"),
    [(500, {"error": "boom"}, 500), (404, None, 404), (None, None, 0), (302, "text", 302)],
)
def test_external_failure_goes_to_on_error(status: int | None, body: Any, er_status: int) -> None:
    chat = Chat(request_agent(on_error="bad"))
    chat.send("hi")
    chat.send("1")
    effects = chat.send(ExternalResult(request_id="r0", status=status, body=body, error="x"))
    assert effects == [Reply(f"ошибка {er_status}"), Transfer("slot", "bad")]
    assert chat.state.variables["er_status"] == er_status
    assert "status" not in chat.state.variables


def test_on_error_defaults_to_next() -> None:
    chat = Chat(request_agent())
    chat.send("hi")
    chat.send("1")
    effects = chat.send(ExternalResult(request_id="r0", status=None, error="timeout"))
    assert effects == [Reply("  0 []"), SessionEnded()]


def test_request_ids_count_up_across_turns_and_sessions() -> None:
    chat = Chat(request_agent())
    for n in range(3):
        chat.send("hi")
        call = chat.send(str(n))[0]
        assert isinstance(call, CallExternal)
        assert call.request_id == f"r{n}"
        chat.send(ExternalResult(request_id=call.request_id, status=200, body={}))
    assert chat.state.request_counter == 3
    assert chat.state.sessions == 3


def test_stale_or_unexpected_results_are_ignored() -> None:
    chat = Chat(request_agent())
    chat.send("hi")
    before_call = chat.stored
    assert chat.send(ExternalResult(request_id="r0", status=200)) == []  # nothing is pending
    assert chat.stored == before_call
    chat.send("1")
    pending = chat.stored
    assert chat.send(ExternalResult(request_id="r7", status=200)) == []
    assert chat.stored == pending
    assert chat.send(ExternalResult(request_id="r0", status=200, body={})) != []
    after = chat.stored
    assert chat.send(ExternalResult(request_id="r0", status=200, body={})) == []  # delivered twice
    assert chat.stored == after


def test_a_result_with_no_state_is_ignored() -> None:
    state, effects = step(request_agent(), None, ExternalResult(request_id="r0", status=200), NOW, CTX)
    assert effects == []
    assert state == ChatState()


def test_a_customer_message_while_a_request_is_pending_changes_nothing() -> None:
    chat = Chat(request_agent())
    chat.send("hi")
    chat.send("1")
    pending = chat.stored
    assert chat.send("алло?") == []
    assert chat.stored == pending
    assert chat.send(ExternalResult(request_id="r0", status=200, body={})) != []


# -- runtime variables ------------------------------------------------------------------------------


def test_runtime_variables() -> None:
    agent = make_agent(
        {
            "id": "t",
            "type": "text",
            "text": "{{chat_id}}|{{channel_id}}|{{agent_name}}|{{date}}|{{channel_webhook_url}}|"
            "{{channel_visitor_id}}|{{channel_visitor_email}}|{{channel_visitor_name}}|"
            "{{channel_visitor_phone}}|{{channel_visitor_login}}",
            "next": "m",
        },
        {"id": "m", "type": "text", "text": "{{client_message}}", "next": "a"},
        {"id": "a", "type": "text", "text": "{{client_attachments}}", "next": "e"},
        {"id": "e", "type": "end"},
    )
    raw = "Текст, отправленный с вложением" + FILES
    texts = Chat(agent).say(raw)
    assert texts[0] == (
        "9001|7|support-demo|2026-03-01|https://test-ru.omnidesk.ru|u1|ivan@example.com|Иван|+7 900|u1"
    )
    assert texts[1] == raw  # exactly as received, attachment block included
    assert texts[2] == msgspec.json.encode(URLS).decode()


def test_agent_name_defaults_to_the_agent_and_runtime_ids_cannot_be_shadowed() -> None:
    agent = make_agent(
        {
            "id": "m",
            "type": "memory",
            "set": {"chat_id": "fake", "channel_visitor_name": "Пётр"},
            "next": "t",
        },
        {
            "id": "t",
            "type": "text",
            "text": "{{agent_name}} {{chat_id}} {{channel_visitor_name}}",
            "next": "e",
        },
        {"id": "e", "type": "end"},
    )
    assert Chat(agent, TurnContext(runtime={"chat_id": "1"})).say("x") == ["test-agent 1 Пётр"]


def test_runtime_variables_are_not_persisted_but_the_last_message_is() -> None:
    agent = make_agent(
        {"id": "ask", "type": "input", "variable": "v", "next": "call"},
        {"id": "call", "type": "external_request", "url": "https://x.example", "next": "t"},
        {"id": "t", "type": "text", "text": "last: {{client_message}}", "next": "e"},
        {"id": "e", "type": "end"},
    )
    chat = Chat(agent)
    chat.send("hi")
    chat.send("ответ" + FILES)
    stored = chat.state.variables
    assert set(stored) == {"client_message", "client_attachments", "v"}
    assert chat.send(ExternalResult(request_id="r0", status=200))[0] == Reply("last: ответ" + FILES)


# -- never hang a chat ------------------------------------------------------------------------------


def test_a_jump_cycle_apologises_and_transfers() -> None:
    agent = make_agent(
        {"id": "a", "type": "text", "text": "spam", "next": "b"},
        {"id": "b", "type": "jump", "to": "a"},
    )
    chat = Chat(agent)
    effects = chat.send("x")
    assert effects[0] == Reply(APOLOGY)
    assert isinstance(effects[1], Transfer)
    assert effects[1].reason == "loop"
    assert "more than 50 slots" in effects[1].detail
    assert len(effects) == 2  # none of the 25 "spam" replies is sent
    assert (chat.state.slot, chat.state.waiting) == (None, "none")


def test_the_slot_limit_counts_slots_without_waiting() -> None:
    chain = [{"id": f"s{i}", "type": "text", "text": str(i), "next": f"s{i + 1}"} for i in range(9)]
    agent = make_agent(*chain, {"id": "s9", "type": "end"})
    ok = TurnContext(runtime={}, max_slots_per_turn=10)
    assert len(Chat(agent, ok).send("x")) == 10  # 9 replies + SessionEnded
    tight = TurnContext(runtime={}, max_slots_per_turn=9, apology_text="")
    assert Chat(agent, tight).send("x") == [Transfer("loop", "more than 9 slots without waiting (at 's9')")]


def test_a_runtime_error_apologises_and_transfers() -> None:
    # Built in code, skipping validation: a malformed condition fails at runtime.
    agent = Agent(
        name="broken",
        start="t",
        slots=[
            TextSlot(id="t", text="hello", next="c"),
            ConditionSlot(
                id="c", rules=[Rule(if_={"var": "x", "op": "like", "value": 1}, next="e")], else_="e"
            ),
            EndSlot(id="e"),
        ],
    )
    chat = Chat(agent)
    effects = chat.send("x")
    assert effects == [Reply(APOLOGY), Transfer("error", "slot 'c': ConditionError: unknown op 'like'")]
    assert chat.state.slot is None


def test_an_attachment_url_that_renders_empty_is_a_runtime_error() -> None:
    agent = make_agent(
        {"id": "f", "type": "attachment", "url": "{{nothing}}", "next": "e"},
        {"id": "e", "type": "end"},
    )
    effects = Chat(agent).send("x")
    assert effects[0] == Reply(APOLOGY)
    assert effects[1] == Transfer("error", "slot 'f': ValueError: attachment url '{{nothing}}' renders empty")


def test_a_next_that_points_nowhere_at_runtime_transfers() -> None:
    agent = Agent(name="dangling", start="t", slots=[TextSlot(id="t", text="hi", next="ghost")])
    assert Chat(agent).send("x") == [Reply(APOLOGY), Transfer("error", "slot 'ghost' does not exist")]
    agent = Agent(name="no-start", start="ghost", slots=[EndSlot(id="e")])
    assert Chat(agent).send("x")[1] == Transfer("error", "slot 'ghost' does not exist")


def test_waiting_in_a_slot_that_is_gone_transfers() -> None:
    agent = make_agent({"id": "e", "type": "end"})
    state = ChatState(slot="old-menu", waiting="reply", variables={"a": 1}, sessions=1)
    new_state, effects = step(agent, state, CustomerMessage(text="1"), NOW, CTX)
    assert effects == [Reply(APOLOGY), Transfer("error", "slot 'old-menu' does not exist")]
    assert new_state.slot is None


def test_waiting_for_a_reply_in_a_slot_that_takes_none_transfers() -> None:
    agent = make_agent({"id": "t", "type": "text", "text": "x", "next": "e"}, {"id": "e", "type": "end"})
    state = ChatState(slot="t", waiting="reply")
    _, effects = step(agent, state, CustomerMessage(text="1"), NOW, CTX)
    assert effects[1] == Transfer("error", "slot 't' (text) does not wait for a reply")


def test_an_inconsistent_state_starts_a_new_session() -> None:
    agent = make_agent({"id": "e", "type": "end", "text": "start"})
    state = ChatState(slot="e", waiting="none", sessions=4)
    new_state, effects = step(agent, state, CustomerMessage(text="x"), NOW, CTX)
    assert effects == [Reply("start"), SessionEnded()]
    assert new_state.sessions == 5


# -- purity -----------------------------------------------------------------------------------------


def script() -> list[Event]:
    return [
        CustomerMessage(text="Здравствуйте"),
        CustomerMessage(text="что?"),
        CustomerMessage(text="1"),
        CustomerMessage(text="abc"),
        CustomerMessage(text="12345" + FILES),
        ExternalResult(request_id="r0", status=200, body={"status": "pending"}),
        CustomerMessage(text="снова"),
        CustomerMessage(text="Статус заказа"),
        CustomerMessage(text="777"),
        ExternalResult(request_id="r1", status=200, body={"status": "shipped"}),
    ]


def run_script(agent: Agent) -> list[tuple[dict[str, Any], list[Effect]]]:
    state: ChatState | None = None
    out = []
    for event in script():
        before = None if state is None else msgspec.to_builtins(state)
        new_state, effects = step(agent, state, event, NOW, CTX)
        if state is not None:
            assert msgspec.to_builtins(state) == before  # the input state is never modified
        out.append((msgspec.to_builtins(new_state), effects))
        state = new_state
    return out


def test_determinism_same_inputs_same_outputs() -> None:
    assert run_script(demo()) == run_script(demo())
    assert run_script(demo()) == run_script(load_agent(DEMO.read_text(encoding="utf-8"))[0])


def test_state_and_effects_round_trip_through_json() -> None:
    for stored, effects in run_script(demo()):
        state = msgspec.convert(stored, ChatState)
        assert msgspec.convert(msgspec.to_builtins(state), ChatState) == state
        encoded = msgspec.json.encode(effects)
        assert msgspec.json.decode(encoded, type=list[Effect]) == effects  # an outbox can store them


# -- the example agent, a whole conversation --------------------------------------------------------


def test_the_product_example_conversation() -> None:
    chat = Chat(demo())
    assert chat.say("Здравствуйте") == ["Здравствуйте, Иван!", "Чем помочь?\n1. Статус заказа\n2. Оператор"]
    assert chat.say("погода?") == ["Чем помочь?\n1. Статус заказа\n2. Оператор"]  # fallback: the menu
    assert chat.say("статус заказа") == ["Номер заказа?"]
    assert chat.say("мой заказ") == ["Только цифры, пожалуйста"]
    assert chat.send("12345") == [
        CallExternal(
            request_id="r0",
            method="GET",
            url="https://shop.example/orders/12345",
            headers={},
            body=None,
            basic_auth=None,
            timeout_s=10.0,
            delay_s=0.0,
        )
    ]
    assert chat.send(ExternalResult(request_id="r0", status=200, body={"status": "shipped"})) == [
        SendFile("https://shop.example/track.pdf", "track.pdf", "Трек-лист"),
        Reply("Всего доброго!"),
        SessionEnded(),
    ]
    # A new session; this time the order is not shipped: a note, then the operator.
    assert chat.say("Ещё вопрос")[0] == "Здравствуйте, Иван!"
    chat.say("1")
    chat.send("777")
    effects = chat.send(ExternalResult(request_id="r1", status=200, body={"status": "pending"}))
    assert effects == [Reply("Перевожу на оператора"), Transfer("slot", "op")]
    assert chat.state.variables["note"] == "status pending"
    assert chat.state.sessions == 2
    # And when the shop is down, on_error leads to the operator as well.
    chat.say("hi")
    chat.say("1")
    chat.send("5")
    assert chat.send(ExternalResult(request_id="r2", status=503, error="unavailable")) == [
        Reply("Перевожу на оператора"),
        Transfer("slot", "op"),
    ]
    assert chat.state.variables["er_status"] == 503
    # The operator button.
    chat.say("hi")
    assert chat.send("2") == [Reply("Перевожу на оператора"), Transfer("slot", "op")]


def test_the_seed_operator_transfer_through_external_request() -> None:
    """The seed's way: a memory slot with bot_label_id, then a request that removes the bot label."""
    agent = make_agent(
        {"id": "init", "type": "memory", "set": {"bot_label_id": 123}, "next": "hello"},
        {
            "id": "hello",
            "type": "input",
            "text": "Опишите вопрос",
            "variable": "question",
            "next": "to_operator",
        },
        {
            "id": "to_operator",
            "type": "external_request",
            "method": "PUT",
            "url": "{{channel_webhook_url}}/api/cases/{{chat_id}}.json",
            "headers": {"Content-Type": "application/json"},
            "auth": {"basic": "{{channel_webhook_token}}"},
            "body": {"case": {"delete_labels": ["{{bot_label_id}}"]}},
            "timeout_s": 10,
            "next": "bye",
        },
        {"id": "bye", "type": "end", "text": "Оператор скоро ответит"},
    )
    chat = Chat(agent)
    assert chat.say("Текст" + FILES) == ["Опишите вопрос"]
    assert chat.state.variables["client_attachments"] == URLS
    call = chat.send("Не приходит заказ")[0]
    assert call == CallExternal(
        request_id="r0",
        method="PUT",
        url="https://test-ru.omnidesk.ru/api/cases/9001.json",
        headers={"Content-Type": "application/json"},
        body={"case": {"delete_labels": [123]}},
        basic_auth="bot@example.com:SECRET",
        timeout_s=10.0,
        delay_s=0.0,
    )
    assert chat.send(ExternalResult(request_id="r0", status=200, body={"case": {}})) == [
        Reply("Оператор скоро ответит"),
        SessionEnded(),
    ]


# -- text helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text", "urls"),
    [
        ("Привет", "Привет", []),
        ("  Привет \n", "Привет", []),
        ("Текст, отправленный с вложением" + FILES, "Текст, отправленный с вложением", URLS),
        (("Текст" + FILES).replace("\n", "\r\n"), "Текст", URLS),
        (FILES.lstrip("\n"), "", URLS),
        ("—————\nВложенные файлы:\nhttps://a.omnidesk.ru/f.jpg", "", ["https://a.omnidesk.ru/f.jpg"]),
        (
            "Строка 1\n\nСтрока 2\n\n—————\n\nВложенные файлы:\n\nhttps://a/1.jpg\n\nhttps://a/2.jpg\n\n",
            "Строка 1\n\nСтрока 2",
            ["https://a/1.jpg", "https://a/2.jpg"],
        ),
        ("Текст\nВложенные файлы:\n https://a/1.jpg ", "Текст", ["https://a/1.jpg"]),
        ("Текст\n-----\nвложенные файлы:\nhttps://a/1.jpg", "Текст", ["https://a/1.jpg"]),
        ("Вложенные файлы: у меня их нет", "Вложенные файлы: у меня их нет", []),
        ("Вложенные файлы:\nникаких", "Вложенные файлы:\nникаких", []),
        ("", "", []),
    ],
)
def test_parse_client_message(raw: str, text: str, urls: list[str]) -> None:
    assert parse_client_message(raw) == (text, urls)


def test_render_menu() -> None:
    buttons = [Button(title="Статус заказа", next="a"), Button(title="Оператор", next="b")]
    assert render_menu("Чем помочь?", buttons) == "Чем помочь?\n1. Статус заказа\n2. Оператор"
    assert render_menu("", ["A", "B"]) == "1. A\n2. B"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1", 0),
        ("2", 1),
        ("2.", 1),
        (" 2 ", 1),
        ("2 )", 1),
        ("оператор", 1),
        (" ОПЕРАТОР  ", 1),
        ("Статус Заказа", 0),
        ("1. статус заказа", 0),
        ("3", None),
        ("0", None),
        ("-1", None),
        ("2. Статус заказа", None),
        ("опер", None),
        ("", None),
    ],
)
def test_match_button(reply: str, expected: int | None) -> None:
    assert (
        match_button(reply, [Button(title="Статус заказа", next="a"), Button(title="Оператор", next="b")])
        == expected
    )
    assert match_button(reply, ["Статус заказа", "Оператор"]) == expected


def test_slot_classes_are_what_the_engine_runs() -> None:
    # Built in code (the way tests and tools make agents) and loaded from JSON: the same behaviour.
    coded = Agent(
        name="coded",
        start="j",
        slots=[
            JumpSlot(id="j", to="i"),
            InputSlot(id="i", variable="x", next="a", text="?"),
            AttachmentSlot(id="a", url="https://x/{{x}}", next="e", as_="link"),
            EndSlot(id="e"),
        ],
    )
    chat = Chat(coded)
    assert chat.say("hi") == ["?"]
    assert chat.say("doc.pdf") == ["https://x/doc.pdf"]
