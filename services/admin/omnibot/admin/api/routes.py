"""The admin API's route table and its application: one table (`ENDPOINTS`) builds both the
aiohttp router and the OpenAPI document, so the document lists exactly what is served."""

from __future__ import annotations

from aiohttp import web

from omnibot.admin.api import agents, channels, chats, operations
from omnibot.admin.api.base import (
    AUDIT,
    MANAGEMENT,
    MAX_BODY_BYTES,
    OPENAPI,
    OPENAPI_PATH,
    QUERY_NAMES,
    TOKEN,
    answer,
)
from omnibot.admin.api.middlewares import answer_errors, refuse_unknown_query, require_token
from omnibot.admin.api.openapi import OPENAPI_DOCUMENT, Endpoint, build_openapi
from omnibot.admin.audit import MongoAuditLog
from omnibot.admin.operations import Management
from omnibot.admin.schemas import Health
from omnibot.shared.ids import MAX_CHANNEL_ID_DIGITS


async def healthz(request: web.Request) -> web.Response:
    return answer({"status": "alive"})


async def openapi(request: web.Request) -> web.Response:
    return answer(request.app[OPENAPI])


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/healthz", healthz, "Liveness (no token needed)", "health", Health, public=True),
    Endpoint(
        "GET",
        OPENAPI_PATH,
        openapi,
        "This document (no token needed)",
        "health",
        OPENAPI_DOCUMENT,
        public=True,
    ),
    *agents.ENDPOINTS,
    *channels.ENDPOINTS,
    *chats.ENDPOINTS,
    *operations.ENDPOINTS,
]

# `\d` would also match other scripts' digits ("１", "٣").
_ROUTE_PATTERNS = {"{channel_id}": f"{{channel_id:[1-9][0-9]{{0,{MAX_CHANNEL_ID_DIGITS - 1}}}}}"}


def build_app(management: Management, *, token: str, audit: MongoAuditLog | None = None) -> web.Application:
    if not token:
        raise ValueError("the admin API needs a token")
    app = web.Application(
        middlewares=[answer_errors, require_token, refuse_unknown_query], client_max_size=MAX_BODY_BYTES
    )
    app[MANAGEMENT] = management
    app[TOKEN] = token
    app[OPENAPI] = build_openapi(ENDPOINTS)
    app[QUERY_NAMES] = {
        e.handler: frozenset(p.name for p in e.params if p.where == "query") for e in ENDPOINTS
    }
    if audit is not None:
        app[AUDIT] = audit
    for endpoint in ENDPOINTS:
        path = endpoint.path
        for name, pattern in _ROUTE_PATTERNS.items():
            path = path.replace(name, pattern)
        app.router.add_route(endpoint.method, path, endpoint.handler)
    return app
