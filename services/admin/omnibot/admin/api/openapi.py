"""The OpenAPI 3.1 document of the admin API, generated from the same route table that builds the
aiohttp router, with the request and answer schemas generated from the Structs in `schemas`. Pure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

from omnibot.admin.schemas import ErrorBody

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Bodies that are not Structs are given as JSON Schemas directly.
AGENT_FILE: dict[str, Any] = {
    "type": "object",
    "description": "An agent file, format omnibot/agent@1 (see the README)",
}
OPENAPI_DOCUMENT: dict[str, Any] = {"type": "object", "description": "An OpenAPI 3.1 document"}

_REF = "#/components/schemas/{name}"
_ERROR_TEXT = {
    400: "Not JSON, not a JSON object, nested too deeply, or a query parameter given twice or empty",
    401: "No bearer token, or a wrong one",
    404: "No such resource",
    409: "Refused in the current state (see `error` and `problems`)",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Invalid input; `problems` names every field that is wrong",
    503: "A dependency (MongoDB, RabbitMQ) is unavailable; try again",
}


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["path", "query"]
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    answer: Any  # the Struct type of the success body, or a JSON Schema (dict)
    status: int = 200
    body: Any = None  # the Struct type of the request body, a JSON Schema (dict), or None
    body_required: bool = True
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    public: bool = False  # no bearer token needed
    description: str = ""


def build_openapi(endpoints: list[Endpoint]) -> dict[str, Any]:
    types = [ErrorBody]
    for endpoint in endpoints:
        for kind in (endpoint.answer, endpoint.body):
            if kind is not None and not isinstance(kind, dict) and kind not in types:
                types.append(kind)
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(types, refs, strict=True))

    def schema(kind: Any) -> dict[str, Any]:
        return kind if isinstance(kind, dict) else schema_of[kind]

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        responses: dict[str, Any] = {
            str(endpoint.status): {
                "description": "OK" if endpoint.status < 300 else "Done",
                "content": {"application/json": {"schema": schema(endpoint.answer)}},
            }
        }
        statuses = set(endpoint.errors)
        if not endpoint.public:
            statuses.add(401)
        if endpoint.body is not None:
            statuses |= {400, 413, 415, 422}
        if any(p.where == "query" for p in endpoint.params):
            statuses |= {400, 422}  # 400: a parameter given twice or empty; 422: a wrong value
        for status in sorted(statuses):
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": schema_of[ErrorBody]}},
            }
        operation: dict[str, Any] = {
            "operationId": endpoint.handler.__name__,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "responses": responses,
        }
        if endpoint.description:
            operation["description"] = endpoint.description
        if endpoint.public:
            operation["security"] = []
        if endpoint.params:
            operation["parameters"] = [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required or p.where == "path",
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in endpoint.params
            ]
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": endpoint.body_required,
                "content": {"application/json": {"schema": schema(endpoint.body)}},
            }
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "omnibot admin API",
            "version": "1",
            "description": (
                "Manage omnibot's agents, channels, chats and dead letters. Every request except "
                "/healthz and this document needs `Authorization: Bearer <ADMIN_TOKEN>`. Every error "
                "is a JSON body with a stable `error` code, a `message` and the `problems` found."
            ),
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
