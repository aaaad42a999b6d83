"""Chats: a channel's chats filtered by owner and time, and a chat's page (the transcript as a
conversation, the current slot, the variables without secrets, the owner, and the hand-over
buttons). The chat page refreshes its live part while open (static/console.js)."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from omnibot.admin.console.context import console_of, render
from omnibot.admin.console.views.common import PAGE_SIZE, change, channel_id, data, offset, or_none, pager
from omnibot.admin.schemas import MAX_PAGE

WITHIN = {"1h": 3600, "1d": 86400, "7d": 7 * 86400}
WITHIN_LABELS = (("", "any time"), ("1h", "the last hour"), ("1d", "the last day"), ("7d", "the last week"))
# Variables never shown: the runtime's Omnidesk credentials, and anything named like a secret.
HIDDEN_VARIABLES = frozenset({"channel_webhook_token"})
_SECRET_NAME = re.compile(r"token|secret|password|passwd|api_?key|auth", re.IGNORECASE)


def chat_path(channel: int, chat: str) -> str:
    return f"/channels/{channel}/chats/{quote(chat, safe='')}"


def shown_variables(variables: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (name, value if isinstance(value, str) else repr(value))
        for name, value in sorted(variables.items())
        if name not in HIDDEN_VARIABLES and not _SECRET_NAME.search(name)
    ]


async def list_chats(request: web.Request) -> web.Response:
    ops = console_of(request).management
    channels = data(await ops.channels.list_channels(limit=MAX_PAGE))["items"]
    context: dict[str, Any] = {
        "channels": channels,
        "channel": None,
        "owner": "",
        "within": "",
        "within_labels": WITHIN_LABELS,
        "chats": [],
        "pager": None,
        "chat_path": chat_path,
    }
    if not channels:
        return render(request, "chats.html", context)
    raw_channel = request.query.get("channel", "")
    chosen = next((c for c in channels if str(c["id"]) == raw_channel), channels[0])
    owner = request.query.get("owner", "")
    owner = owner if owner in ("bot", "operator") else ""
    within = request.query.get("within", "")
    within = within if within in WITHIN else ""
    since = time.time() - WITHIN[within] if within else None
    page = data(
        await ops.chats.list_chats(
            chosen["id"], owner=owner or None, updated_since=since, limit=PAGE_SIZE, offset=offset(request)
        )
    )
    query = f"channel={chosen['id']}&owner={owner}&within={within}"
    context.update(
        channel=chosen, owner=owner, within=within, chats=page["items"], pager={**pager(page), "query": query}
    )
    return render(request, "chats.html", context)


async def _chat(request: web.Request) -> dict[str, Any]:
    found = await or_none(
        console_of(request).management.chats.show_chat(channel_id(request), request.match_info["chat_id"])
    )
    if found is None:
        raise web.HTTPNotFound()
    chosen: dict[str, Any] = found
    return chosen


async def show_chat(request: web.Request) -> web.Response:
    chat = await _chat(request)
    channel = await or_none(console_of(request).management.channels.show_channel(chat["channel_id"]))
    return render(
        request,
        "chat.html",
        {
            "chat": chat,
            "channel_title": channel["title"] if channel else "",
            "variables": shown_variables(chat["variables"]),
            "path": chat_path(chat["channel_id"], chat["chat_id"]),
        },
    )


async def transfer_chat(request: web.Request) -> web.StreamResponse:
    cid, chat = channel_id(request), request.match_info["chat_id"]
    await change(
        request,
        "chat.transfer",
        f"{cid}:{chat}",
        console_of(request).management.chats.transfer_chat(cid, chat),
    )
    raise web.HTTPSeeOther(chat_path(cid, chat))


async def return_chat(request: web.Request) -> web.StreamResponse:
    cid, chat = channel_id(request), request.match_info["chat_id"]
    await change(
        request, "chat.return", f"{cid}:{chat}", console_of(request).management.chats.resume_chat(cid, chat)
    )
    raise web.HTTPSeeOther(chat_path(cid, chat))
