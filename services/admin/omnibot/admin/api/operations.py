"""The admin API's operations endpoints: status, dead letters, secret rotation, the audit log."""

from __future__ import annotations

from typing import cast

import msgspec
from aiohttp import web

from omnibot.admin.api.base import AUDIT, PREFIX, answer, ops
from omnibot.admin.api.openapi import Endpoint, Param
from omnibot.admin.api.params import PAGE
from omnibot.admin.api.parsing import Query, only_page, read_body
from omnibot.admin.audit import AuditEntry
from omnibot.admin.operations import Refused
from omnibot.admin.ops.status import StatusView
from omnibot.admin.schemas import (
    MAX_PAGE,
    DeadLetterReplay,
    DeadLetterView,
    Page,
    ReplayResult,
    SecretsRotated,
)
from omnibot.admin.validation import page_problems
from omnibot.shared.deadletters import StageName


async def status(request: web.Request) -> web.Response:
    return answer(await ops(request).status.status())


async def list_dead_letters(request: web.Request) -> web.Response:
    query = Query(request)
    limit, offset = query.page()
    stage = query.choice("stage", ("inbound", "outbound"))
    query.done()
    result = await ops(request).dead_letters.list_dead_letters(
        stage=cast("StageName | None", stage), limit=limit, offset=offset
    )
    return answer(result)


async def replay_dead_letters(request: web.Request) -> web.Response:
    body = await read_body(request, DeadLetterReplay)
    if body.all == bool(body.ids):
        raise Refused("invalid", ['give either "ids" (a non-empty list) or "all": true'])
    ids = None if body.all else body.ids
    return answer(await ops(request).dead_letters.replay_dead_letters(ids, stage=body.stage))


async def rotate_secrets(request: web.Request) -> web.Response:
    return answer(await ops(request).secrets.rotate_secrets())


async def list_audit(request: web.Request) -> web.Response:
    limit, offset = only_page(request)
    problems = page_problems(limit, offset, max_limit=MAX_PAGE)
    if problems:
        raise Refused("invalid", problems)
    audit = request.app.get(AUDIT)
    entries, total = (await audit.page(limit=limit, offset=offset)) if audit is not None else ([], 0)
    following = offset + len(entries)
    page: Page[AuditEntry] = Page(
        items=entries,
        total=total,
        limit=limit,
        offset=offset,
        next_offset=following if following < total and entries else None,
    )
    return answer(msgspec.to_builtins(page))


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET",
        f"{PREFIX}/status",
        status,
        "Replicas alive per role, partition owners, queue depths, dead letters, channels, Omnidesk errors",
        "operations",
        StatusView,
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/dead-letters",
        list_dead_letters,
        "List dead letters (what a stage gave up on, and why)",
        "operations",
        Page[DeadLetterView],
        params=(Param("stage", "query", {"enum": ["inbound", "outbound"]}, "only this stage"), *PAGE),
        errors=(503,),
    ),
    Endpoint(
        "POST",
        f"{PREFIX}/dead-letters/replay",
        replay_dead_letters,
        "Re-drive dead letters to their stage",
        "operations",
        ReplayResult,
        body=DeadLetterReplay,
        errors=(503,),
    ),
    Endpoint(
        "POST",
        f"{PREFIX}/secrets/rotate",
        rotate_secrets,
        "Re-encrypt every channel's secrets under the first key of SECRET_KEY",
        "operations",
        SecretsRotated,
        errors=(409,),
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/audit",
        list_audit,
        "The audit log: who changed what, when (newest first)",
        "operations",
        Page[AuditEntry],
        params=PAGE,
        description="Changes made in the web console (actor: the user's e-mail) and through this API "
        "(actor: api-token); `at` is unix seconds.",
    ),
]
