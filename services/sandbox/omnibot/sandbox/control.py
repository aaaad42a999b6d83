"""The `/sandbox` control API: what tests and people use to drive and inspect the sandbox account.

Owns: playing the customer (which fires the rules), registering rules, scripting faults, timed
outages of the whole API and the rate limit, managing staff, switching API variants, reading cases,
waiting for the bot, the request and webhook logs, resetting; and `GET /files/{name}?size=N`, public
files of any size for egress to download. JSON in and out (the customer's message may also be
multipart, with files, as the playground's form sends it), no auth (the sandbox is a local
stand-in, never an exposed service).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any, Literal

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from omnibot.sandbox.faults import FaultResponse, Outage
from omnibot.sandbox.http import (
    answer_errors,
    base_url,
    decode_json,
    error_response,
    is_control_path,
    json_response,
)
from omnibot.sandbox.records import MAX_MESSAGE_FILES_BYTES, ApiError, Case, NewFile, Rule, check_file_sizes
from omnibot.sandbox.rules import DEFAULT_WEBHOOK_BODY, RuleRunner, is_webhook_url
from omnibot.sandbox.state import SandboxState
from omnibot.sandbox.uploads import read_form
from omnibot.sandbox.wire import guess_mime, render_case, render_label, render_message, render_staff

MAX_WAIT_S = 300.0
MAX_DEMO_FILE_BYTES = 2 * MAX_MESSAGE_FILES_BYTES  # enough to test every size limit


# --- request bodies ---------------------------------------------------------------------------


class _CustomerUser(msgspec.Struct, kw_only=True):
    user_id: int | None = None
    email: str = ""
    name: str = ""
    phone: str = ""


class _CustomerFile(msgspec.Struct, kw_only=True):
    name: str
    content_base64: str
    mime_type: str | None = None


class _CustomerMessage(msgspec.Struct, kw_only=True):
    case_id: int | None = None
    text: str = ""
    user: _CustomerUser = msgspec.field(default_factory=_CustomerUser)
    files: list[_CustomerFile] = msgspec.field(default_factory=list)


class _RuleIn(msgspec.Struct, kw_only=True):
    webhook_url: str
    on: Literal["incoming", "changed"]
    require_label: bool = True
    body: Any = None  # None: product.md's body


class _FaultResponseIn(msgspec.Struct, kw_only=True):
    status: int | None = None
    body: Any = None
    delay_s: float = 0.0
    after_accept: bool = False
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class _FaultIn(msgspec.Struct, kw_only=True):
    method: str | None = None
    path: str
    responses: list[_FaultResponseIn]
    times: int = 1


class _OutageIn(msgspec.Struct, kw_only=True):
    seconds: float
    status: int = 503


class _RateLimitIn(msgspec.Struct):
    per_minute: int


class _StaffIn(msgspec.Struct, kw_only=True):
    email: str
    full_name: str = ""
    active: bool = True


class _StaffActiveIn(msgspec.Struct):
    active: bool


class _SettingsIn(msgspec.Struct, kw_only=True):
    delete_labels_supported: bool | None = None


# --- pure helpers -----------------------------------------------------------------------------


def demo_file_bytes(name: str, size: int) -> bytes:
    """Deterministic content for `/files/{name}`: a 4 KiB block derived from the name, repeated."""
    block = hashlib.sha256(name.encode()).digest() * 128
    return (block * (size // len(block) + 1))[:size]


def case_subject(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return first_line[:80] or "Новое обращение"


def case_detail(state: SandboxState, case: Case) -> dict[str, Any]:
    """A case as tests read it: the wire case, its replies and notes, its labels by title."""
    return {
        "case": render_case(case),
        "messages": [render_message(m) for m in case.messages if not m.note],
        "notes": [render_message(m) for m in case.messages if m.note],
        "labels": [render_label(state.labels[i]) for i in case.labels if i in state.labels],
    }


def _render_rule(rule: Rule) -> dict[str, Any]:
    return {
        "rule_id": rule.rule_id,
        "webhook_url": rule.webhook_url,
        "on": rule.on,
        "require_label": rule.require_label,
        "body": rule.body,
    }


def _query_number(request: web.Request, name: str, default: float, *, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"incorrect_{name}") from None
    if not 0 <= value <= high:
        raise ApiError(400, f"incorrect_{name}")
    return value


def _decode_files(files: list[_CustomerFile]) -> list[NewFile]:
    decoded = []
    for file in files:
        try:
            content = base64.b64decode(file.content_base64, validate=True)
        except binascii.Error:
            raise ApiError(400, "invalid_base64", detail=file.name) from None
        decoded.append(
            NewFile(name=file.name, content=content, mime_type=file.mime_type or guess_mime(file.name))
        )
    return decoded


def _form_number(raw: str | None, name: str) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"incorrect_{name}") from None


async def _customer_from_form(request: web.Request) -> tuple[_CustomerMessage, list[NewFile]]:
    """The customer's message as a browser form sends it: `text`, `case_id`, `name`, `email`,
    `phone`, `user_id` and files under any field name (an empty file input sends a nameless part)."""
    form = await read_form(request)
    user = _CustomerUser(
        user_id=_form_number(form.first("user_id"), "user_id"),
        email=form.first("email") or "",
        name=form.first("name") or "",
        phone=form.first("phone") or "",
    )
    body = _CustomerMessage(
        case_id=_form_number(form.first("case_id"), "case_id"), text=form.first("text") or "", user=user
    )
    files = [item.file for item in form.files if item.file.name or item.file.content]
    for file in files:
        file.name = file.name or "file"
    return body, files


def _same_origin(request: web.Request) -> bool:
    """No `Origin` (curl, tests, omnibot) or this sandbox's own: the page's requests."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _render_outage(state: SandboxState, outage: Outage | None) -> dict[str, Any] | None:
    if outage is None:
        return None
    return {"status": outage.status, "seconds_left": round(max(0.0, outage.until - state.clock()), 3)}


