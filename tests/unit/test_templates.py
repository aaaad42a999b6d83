"""Templates: `{{name}}` in text and typed placeholders in JSON values."""

from __future__ import annotations

import copy

import pytest

from omnibot.agents.templates import MISSING, lookup, render, render_value, resolve_path


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Здравствуйте, {{name}}!", "Здравствуйте, Иван!"),
        ("{{ name }} / {{name}} / {{  name  }}", "Иван / Иван / Иван"),
        ("{{unknown}}<-", "<-"),
        ("n={{n}} f={{f}} t={{t}} f2={{no}}", "n=5 f=1.5 t=true f2=false"),
        ("{{none}}|", "|"),
        ("{{items}}", '[1,"два"]'),
        ("{{obj}}", '{"a":1,"б":[true]}'),
        ("{{obj.б.0}} {{items.1}} {{obj.missing}}", "true два "),
        ("no placeholders", "no placeholders"),
        ("{{name}}{{n}}", "Иван5"),
        ("{ {name} } {name}", "{ {name} } {name}"),
    ],
)
def test_render(template: str, expected: str) -> None:
    variables = {
        "name": "Иван",
        "n": 5,
        "f": 1.5,
        "t": True,
        "no": False,
        "none": None,
        "items": [1, "два"],
        "obj": {"a": 1, "б": [True]},
    }
    assert render(template, variables) == expected


def test_a_variable_named_with_a_dot_wins_over_a_path() -> None:
    assert render("{{a.b}}", {"a.b": "direct", "a": {"b": "path"}}) == "direct"


def test_render_value_keeps_the_type_of_a_lone_placeholder() -> None:
    body = {"case": {"delete_labels": ["{{bot_label_id}}"], "note": "label {{bot_label_id}}"}}
    original = copy.deepcopy(body)
    assert render_value(body, {"bot_label_id": 123}) == {
        "case": {"delete_labels": [123], "note": "label 123"}
    }
    assert body == original  # never modified in place


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{n}}", 5),
        ("{{ n }}", 5),
        ("{{flag}}", False),
        ("{{none}}", None),
        ("{{obj}}", {"k": [1]}),
        ("{{obj.k.0}}", 1),
        ("{{unknown}}", ""),
        ("{{n}}{{n}}", "55"),
        (" {{n}}", " 5"),
        (7, 7),
        (2.5, 2.5),
        (None, None),
        (True, True),
        ({"{{key}}": "{{n}}"}, {"k1": 5}),
        ([["{{n}}"], {"x": "{{flag}}"}], [[5], {"x": False}]),
    ],
)
def test_render_value(value: object, expected: object) -> None:
    variables = {"n": 5, "flag": False, "none": None, "obj": {"k": [1]}, "key": "k1"}
    assert render_value(value, variables) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("status", "shipped"),
        ("a.b.0.c", 42),
        ("a.b.1", "x"),
        ("", {"status": "shipped", "a": {"b": [{"c": 42}, "x"]}}),
        ("missing", MISSING),
        ("a.b.5", MISSING),
        ("a.b.c", MISSING),
        ("status.deeper", MISSING),
        ("a.b.-1", MISSING),
    ],
)
def test_resolve_path(path: str, expected: object) -> None:
    body = {"status": "shipped", "a": {"b": [{"c": 42}, "x"]}}
    result = resolve_path(body, path)
    if expected is MISSING:
        assert result is MISSING
    else:
        assert result == expected


def test_resolve_path_on_non_json_shapes() -> None:
    assert resolve_path(None, "a") is MISSING
    assert resolve_path("text", "0") is MISSING
    assert resolve_path([1, 2], "1") == 2


def test_lookup_distinguishes_null_from_unset() -> None:
    assert lookup({"x": None}, "x") is None
    assert lookup({}, "x") is MISSING
    assert lookup({"x": {"y": None}}, "x.y") is None
