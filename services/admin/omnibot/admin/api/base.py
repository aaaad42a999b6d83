"""What every part of the admin API shares: the app's keys, the paths, JSON answers and errors."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from omnibot.admin.audit import MongoAuditLog
from omnibot.admin.operations import Management

MANAGEMENT = web.AppKey("management", Management)
TOKEN = web.AppKey("token", str)
OPENAPI = web.AppKey("openapi", dict[str, Any])
QUERY_NAMES = web.AppKey("query_names", dict[Any, frozenset[str]])  # handler → its query parameters
AUDIT = web.AppKey("audit", MongoAuditLog)

PREFIX = "/api/v1"
OPENAPI_PATH = f"{PREFIX}/openapi.json"
MAX_BODY_BYTES = 4 * 1024 * 1024

# The HTTP status of each refusal code of `Management` (and of the API's own).
STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    "agent_in_use": 409,
    "activation_failed": 409,
    "checks_failed": 409,
    "conflict": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "invalid": 422,
    "agent_invalid": 422,
    "unavailable": 503,
}


def error(
    status: int, code: str, problems: list[str], *, details: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": code, "message": "; ".join(problems), "problems": problems}
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=status)


def answer(data: Any, status: int = 200) -> web.Response:
    """`data` (Structs and builtins alike) as a JSON answer."""
    return web.json_response(data, status=status, dumps=lambda d: msgspec.json.encode(d).decode())


def ops(request: web.Request) -> Management:
    return request.app[MANAGEMENT]


def is_api_path(path: str) -> bool:
    """The JSON API's paths; everything else on the admin listener is the web console's."""
    return path == "/healthz" or path == PREFIX or path.startswith(PREFIX + "/")