def _fault_responses(spec: _FaultIn) -> list[FaultResponse]:
    if not spec.responses or spec.times < 1:
        raise ApiError(400, "invalid_request", detail="responses must not be empty and times must be >= 1")
    responses = []
    for item in spec.responses:
        if item.status is not None and not 100 <= item.status <= 599:
            raise ApiError(400, "invalid_request", detail=f"status {item.status}")
        if not 0 <= item.delay_s <= MAX_WAIT_S:
            raise ApiError(400, "invalid_request", detail=f"delay_s {item.delay_s}")
        responses.append(
            FaultResponse(
                status=item.status,
                body=item.body,
                headers=dict(item.headers),
                delay_s=item.delay_s,
                after_accept=item.after_accept,
            )
        )
    return responses


# --- the control API --------------------------------------------------------------------------


class SandboxControl:
    """Handlers of `/sandbox/*` and `/files/*`."""

    def __init__(self, state: SandboxState, rules: RuleRunner) -> None:
        self._state = state
        self._rules = rules

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/sandbox", self.info),
            web.post("/sandbox/reset", self.reset),
            web.post("/sandbox/settings", self.settings),
            web.get("/sandbox/rules", self.list_rules),
            web.post("/sandbox/rules", self.add_rule),
            web.delete("/sandbox/rules", self.clear_rules),
            web.post("/sandbox/customer-messages", self.customer_message),
            web.get("/sandbox/cases/{case_id}", self.get_case),
            web.get("/sandbox/cases/{case_id}/wait", self.wait_case),
            web.get("/sandbox/requests", self.list_requests),
            web.delete("/sandbox/requests", self.clear_requests),
            web.get("/sandbox/webhooks", self.list_webhooks),
            web.delete("/sandbox/webhooks", self.clear_webhooks),
            web.get("/sandbox/faults", self.list_faults),
            web.post("/sandbox/faults", self.add_fault),
            web.delete("/sandbox/faults", self.clear_faults),
            web.get("/sandbox/outage", self.get_outage),
            web.post("/sandbox/outage", self.start_outage),
            web.delete("/sandbox/outage", self.end_outage),
            web.post("/sandbox/rate-limit", self.set_rate_limit),
            web.post("/sandbox/staff", self.add_staff),
            web.put("/sandbox/staff/{staff_id}", self.update_staff),
            web.get("/files/{name}", self.demo_file),
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """JSON errors for `/sandbox`; everything else is the Omnidesk side's business."""
        if not is_control_path(request.path):
            return await handler(request)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(request):
            # Another site's page must not drive this sandbox through a visitor's browser.
            return error_response(403, "cross_origin_request")
        return await answer_errors(request, handler)

    async def _body(self, request: web.Request, kind: type[Any]) -> Any:
        # Any content type: people drive this with `curl -d`, which says form-urlencoded.
        return await decode_json(request, kind, require_json_type=False)

    # -- the account ---------------------------------------------------------------------------

    async def info(self, request: web.Request) -> web.Response:
        """What a person needs to point an omnibot channel at this sandbox."""
        state = self._state
        return json_response(
            {
                "omnidesk_domain": base_url(request, state),
                "api_key": state.api_key,  # a sandbox key, not a secret
                "bot_email": state.bot_email,
                "bot_staff_id": state.bot_staff_id,
                "bot_label_id": state.bot_label_id,
                "rate_limit_per_minute": state.rate_limiter.per_minute,
                "delete_labels_supported": state.delete_labels_supported,
                "rules": [_render_rule(rule) for rule in state.rules],
                "cases": len(state.cases),
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        self._rules.cancel_pending()
        self._state.reset()
        return json_response({"ok": True})

    async def settings(self, request: web.Request) -> web.Response:
        """Switch API variants (today: whether `delete_labels` works on this account)."""
        body: _SettingsIn = await self._body(request, _SettingsIn)
        if body.delete_labels_supported is not None:
            self._state.set_delete_labels_supported(body.delete_labels_supported)
        return json_response({"delete_labels_supported": self._state.delete_labels_supported})

    async def set_rate_limit(self, request: web.Request) -> web.Response:
        body: _RateLimitIn = await self._body(request, _RateLimitIn)
        if body.per_minute < 1:
            raise ApiError(400, "invalid_request", detail="per_minute must be >= 1")
        self._state.set_rate_limit(body.per_minute)
        return json_response({"per_minute": body.per_minute})

    async def add_staff(self, request: web.Request) -> web.Response:
        body: _StaffIn = await self._body(request, _StaffIn)
        member = self._state.add_staff(email=body.email, full_name=body.full_name, active=body.active)
        return json_response({"staff": render_staff(member)}, status=201)

    async def update_staff(self, request: web.Request) -> web.Response:
        try:
            staff_id = int(request.match_info["staff_id"])
        except ValueError:
            raise ApiError(404, "staff_not_found") from None
        body: _StaffActiveIn = await self._body(request, _StaffActiveIn)
        return json_response({"staff": render_staff(self._state.set_staff_active(staff_id, body.active))})

    # -- rules and the customer ----------------------------------------------------------------

    async def list_rules(self, request: web.Request) -> web.Response:
        return json_response({"rules": [_render_rule(rule) for rule in self._state.rules]})

    async def add_rule(self, request: web.Request) -> web.Response:
        body: _RuleIn = await self._body(request, _RuleIn)
        if not is_webhook_url(body.webhook_url):
            raise ApiError(400, "invalid_request", detail="webhook_url must be http(s)")
        rule = self._state.add_rule(
            webhook_url=body.webhook_url,
            on=body.on,
            require_label=body.require_label,
            body=body.body if body.body is not None else DEFAULT_WEBHOOK_BODY,
        )
        return json_response({"rule": _render_rule(rule)}, status=201)

    async def clear_rules(self, request: web.Request) -> web.Response:
        self._state.clear_rules()
        return json_response({"ok": True})

    async def customer_message(self, request: web.Request) -> web.Response:
        """Play the customer; answer once the rules' webhooks were answered."""
        if request.content_type == "multipart/form-data":
            body, files = await _customer_from_form(request)
        else:
            body = await self._body(request, _CustomerMessage)
            files = _decode_files(body.files)
        if not body.text and not files:
            raise ApiError(400, "content_required")
        check_file_sizes(len(f.content) for f in files)
        state = self._state
        if body.case_id is None:
            user = state.user_for(
                user_id=body.user.user_id, email=body.user.email, name=body.user.name, phone=body.user.phone
            )
            case = state.open_case(user=user, subject=case_subject(body.text))
        else:
            case = state.find_case(body.case_id)
        message = state.add_customer_message(
            case.case_id, text=body.text, files=files, base_url=base_url(request, state)
        )
        deliveries = await self._rules.customer_message(case, message, new_case=body.case_id is None)
        return json_response(
            {
                "case_id": case.case_id,
                "user_id": case.user_id,
                "message_id": message.message_id,
                "attachments": [a.url for a in message.attachments],
                "webhooks": [{"url": d.url, "status": d.status, "error": d.error} for d in deliveries],
            }
        )

    # -- reading and waiting -------------------------------------------------------------------

    def _case(self, request: web.Request) -> Case:
        try:
            case_id = int(request.match_info["case_id"])
        except ValueError:
            raise ApiError(404, "case_not_found") from None
        return self._state.find_case(case_id)

    async def get_case(self, request: web.Request) -> web.Response:
        return json_response(case_detail(self._state, self._case(request)))

    async def wait_case(self, request: web.Request) -> web.Response:
        """Long-poll until the case has at least `staff_messages` replies and `notes` notes."""
        case_id = self._case(request).case_id
        want_replies = _query_number(request, "staff_messages", 0, high=10_000)
        want_notes = _query_number(request, "notes", 0, high=10_000)
        timeout = _query_number(request, "timeout", 10.0, high=MAX_WAIT_S)

        def ready(state: SandboxState) -> bool:
            return (
                case_id in state.cases  # a reset removes it
                and len(state.staff_messages(case_id)) >= want_replies
                and len(state.notes(case_id)) >= want_notes
            )

        try:
            await self._state.wait_for(ready, timeout)
        except TimeoutError:
            if case_id not in self._state.cases:
                raise ApiError(404, "case_not_found") from None
            return json_response(
                {"error": "timeout", **case_detail(self._state, self._state.case(case_id))}, status=408
            )
        return json_response(case_detail(self._state, self._state.case(case_id)))

    async def list_requests(self, request: web.Request) -> web.Response:
        """The request log, optionally filtered by `method` and a `path` regex."""
        method = request.query.get("method", "").upper()
        try:
            path = re.compile(request.query.get("path", ""))
        except re.error:
            raise ApiError(400, "invalid_request", detail="path is not a regex") from None
        requests = [
            r for r in self._state.requests if (not method or r.method == method) and path.search(r.path)
        ]
        return json_response({"requests": requests, "count": len(requests)})

    async def clear_requests(self, request: web.Request) -> web.Response:
        self._state.clear_requests()
        return json_response({"ok": True})

    async def list_webhooks(self, request: web.Request) -> web.Response:
        return json_response({"deliveries": self._state.webhook_deliveries})

    async def clear_webhooks(self, request: web.Request) -> web.Response:
        self._state.clear_deliveries()
        return json_response({"ok": True})

    # -- faults --------------------------------------------------------------------------------

    async def list_faults(self, request: web.Request) -> web.Response:
        faults = [
            {"method": f.method, "path": f.path.pattern, "remaining": len(f.responses)}
            for f in self._state.faults.pending()
        ]
        return json_response({"faults": faults})

    async def add_fault(self, request: web.Request) -> web.Response:
        body: _FaultIn = await self._body(request, _FaultIn)
        responses = _fault_responses(body)
        try:
            self._state.faults.add(method=body.method, path=body.path, responses=responses, times=body.times)
        except re.error:
            raise ApiError(400, "invalid_request", detail="path is not a regex") from None
        return json_response({"queued": len(responses) * body.times}, status=201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._state.faults.clear()
        return json_response({"ok": True})

    # -- outage ------------------------------------------------------------------------------

    async def get_outage(self, request: web.Request) -> web.Response:
        self._state.outage_status()  # forgets an outage that is over
        return json_response({"outage": _render_outage(self._state, self._state.outage)})

    async def start_outage(self, request: web.Request) -> web.Response:
        """`{"seconds": S, "status": 503}`: every `/api` request answers `status` for S seconds."""
        body: _OutageIn = await self._body(request, _OutageIn)
        if not 0 < body.seconds <= MAX_WAIT_S:
            raise ApiError(400, "invalid_request", detail=f"seconds must be in (0, {MAX_WAIT_S:.0f}]")
        if not 400 <= body.status <= 599:
            raise ApiError(400, "invalid_request", detail="status must be an error status (400-599)")
        outage = self._state.start_outage(body.seconds, body.status)
        return json_response({"outage": _render_outage(self._state, outage)})

    async def end_outage(self, request: web.Request) -> web.Response:
        self._state.end_outage()
        return json_response({"outage": None})

    # -- public demo files -----------------------------------------------------------------------

    async def demo_file(self, request: web.Request) -> web.Response:
        """`size` bytes (default 1024) of deterministic content, typed by the file name."""
        name = request.match_info["name"]
        size = int(_query_number(request, "size", 1024, high=MAX_DEMO_FILE_BYTES))
        return web.Response(body=demo_file_bytes(name, size), content_type=guess_mime(name))
