"""The admin API's chat endpoints: a channel's chats, one chat, handing it to an operator and back."""

from __future__ import annotations

from aiohttp import web

from omnibot.admin.api.base import answer, ops
from omnibot.admin.api.openapi import Endpoint, Param
from omnibot.admin.api.params import CHANNEL, CHANNEL_PATH, CHAT, CHAT_PATH, INT, PAGE
from omnibot.admin.api.parsing import Query, channel_id
from omnibot.admin.ops.chats import MAX_TRANSCRIPT_LINES, TRANSCRIPT_LINES
from omnibot.admin.schemas import ChatSummary, ChatView, Page


async def list_chats(request: web.Request) -> web.Response:
    query = Query(request)
    limit, offset = query.page()
    owner = query.choice("owner", ("bot", "operator"))
    since = query.since("updated_since")
    query.done()
    result = await ops(request).chats.list_chats(
        channel_id(request), owner=owner, updated_since=since, limit=limit, offset=offset
    )
    return answer(result)


async def show_chat(request: web.Request) -> web.Response:
    query = Query(request)
    lines = query.integer("transcript", TRANSCRIPT_LINES)
    query.done()
    chat_id = request.match_info["chat_id"]
    return answer(await ops(request).chats.show_chat(channel_id(request), chat_id, transcript=lines))


async def transfer_chat(request: web.Request) -> web.Response:
    return answer(await ops(request).chats.transfer_chat(channel_id(request), request.match_info["chat_id"]))


async def resume_chat(request: web.Request) -> web.Response:
    return answer(await ops(request).chats.resume_chat(channel_id(request), request.match_info["chat_id"]))


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET",
        f"{CHANNEL_PATH}/chats",
        list_chats,
        "List a channel's chats, most recently updated first",
        "chats",
        Page[ChatSummary],
        params=(
            CHANNEL,
            Param("owner", "query", {"enum": ["bot", "operator"]}, "only chats with this owner"),
            Param(
                "updated_since",
                "query",
                {"type": "string"},
                "only chats updated at or after this time (ISO 8601 or unix seconds)",
            ),
            *PAGE,
        ),
        errors=(404,),
    ),
    Endpoint(
        "GET",
        CHAT_PATH,
        show_chat,
        "One chat: owner, agent version, slot, variables, transcript, last error",
        "chats",
        ChatView,
        params=(
            CHANNEL,
            CHAT,
            Param(
                "transcript",
                "query",
                {**INT, "minimum": 0, "maximum": MAX_TRANSCRIPT_LINES, "default": TRANSCRIPT_LINES},
                "how many transcript lines (the last)",
            ),
        ),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{CHAT_PATH}/transfer",
        transfer_chat,
        "Hand the chat to an operator: the bot stops answering it",
        "chats",
        ChatView,
        params=(CHANNEL, CHAT),
        errors=(404, 409, 503),
        description="As the agent's transfer slot: egress leaves the operator a note, removes the bot "
        "label and sets the channel's transfer status and group; the bot says nothing more in the chat.",
    ),
    Endpoint(
        "POST",
        f"{CHAT_PATH}/resume",
        resume_chat,
        "Hand the chat back to the bot, as a fresh session",
        "chats",
        ChatView,
        params=(CHANNEL, CHAT),
        errors=(404, 409),
    ),
]
