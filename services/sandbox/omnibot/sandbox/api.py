"""The sandbox account's Omnidesk REST API, in Omnidesk's wire format (omnidesk-api.md §1-2).

Owns: the `/api/*.json` routes, the public attachment downloads, the middleware every request
outside `/sandbox` passes (request log, outage, per-minute rate limit, scripted faults, HTTP Basic
auth, JSON errors), and the wire rendering of staff, labels, cases and messages (control.py reuses it).

Choices where public material is silent, each made here and nowhere else (GUESS):
- paging values out of range answer 400 `incorrect_page` / `incorrect_limit`;
- a refused rate limit is 429 `rate_limit_exceeded` with a `retry_after` header (whole seconds);
- bodies must be `application/json` or, for messages and notes, `multipart/form-data`;
- a message `staff_id` other than the authenticated staff member answers 400 `incorrect_staff_id`;
- `attachment_urls` are fetched by the sandbox, like Omnidesk does, with the same size limits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import PurePosixPath
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import hdrs, web
from aiohttp.multipart import BodyPartReader
from aiohttp.typedefs import Handler
from yarl import URL

from omnibot.sandbox.rules import RuleRunner
from omnibot.sandbox.state import (
    MAX_FILE_BYTES,
    MAX_MESSAGE_FILES_BYTES,
    ApiError,
    Attachment,
    Case,
    CaseStatus,
    FaultResponse,
    Label,
    Message,
    NewFile,
    RateDecision,
    RecordedFile,
    RecordedRequest,
    SandboxState,
    Staff,
    check_file_sizes,
    page_slice,
)

S = TypeVar("S")

CONTROL_PREFIX = "/sandbox"
API_PREFIX = "/api/"
DEFAULT_LIMIT = 100
CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client went away first"
MAX_PAGE = 500
_MAX_FIELD_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=30)
# Omnidesk answers with Moscow-time RFC-2822 stamps ("Mon, 05 May 2014 00:15:17 +0300").
_MSK = timezone(timedelta(hours=3))
# `message[content]`, `message[attachments][0]`, `note[content_html]` ...
_FORM_FIELD = re.compile(r"^(?P<root>\w+)\[(?P<key>\w+)\](?:\[(?P<index>\d*)\])?$")

AUTH_STAFF: web.RequestKey[Staff] = web.RequestKey("sandbox_auth_staff", Staff)
RECORD: web.RequestKey[RecordedRequest] = web.RequestKey("sandbox_record", RecordedRequest)


# --- wire rendering (pure) ----------------------------------------------------------------------


def rfc2822(timestamp: float | None) -> str:
    """Omnidesk's timestamp format; "-" for never (e.g. `closed_at` of an open case)."""
    if timestamp is None:
        return "-"
    return format_datetime(datetime.fromtimestamp(timestamp, _MSK))


def render_staff(member: Staff) -> dict[str, Any]:
    return {
        "staff_id": member.staff_id,
        "staff_email": member.email,
        "staff_full_name": member.full_name,
        "staff_signature": "",
        "staff_signature_chat": "",
        "thumbnail": "",
        "active": member.active,
        "status": "online" if member.active else "offline",  # deprecated by Omnidesk; status_id rules
        "status_id": member.status_id,
        "created_at": rfc2822(member.created_at),
        "updated_at": rfc2822(member.updated_at),
    }


def render_label(label: Label) -> dict[str, Any]:
    return {"label_id": label.label_id, "label_title": label.title}


def render_attachment(attachment: Attachment) -> dict[str, Any]:
    return {
        "file_id": attachment.file_id,
        "file_name": attachment.file_name,
        "file_size": attachment.file_size,
        "mime_type": attachment.mime_type,
        "url": attachment.url,
    }


def render_message(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "user_id": message.user_id,
        "staff_id": message.staff_id,
        "content": message.content,
        "content_html": message.content_html,
        "attachments": [render_attachment(a) for a in message.attachments],
        "note": message.note,
        "sent_via_rule": message.sent_via_rule,
        "created_at": rfc2822(message.created_at),
        "sent_at": rfc2822(message.created_at),
    }


