"""The admin HTTP API: the operations of `Management` as JSON over HTTP, behind a bearer token.

One route table (`ENDPOINTS`) builds both the aiohttp router and the OpenAPI document served at
/api/v1/openapi.json, so the document lists exactly what is served. Every error is a JSON body
`{"error": <stable code>, "message": ..., "problems": [...]}`; lists are pages (`limit`, `offset`).
The listener is the admin service's own (ADMIN_HOST:ADMIN_PORT), never the public webhook one.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any, TypeVar, cast

import msgspec
from aiohttp import web
from pymongo.errors import PyMongoError

from omnibot.admin.audit import AuditEntry, MongoAuditLog
from omnibot.admin.openapi import AGENT_FILE, OPENAPI_DOCUMENT, Endpoint, Handler, Param, build_openapi
from omnibot.admin.operations import Management, Refused
from omnibot.admin.ops.chats import MAX_TRANSCRIPT_LINES, TRANSCRIPT_LINES
from omnibot.admin.ops.status import StatusView
from omnibot.admin.schemas import (
    DEFAULT_PAGE,
    MAX_PAGE,
    AgentDeleted,
    AgentImported,
    AgentPublish,
    AgentPublished,
    AgentValid,
    AgentVersionView,
    AgentView,
    ChannelChanges,
    ChannelCreate,
    ChannelDeleted,
    ChannelView,
    ChatSummary,
    ChatView,
    DeadLetterReplay,
    DeadLetterView,
    Health,
    Page,
    ReplayResult,
    SecretsRotated,
)
from omnibot.admin.validation import MAX_OFFSET, page_problems, parse_since
from omnibot.shared.crypto import SecretKeyError
from omnibot.shared.deadletters import StageName
from omnibot.shared.ids import MAX_CASE_ID_DIGITS, MAX_CHANNEL_ID_DIGITS
from omnibot.shared.printable import printable

log = logging.getLogger(__name__)

S = TypeVar("S", bound=msgspec.Struct)

MANAGEMENT = web.AppKey("management", Management)
TOKEN = web.AppKey("token", str)
OPENAPI = web.AppKey("openapi", dict[str, Any])
QUERY_NAMES = web.AppKey("query_names", dict[Any, frozenset[str]])  # handler → its query parameters
AUDIT = web.AppKey("audit", MongoAuditLog)

PREFIX = "/api/v1"
OPENAPI_PATH = f"{PREFIX}/openapi.json"
MAX_BODY_BYTES = 4 * 1024 * 1024
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)  # int() would also take "+1", " 1", "١"

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


# --- middlewares -----------------------------------------------------------------------------


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


def is_api_path(path: str) -> bool:
    """The JSON API's paths; everything else on the admin listener is the web console's."""
    return path == "/healthz" or path == PREFIX or path.startswith(PREFIX + "/")


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


# --- request helpers -------------------------------------------------------------------------


def _ops(request: web.Request) -> Management:
    return request.app[MANAGEMENT]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: msgspec.json.encode(d).decode())


async def _read(request: web.Request, *, required: bool) -> bytes | None:
    """The raw body, which must be JSON; None when there is none and none is required."""
    if not request.body_exists:
        if required:
            raise Refused("bad_request", ["a JSON body is required"])
        return None
    if request.content_type != "application/json":
        raise Refused("unsupported_media_type", ["send the body as application/json"])
    raw = await request.read()
    if not raw.strip():
        if required:
            raise Refused("bad_request", ["a JSON body is required"])
        return None
    return raw


async def _body(request: web.Request, kind: type[S], *, required: bool = True) -> S:
    """The body as `kind`, with every wrong field named (msgspec alone stops at the first)."""
    raw = await _read(request, required=required)
    if raw is None:
        return msgspec.convert({}, kind)
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise Refused("bad_request", ["the body is not valid JSON"]) from None
    except RecursionError:
        raise Refused("bad_request", ["the body is nested too deeply"]) from None
    if not isinstance(data, dict):
        raise Refused("bad_request", ["the body must be a JSON object"])
    fields = {f.encode_name: f for f in msgspec.structs.fields(kind)}
    problems = [f"{key}: unknown field" for key in data if key not in fields]
    for name, field in fields.items():
        if name not in data:
            if field.required:
                problems.append(f"{name}: required")
            continue
        try:
            msgspec.convert(data[name], field.type)
        except msgspec.ValidationError as exc:
            problems.append(f"{name}: {str(exc).replace(' - at `$', f' at `{name}')}")
    if problems:
        raise Refused("invalid", problems)
    return msgspec.convert(data, kind)


class _Query:
    """Query parameters, every problem collected before refusing.

    A parameter given twice, or given empty, is refused (400) rather than read as one of its
    values or as its default: the caller meant something, and guessing what hides their mistake.
    """

    def __init__(self, request: web.Request) -> None:
        self._query = request.query
        self.malformed: list[str] = []
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        values = self._query.getall(name, [])
        if len(values) > 1:
            self.malformed.append(f"{name}: given {len(values)} times; give it once")
            return None
        if values and values[0] == "":
            self.malformed.append(f"{name}: given empty; leave it out for the default")
            return None
        return values[0] if values else None

    def integer(self, name: str, default: int) -> int:
        value = self.optional_integer(name)
        return default if value is None else value

    def optional_integer(self, name: str) -> int | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if not _INTEGER.fullmatch(raw):
            self.problems.append(f"{name}: must be an integer")
            return None
        if len(raw.lstrip("-")) > 18:
            self.problems.append(f"{name}: out of range")
            return None
        return int(raw)

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if raw not in choices:
            self.problems.append(f"{name}: must be one of {', '.join(choices)}")
            return None
        return raw

    def flag(self, name: str) -> bool:
        raw = (self._raw(name) or "").lower()
        if raw not in ("", "true", "false", "1", "0"):
            self.problems.append(f"{name}: must be true or false")
        return raw in ("true", "1")

    def since(self, name: str) -> float | None:
        raw = self._raw(name)
        if raw is None:
            return None
        value, problem = parse_since(raw)
        if problem:
            self.problems.append(problem)
        return value

    def page(self) -> tuple[int, int]:
        return self.integer("limit", DEFAULT_PAGE), self.integer("offset", 0)

    def done(self) -> None:
        if self.malformed:
            raise Refused("bad_request", self.malformed)
        if self.problems:
            raise Refused("invalid", self.problems)


def _channel_id(request: web.Request) -> int:
    return int(request.match_info["channel_id"])


# --- handlers --------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "alive"})


async def status(request: web.Request) -> web.Response:
    return _json(await _ops(request).status.status())


async def openapi(request: web.Request) -> web.Response:
    return _json(request.app[OPENAPI])


async def list_agents(request: web.Request) -> web.Response:
    query = _Query(request)
    limit, offset = query.page()
    query.done()
    return _json(await _ops(request).agents.list_agents(limit=limit, offset=offset))


async def import_agent(request: web.Request) -> web.Response:
    query = _Query(request)
    publish = query.flag("publish")
    query.done()
    raw = await _read(request, required=True)
    assert raw is not None
    result = await _ops(request).agents.import_agent(raw, publish=publish)
    return _json(result, status=201)


async def validate_agent(request: web.Request) -> web.Response:
    raw = await _read(request, required=True)
    assert raw is not None
    return _json(await _ops(request).agents.validate_agent(raw))


async def show_agent(request: web.Request) -> web.Response:
    return _json(await _ops(request).agents.show_agent(request.match_info["name"]))


async def list_agent_versions(request: web.Request) -> web.Response:
    query = _Query(request)
    limit, offset = query.page()
    query.done()
    name = request.match_info["name"]
    return _json(await _ops(request).agents.list_agent_versions(name, limit=limit, offset=offset))


async def publish_agent(request: web.Request) -> web.Response:
    body = await _body(request, AgentPublish, required=False)
    return _json(await _ops(request).agents.publish_agent(request.match_info["name"], body.version))


async def export_agent(request: web.Request) -> web.Response:
    query = _Query(request)
    version = query.optional_integer("version")
    query.done()
    name = request.match_info["name"]
    exported = await _ops(request).agents.export_agent(name, version)
    return web.Response(body=exported, content_type="application/json")


async def delete_agent(request: web.Request) -> web.Response:
    return _json(await _ops(request).agents.delete_agent(request.match_info["name"]))


async def list_channels(request: web.Request) -> web.Response:
    query = _Query(request)
    limit, offset = query.page()
    query.done()
    return _json(await _ops(request).channels.list_channels(limit=limit, offset=offset))


async def create_channel(request: web.Request) -> web.Response:
    body = await _body(request, ChannelCreate)
    created = await _ops(request).channels.create_channel(**msgspec.structs.asdict(body))
    response = _json(created, status=201)
    response.headers["Location"] = f"{PREFIX}/channels/{created.id}"
    return response


async def show_channel(request: web.Request) -> web.Response:
    return _json(await _ops(request).channels.show_channel(_channel_id(request)))


async def update_channel(request: web.Request) -> web.Response:
    changes = await _body(request, ChannelChanges)
    return _json(await _ops(request).channels.update_channel(_channel_id(request), changes))


async def delete_channel(request: web.Request) -> web.Response:
    return _json(await _ops(request).channels.delete_channel(_channel_id(request)))


async def activate_channel(request: web.Request) -> web.Response:
    result = await _ops(request).channels.activate_channel(_channel_id(request))
    if result.active:
        return _json(result)
    checks = result.checks or []
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.passed]
    details = {"channel": msgspec.to_builtins(result), "checks": msgspec.to_builtins(checks)}
    return error(409, "activation_failed", failed, details=details)


async def deactivate_channel(request: web.Request) -> web.Response:
    return _json(await _ops(request).channels.deactivate_channel(_channel_id(request)))


async def rotate_webhook_secret(request: web.Request) -> web.Response:
    return _json(await _ops(request).channels.rotate_webhook_secret(_channel_id(request)))


async def list_chats(request: web.Request) -> web.Response:
    query = _Query(request)
    limit, offset = query.page()
    owner = query.choice("owner", ("bot", "operator"))
    since = query.since("updated_since")
    query.done()
    result = await _ops(request).chats.list_chats(
        _channel_id(request), owner=owner, updated_since=since, limit=limit, offset=offset
    )
    return _json(result)


async def show_chat(request: web.Request) -> web.Response:
    query = _Query(request)
    lines = query.integer("transcript", TRANSCRIPT_LINES)
    query.done()
    chat_id = request.match_info["chat_id"]
    return _json(await _ops(request).chats.show_chat(_channel_id(request), chat_id, transcript=lines))


async def transfer_chat(request: web.Request) -> web.Response:
    return _json(await _ops(request).chats.transfer_chat(_channel_id(request), request.match_info["chat_id"]))


async def resume_chat(request: web.Request) -> web.Response:
    return _json(await _ops(request).chats.resume_chat(_channel_id(request), request.match_info["chat_id"]))


async def list_dead_letters(request: web.Request) -> web.Response:
    query = _Query(request)
    limit, offset = query.page()
    stage = query.choice("stage", ("inbound", "outbound"))
    query.done()
    result = await _ops(request).dead_letters.list_dead_letters(
        stage=cast("StageName | None", stage), limit=limit, offset=offset
    )
    return _json(result)


async def replay_dead_letters(request: web.Request) -> web.Response:
    body = await _body(request, DeadLetterReplay)
    if body.all == bool(body.ids):
        raise Refused("invalid", ['give either "ids" (a non-empty list) or "all": true'])
    ids = None if body.all else body.ids
    return _json(await _ops(request).dead_letters.replay_dead_letters(ids, stage=body.stage))


async def rotate_secrets(request: web.Request) -> web.Response:
    return _json(await _ops(request).secrets.rotate_secrets())


async def list_audit(request: web.Request) -> web.Response:
    query = _Query(request)
    limit, offset = query.page()
    query.done()
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
    return _json(msgspec.to_builtins(page))


# --- the route table -------------------------------------------------------------------------

_INT = {"type": "integer"}
_PAGE = (
    Param(
        "limit", "query", {**_INT, "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}, "page size"
    ),
    Param("offset", "query", {**_INT, "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "items to skip"),
)
_NAME = Param("name", "path", {"type": "string"}, "agent name")
# Ids in paths are spelt one way only: ASCII digits, no sign, no leading zero (ids.py says why).
_CHANNEL = Param(
    "channel_id", "path", {**_INT, "minimum": 1, "maximum": 10**MAX_CHANNEL_ID_DIGITS - 1}, "channel id"
)
_CHAT = Param(
    "chat_id",
    "path",
    {"type": "string", "pattern": f"^[1-9][0-9]{{0,{MAX_CASE_ID_DIGITS - 1}}}$"},
    "the Omnidesk case id",
)
_CHANNEL_PATH = f"{PREFIX}/channels/{{channel_id}}"
_CHAT_PATH = f"{_CHANNEL_PATH}/chats/{{chat_id}}"

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
    # agents
    Endpoint("GET", f"{PREFIX}/agents", list_agents, "List agents", "agents", Page[AgentView], params=_PAGE),
    Endpoint(
        "POST",
        f"{PREFIX}/agents",
        import_agent,
        "Import an agent file as a new version",
        "agents",
        AgentImported,
        status=201,
        body=AGENT_FILE,
        params=(Param("publish", "query", {"type": "boolean"}, "publish the imported version"),),
        description="The body is the agent file itself. A broken file is refused (422 agent_invalid) "
        "with every problem listed; warnings (unreachable slots...) come back with the import.",
    ),
    Endpoint(
        "POST",
        f"{PREFIX}/agents/validate",
        validate_agent,
        "Check an agent file without importing it",
        "agents",
        AgentValid,
        body=AGENT_FILE,
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/agents/{{name}}",
        show_agent,
        "One agent",
        "agents",
        AgentView,
        params=(_NAME,),
        errors=(404,),
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/agents/{{name}}/versions",
        list_agent_versions,
        "List an agent's versions",
        "agents",
        Page[AgentVersionView],
        params=(_NAME, *_PAGE),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{PREFIX}/agents/{{name}}/publish",
        publish_agent,
        "Publish a version (default: the latest)",
        "agents",
        AgentPublished,
        body=AgentPublish,
        body_required=False,
        params=(_NAME,),
        errors=(404,),
        description="New chats use the published version; chats already running keep theirs.",
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/agents/{{name}}/export",
        export_agent,
        "Export a version as an importable agent file",
        "agents",
        AGENT_FILE,
        params=(
            _NAME,
            Param("version", "query", {**_INT, "minimum": 1}, "the version (default: the latest)"),
        ),
        errors=(404,),
    ),
    Endpoint(
        "DELETE",
        f"{PREFIX}/agents/{{name}}",
        delete_agent,
        "Delete an agent and all its versions",
        "agents",
        AgentDeleted,
        params=(_NAME,),
        errors=(404, 409),
        description="Refused (409 agent_in_use) while a channel uses the agent as its default agent.",
    ),
    # channels
    Endpoint(
        "GET",
        f"{PREFIX}/channels",
        list_channels,
        "List channels",
        "channels",
        Page[ChannelView],
        params=_PAGE,
    ),
    Endpoint(
        "POST",
        f"{PREFIX}/channels",
        create_channel,
        "Create a channel (CREATE, or CREATE & ACTIVATE with activate: true)",
        "channels",
        ChannelView,
        status=201,
        body=ChannelCreate,
        description="The answer holds the Chatbot webhook URL. With activate: true the four activation "
        "checks run and come back in `checks`; if one failed the channel is saved but inactive.",
    ),
    Endpoint(
        "GET",
        _CHANNEL_PATH,
        show_channel,
        "One channel",
        "channels",
        ChannelView,
        params=(_CHANNEL,),
        errors=(404,),
    ),
    Endpoint(
        "PATCH",
        _CHANNEL_PATH,
        update_channel,
        "Change a channel",
        "channels",
        ChannelView,
        body=ChannelChanges,
        params=(_CHANNEL,),
        errors=(404, 409),
        description="For an active channel, a new domain, e-mail, API key or agent must pass the "
        "activation checks: if one fails nothing changes (409 checks_failed, the checks in `details`).",
    ),
    Endpoint(
        "DELETE",
        _CHANNEL_PATH,
        delete_channel,
        "Delete a channel (its webhook URL stops working)",
        "channels",
        ChannelDeleted,
        params=(_CHANNEL,),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{_CHANNEL_PATH}/activate",
        activate_channel,
        "Run the activation checks; active if all pass",
        "channels",
        ChannelView,
        params=(_CHANNEL,),
        errors=(404, 409),
        description="409 activation_failed when a check failed: the channel is then inactive and "
        "`details` holds it and every check with its reason.",
    ),
    Endpoint(
        "POST",
        f"{_CHANNEL_PATH}/deactivate",
        deactivate_channel,
        "Deactivate (the webhook accepts nothing)",
        "channels",
        ChannelView,
        params=(_CHANNEL,),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{_CHANNEL_PATH}/rotate-secret",
        rotate_webhook_secret,
        "New webhook secret: a new Chatbot webhook URL, the old one stops working",
        "channels",
        ChannelView,
        params=(_CHANNEL,),
        errors=(404,),
    ),
    # chats
    Endpoint(
        "GET",
        f"{_CHANNEL_PATH}/chats",
        list_chats,
        "List a channel's chats, most recently updated first",
        "chats",
        Page[ChatSummary],
        params=(
            _CHANNEL,
            Param("owner", "query", {"enum": ["bot", "operator"]}, "only chats with this owner"),
            Param(
                "updated_since",
                "query",
                {"type": "string"},
                "only chats updated at or after this time (ISO 8601 or unix seconds)",
            ),
            *_PAGE,
        ),
        errors=(404,),
    ),
    Endpoint(
        "GET",
        _CHAT_PATH,
        show_chat,
        "One chat: owner, agent version, slot, variables, transcript, last error",
        "chats",
        ChatView,
        params=(
            _CHANNEL,
            _CHAT,
            Param(
                "transcript",
                "query",
                {**_INT, "minimum": 0, "maximum": MAX_TRANSCRIPT_LINES, "default": TRANSCRIPT_LINES},
                "how many transcript lines (the last)",
            ),
        ),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{_CHAT_PATH}/transfer",
        transfer_chat,
        "Hand the chat to an operator: the bot stops answering it",
        "chats",
        ChatView,
        params=(_CHANNEL, _CHAT),
        errors=(404, 409, 503),
        description="As the agent's transfer slot: egress leaves the operator a note, removes the bot "
        "label and sets the channel's transfer status and group; the bot says nothing more in the chat.",
    ),
    Endpoint(
        "POST",
        f"{_CHAT_PATH}/resume",
        resume_chat,
        "Hand the chat back to the bot, as a fresh session",
        "chats",
        ChatView,
        params=(_CHANNEL, _CHAT),
        errors=(404, 409),
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/status",
        status,
        "Replicas alive per role, partition owners, queue depths, dead letters, channels, Omnidesk errors",
        "operations",
        StatusView,
    ),
    # dead letters and secrets
    Endpoint(
        "GET",
        f"{PREFIX}/dead-letters",
        list_dead_letters,
        "List dead letters (what a stage gave up on, and why)",
        "operations",
        Page[DeadLetterView],
        params=(Param("stage", "query", {"enum": ["inbound", "outbound"]}, "only this stage"), *_PAGE),
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
        params=_PAGE,
        description="Changes made in the web console (actor: the user's e-mail) and through this API "
        "(actor: api-token); `at` is unix seconds.",
    ),
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
