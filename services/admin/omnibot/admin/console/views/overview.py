"""The overview: today's figures and the last errors, each a link to its page."""

from __future__ import annotations

import time

from aiohttp import web

from omnibot.admin.console.context import console_of, render
from omnibot.admin.operations import Refused


async def overview(request: web.Request) -> web.Response:
    console = console_of(request)
    today = await console.stats.today(time.time())
    dead: int | None
    try:
        dead = (await console.management.dead_letters.list_dead_letters(limit=1)).total
    except Refused:
        dead = None  # RabbitMQ is not reachable: say so rather than fail the page
    channels = await console.management.channels.list_channels(limit=1)
    return render(
        request,
        "overview.html",
        {"today": today, "dead": dead, "has_channels": channels.total > 0},
    )
