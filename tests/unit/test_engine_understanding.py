"""The engine's issue-15 features: free text in menus, intents, inactivity, working hours, llm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from omnibot.agents.agent import Agent, AgentInvalid, dump_agent, load_agent
from omnibot.agents.engine import (
    CallLLM,
    ChatState,
    CustomerMessage,
    Effect,
    Event,
    Explain,
    ExternalResult,
    LLMResult,
    Reply,
    SessionEnded,
    SessionTimeout,
    Transfer,
    TurnContext,
    pending_call,
    step,
    timeout_due,
)

MONDAY_NOON = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
SUNDAY = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
CTX = TurnContext(runtime={"chat_id": "1"})

MENU: dict[str, Any] = {
    "id": "menu",
    "type": "button_menu",
    "text": "Чем помочь?",
    "buttons": [
        {"title": "Статус заказа", "next": "status", "synonyms": ["где мой заказ", "когда привезут"]},
        {"title": "Оператор", "next": "op"},
        {"title": "Возврат", "next": "refund"},
    ],
    "fallback": "sorry",
}
BASIC: list[dict[str, Any]] = [
    {"id": "status", "type": "end", "text": "status {{menu_choice}} {{menu_score}}"},
    {"id": "op", "type": "transfer", "text": "К оператору", "closed_text": "Оператор ответит утром"},
    {"id": "refund", "type": "end", "text": "refund"},
    {"id": "sorry", "type": "end", "text": "sorry"},
]
ROUTE: dict[str, Any] = {
    "id": "route",
    "type": "intent",
    "intents": [
        {
            "name": "order_status",
            "examples": ["где мой заказ", "статус заказа", "когда привезут"],
            "next": "status",
        },
        {"name": "refund", "examples": ["верните деньги", "хочу вернуть товар"], "next": "refund"},
    ],
    "threshold": 0.6,
    "fallback": "menu",
}


def agent_of(*slots: dict[str, Any], **options: Any) -> Agent:
    doc = {"format": "omnibot/agent@1", "name": "t", "start": slots[0]["id"], "slots": list(slots), **options}
    return load_agent(doc)[0]


class Chat:
    def __init__(self, agent: Agent, ctx: TurnContext = CTX) -> None:
        self.agent, self.ctx = agent, ctx
        self.stored: dict[str, Any] | None = None
        self.now = MONDAY_NOON

    @property
    def state(self) -> ChatState:
        return msgspec.convert(self.stored, ChatState)

    def send(self, event: Event | str, after_s: float = 0) -> list[Effect]:
        self.now += timedelta(seconds=after_s)
        if isinstance(event, str):
            event = CustomerMessage(text=event)
        state = None if self.stored is None else msgspec.convert(self.stored, ChatState)
        new_state, effects = step(self.agent, state, event, self.now, self.ctx)
        self.stored = msgspec.to_builtins(new_state)
        return effects

    def say(self, text: str, after_s: float = 0) -> list[str]:
        return [e.text for e in self.send(text, after_s) if isinstance(e, Reply)]


# -- free text in a menu ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("хочу узнать, где мой заказ", "status Статус заказа 0.9"),
        ("оператора позовите", "К оператору"),
        ("Опреатор", "К оператору"),
        ("возврат денег", "refund"),
        ("2", "К оператору"),
        ("статус заказа", "status Статус заказа 1.0"),  # the title itself: score 1
        ("погода", "sorry"),
        ("оператор или возврат", "sorry"),  # ambiguous
        ("1. Оператор", "sorry"),  # a menu line whose number and title disagree
    ],
)
def test_free_text_answers_to_a_menu(reply: str, answer: str) -> None:
    chat = Chat(agent_of(MENU, *BASIC))
    chat.say("hi")
    assert chat.say(reply) == [answer]


def test_menu_score_lands_and_threshold_is_the_agents() -> None:
    chat = Chat(agent_of(MENU, *BASIC, match_threshold=0.95))
    chat.say("hi")
    assert chat.say("оператора позовите") == ["sorry"]
    assert chat.state.variables["menu_score"] == 0.8
    assert "menu_choice" not in chat.state.variables


def test_explain_shows_scores_only_when_asked() -> None:
    chat = Chat(agent_of(MENU, *BASIC), TurnContext(runtime={}, explain=True))
    chat.say("hi")
    effects = chat.send("оператора позовите")
    explain = next(e for e in effects if isinstance(e, Explain))
    assert (explain.kind, explain.chosen, explain.score) == ("menu", "Оператор", 0.8)
    assert explain.scores[0] == ("Оператор", 0.8)
    plain = Chat(agent_of(MENU, *BASIC))
    plain.say("hi")
    assert not any(isinstance(e, Explain) for e in plain.send("оператора позовите"))


def test_templated_titles_are_matched_as_rendered() -> None:
    menu = {
        **MENU,
        "buttons": [{"title": "Заказ {{n}}", "next": "status"}, {"title": "Оператор", "next": "op"}],
    }
    chat = Chat(agent_of(menu, *BASIC, variables={"n": "номер семь"}))
    chat.say("hi")
    assert chat.say("заказ номер семь пожалуйста") == ["status Заказ номер семь 1.0"]


# -- intents ------------------------------------------------------------------------------------------


def test_intent_routes_the_opening_message_without_waiting() -> None:
    chat = Chat(agent_of(ROUTE, MENU, *BASIC))
    assert chat.say("Здравствуйте! Где мой заказ?") == ["status  "]
    assert chat.state.variables["intent"] == "order_status"
    assert chat.state.variables["intent_confidence"] >= 0.9


def test_intent_fallback_and_after_input() -> None:
    ask = {"id": "ask", "type": "input", "text": "Что случилось?", "variable": "problem", "next": "route"}
    chat = Chat(agent_of(ask, ROUTE, MENU, *BASIC))
    assert chat.say("привет") == ["Что случилось?"]
    assert chat.say("верните мои деньги") == ["refund"]
    assert chat.state.variables["intent"] == "refund"
    assert chat.say("привет") == ["Что случилось?"]
    assert chat.say("какая сегодня погода") == ["Чем помочь?\n1. Статус заказа\n2. Оператор\n3. Возврат"]
    assert "intent" not in chat.state.variables


def test_intent_explain() -> None:
    chat = Chat(agent_of(ROUTE, MENU, *BASIC), TurnContext(runtime={}, explain=True))
    explain = next(e for e in chat.send("хочу вернуть товар") if isinstance(e, Explain))
    assert (explain.kind, explain.chosen) == ("intent", "refund")
    assert [name for name, _ in explain.scores] == ["refund", "order_status"]


# -- inactivity ---------------------------------------------------------------------------------------


def test_a_message_after_the_timeout_starts_a_new_session() -> None:
    chat = Chat(agent_of(MENU, *BASIC, session_timeout_s=60))
    chat.say("hi")
    assert chat.say("оператор", after_s=61) == [MENU_TEXT]  # the menu again, from start
    assert chat.state.sessions == 2
    assert chat.say("оператор", after_s=59) == ["К оператору"]


def test_default_timeout_is_900_and_0_turns_it_off() -> None:
    chat = Chat(agent_of(MENU, *BASIC))
    assert chat.agent.session_timeout_s == 900
    chat.say("hi")
    assert chat.say("3", after_s=899) == ["refund"]
    chat.say("hi")
    assert chat.say("3", after_s=900) == [MENU_TEXT]
    off = Chat(agent_of(MENU, *BASIC, session_timeout_s=0))
    off.say("hi")
    assert off.say("3", after_s=10**6) == ["refund"]


MENU_TEXT = "Чем помочь?\n1. Статус заказа\n2. Оператор\n3. Возврат"
BYE = {"id": "bye", "type": "end", "text": "Диалог завершён из-за отсутствия ответа"}


def test_on_timeout_runs_once_when_due() -> None:
    chat = Chat(agent_of(MENU, *BASIC, BYE, session_timeout_s=60, on_timeout="bye"))
    chat.say("hi")
    activity = chat.state.last_activity
    assert timeout_due(chat.agent, chat.state) == activity + 60
    assert chat.send(SessionTimeout(activity=activity), after_s=30) == []  # early: nothing
    assert chat.send(SessionTimeout(activity=activity), after_s=30) == [
        Reply("Диалог завершён из-за отсутствия ответа"),
        SessionEnded(),
    ]
    assert timeout_due(chat.agent, chat.state) is None
    assert chat.send(SessionTimeout(activity=activity), after_s=1) == []  # a duplicate timer


def test_on_timeout_into_a_waiting_slot_still_runs_once() -> None:
    nudge = {"id": "nudge", "type": "text", "text": "Вы ещё здесь?", "next": "menu"}
    chat = Chat(agent_of(MENU, *BASIC, nudge, session_timeout_s=60, on_timeout="nudge"))
    chat.say("hi")
    activity = chat.state.last_activity
    assert [e.text for e in chat.send(SessionTimeout(activity=activity), 60) if isinstance(e, Reply)] == [
        "Вы ещё здесь?",
        MENU_TEXT,
    ]
    assert chat.send(SessionTimeout(activity=activity), after_s=600) == []
    assert timeout_due(chat.agent, chat.state) is None


def test_a_stale_timer_does_nothing() -> None:
    chat = Chat(agent_of(MENU, *BASIC, BYE, session_timeout_s=60, on_timeout="bye"))
    chat.say("hi")
    old = chat.state.last_activity
    chat.say("что?", after_s=30)  # fallback ends the session: no longer waiting
    assert chat.send(SessionTimeout(activity=old), after_s=100) == []


# -- working hours ------------------------------------------------------------------------------------

HOURS = {"timezone": "Europe/Moscow", "days": {"mon-fri": "09:00-18:00"}, "holidays": ["2026-12-31"]}


def test_transfer_closed_text_outside_working_hours() -> None:
    agent = agent_of(MENU, *BASIC, working_hours=HOURS)
    open_chat = Chat(agent)
    open_chat.say("hi")
    assert open_chat.send("2") == [Reply("К оператору"), Transfer("slot", "op")]
    closed = Chat(agent)
    closed.now = SUNDAY
    closed.say("hi")
    assert closed.send("2") == [Reply("Оператор ответит утром"), Transfer("slot", "op")]


def test_within_working_hours_for_conditions() -> None:
    check = {
        "id": "check",
        "type": "condition",
        "rules": [{"if": {"var": "within_working_hours", "op": "eq", "value": True}, "next": "yes"}],
        "else": "no",
    }
    yes = {"id": "yes", "type": "end", "text": "open"}
    no = {"id": "no", "type": "end", "text": "closed"}
    chat = Chat(agent_of(check, yes, no, working_hours=HOURS))
    assert chat.say("hi") == ["open"]
    chat.now = SUNDAY
    assert chat.say("hi") == ["closed"]
    always = Chat(agent_of(check, yes, no))
    always.now = SUNDAY
    assert always.say("hi") == ["open"]


# -- llm ----------------------------------------------------------------------------------------------

AI: dict[str, Any] = {
    "id": "ai",
    "type": "llm",
    "system": "Ты оператор {{shop}}",
    "prompt": "{{client_message}}",
    "history": 1,
    "save": "ai_answer",
    "max_tokens": 100,
    "timeout_s": 5,
    "next": "ask",
    "on_error": "op",
}
ASK = {"id": "ask", "type": "input", "variable": "q", "next": "ai"}


def test_llm_answers_and_keeps_history() -> None:
    chat = Chat(agent_of(AI, ASK, *BASIC, variables={"shop": "Ромашка"}))
    (call,) = chat.send("где заказ?")
    assert call == CallLLM("r0", "Ты оператор Ромашка", [], "где заказ?", 100, 5.0)
    assert pending_call(chat.agent, chat.state, MONDAY_NOON, CTX) == call
    result = LLMResult(
        request_id="r0",
        text="В пути {{channel_webhook_token}}",
        prompt_tokens=10,
        completion_tokens=4,
        elapsed_ms=120.0,
    )
    assert chat.send(result) == [Reply("В пути {{channel_webhook_token}}")]  # never rendered
    state = chat.state
    assert state.variables["ai_answer"] == "В пути {{channel_webhook_token}}"
    assert (state.llm_calls, state.llm_tokens, state.llm_ms) == (1, 14, 120.0)
    (second,) = chat.send("а когда?")
    assert isinstance(second, CallLLM)
    assert second.history == [("user", "где заказ?"), ("assistant", "В пути {{channel_webhook_token}}")]


@pytest.mark.parametrize(
    "failure",
    [
        LLMResult(request_id="r0", text=None, error="HTTP 500"),
        ExternalResult(request_id="r0", status=None, error="interrupted"),
    ],
)
def test_llm_failure_goes_to_on_error(failure: Event) -> None:
    chat = Chat(agent_of(AI, ASK, *BASIC))
    chat.send("где заказ?")
    assert chat.send(failure) == [Reply("К оператору"), Transfer("slot", "op")]


def test_stale_llm_result_is_ignored() -> None:
    chat = Chat(agent_of(AI, ASK, *BASIC))
    chat.send("где заказ?")
    assert chat.send(LLMResult(request_id="r9", text="x")) == []


# -- the format -----------------------------------------------------------------------------------------


def test_new_fields_round_trip_and_old_files_export_as_before() -> None:
    agent = agent_of(
        ROUTE,
        MENU,
        *BASIC,
        AI,
        ASK,
        BYE,
        on_timeout="bye",
        session_timeout_s=60,
        working_hours=HOURS,
        match_threshold=0.8,
    )
    assert load_agent(dump_agent(agent))[0] == agent
    plain = agent_of(MENU, *BASIC)
    assert set(msgspec.json.decode(dump_agent(plain))) == {"format", "name", "variables", "start", "slots"}


@pytest.mark.parametrize(
    ("change", "slot", "words"),
    [
        (
            {"slots": [{**ROUTE, "intents": [{"name": "x", "examples": [], "next": "menu"}]}]},
            "route",
            "intent 'x' has no examples",
        ),
        ({"slots": [{**ROUTE, "threshold": 1.5}]}, "route", "`threshold` must be a number from 0 to 1"),
        ({"match_threshold": -0.1}, None, "`match_threshold` must be a number from 0 to 1"),
        ({"working_hours": {"timezone": "Moon/Base", "days": {}}}, None, "unknown timezone 'Moon/Base'"),
        ({"working_hours": {"timezone": "UTC", "days": {"mon": "9 to 5"}}}, None, "cannot read '9 to 5'"),
        ({"slots": [{**AI, "prompt": " "}]}, "ai", "`prompt` must not be empty"),
        ({"slots": [{k: v for k, v in AI.items() if k != "prompt"}]}, "ai", "missing field `prompt`"),
        ({"on_timeout": "nowhere"}, None, "`on_timeout` points to unknown slot 'nowhere'"),
    ],
)
def test_bad_input_is_refused_with_the_slot_named(
    change: dict[str, Any], slot: str | None, words: str
) -> None:
    slots = {s["id"]: s for s in [ROUTE, MENU, *BASIC, AI, ASK]}
    for replaced in change.get("slots", []):
        slots[replaced["id"]] = replaced
    doc = {
        "format": "omnibot/agent@1",
        "name": "t",
        "start": "route",
        "slots": list(slots.values()),
        **{k: v for k, v in change.items() if k != "slots"},
    }
    with pytest.raises(AgentInvalid) as caught:
        load_agent(doc)
    assert any(p.slot == slot and words in p.message for p in caught.value.problems), caught.value.problems


def test_overlapping_intents_warn() -> None:
    overlapping = {
        **ROUTE,
        "intents": [*ROUTE["intents"], {"name": "where", "examples": ["заказ мой где"], "next": "op"}],
    }
    _, warnings = load_agent(
        {"format": "omnibot/agent@1", "name": "t", "start": "route", "slots": [overlapping, MENU, *BASIC]}
    )
    assert any(w.slot == "route" and "matches intent" in w.message for w in warnings), warnings
