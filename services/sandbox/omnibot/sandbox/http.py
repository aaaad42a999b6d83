"""Answering HTTP the way both sides of the sandbox do: JSON bodies, JSON errors, decoding bodies.

Owns the JSON answer and error shapes (`{"error": code, "detail": ...}`), turning refusals and
routing misses into them, decoding a JSON body into a Struct, where the sandbox is reachable, and
which paths belong to the control side (everything the sandbox itself serves to people and tests:
`/sandbox/*`, the playground page and its static files) rather than to the Omnidesk side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from omnibot.sandbox.records import ApiError
from omnibot.sandbox.state import SandboxState

S = TypeVar("S")

CONTROL_PREFIX = "/sandbox"
PAGE_PATHS = frozenset({"/", "/favicon.ico"})


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # msgspec writes UTF-8 as is (no \u escapes), like a person reading the sandbox would expect.
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json", headers=headers
    )


def error_response(
    status: int, code: str, *, detail: str = "", headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {"error": code, "detail": detail} if detail else {"error": code}
    return json_response(body, status=status, headers=headers)


async def answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler; refusals and routing misses become Omnidesk-style JSON errors."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, detail=exc.detail)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return error_response(404, "not_found")
    except web.HTTPException as exc:
        return error_response(exc.status, re.sub(r"\W+", "_", exc.reason.lower()).strip("_"))


async def decode_json(request: web.Request, kind: type[S], *, require_json_type: bool = True) -> S:
    """The body decoded into `kind`; numbers given as strings are accepted (`strict=False`)."""
    if require_json_type and request.content_type != "application/json":
        raise ApiError(400, "content_type_not_supported", detail="send application/json")
    raw = await request.read()
    try:
        return msgspec.json.decode(raw or b"null", type=kind, strict=False)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_request", detail=str(exc)) from None


def base_url(request: web.Request, state: SandboxState) -> str:
    """Where this sandbox is reachable for whoever asked (the base of attachment urls)."""
    return state.public_url or f"{request.scheme}://{request.host}"


def is_control_path(path: str) -> bool:
    """Not Omnidesk: never logged, rate-limited or fault-injected like the API is."""
    return path in PAGE_PATHS or path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")
