"""What several pages share: reading ids from the path, paging, notices, recording changes."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from omnibot.admin.console.context import console_of, visitor_of
from omnibot.admin.operations import Refused

T = TypeVar("T")
PAGE_SIZE = 50

# What a redirect after a change may say (by key: nothing typed by anyone is ever reflected).
NOTICES = {
    "saved": "Saved.",
    "deactivated": "The channel is deactivated: its webhook accepts nothing.",
    "rotated": "The webhook URL is new: paste it into both Omnidesk rules; the old one no longer works.",
    "deleted": "The channel is deleted.",
    "created": "The channel is saved (not active).",
}


def notice(request: web.Request) -> str:
    key = request.query.get("notice", "")
    return visitor_of(request).t(NOTICES[key]) if key in NOTICES else ""


def channel_id(request: web.Request) -> int:
    return int(request.match_info["channel_id"])


def offset(request: web.Request) -> int:
    raw = request.query.get("offset", "0")
    return int(raw) if raw.isdigit() and int(raw) < 10_000_000 else 0


def data(value: Any) -> Any:
    """An operation's typed answer as plain data for the templates (bytes stay bytes)."""
    return value if isinstance(value, bytes) else msgspec.to_builtins(value)


async def change(
    request: web.Request, action: str, target: str, call: Awaitable[Any], detail: str = ""
) -> Any:
    """Run a changing operation and put it in the audit log under the signed-in user's name."""
    result = data(await call)
    user = visitor_of(request).user
    await console_of(request).audit.record(user.email if user else "?", action, target, detail)
    return result


async def or_none(call: Awaitable[Any]) -> Any:
    """The operation's answer (as plain data), or None when it refused with not_found."""
    try:
        return data(await call)
    except Refused as exc:
        if exc.code == "not_found":
            return None
        raise


def pager(data: dict[str, Any]) -> dict[str, Any]:
    """first/last/total and the offsets of the neighbouring pages, for `_pager.html`."""
    first = data["offset"] + 1 if data["items"] else 0
    previous = max(0, data["offset"] - data["limit"]) if data["offset"] > 0 else None
    return {
        "first": first,
        "last": data["offset"] + len(data["items"]),
        "total": data["total"],
        "previous": previous,
        "next": data["next_offset"],
    }
