"""Conditions of the `condition` slot: their checking at import and their evaluation at runtime.

A condition is the JSON the agent file holds:
`{"var": name, "op": op, "value": v}`, `{"all": [...]}`, `{"any": [...]}` or `{"not": {...}}`.
It stays a plain dict (it is what users write and what export gives back); `check` finds what is
wrong with one, `evaluate` decides it. Evaluation never raises because of the *types* of the
values compared (a mismatch is simply false); it raises `ConditionError` only for a condition that
`check` would have refused (an agent that skipped validation).

Semantics, chosen to be unsurprising for values that come from chats and JSON APIs:
- `var` may be a dotted path into a variable (`order.items.0.sku`); an unset variable is `None`.
- `value` strings containing placeholders are rendered (`"value": "{{limit}}"` keeps its type).
- `eq`/`ne`: strings compare exactly (case-sensitive); a number and a numeric string compare as
  numbers (`"5"` eq `5`); a boolean equals `"true"`/`"false"`; otherwise equal types and values.
- `gt gte lt lte`: numbers (numeric strings coerced), or two non-numeric strings compared as text
  (ISO dates such as `{{date}}` order correctly); anything else is false.
- `contains`: substring of a string, element of a list, key of an object.
- `in`: element of a list value, substring of a string value, key of an object value.
- `matches`: the RE2 pattern occurs in the text (numbers are matched as their text); see
  `omnibot.agents.patterns` for the syntax and bounds. The pattern is literal: `{{...}}` in it is
  not rendered, because a rendered value would let a customer write the pattern. An agent that
  wants a pattern built from variables says so with `"template": true`; the rendered pattern then
  runs under the same bounds, and one that does not compile makes the condition false.
- `exists`: set and not empty (None, "", [] and {} are empty); `"value": false` inverts it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from omnibot.agents.patterns import PatternError, compile_pattern, pattern_problem, search
from omnibot.agents.templates import MISSING, lookup, render, render_value

OPS: Final = frozenset({"eq", "ne", "contains", "matches", "exists", "gt", "gte", "lt", "lte", "in"})
__all__ = ["OPS", "ConditionError", "check", "compile_pattern", "evaluate", "warnings"]

_COMPARE_KEYS: Final = frozenset({"var", "op", "value", "template"})
_NUMERIC: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER: Final = re.compile(r"[+-]?\d+")


class ConditionError(ValueError):
    """A condition that is not well-formed (only reachable for agents that skipped validation)."""


def check(cond: Any, where: str = "if") -> list[str]:
    """Every problem of a condition, each as a readable message prefixed with its location."""
    if not isinstance(cond, dict):
        return [f"`{where}` must be an object, got {_json_type(cond)}"]
    for combinator in ("all", "any"):
        if combinator in cond:
            problems = _extra_keys(cond, {combinator}, where)
            items = cond[combinator]
            if not isinstance(items, list):
                return [*problems, f"`{where}.{combinator}` must be a list of conditions"]
            for i, item in enumerate(items):
                problems += check(item, f"{where}.{combinator}[{i}]")
            return problems
    if "not" in cond:
        return _extra_keys(cond, {"not"}, where) + check(cond["not"], f"{where}.not")
    if "var" not in cond and "op" not in cond:
        return [f"`{where}` must have `var` and `op`, or be `all`, `any` or `not`"]
    problems = _extra_keys(cond, _COMPARE_KEYS, where)
    var, op = cond.get("var"), cond.get("op")
    if not isinstance(var, str) or not var:
        problems.append(f"`{where}.var` must be a non-empty string")
    if op not in OPS:
        problems.append(f"`{where}.op`: unknown op {op!r} (one of {', '.join(sorted(OPS))})")
        return problems
    if "value" not in cond:
        if op != "exists":
            problems.append(f"`{where}`: op `{op}` needs a `value`")
        return problems
    value = cond["value"]
    templated = cond.get("template", False)
    if "template" in cond and (op != "matches" or not isinstance(templated, bool)):
        problems.append(f"`{where}.template` is only for `matches`, and is true or false")
    if op == "matches":
        if not isinstance(value, str):
            problems.append(f"`{where}.value` of `matches` must be a regex string")
        elif templated is True:
            if not _is_template(value):
                problems.append(f"`{where}`: `template` is true but the pattern has no placeholder")
        elif (problem := pattern_problem(value)) is not None:
            problems.append(f"`{where}.value`: bad regex {value[:80]!r}: {problem}")
    elif op == "exists" and not isinstance(value, bool):
        problems.append(f"`{where}.value` of `exists` must be true or false")
    elif op == "in" and not isinstance(value, list | str | dict):
        problems.append(f"`{where}.value` of `in` must be a list, a string or an object")
    return problems


def warnings(cond: Any, where: str = "if") -> list[str]:
    """What in a (well-formed) condition probably does not do what its author meant."""
    if not isinstance(cond, dict):
        return []
    found: list[str] = []
    for combinator in ("all", "any"):
        if isinstance(cond.get(combinator), list):
            for i, item in enumerate(cond[combinator]):
                found += warnings(item, f"{where}.{combinator}[{i}]")
    if "not" in cond:
        found += warnings(cond["not"], f"{where}.not")
    value = cond.get("value")
    literal = cond.get("template") is not True
    if cond.get("op") == "matches" and isinstance(value, str) and _is_template(value) and literal:
        found.append(
            f"`{where}.value`: a `matches` pattern is literal, `{{{{...}}}}` in it is not "
            'rendered; to build the pattern from variables add `"template": true`'
        )
    return found


def evaluate(cond: Mapping[str, Any], variables: Mapping[str, Any]) -> bool:
    """Decide a condition against the variables of a turn."""
    if "var" in cond:
        op = cond.get("op")
        compare = _OPS.get(op) if isinstance(op, str) else None
        if compare is None:
            raise ConditionError(f"unknown op {op!r}")
        found = lookup(variables, str(cond["var"]))
        left = None if found is MISSING else found
        right = cond.get("value", True if op == "exists" else None)
        if op == "matches":
            return _matches(left, right, variables if cond.get("template") is True else None)
        if isinstance(right, str) and "{{" in right:
            right = render_value(right, variables)
        return compare(left, right)
    if "all" in cond:
        return all(evaluate(item, variables) for item in _items(cond["all"]))
    if "any" in cond:
        return any(evaluate(item, variables) for item in _items(cond["any"]))
    if "not" in cond:
        inner = cond["not"]
        if not isinstance(inner, Mapping):
            raise ConditionError("`not` must hold a condition")
        return not evaluate(inner, variables)
    raise ConditionError(f"not a condition: {sorted(cond)}")


def _items(items: Any) -> list[Mapping[str, Any]]:
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise ConditionError("`all`/`any` must hold a list of conditions")
    return items


def _number(value: Any) -> int | float | None:
    """A number, or a string that spells one; None otherwise (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)  # exact: order numbers can exceed a float's precision
        if _NUMERIC.fullmatch(text):
            return float(text)
    return None


