"""Conditions: every op, the combinators, coercion, and never raising on type mismatches."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from omnibot.agents.conditions import OPS, ConditionError, check, compile_pattern, evaluate

VARS: dict[str, Any] = {
    "s": "shipped",
    "five": "5",
    "n": 5,
    "f": 2.5,
    "big": "12345678901234567890",
    "t": True,
    "empty": "",
    "none": None,
    "items": ["a", 2, "3"],
    "obj": {"k": "v", "nested": {"x": 1}},
    "date": "2026-03-01",
    "msg": "Хочу оператора, пожалуйста",
    "limit": 10,
}


def c(var: str, op: str, value: Any = None, *, has_value: bool = True) -> dict[str, Any]:
    cond: dict[str, Any] = {"var": var, "op": op}
    if has_value:
        cond["value"] = value
    return cond


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        # eq / ne
        (c("s", "eq", "shipped"), True),
        (c("s", "eq", "Shipped"), False),
        (c("five", "eq", 5), True),
        (c("n", "eq", "5"), True),
        (c("n", "eq", 5.0), True),
        (c("five", "eq", "5.0"), False),  # two strings compare as text
        (c("big", "eq", 12345678901234567890), True),
        (c("big", "eq", 12345678901234567891), False),  # exact, not via float
        (c("t", "eq", True), True),
        (c("t", "eq", "true"), True),
        (c("t", "eq", 1), False),
        (c("none", "eq", None), True),
        (c("missing", "eq", None), True),
        (c("missing", "eq", ""), False),
        (c("items", "eq", ["a", 2, "3"]), True),
        (c("s", "ne", "pending"), True),
        (c("s", "ne", "shipped"), False),
        (c("n", "ne", "5"), False),
        # gt / gte / lt / lte
        (c("five", "gt", 3), True),
        (c("five", "gt", "3"), True),
        (c("n", "gte", 5), True),
        (c("f", "lt", 3), True),
        (c("f", "lte", 2.5), True),
        (c("n", "lt", "4"), False),
        (c("date", "gte", "2026-01-01"), True),
        (c("date", "lt", "2026-01-01"), False),
        (c("s", "gt", 3), False),
        (c("missing", "gt", 0), False),
        (c("items", "gt", 1), False),
        (c("n", "lte", "{{limit}}"), True),
        # contains
        (c("msg", "contains", "оператор"), True),
        (c("msg", "contains", "бот"), False),
        (c("items", "contains", "a"), True),
        (c("items", "contains", 3), True),  # "3" in the list, coerced
        (c("obj", "contains", "k"), True),
        (c("n", "contains", "5"), False),
        # in
        (c("s", "in", ["pending", "shipped"]), True),
        (c("n", "in", ["5", 6]), True),
        (c("s", "in", "shipped,pending"), True),
        (c("s", "in", ["x"]), False),
        (c("missing", "in", ["x"]), False),
        (c("s", "in", {"shipped": 1}), True),
        # matches
        (c("s", "matches", "^ship"), True),
        (c("s", "matches", "(?i)^SHIP"), True),
        (c("s", "matches", "^pend"), False),
        (c("n", "matches", "^[0-9]+$"), True),
        (c("none", "matches", ".*"), False),
        (c("t", "matches", ".*"), False),
        # exists
        (c("s", "exists", has_value=False), True),
        (c("empty", "exists", has_value=False), False),
        (c("none", "exists", has_value=False), False),
        (c("missing", "exists", has_value=False), False),
        (c("missing", "exists", False), True),
        (c("n", "exists", True), True),
        (c("obj.nested.x", "exists", has_value=False), True),
        (c("obj.nested.y", "exists", has_value=False), False),
        # dotted var
        (c("obj.nested.x", "eq", 1), True),
        (c("items.0", "eq", "a"), True),
    ],
)
def test_ops(cond: dict[str, Any], expected: bool) -> None:
    assert evaluate(cond, VARS) is expected


def test_exists_treats_empty_collections_as_missing() -> None:
    variables = {"client_attachments": [], "files": ["https://x/1.jpg"], "o": {}}
    assert not evaluate(c("client_attachments", "exists", has_value=False), variables)
    assert evaluate(c("files", "exists", has_value=False), variables)
    assert not evaluate(c("o", "exists", has_value=False), variables)


def test_all_any_not() -> None:
    yes, no = c("s", "eq", "shipped"), c("s", "eq", "pending")
    assert evaluate({"all": [yes, yes]}, VARS)
    assert not evaluate({"all": [yes, no]}, VARS)
    assert evaluate({"all": []}, VARS)
    assert evaluate({"any": [no, yes]}, VARS)
    assert not evaluate({"any": [no, no]}, VARS)
    assert not evaluate({"any": []}, VARS)
    assert evaluate({"not": no}, VARS)
    assert not evaluate({"not": yes}, VARS)
    nested = {"all": [{"any": [no, {"not": no}]}, {"not": {"all": [yes, no]}}]}
    assert evaluate(nested, VARS)


SAMPLES: list[Any] = [None, "", "x", "5", 0, 5, 2.5, True, False, [], ["a"], {}, {"a": 1}]


@pytest.mark.parametrize("op", sorted(OPS))
def test_no_type_mismatch_raises(op: str) -> None:
    for left, right in itertools.product(SAMPLES, SAMPLES):
        if op == "matches" and isinstance(right, str) and right:
            continue  # "x", "5" are valid regexes; covered above
        result = evaluate({"var": "v", "op": op, "value": right}, {"v": left})
        assert isinstance(result, bool)


def test_malformed_conditions_raise_condition_error() -> None:
    with pytest.raises(ConditionError):
        evaluate({"var": "s", "op": "like", "value": 1}, VARS)
    with pytest.raises(ConditionError):
        evaluate({"all": "nope"}, VARS)
    with pytest.raises(ConditionError):
        evaluate({"not": 3}, VARS)
    with pytest.raises(ConditionError):
        evaluate({"whatever": 1}, VARS)


@pytest.mark.parametrize(
    ("cond", "fragment"),
    [
        ({"var": "x", "op": "like", "value": 1}, "unknown op 'like'"),
        ({"var": "x", "op": "matches", "value": "(unclosed"}, "bad regex"),
        ({"var": "x", "op": "matches", "value": 5}, "must be a regex string"),
        ({"var": "x", "op": "eq"}, "needs a `value`"),
        ({"var": "", "op": "eq", "value": 1}, "`if.var` must be a non-empty string"),
        ({"op": "eq", "value": 1}, "`if.var` must be a non-empty string"),
        ({"var": "x", "op": "eq", "vlaue": 1}, "unknown key `vlaue`"),
        ({"var": "x", "op": "exists", "value": "yes"}, "must be true or false"),
        ({"var": "x", "op": "in", "value": 5}, "must be a list"),
        ({"all": {"var": "x"}}, "`if.all` must be a list"),
        ({"any": [{"var": "x", "op": "zz", "value": 1}]}, "`if.any[0].op`: unknown op"),
        ({"not": {"nope": 1}}, "`if.not` must have `var` and `op`"),
        ("text", "must be an object"),
        ({}, "must have `var` and `op`"),
    ],
)
def test_check_reports_problems(cond: Any, fragment: str) -> None:
    problems = check(cond)
    assert any(fragment in p for p in problems), problems


def test_check_lists_every_problem() -> None:
    cond = {"all": [c("x", "zz", 1), c("y", "matches", "("), {"not": c("z", "eq", 1)}]}
    problems = check(cond, "rules[0].if")
    assert len(problems) == 2
    assert problems[0].startswith("`rules[0].if.all[0].op`")
    assert problems[1].startswith("`rules[0].if.all[1].value`")


def test_check_accepts_valid_conditions() -> None:
    for op in sorted(OPS):
        value: Any = {"matches": "^a", "exists": True, "in": ["a"]}.get(op, "a")
        assert check(c("x", op, value)) == []
    assert check(c("x", "exists", has_value=False)) == []
    assert check({"any": [c("x", "eq", 1), {"not": c("y", "matches", "{{pattern}}")}]}) == []


def test_regexes_are_compiled_once() -> None:
    assert compile_pattern("^[0-9]+$") is compile_pattern("^[0-9]+$")
