"""Dead letters: what a stage gave up on (stage, reason, attempts, age, chat), and re-driving one,
a selection, or all of them."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from omnibot.admin.console.context import console_of, render, visitor_of
from omnibot.admin.console.render import iso_seconds
from omnibot.admin.console.views.chats import chat_path
from omnibot.admin.console.views.common import PAGE_SIZE, change, data, offset, pager
from omnibot.admin.operations import Refused

MAX_SELECTED = 500
BROKER_WAIT_S = 10.0


async def list_dead_letters(request: web.Request, *, notice: str = "", problem: str = "") -> web.Response:
    ops = console_of(request).management
    try:
        async with asyncio.timeout(BROKER_WAIT_S):  # a broker that does not answer: say so, soon
            page = data(await ops.dead_letters.list_dead_letters(limit=PAGE_SIZE, offset=offset(request)))
    except (Refused, TimeoutError) as exc:
        if isinstance(exc, Refused) and exc.code != "unavailable":
            raise
        return render(
            request,
            "dead_letters.html",
            {"letters": [], "pager": None, "unavailable": True, "notice": notice, "problem": problem},
            status=503,
        )
    now = time.time()  # a dead letter without a time is shown as new
    letters = [
        {
            **d,
            "dead_s": iso_seconds(d["dead_at"]) or now,
            "chat_path": chat_path(d["channel_id"], d["chat_id"])
            if d["channel_id"] is not None and d["chat_id"]
            else "",
        }
        for d in page["items"]
    ]
    return render(
        request,
        "dead_letters.html",
        {
            "letters": letters,
            "pager": {**pager(page), "query": ""},
            "unavailable": False,
            "notice": notice,
            "problem": problem,
        },
    )


async def replay(request: web.Request) -> web.Response:
    visitor = visitor_of(request)
    form = await request.post()
    ids: list[str] | None
    if form.get("all"):
        ids = None
    elif form.get("one"):
        ids = [str(form["one"])[:200]]
    else:
        ids = [str(v)[:200] for v in form.getall("id", [])][:MAX_SELECTED]
        if not ids:
            return await list_dead_letters(request, problem=visitor.t("Select at least one dead letter."))
    result = await change(
        request,
        "dead_letters.replay",
        "all" if ids is None else ",".join(ids)[:300],
        console_of(request).management.dead_letters.replay_dead_letters(ids),
    )
    return await list_dead_letters(request, notice=visitor.t("Re-driven: {n}.", n=len(result["replayed"])))
