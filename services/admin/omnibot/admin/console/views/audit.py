"""The audit log page: who changed what, when (newest first)."""

from __future__ import annotations

from aiohttp import web

from omnibot.admin.console.context import console_of, render
from omnibot.admin.console.views.common import PAGE_SIZE, offset


async def audit_log(request: web.Request) -> web.Response:
    start = offset(request)
    entries, total = await console_of(request).audit.page(limit=PAGE_SIZE, offset=start)
    following = start + len(entries)
    pager = {
        "first": start + 1 if entries else 0,
        "last": following,
        "total": total,
        "previous": max(0, start - PAGE_SIZE) if start > 0 else None,
        "next": following if following < total else None,
        "query": "",
    }
    return render(request, "audit.html", {"entries": entries, "pager": pager})