def _eq(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    if isinstance(left, bool) or isinstance(right, bool):
        if isinstance(left, str) or isinstance(right, str):
            return str(left).lower() == str(right).lower()
        return left is right
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    return type(left) is type(right) and bool(left == right)


def _order(left: Any, right: Any) -> tuple[Any, Any] | None:
    """The pair to compare for gt/gte/lt/lte, or None when the values do not order."""
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a, b
    if isinstance(left, str) and isinstance(right, str) and a is None and b is None:
        return left, right
    return None


def _gt(left: Any, right: Any) -> bool:
    pair = _order(left, right)
    return pair is not None and bool(pair[0] > pair[1])


def _gte(left: Any, right: Any) -> bool:
    pair = _order(left, right)
    return pair is not None and bool(pair[0] >= pair[1])


def _lt(left: Any, right: Any) -> bool:
    pair = _order(left, right)
    return pair is not None and bool(pair[0] < pair[1])


def _lte(left: Any, right: Any) -> bool:
    pair = _order(left, right)
    return pair is not None and bool(pair[0] <= pair[1])


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list):
        return any(_eq(element, item) for element in container)
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    return False


def _matches(left: Any, right: Any, variables: Mapping[str, Any] | None) -> bool:
    """`variables` is given only when the agent opted in to a templated pattern."""
    if not isinstance(right, str):
        return False
    if isinstance(left, int | float) and not isinstance(left, bool):
        left = str(left)
    if not isinstance(left, str):
        return False
    if variables is None:
        return search(right, left)
    try:
        return search(render(right, variables), left)
    except PatternError:
        return False  # the rendered pattern is the agent's data, possibly a customer's words


def _exists(left: Any, right: Any) -> bool:
    present = left is not None and left != "" and left != [] and left != {}
    return present is bool(right)


_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": _eq,
    "ne": lambda left, right: not _eq(left, right),
    "contains": _contains,
    "in": lambda left, right: _contains(right, left),
    "matches": lambda left, right: _matches(left, right, None),
    "exists": _exists,
    "gt": _gt,
    "gte": _gte,
    "lt": _lt,
    "lte": _lte,
}


def _extra_keys(cond: dict[str, Any], allowed: set[str] | frozenset[str], where: str) -> list[str]:
    return [f"`{where}`: unknown key `{key}`" for key in cond if key not in allowed]


def _is_template(text: str) -> bool:
    return "{{" in text


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
