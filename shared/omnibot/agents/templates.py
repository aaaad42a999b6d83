"""Agent templates: `{{name}}` placeholders in strings and in JSON values, and variable lookup.

This module owns how a placeholder turns into text or into a typed value, and how a dotted name
(`order.items.0.sku`) walks into a JSON value. It is pure: no I/O, no clock.

- `render` always gives a string: unknown names become "", None becomes "", strings are inserted
  as they are, other values as JSON (`5`, `1.5`, `true`, `[1,2]`, `{"a":1}`).
- Rendering stops with `limits.OutputTooLarge` past `limits.MAX_RENDERED_CHARS`.
- `render_value` walks a JSON value; a string that is exactly one placeholder keeps the variable's
  type (`["{{bot_label_id}}"]` gives `[123]`), any other string is rendered as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from omnibot.agents.limits import check_rendered

# `{{ name }}`: spaces inside the braces are tolerated; braces cannot nest.
_PLACEHOLDER: Final = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

MISSING: Final[Any] = object()
"""Returned by `lookup` and `resolve_path` when nothing is there (distinct from a JSON null)."""

_encode = msgspec.json.Encoder().encode


def resolve_path(value: Any, path: str) -> Any:
    """Walk `value` along a dotted path (`"a.b.0.c"`); `MISSING` where the path leads nowhere.

    Digits index lists; an empty path is the value itself. Never raises: a response that does not
    have the expected shape is a normal outcome, not an error.
    """
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def lookup(variables: Mapping[str, Any], name: str) -> Any:
    """The value of `name`, or of a dotted path into a variable; `MISSING` if there is none."""
    value = variables.get(name, MISSING)
    if value is MISSING and "." in name:
        head, _, rest = name.partition(".")
        if head in variables:
            return resolve_path(variables[head], rest)
    return value


def to_text(value: Any) -> str:
    """How a variable's value appears inside a text."""
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        return ""
    try:
        return _encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        # Not a JSON value (only possible for values put in by code, not by agents).
        return str(value)


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Replace every `{{name}}` in `template` with the variable's text; unknown names become ""."""
    if "{{" not in template:  # most strings have no placeholder: skip the regex
        return template
    total = len(template)

    def value_text(match: re.Match[str]) -> str:
        nonlocal total
        text = to_text(lookup(variables, match.group(1)))
        total += len(text)
        check_rendered(total)  # before the next placeholder: a template cannot build gigabytes
        return text

    return _PLACEHOLDER.sub(value_text, template)


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON value; a lone placeholder keeps the variable's type.

    Unknown names give "" also for a lone placeholder, as everywhere else in templates. Object keys
    are rendered as text. The input is never modified; containers are rebuilt.
    """
    if isinstance(value, str):
        if "{{" not in value:
            return value
        whole = _PLACEHOLDER.fullmatch(value)
        if whole is not None:
            found = lookup(variables, whole.group(1))
            return "" if found is MISSING else found
        return render(value, variables)
    if isinstance(value, list):
        return [render_value(item, variables) for item in value]
    if isinstance(value, dict):
        return {render(str(k), variables): render_value(v, variables) for k, v in value.items()}
    return value
