"""What the `omnibot` command prints: tables, `name  value` lines and JSON, safe for a terminal.

Text from outside (a customer's messages, variables, agent and channel names) may hold control
characters; every one is printed as an escape (`omnibot.shared.printable`), in the tables and in
`--json` alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from omnibot.shared.printable import printable, printable_json

# Columns of the readable tables, per kind of list.
COLUMNS = {
    "channels": ("id", "title", "domain", "email", "agent", "active"),
    "agents": ("name", "latest_version", "published_version"),
    "versions": ("version", "published", "imported_at", "slots"),
    "chats": ("chat_id", "owner", "agent", "agent_version", "slot", "updated_at", "last_error"),
    "dead": ("id", "stage", "channel_id", "chat_id", "kind", "attempts", "dead_at", "error"),
}


def json_text(data: Any) -> str:
    """Indented JSON for scripts, with no character that a terminal would act on."""
    return printable_json(json.dumps(data, ensure_ascii=False, indent=2))


def _cell(value: Any, width: int = 60) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = printable(str(value).replace("\n", " "))
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines


def _fields(data: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    keys = [k for k in data if k not in skip]
    width = max((len(k) for k in keys), default=0)
    lines = []
    for key in keys:
        value = data[key]
        if isinstance(value, dict | list) and value:
            value = json.dumps(value, ensure_ascii=False)
        lines.append(f"{key.ljust(width)}  {_cell(value, width=10_000)}")
    return lines


def render(data: Any, kind: str | None) -> str:
    """The readable form of an operation's answer."""
    if isinstance(data, dict) and "items" in data and "total" in data:
        items = data["items"]
        if not items:
            return "(none)"
        columns = COLUMNS.get(kind or "", tuple(items[0].keys()))
        lines = _table(items, columns)
        first = data["offset"] + 1
        last = data["offset"] + len(items)
        if data["next_offset"] is not None or data["offset"]:
            more = f"; next: --offset {data['next_offset']}" if data["next_offset"] is not None else ""
            lines.append(f"({first}-{last} of {data['total']}{more})")
        return "\n".join(lines)
    if not isinstance(data, dict):
        return json_text(data)
    lines = _fields(data, skip=("checks", "variables", "transcript", "replayed", "missing"))
    for check in data.get("checks") or []:
        verdict = "passed" if check["passed"] else "FAILED"
        lines.append(f"  {verdict}  {printable(check['name'])}: {printable(check['detail'])}")
    if "variables" in data:
        lines.append("variables:")
        width = max((len(k) for k in data["variables"]), default=0)
        for name, value in sorted(data["variables"].items()):
            lines.append(
                f"  {printable(name.ljust(width))}  {printable(json.dumps(value, ensure_ascii=False))}"
            )
    if "transcript" in data:
        lines.append("transcript:")
        for line in data["transcript"]:
            text = printable(line["text"], keep_newlines=True).replace("\n", "\n" + " " * 14)
            lines.append(f"  {_cell(line['at'])[11:19] or '-':8}  {line['role']:8}  {text}")
    if "replayed" in data:
        lines.append(f"replayed  {len(data['replayed'])}")
        lines += [printable(f"  {d['stage']}  {d['id']}  {d['kind']}") for d in data["replayed"]]
        if data["missing"]:
            lines.append("not found (no longer dead letters?): " + printable(", ".join(data["missing"])))
    return "\n".join(lines)
