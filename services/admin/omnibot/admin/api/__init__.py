"""The admin HTTP API: the operations of `Management` as JSON over HTTP, behind a bearer token.

One route table (`ENDPOINTS`) builds both the aiohttp router and the OpenAPI document served at
/api/v1/openapi.json, so the document lists exactly what is served. Every error is a JSON body
`{"error": <stable code>, "message": ..., "problems": [...]}`; lists are pages (`limit`, `offset`).
The listener is the admin service's own (ADMIN_HOST:ADMIN_PORT), never the public webhook one.

The parts: `base` (app keys, paths, JSON answers and errors), `middlewares` (errors, token,
unknown query parameters), `parsing` (body and query), `params` (shared OpenAPI parameters), the
handlers with their endpoints by area (`agents`, `channels`, `chats`, `operations`), `openapi`
(the document), `routes` (the table and `build_app`).
"""

from __future__ import annotations

from omnibot.admin.api.routes import ENDPOINTS, build_app

__all__ = ["ENDPOINTS", "build_app"]