def render_case(case: Case) -> dict[str, Any]:
    """The full field set of omnidesk-api.md §2.1."""
    closing_speed: int | str = "-"
    if case.closed_at is not None:
        closing_speed = round((case.closed_at - case.created_at) / 60)
    return {
        "case_id": case.case_id,
        "case_number": case.case_number,
        "subject": case.subject,
        "user_id": case.user_id,
        "staff_id": case.staff_id,
        "group_id": case.group_id,
        "status": case.status,
        "priority": case.priority,
        "channel": case.channel,
        "recipient": "",
        "cc_emails": "",
        "bcc_emails": "",
        "deleted": False,
        "spam": False,
        "created_at": rfc2822(case.created_at),
        "closed_at": rfc2822(case.closed_at),
        "updated_at": rfc2822(case.updated_at),
        "last_response_at": rfc2822(case.last_response_at),
        "closing_speed": closing_speed,
        "language_id": 1,
        "custom_fields": {},
        "labels": list(case.labels),
        "locked_labels": [],
        "rating": "-",
        "rating_comment": "",
        "rated_staff_id": 0,
    }


def render_page(root: str, objects: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """Omnidesk's list shape: `{"0": {root: {...}}, "1": ..., "total_count": N}`, not an array."""
    body: dict[str, Any] = {str(n): {root: obj} for n, obj in enumerate(objects)}
    body["total_count"] = total
    return body


def _bounded_int(raw: str | None, *, default: int, low: int, high: int, code: str) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, code) from None
    if not low <= value <= high:
        raise ApiError(400, code)
    return value


def parse_paging(query: Mapping[str, str]) -> tuple[int, int]:
    """`page` (1..500) and `limit` (1..100, default 100)."""
    page = _bounded_int(query.get("page"), default=1, low=1, high=MAX_PAGE, code="incorrect_page")
    limit = _bounded_int(
        query.get("limit"), default=DEFAULT_LIMIT, low=1, high=DEFAULT_LIMIT, code="incorrect_limit"
    )
    return page, limit


