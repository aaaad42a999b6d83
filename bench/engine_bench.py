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


# A customer's side of the loop: choose the menu item, give a number (sometimes a wrong one).
MESSAGES = [
    CustomerMessage(text=t) for t in ["Здравствуйте", "1", "12345", "1", "abc", "77", "Статус заказа", "5000"]
]


def _run(agent: Agent, steps: int, persist: bool) -> float:
    state: ChatState | None = None
    stored: Any = None
    n = len(MESSAGES)
    started = time.perf_counter()
    for i in range(steps):
        if persist:
            state = None if stored is None else msgspec.convert(stored, ChatState)
        state, _ = step(agent, state, MESSAGES[i % n], NOW, CTX)
        if persist:
            stored = msgspec.to_builtins(state)
    return steps / (time.perf_counter() - started)


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
    for label, doc in [("plain", _plain()), ("templated", _templated())]:
        agent, _ = load_agent(doc)
        _run(agent, 2_000, persist=False)  # warm the regex and template caches
        for case, persist in [("step()", False), ("step() + state trip", True)]:
            rates = [_run(agent, args.steps, persist) for _ in range(args.runs)]
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
