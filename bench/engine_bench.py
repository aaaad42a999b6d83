"""Benchmark of the dialog engine: `step()` calls per second on one core.

Run: `.venv/bin/python bench/engine_bench.py [--steps N] [--runs R]`.

Two agents, both a typical support loop (menu -> input -> condition -> text -> back to the menu),
driven by a scripted stream of customer messages:
- `plain`: short texts with one or two placeholders;
- `templated`: the same flow with template-heavy slots on it: long texts with many placeholders,
  a memory slot building a nested JSON value with typed placeholders, a condition with `all`/`any`
  and templated values, buttons with placeholders.
Each is measured as the bare `step()` and as `step()` plus the state round trip the service does
per turn (msgspec builtins -> ChatState -> builtins, as stored in MongoDB). Median of R runs; the
target is >= 20,000 bare steps/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from omnibot.agents.agent import Agent, load_agent
from omnibot.agents.engine import ChatState, CustomerMessage, TurnContext, step

TARGET = 20_000
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CTX = TurnContext(
    runtime={
        "chat_id": "123456",
        "channel_id": 7,
        "agent_name": "bench",
        "channel_webhook_url": "https://test-ru.omnidesk.ru",
        "channel_webhook_token": "bot@example.com:key",
        "channel_visitor_id": "42",
        "channel_visitor_email": "ivan@example.com",
        "channel_visitor_name": "Иван",
        "channel_visitor_phone": "+7 900 000-00-00",
        "channel_visitor_login": "42",
    }
)


def _plain() -> dict[str, Any]:
    return {
        "format": "omnibot/agent@1",
        "name": "plain",
        "variables": {"bot_label_id": 0},
        "start": "menu",
        "slots": [
            {
                "id": "menu",
                "type": "button_menu",
                "text": "Чем помочь, {{channel_visitor_name}}?",
                "buttons": [{"title": "Статус заказа", "next": "ask"}, {"title": "Оператор", "next": "menu"}],
            },
            {
                "id": "ask",
                "type": "input",
                "text": "Номер заказа?",
                "variable": "order_id",
                "pattern": "^[0-9]+$",
                "retry_text": "Только цифры",
                "next": "check",
            },
            {
                "id": "check",
                "type": "condition",
                "rules": [{"if": {"var": "order_id", "op": "gt", "value": 1000}, "next": "big"}],
                "else": "small",
            },
            {"id": "big", "type": "text", "text": "Заказ {{order_id}} найден", "next": "menu"},
            {"id": "small", "type": "text", "text": "Заказ {{order_id}} старый", "next": "menu"},
        ],
    }


def _templated() -> dict[str, Any]:
    long_text = (
        "{{channel_visitor_name}}, заказ {{order_id}} от {{date}} в чате {{chat_id}} (канал {{channel_id}}): "
        "статус {{status}}, e-mail {{channel_visitor_email}}, телефон {{channel_visitor_phone}}, "
        "метка {{bot_label_id}}, последнее сообщение: {{client_message}}"
    )
    return {
        "format": "omnibot/agent@1",
        "name": "templated",
        "variables": {"bot_label_id": 123, "status": "new", "limits": {"min": 1000}},
        "start": "menu",
        "slots": [
            {
                "id": "menu",
                "type": "button_menu",
                "text": "{{channel_visitor_name}}, чем помочь? Сегодня {{date}}.",
                "buttons": [
                    {"title": "Статус заказа", "next": "ask"},
                    {"title": "Оператор ({{agent_name}})", "next": "menu"},
                    {"title": "Документы для {{channel_visitor_email}}", "next": "menu"},
                ],
            },
            {
                "id": "ask",
                "type": "input",
                "text": "{{channel_visitor_name}}, номер заказа?",
                "variable": "order_id",
                "pattern": "^[0-9]+$",
                "retry_text": "Только цифры, {{channel_visitor_name}}",
                "next": "remember",
            },
            {
                "id": "remember",
                "type": "memory",
                "set": {
                    "request": {
                        "case": {
                            "delete_labels": ["{{bot_label_id}}"],
                            "custom_fields": {"order": "{{order_id}}", "who": "{{channel_visitor_name}}"},
                            "note": "chat {{chat_id}} / {{date}} / {{client_message}}",
                        }
                    },
                    "seen": "{{order_id}}",
                    "summary": long_text,
                },
                "next": "check",
            },
            {
                "id": "check",
                "type": "condition",
                "rules": [
                    {
                        "if": {
                            "all": [
                                {"var": "order_id", "op": "gte", "value": "{{limits.min}}"},
                                {
                                    "any": [
                                        {"var": "status", "op": "in", "value": ["new", "paid"]},
                                        {"var": "client_message", "op": "matches", "value": "(?i)срочно"},
                                    ]
                                },
                                {"not": {"var": "channel_visitor_email", "op": "contains", "value": "@spam"}},
                            ]
                        },
                        "next": "big",
                    }
                ],
                "else": "small",
            },
            {"id": "big", "type": "text", "text": long_text, "next": "menu"},
            {"id": "small", "type": "text", "text": long_text + " (старый)", "next": "menu"},
        ],
    }


# The understanding case: free text everywhere. Words are made of syllables, deterministically,
# so the case is the same on every run and machine: 100 intents of 10 examples (each of 3-5 words
# from the intent's own words and a shared pool) and 20-button menus with two synonyms a button.
_SYLLABLES = [c + v for c in "бвгдзклмнпрстфх" for v in "аоуиеы"]


def _word(i: int) -> str:
    # Distinct for distinct i (a bijection mod base**3 spreads neighbours apart), 3 or 4 syllables.
    base = len(_SYLLABLES)
    x = (i * 7919 + 17) % base**3
    digits = [x % base, (x // base) % base, (x // base**2) % base]
    if i % 2:
        digits.append((x * 31) % base)
    return "".join(_SYLLABLES[d] for d in digits)


_COMMON = [_word(10_000 + i) for i in range(60)]


def _intent_words(k: int) -> list[str]:
    return [_word(k * 8 + j) for j in range(8)]


def _example(k: int, e: int) -> str:
    own = _intent_words(k)
    words = [own[(e + j) % 8] for j in range(2 + e % 2)] + [
        _COMMON[(k * 3 + e * 5 + j) % 60] for j in range(1 + e % 3)
    ]
    return " ".join(words)


def _understanding() -> dict[str, Any]:
    intents = [
        {"name": f"intent_{k}", "examples": [_example(k, e) for e in range(10)], "next": "menu"}
        for k in range(100)
    ]
    buttons = [
        {
            "title": f"{_word(5000 + b)} {_word(6000 + b)}",
            "synonyms": [f"{_word(7000 + b)} {_COMMON[b]}", f"{_word(8000 + b)} {_word(9000 + b)}"],
            "next": "question",
        }
        for b in range(20)
    ]
    return {
        "format": "omnibot/agent@1",
        "name": "understanding",
        "start": "route",
        "working_hours": {"timezone": "Europe/Moscow", "days": {"mon-fri": "09:00-18:00"}},
        "slots": [
            {"id": "route", "type": "intent", "intents": intents, "threshold": 0.6, "fallback": "menu"},
            {
                "id": "menu",
                "type": "button_menu",
                "text": "Чем помочь?",
                "buttons": buttons,
                "fallback": "menu",
            },
            {
                "id": "question",
                "type": "input",
                "text": "Ваш вопрос?",
                "variable": "question",
                "next": "route",
            },
        ],
    }


def _typo(word: str) -> str:
    return word[:2] + word[3] + word[2] + word[4:] if len(word) >= 5 else word


def _understanding_messages() -> list[CustomerMessage]:
    # Alternating: an answer to the menu (free text: a synonym, a title with a typo, words swapped),
    # then a question for the intents (an example reworded, with a typo and filler words).
    out: list[CustomerMessage] = []
    for i in range(40):
        b, k = (i * 7) % 20, (i * 13) % 100
        title = (
            f"{_word(6000 + b)} {_typo(_word(5000 + b))}"
            if i % 2
            else f"пожалуйста {_word(8000 + b)} {_word(9000 + b)}"
        )
        words = _example(k, i % 10).split()
        words[0] = _typo(words[0])
        question = "здравствуйте, " + " ".join(reversed(words)) + "?"
        out += [CustomerMessage(text=title), CustomerMessage(text=question)]
    return out


# A customer's side of the loop: choose the menu item, give a number (sometimes a wrong one).
MESSAGES = [
    CustomerMessage(text=t) for t in ["Здравствуйте", "1", "12345", "1", "abc", "77", "Статус заказа", "5000"]
]
UNDERSTANDING_MESSAGES = _understanding_messages()


def _run(agent: Agent, steps: int, persist: bool, messages: list[CustomerMessage] = MESSAGES) -> float:
    state: ChatState | None = None
    stored: Any = None
    n = len(messages)
    started = time.perf_counter()
    for i in range(steps):
        if persist:
            state = None if stored is None else msgspec.convert(stored, ChatState)
        state, _ = step(agent, state, messages[i % n], NOW, CTX)
        if persist:
            stored = msgspec.to_builtins(state)
    return steps / (time.perf_counter() - started)


def _report_matches(agent: Agent, messages: list[CustomerMessage]) -> None:
    """How many of the scripted free-text messages were understood (a benchmark that matched
    nothing would measure the fallback path only)."""
    state: ChatState | None = None
    chosen = intents = 0
    for message in messages:
        waiting = state.slot if state is not None else None
        state, _ = step(agent, state, message, NOW, CTX)
        if waiting == "menu" and state.slot == "question":
            chosen += 1
        if waiting == "question" and "intent" in state.variables:
            intents += 1
    print(
        f"understand: {chosen}/{len(messages) // 2} menu answers and "
        f"{intents}/{len(messages) // 2} intents matched"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="steps per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per case (the median is reported)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as asked

    print(f"python {sys.version.split()[0]}, msgspec {msgspec.__version__}, {os.cpu_count()} cpus visible")
    print(f"{args.runs} runs x {args.steps} steps per case, median; target >= {TARGET:,} bare steps/s\n")
    print(f"{'agent':<10} {'case':<22} {'steps/s (median)':>17} {'min':>9} {'max':>9} {'us/step':>8}")
    worst = float("inf")
    for label, doc, messages in [
        ("plain", _plain(), MESSAGES),
        ("templated", _templated(), MESSAGES),
        ("understand", _understanding(), UNDERSTANDING_MESSAGES),
    ]:
        loaded = time.perf_counter()
        agent, _ = load_agent(doc)
        agent.compiled  # noqa: B018 -- the compiled agent is built once, at load; measured apart
        if label == "understand":
            print(f"understand: agent loaded and compiled in {1000 * (time.perf_counter() - loaded):.0f} ms")
            _report_matches(agent, messages)
        _run(agent, 2_000, persist=False, messages=messages)  # warm the regex and template caches
        for case, persist in [("step()", False), ("step() + state trip", True)]:
            rates = [_run(agent, args.steps, persist, messages) for _ in range(args.runs)]
            median = statistics.median(rates)
            if not persist:
                worst = min(worst, median)
            print(
                f"{label:<10} {case:<22} {median:>17,.0f} {min(rates):>9,.0f} {max(rates):>9,.0f} "
                f"{1e6 / median:>8.1f}"
            )
    print(
        f"\nslowest bare case: {worst:,.0f} steps/s ({'meets' if worst >= TARGET else 'MISSES'} the target)"
    )


if __name__ == "__main__":
    main()