def parse_basic_auth(header: str) -> tuple[str, str] | None:
    """`(login, password)` of an HTTP Basic `Authorization` header, None if it is not one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    login, colon, password = decoded.partition(":")
    return (login, password) if colon else None


def guess_mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


# --- HTTP helpers shared with control.py --------------------------------------------------------


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
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def _path_int(request: web.Request, name: str, not_found: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise ApiError(404, not_found) from None


# --- request bodies -----------------------------------------------------------------------------


class _MessageFields(msgspec.Struct, kw_only=True):
    staff_id: int | None = None
    user_id: int | None = None
    content: str | None = None
    content_html: str | None = None
    attachment_urls: list[str] = msgspec.field(default_factory=list)


class _MessageBody(msgspec.Struct):
    message: _MessageFields


class _NoteBody(msgspec.Struct):
    note: _MessageFields


class _CaseEdit(msgspec.Struct, kw_only=True):
    labels: list[int] | None = None
    add_labels: list[int] | None = None
    delete_labels: list[int] | None = None
    status: CaseStatus | None = None
    group_id: int | None = None
    staff_id: int | None = None
    subject: str | None = None
    priority: str | None = None


class _CaseEditBody(msgspec.Struct):
    case: _CaseEdit


class _LabelFields(msgspec.Struct):
    label_title: str


class _LabelBody(msgspec.Struct):
    label: _LabelFields


@dataclass(kw_only=True)
class _Draft:
    """A message or note as the client sent it, JSON or multipart alike."""

    staff_id: int | None = None
    user_id: int | None = None
    content: str = ""
    content_html: str = ""
    files: list[NewFile] = field(default_factory=list)
    attachment_urls: list[str] = field(default_factory=list)


def _draft_from_fields(fields: _MessageFields) -> _Draft:
    return _Draft(
        staff_id=fields.staff_id,
        user_id=fields.user_id,
        content=fields.content or "",
        content_html=fields.content_html or "",
        attachment_urls=list(fields.attachment_urls),
    )


def _form_int(raw: str | None, code: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, code) from None


async def _read_part(part: BodyPartReader, limit: int, code: str) -> bytes:
    """Read a multipart part, refusing as soon as it exceeds `limit` (never buffering more)."""
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise ApiError(400, code)
    return bytes(data)


async def _read_multipart(request: web.Request, root: str) -> _Draft:
    """`root[content]`, `root[content_html]`, `root[staff_id]`, `root[attachments][N]` files."""
    record = request[RECORD]
    reader = await request.multipart()
    draft = _Draft()
    fields: dict[str, str] = {}
    files_total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "invalid_multipart")
        name = part.name or ""
        match = _FORM_FIELD.match(name)
        ours = match is not None and match["root"] == root
        if part.filename is not None:
            limit = min(MAX_FILE_BYTES, MAX_MESSAGE_FILES_BYTES - files_total)
            data = await _read_part(part, limit, "file_too_large")
            files_total += len(data)
            declared = part.headers.get(hdrs.CONTENT_TYPE, "").split(";")[0].strip()
            mime = (
                declared if declared and declared != "application/octet-stream" else guess_mime(part.filename)
            )
            record.files.append(RecordedFile(field=name, name=part.filename, size=len(data), mime_type=mime))
            # A file under any other name is ignored, as Omnidesk would: tests see it in the log only.
            if ours and match is not None and match["key"] == "attachments":
                draft.files.append(NewFile(name=part.filename, content=data, mime_type=mime))
            continue
        text = (await _read_part(part, _MAX_FIELD_BYTES, "field_too_large")).decode(part.get_charset("utf-8"))
        record.form[name] = text
        if ours and match is not None:
            if match["key"] == "attachment_urls":
                draft.attachment_urls.append(text)
            elif match["index"] is None:
                fields[match["key"]] = text
    draft.staff_id = _form_int(fields.get("staff_id"), "incorrect_staff_id")
    draft.user_id = _form_int(fields.get("user_id"), "incorrect_user_id")
    draft.content = fields.get("content", "")
    draft.content_html = fields.get("content_html", "")
    return draft


async def _fetch_files(urls: list[str]) -> list[NewFile]:
    """Download `attachment_urls` the way Omnidesk does, with the same limits."""
    files: list[NewFile] = []
    try:
        async with aiohttp.ClientSession(timeout=_FETCH_TIMEOUT) as session:
            for url in urls:
                async with session.get(url) as response:
                    if response.status != 200:
                        raise ApiError(400, "attachment_url_unreachable", detail=f"{url}: {response.status}")
                    data = bytearray()
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        data += chunk
                        if len(data) > MAX_FILE_BYTES:
                            raise ApiError(400, "file_too_large")
                name = PurePosixPath(URL(url).path).name or "file"
                mime = response.content_type if response.content_type != "application/octet-stream" else ""
                files.append(NewFile(name=name, content=bytes(data), mime_type=mime or guess_mime(name)))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ApiError(400, "attachment_url_unreachable", detail=str(exc)) from None
    return files


def _rate_headers(response: web.StreamResponse, decision: RateDecision | None) -> web.StreamResponse:
    if decision is not None:
        # setdefault: headers a scripted fault sets win.
        response.headers.setdefault("rate_limit_per_minute", str(decision.limit))
        response.headers.setdefault("api_calls_left", str(decision.left))
    return response


def _fault_response(fault: FaultResponse, status: int) -> web.Response:
    body = fault.body if fault.body is not None else {"error": "sandbox_fault"}
    if isinstance(body, str):  # e.g. a proxy's HTML error page
        response = web.Response(status=status, text=body, content_type="text/html")
    else:
        response = json_response(body, status=status)
    response.headers.update(fault.headers)
    return response


def _record_of(request: web.Request, json_body: Any) -> RecordedRequest:
    headers = {
        name: (value.split(" ", 1)[0] + " <redacted>" if name.lower() == "authorization" else value)
        for name, value in request.headers.items()
    }
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query.items()),
        headers=headers,
        time=0.0,
        json=json_body,
    )


# --- the API ------------------------------------------------------------------------------------


class OmnideskApi:
    """Handlers of the Omnidesk API and the middleware of the Omnidesk side of the sandbox."""

    def __init__(self, state: SandboxState, rules: RuleRunner) -> None:
        self._state = state
        self._rules = rules
        self._stopping = asyncio.Event()

    async def on_shutdown(self, app: web.Application) -> None:
        """Cut scripted delays short: aiohttp waits for in-flight handlers after this signal."""
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        """Only scripted faults ever wait (`delay_s`), and never past the server's shutdown."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/staff.json", self.list_staff),
            web.get("/api/staff/{staff_id}.json", self.get_staff),
            web.get("/api/labels.json", self.list_labels),
            web.post("/api/labels.json", self.create_label),
            web.get("/api/cases/{case_id}.json", self.get_case),
            web.put("/api/cases/{case_id}.json", self.edit_case),
            web.get("/api/cases/{case_id}/messages.json", self.list_messages),
            web.post("/api/cases/{case_id}/messages.json", self.post_message),
            web.post("/api/cases/{case_id}/note.json", self.post_note),
            web.get("/attachment/download/chat/{url_hash}/{name}", self.download_attachment),
        ]

    # -- middleware --------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Log, rate-limit, fault-inject and authenticate everything outside `/sandbox`."""
        if is_control_path(request.path):
            return await handler(request)
        record = await self._start_record(request)
        status = 500  # unless an answer is produced
        try:
            response = await self._answer(request, handler)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = CLIENT_CLOSED_REQUEST  # the client left before the answer (e.g. its timeout)
            raise
        finally:
            self._state.finish_request(record, status)

    async def _start_record(self, request: web.Request) -> RecordedRequest:
        json_body: Any = None
        if request.body_exists and request.content_type == "application/json":
            try:
                # Cached by aiohttp: the handler reads the same bytes again.
                json_body = msgspec.json.decode(await request.read())
            except (msgspec.DecodeError, web.HTTPException):
                json_body = None
        record = _record_of(request, json_body)
        record.time = self._state.clock()
        request[RECORD] = record
        self._state.start_request(record)
        return record

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        decision: RateDecision | None = None
        if request.path.startswith(API_PREFIX):
            down = self._state.outage_status()
            if down is not None:
                # Omnidesk is down: nothing runs, nothing is counted against the rate limit.
                return error_response(down, "service_unavailable")
            decision = self._state.rate_limiter.take()
            if not decision.allowed:
                refused = error_response(
                    429, "rate_limit_exceeded", headers={"retry_after": str(decision.retry_after_s)}
                )
                return _rate_headers(refused, decision)
        fault = self._state.faults.take(request.method, request.path)
        if fault is not None and not fault.performs_operation:
            # Refused before anything happened (a proxy error, an outage, a scripted 429...).
            assert fault.status is not None  # only a fault with a status skips the operation
            await self._pause(fault.delay_s)
            return _rate_headers(_fault_response(fault, fault.status), decision)
        response = await answer_errors(request, self._authenticated(handler) if decision else handler)
        if fault is not None:
            # The operation happened; the answer is late, or replaced: "accepted, answer lost".
            await self._pause(fault.delay_s)
            if fault.status is not None:
                response = _fault_response(fault, fault.status)
        return _rate_headers(response, decision)

    def _authenticated(self, handler: Handler) -> Handler:
        async def authenticate_then_handle(request: web.Request) -> web.StreamResponse:
            credentials = parse_basic_auth(request.headers.get(hdrs.AUTHORIZATION, ""))
            if credentials is None:
                raise ApiError(401, "unauthorized")
            staff = self._state.authenticate(*credentials)
            request[AUTH_STAFF] = staff
            request[RECORD].staff_email = staff.email
            return await handler(request)

        return authenticate_then_handle

    # -- staff and labels --------------------------------------------------------------------

    async def list_staff(self, request: web.Request) -> web.Response:
        page, limit = parse_paging(request.query)
        staff = self._state.staff_list()
        shown = [render_staff(member) for member in page_slice(staff, page, limit)]
        return json_response(render_page("staff", shown, len(staff)))

    async def get_staff(self, request: web.Request) -> web.Response:
        member = self._state.staff_member(_path_int(request, "staff_id", "staff_not_found"))
        return json_response({"staff": render_staff(member)})

    async def list_labels(self, request: web.Request) -> web.Response:
        page, limit = parse_paging(request.query)
        labels = self._state.label_list()
        shown = [render_label(label) for label in page_slice(labels, page, limit)]
        return json_response(render_page("label", shown, len(labels)))

    async def create_label(self, request: web.Request) -> web.Response:
        body = await decode_json(request, _LabelBody)
        label = self._state.add_label(body.label.label_title)
        return json_response({"label": render_label(label)}, status=201)

    # -- cases -------------------------------------------------------------------------------

    def _case(self, request: web.Request) -> Case:
        return self._state.find_case(_path_int(request, "case_id", "case_not_found"))

    async def get_case(self, request: web.Request) -> web.Response:
        return json_response({"case": render_case(self._case(request))})

    async def edit_case(self, request: web.Request) -> web.Response:
        case = self._case(request)
        edit = (await decode_json(request, _CaseEditBody)).case
        labels_changed = self._state.edit_case(
            case.case_id,
            labels=edit.labels,
            add_labels=edit.add_labels,
            delete_labels=edit.delete_labels,
            status=edit.status,
            group_id=edit.group_id,
            staff_id=edit.staff_id,
            subject=edit.subject,
            priority=edit.priority,
        )
        if labels_changed:
            self._rules.labels_changed(case)  # delivered in the background, like Omnidesk does
        return json_response({"case": render_case(case)})

    async def list_messages(self, request: web.Request) -> web.Response:
        case = self._case(request)
        order = request.query.get("order", "asc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "incorrect_order")
        messages = self._state.messages(case.case_id)
        if order == "asc" and "page" not in request.query and "limit" not in request.query:
            # Documented (palachX): without paging the list is the *last* 100 messages.
            shown = messages[-DEFAULT_LIMIT:]
        else:
            page, limit = parse_paging(request.query)
            shown = page_slice(messages if order == "asc" else messages[::-1], page, limit)
        return json_response(render_page("message", [render_message(m) for m in shown], len(messages)))

    async def post_message(self, request: web.Request) -> web.Response:
        """A staff reply: JSON or multipart with files; 201."""
        case = self._case(request)
        staff_id, draft, files = await self._read_staff_post(request, "message")
        message = self._state.add_staff_message(
            case.case_id,
            staff_id=staff_id,
            content=draft.content,
            content_html=draft.content_html,
            files=files,
            base_url=base_url(request, self._state),
        )
        return json_response({"message": render_message(message)}, status=201)

    async def post_note(self, request: web.Request) -> web.Response:
        """An internal note; answered as a message with `note: true`; 201."""
        case = self._case(request)
        staff_id, draft, files = await self._read_staff_post(request, "note")
        note = self._state.add_note(
            case.case_id,
            staff_id=staff_id,
            content=draft.content,
            content_html=draft.content_html,
            files=files,
            base_url=base_url(request, self._state),
        )
        return json_response({"message": render_message(note)}, status=201)

    async def _read_staff_post(self, request: web.Request, root: str) -> tuple[int, _Draft, list[NewFile]]:
        """Body of a reply or note: the author, the draft, and its files (uploaded or fetched)."""
        if request.content_type == "multipart/form-data":
            draft = await _read_multipart(request, root)
        elif root == "message":
            draft = _draft_from_fields((await decode_json(request, _MessageBody)).message)
        else:
            draft = _draft_from_fields((await decode_json(request, _NoteBody)).note)
        staff = request[AUTH_STAFF]
        if draft.user_id:
            raise ApiError(400, "user_messages_not_supported", detail="the sandbox plays the customer itself")
        if draft.staff_id not in (None, 0, staff.staff_id):
            raise ApiError(
                400, "incorrect_staff_id", detail="staff_id must be the authenticated staff member"
            )
        if not (draft.content or draft.content_html or draft.files or draft.attachment_urls):
            raise ApiError(400, "content_required")
        files = draft.files + await _fetch_files(draft.attachment_urls)
        check_file_sizes(len(f.content) for f in files)
        return staff.staff_id, draft, files

    # -- public files ------------------------------------------------------------------------

    async def download_attachment(self, request: web.Request) -> web.Response:
        """Attachment urls are unguessable but public: no auth, no rate limit."""
        attachment = self._state.attachment(request.match_info["url_hash"], request.match_info["name"])
        if attachment is None:
            raise ApiError(404, "not_found")
        # As a header, not `content_type=`: a declared type may carry parameters (`; charset=...`).
        return web.Response(body=attachment.content, headers={hdrs.CONTENT_TYPE: attachment.mime_type})
