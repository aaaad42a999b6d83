"""The agent file format: validation listing every problem, warnings, export -> import identity."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from omnibot.agents.agent import (
    FORMAT,
    Agent,
    AgentInvalid,
    AttachmentSlot,
    BasicAuth,
    Button,
    ButtonMenuSlot,
    ConditionSlot,
    EndSlot,
    ExternalRequestSlot,
    InputSlot,
    JumpSlot,
    MemorySlot,
    Problem,
    Rule,
    TextSlot,
    TransferSlot,
    dump_agent,
    load_agent,
)

DEMO = Path(__file__).parent.parent / "fixtures" / "agents" / "support-demo.json"


def demo() -> dict[str, Any]:
    return json.loads(DEMO.read_text(encoding="utf-8"))


def agent_doc(*slots: dict[str, Any], start: str | None = None, **top: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": "t",
        "start": start if start is not None else slots[0]["id"],
        "slots": list(slots),
        **top,
    }


def problems_of(doc: Any) -> list[Problem]:
    with pytest.raises(AgentInvalid) as info:
        load_agent(doc)
    return info.value.problems


def has(problems: list[Problem], slot: str | None, fragment: str, severity: str = "error") -> bool:
    return any(p.slot == slot and fragment in p.message and p.severity == severity for p in problems)


# -- the example from product.md --------------------------------------------------------------------


def test_the_product_example_validates_clean() -> None:
    agent, warnings = load_agent(DEMO.read_bytes())
    assert warnings == []
    assert agent.name == "support-demo"
    assert agent.start == "hello"
    assert agent.variables == {"bot_label_id": 0}
    assert [type(s) for s in agent.slots] == [
        TextSlot,
        ButtonMenuSlot,
        InputSlot,
        ExternalRequestSlot,
        ConditionSlot,
        AttachmentSlot,
        MemorySlot,
        TransferSlot,
        EndSlot,
    ]
    menu = agent.slot("menu")
    assert isinstance(menu, ButtonMenuSlot)
    assert menu.buttons[1] == Button(title="Оператор", next="op")
    check = agent.slot("check")
    assert isinstance(check, ExternalRequestSlot)
    assert check.save == {"order_status": "status"}
    assert check.on_error == "op"
    say = agent.slot("say")
    assert isinstance(say, ConditionSlot)
    assert say.rules[0].if_ == {"var": "order_status", "op": "eq", "value": "shipped"}
    assert say.else_ == "other"
    shipped = agent.slot("shipped")
    assert isinstance(shipped, AttachmentSlot)
    assert shipped.as_ == "file"
    assert agent.slot("nope") is None


def test_load_accepts_bytes_str_and_dict() -> None:
    from_bytes = load_agent(DEMO.read_bytes())[0]
    assert load_agent(DEMO.read_text(encoding="utf-8"))[0] == from_bytes
    doc = demo()
    snapshot = copy.deepcopy(doc)
    assert load_agent(doc)[0] == from_bytes
    assert doc == snapshot  # the caller's dict is not modified


# -- export -----------------------------------------------------------------------------------------


def every_slot_agent() -> Agent:
    return Agent(
        name="everything",
        variables={"bot_label_id": 123, "nested": {"a": [1, None, "x"]}, "flag": True},
        start="t",
        slots=[
            TextSlot(id="t", text="Hi {{channel_visitor_name}}", next="m"),
            ButtonMenuSlot(
                id="m",
                text="Menu",
                buttons=[Button(title="A", next="i"), Button(title="B", next="x")],
                fallback="j",
            ),
            InputSlot(id="i", variable="v", next="mem", text="?", pattern="^\\d+$", retry_text="digits"),
            MemorySlot(id="mem", set={"n": 5, "s": "{{v}}", "l": ["{{bot_label_id}}"]}, next="c"),
            ConditionSlot(
                id="c",
                rules=[
                    Rule(if_={"var": "n", "op": "gt", "value": 3}, next="a"),
                    Rule(if_={"any": [{"not": {"var": "v", "op": "exists"}}]}, next="e"),
                ],
                else_="x",
            ),
            JumpSlot(id="j", to="m"),
            AttachmentSlot(id="a", url="https://x.example/f.pdf", next="l", name="f.pdf", text="cap"),
            AttachmentSlot(id="l", url="https://x.example/{{v}}", next="x", as_="link"),
            ExternalRequestSlot(
                id="x",
                url="{{channel_webhook_url}}/api/cases/{{chat_id}}.json",
                next="tr",
                method="PUT",
                headers={"Content-Type": "application/json"},
                auth=BasicAuth(basic="{{channel_webhook_token}}"),
                body={"case": {"delete_labels": ["{{bot_label_id}}"]}},
                timeout_s=5.0,
                delay_s=2.5,
                save={"labels": "case.labels"},
                on_error="e",
            ),
            TransferSlot(id="tr", text="Перевожу"),
            EndSlot(id="e"),
        ],
    )


@pytest.mark.parametrize("make", [every_slot_agent, lambda: load_agent(DEMO.read_bytes())[0]])
def test_export_then_import_gives_the_same_agent(make: Any) -> None:
    agent = make()
    exported = dump_agent(agent)
    again, warnings = load_agent(exported)
    assert again == agent
    assert warnings == []
    assert dump_agent(again) == exported


def test_export_is_readable_json_with_the_id_first() -> None:
    exported = dump_agent(every_slot_agent())
    doc = json.loads(exported)
    assert doc["format"] == FORMAT
    assert all(next(iter(slot)) == "id" for slot in doc["slots"])
    assert doc["slots"][2]["type"] == "input"
    condition = next(s for s in doc["slots"] if s["type"] == "condition")
    assert "if" in condition["rules"][0]
    assert "else" in condition
    assert next(s for s in doc["slots"] if s["id"] == "l")["as"] == "link"
    assert exported.startswith(b"{\n  ")
    assert "Перевожу".encode() in exported


# -- validation -------------------------------------------------------------------------------------


def test_not_json() -> None:
    problems = problems_of(b'{"format": ')
    assert len(problems) == 1
    assert problems[0].message.startswith("not JSON")
    assert problems_of("[1, 2]")[0].message == "an agent file must be a JSON object"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"format": None}, "missing `format`"),
        ({"format": "omnibot/agent@2"}, "unsupported `format` 'omnibot/agent@2'"),
        ({"name": None}, "missing `name`"),
        ({"name": ""}, "`name` must be a non-empty string"),
        ({"start": None}, "missing `start`"),
        ({"start": 5}, "`start` must be a non-empty string"),
        ({"start": "nowhere"}, "`start` points to unknown slot 'nowhere'"),
        ({"variables": [1]}, "`variables` must be an object"),
        ({"slots": None}, "missing `slots`"),
        ({"slots": []}, "`slots` must be a non-empty list"),
    ],
)
def test_top_level_problems(change: dict[str, Any], fragment: str) -> None:
    doc = demo()
    for key, value in change.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    assert has(problems_of(doc), None, fragment)


@pytest.mark.parametrize(
    ("slot", "fragment"),
    [
        ({"id": "s", "type": "carousel"}, "unknown slot type 'carousel'"),
        ({"id": "s"}, "missing `type`"),
        ({"id": "s", "type": "text", "next": "s"}, "missing field `text`"),
        ({"id": "s", "type": "text", "text": 5, "next": "s"}, "`text`: expected `str`, got `int`"),
        ({"id": "s", "type": "text", "text": "x", "next": "zz"}, "`next` points to unknown slot 'zz'"),
        ({"id": "s", "type": "jump", "to": "zz"}, "`to` points to unknown slot 'zz'"),
        ({"id": "s", "type": "jump"}, "missing field `to`"),
        (
            {"id": "s", "type": "button_menu", "text": "m", "buttons": [{"title": "a", "next": "zz"}]},
            "`buttons[0].next` points to unknown slot 'zz'",
        ),
        (
            {
                "id": "s",
                "type": "button_menu",
                "text": "m",
                "buttons": [{"title": "a", "next": "s"}],
                "fallback": "zz",
            },
            "`fallback` points to unknown slot 'zz'",
        ),
        ({"id": "s", "type": "button_menu", "text": "m", "buttons": []}, "`buttons` must not be empty"),
        (
            {"id": "s", "type": "button_menu", "text": "m", "buttons": [{"title": 1, "next": "s"}]},
            "`buttons[0].title`: expected `str`, got `int`",
        ),
        (
            {"id": "s", "type": "button_menu", "text": "m", "buttons": [{"title": "x"}]},
            "missing field `buttons[0].next`",
        ),
        (
            {
                "id": "s",
                "type": "condition",
                "rules": [{"if": {"var": "a", "op": "eq", "value": 1}, "next": "zz"}],
            },
            "missing field `else`",
        ),
        (
            {
                "id": "s",
                "type": "condition",
                "rules": [{"if": {"var": "a", "op": "eq", "value": 1}, "next": "zz"}],
                "else": "yy",
            },
            "`rules[0].next` points to unknown slot 'zz'",
        ),
        (
            {"id": "s", "type": "condition", "rules": [], "else": "yy"},
            "`else` points to unknown slot 'yy'",
        ),
        (
            {
                "id": "s",
                "type": "condition",
                "rules": [{"if": {"var": "a", "op": "like", "value": 1}, "next": "s"}],
                "else": "s",
            },
            "`rules[0].if.op`: unknown op 'like'",
        ),
        (
            {
                "id": "s",
                "type": "condition",
                "rules": [{"if": {"var": "a", "op": "matches", "value": "(["}, "next": "s"}],
                "else": "s",
            },
            "`rules[0].if.value`: bad regex",
        ),
        (
            {
                "id": "s",
                "type": "input",
                "variable": "v",
                "pattern": "([0-9]",
                "retry_text": "r",
                "next": "s",
            },
            "bad regex in `pattern`",
        ),
        ({"id": "s", "type": "input", "variable": "", "next": "s"}, "`variable` must not be empty"),
        ({"id": "s", "type": "memory", "set": [1], "next": "s"}, "`set`: expected `object`, got `array`"),
        (
            {"id": "s", "type": "attachment", "url": "u", "as": "inline", "next": "s"},
            "`as` must be 'file' or 'link', not 'inline'",
        ),
        ({"id": "s", "type": "attachment", "url": " ", "next": "s"}, "`url` must not be empty"),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "method": "FETCH", "next": "s"},
            "bad `method` 'FETCH'",
        ),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "delay_s": 61, "next": "s"},
            "`delay_s` must be between 0 and 60, not 61",
        ),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "delay_s": -1, "next": "s"},
            "`delay_s` must be between 0 and 60, not -1",
        ),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "timeout_s": 0, "next": "s"},
            "`timeout_s` must be above 0",
        ),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "next": "s", "on_error": "zz"},
            "`on_error` points to unknown slot 'zz'",
        ),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "next": "s", "headers": {"X": 1}},
            "`headers.X`: expected `str`, got `int`",
        ),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "next": "s", "auth": {"bearer": "t"}},
            "missing field `auth.basic`",
        ),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "next": "s", "save": {"a": 1}},
            "`save.a`: expected `str`, got `int`",
        ),
        (
            {"id": "s", "type": "external_request", "url": "https://x", "next": "s", "timeout_s": "10"},
            "`timeout_s`: expected `float`, got `str`",
        ),
    ],
)
def test_slot_problems(slot: dict[str, Any], fragment: str) -> None:
    problems = problems_of(agent_doc(slot))
    assert has(problems, "s", fragment), problems


def test_methods_are_case_insensitive() -> None:
    slot = {"id": "s", "type": "external_request", "url": "https://x", "method": "post", "next": "e"}
    agent, warnings = load_agent(agent_doc(slot, {"id": "e", "type": "end"}))
    assert warnings == []
    assert isinstance(agent.slots[0], ExternalRequestSlot)
    assert agent.slots[0].method == "post"


def test_every_problem_is_listed_at_once_with_its_slot() -> None:
    doc = {
        "format": "omnibot/agent@0",
        "name": "broken",
        "start": "hello",
        "slots": [
            {"id": "hello", "type": "text", "text": "hi", "next": "menu"},
            {"id": "menu", "type": "button_menu", "text": "?", "buttons": [{"title": "A", "next": "gone"}]},
            {"id": "ask", "type": "input", "variable": "v", "pattern": "(", "next": "hello"},
            {
                "id": "call",
                "type": "external_request",
                "url": "https://x",
                "method": "YELL",
                "delay_s": 99,
                "next": "hello",
            },
            {
                "id": "pick",
                "type": "condition",
                "rules": [
                    {
                        "if": {
                            "all": [
                                {"var": "v", "op": "≈", "value": 1},
                                {"var": "v", "op": "matches", "value": "[z-a]"},
                            ]
                        },
                        "next": "hello",
                    }
                ],
                "else": "void",
            },
            {"id": "file", "type": "attachment", "url": "https://x/f", "as": "zip", "next": "hello"},
            {"id": "weird", "type": "teleport"},
            {"id": "hello", "type": "end"},
            {"type": "end"},
            "not a slot",
        ],
    }
    problems = problems_of(doc)
    expected = [
        (None, "unsupported `format`"),
        ("menu", "`buttons[0].next` points to unknown slot 'gone'"),
        ("ask", "bad regex in `pattern`"),
        ("call", "bad `method` 'YELL'"),
        ("call", "`delay_s` must be between 0 and 60"),
        ("pick", "`rules[0].if.all[0].op`: unknown op '≈'"),
        ("pick", "`rules[0].if.all[1].value`: bad regex"),
        ("pick", "`else` points to unknown slot 'void'"),
        ("file", "`as` must be 'file' or 'link', not 'zip'"),
        ("weird", "unknown slot type 'teleport'"),
        ("hello", "duplicate id (slots[0] and slots[7])"),
        (None, "slots[8]: `id` must be a non-empty string"),
        (None, "slots[9] must be an object"),
    ]
    for slot, fragment in expected:
        assert has(problems, slot, fragment), (slot, fragment, problems)
    assert sum(p.severity == "error" for p in problems) == len(expected)
    text = str(AgentInvalid(problems))
    assert "13 error(s)" in text
    assert "slot 'pick'" in text


def test_unreachable_slots_are_warnings() -> None:
    agent, warnings = load_agent(
        agent_doc(
            {"id": "a", "type": "text", "text": "hi", "next": "b"},
            {"id": "b", "type": "end"},
            {"id": "island", "type": "text", "text": "never", "next": "b"},
        )
    )
    assert warnings == [Problem("island", "unreachable from `start` ('a')", "warning")]
    assert agent.slot("island") is not None


def test_other_warnings() -> None:
    doc = agent_doc(
        {"id": "a", "type": "text", "text": "hi", "next": "b", "nxt": "c"},
        {"id": "b", "type": "input", "variable": "date", "pattern": "^x$", "next": "c"},
        {"id": "c", "type": "memory", "set": {"chat_id": "1"}, "next": "d"},
        {"id": "d", "type": "end"},
        comment="top-level extras are fine",
        variables={"client_message": ""},
    )
    _, warnings = load_agent(doc)
    assert all(w.severity == "warning" for w in warnings)
    assert has(warnings, "a", "unknown field `nxt` is ignored", "warning")
    assert has(warnings, "b", "variable `date` is set by the runtime", "warning")
    assert has(warnings, "b", "`pattern` without `retry_text` or `text`", "warning")
    assert has(warnings, "c", "variable `chat_id` is set by the runtime", "warning")
    assert has(warnings, None, "unknown field `comment` is ignored", "warning")
    assert has(warnings, None, "variable `client_message` is set by the runtime", "warning")


def test_warnings_are_listed_with_errors() -> None:
    doc = agent_doc({"id": "a", "type": "text", "text": 1, "next": "a", "extra": True})
    problems = problems_of(doc)
    assert has(problems, "a", "`text`: expected `str`", "error")
    assert has(problems, "a", "unknown field `extra`", "warning")


def test_problem_round_trips_as_json() -> None:
    problem = Problem("menu", "`fallback` points to unknown slot 'x'", "error")
    assert msgspec.json.decode(msgspec.json.encode(problem), type=Problem) == problem
