"""The admin API's middlewares: every failure as a JSON error, the bearer token, unknown query
parameters refused."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from pymongo.errors import PyMongoError

from omnibot.admin.api.base import (
    AUDIT,
    MAX_BODY_BYTES,
    OPENAPI_PATH,
    QUERY_NAMES,
    STATUS,
    TOKEN,
    error,
    is_api_path,
)
from omnibot.admin.api.openapi import Handler
from omnibot.admin.operations import Refused
from omnibot.shared.crypto import SecretKeyError
from omnibot.shared.printable import printable

log = logging.getLogger("omnibot.admin.api")


@web.middleware
async def answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as a JSON error; one log line per request (no bodies: they hold API keys)."""
    if not is_api_path(request.path):
        return await handler(request)  # the web console's page: it answers in HTML itself
    try:
        response = await handler(request)
    except Refused as exc:
        response = error(STATUS.get(exc.code, 409), exc.code, exc.problems, details=exc.details)
    except web.HTTPException as exc:
        response = _http_error(exc)
    except SecretKeyError as exc:
        log.error("admin request failed: %s", exc)
        response = error(500, "secret_key", [str(exc)])
    except PyMongoError as exc:
        log.warning("admin request failed: MongoDB unavailable (%s)", type(exc).__name__)
        response = error(503, "unavailable", ["MongoDB is unavailable; try again"])
    except Exception:
        log.exception("admin request failed")
        response = error(500, "internal", ["unexpected error; the admin service's log has the details"])
    log.info("%s %s %d", request.method, _shown(request.path), response.status)
    return response


def _http_error(exc: web.HTTPException) -> web.Response:
    if isinstance(exc, web.HTTPNotFound):
        return error(404, "not_found", [f"no such endpoint; the API is described at {OPENAPI_PATH}"])
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = error(
            405, "method_not_allowed", [f"{exc.method} is not allowed here (allowed: {allowed})"]
        )
        response.headers["Allow"] = allowed  # RFC 9110: a 405 names the methods that are allowed
        return response
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error(413, "too_large", [f"the body is larger than {MAX_BODY_BYTES} bytes"])
    code = exc.reason.lower().replace(" ", "_") or "error"
    return error(exc.status, code, [exc.reason])


def _shown(path: str) -> str:
    """A request path as logged: decoded (`%0A` is a newline), so its control characters escaped,
    lest an unauthenticated caller write log lines of its own."""
    return printable(path)


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in ("/healthz", OPENAPI_PATH) or not is_api_path(request.path):
        return await handler(request)  # the console's pages check their own sessions
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        log.warning("admin API: refused %s %s without a bearer token", request.method, _shown(request.path))
        response = error(401, "unauthorized", ["send the admin token: Authorization: Bearer <ADMIN_TOKEN>"])
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    if not hmac.compare_digest(given.strip().encode(), request.app[TOKEN].encode()):
        log.warning("admin API: refused %s %s with a wrong token", request.method, _shown(request.path))
        response = error(401, "unauthorized", ["the bearer token is not the admin token"])
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    answer = await handler(request)
    audit = request.app.get(AUDIT)
    if audit is not None and request.method not in ("GET", "HEAD") and answer.status < 400:
        await audit.record(
            "api-token", f"{request.method} {request.path}", request.match_info.get("name", "")
        )
    return answer


@web.middleware
async def refuse_unknown_query(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A query parameter the endpoint does not take is refused: a typo would otherwise be ignored
    silently (`?limt=5` answering the default page)."""
    known = request.app[QUERY_NAMES].get(request.match_info.route.handler)
    if known is None:
        return await handler(request)  # not an endpoint of the API (the console's pages, a 404)
    unknown = sorted(set(request.query) - known)
    if unknown:
        raise Refused(
            "bad_request", [f"{printable(name)}: not a parameter of this endpoint" for name in unknown]
        )
    return await handler(request)
