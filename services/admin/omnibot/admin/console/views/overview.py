"""The overview: today's figures and the last errors, each a link to its page."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from omnibot.admin.console.context import console_of, render
from omnibot.admin.operations import Refused

BROKER_WAIT_S = 3.0


async def overview(request: web.Request) -> web.Response:
    console = console_of(request)
    today = await console.stats.today(time.time())
    dead: int | None
    try:
        # The overview must not wait long for RabbitMQ: the figure says "unknown" instead.
        async with asyncio.timeout(BROKER_WAIT_S):
            dead = (await console.management.dead_letters.list_dead_letters(limit=1)).total
    except (Refused, TimeoutError):
        dead = None
    channels = await console.management.channels.list_channels(limit=1)
    return render(
        request,
        "overview.html",
        {"today": today, "dead": dead, "has_channels": channels.total > 0},
    )
