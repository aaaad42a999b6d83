"""The sandbox account's Omnidesk REST API: the `/api/*.json` routes.

Owns: the handlers of staff, labels, cases, messages and notes, and the public attachment
downloads. What every request passes first (log, outage, rate limit, faults, auth) is gate.py;
the wire shapes are wire.py; reading uploaded and fetched files is uploads.py.

Choices where public material is silent, each made here and nowhere else (GUESS):
- bodies must be `application/json` or, for messages and notes, `multipart/form-data`;
- a message `staff_id` other than the authenticated staff member answers 400 `incorrect_staff_id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import msgspec
from aiohttp import hdrs, web

from omnibot.sandbox.gate import AUTH_STAFF, RECORD
from omnibot.sandbox.http import (
    base_url,
    decode_json,
    json_response,
)
from omnibot.sandbox.records import (
    ApiError,
    Case,
    CaseStatus,
    NewFile,
    RecordedFile,
    check_file_sizes,
    page_slice,
)
from omnibot.sandbox.rules import RuleRunner
from omnibot.sandbox.state import SandboxState
from omnibot.sandbox.uploads import fetch_files, read_form
from omnibot.sandbox.wire import (
    DEFAULT_LIMIT,
    parse_paging,
    render_case,
    render_label,
    render_message,
    render_page,
    render_staff,
)

# `message[content]`, `message[attachments][0]`, `note[content_html]` ...
_FORM_FIELD = re.compile(r"^(?P<root>\w+)\[(?P<key>\w+)\](?:\[(?P<index>\d*)\])?$")


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


async def _read_multipart(request: web.Request, root: str) -> _Draft:
    """`root[content]`, `root[content_html]`, `root[staff_id]`, `root[attachments][N]` files."""
    record = request[RECORD]
    form = await read_form(request)
    draft = _Draft()
    fields: dict[str, str] = {}
    for item in form.files:
        new = item.file
        record.files.append(
            RecordedFile(field=item.field, name=new.name, size=len(new.content), mime_type=new.mime_type)
        )
        match = _FORM_FIELD.match(item.field)
        # A file under any other name is ignored, as Omnidesk would: tests see it in the log only.
        if match is not None and match["root"] == root and match["key"] == "attachments":
            draft.files.append(new)
    for name, text in form.fields:
        record.form[name] = text
        match = _FORM_FIELD.match(name)
        if match is not None and match["root"] == root:
            if match["key"] == "attachment_urls":
                draft.attachment_urls.append(text)
            elif match["index"] is None:
                fields[match["key"]] = text
    draft.staff_id = _form_int(fields.get("staff_id"), "incorrect_staff_id")
    draft.user_id = _form_int(fields.get("user_id"), "incorrect_user_id")
    draft.content = fields.get("content", "")
    draft.content_html = fields.get("content_html", "")
    return draft


class OmnideskApi:
    """Handlers of the Omnidesk API (behind the gate: gate.py)."""

    def __init__(self, state: SandboxState, rules: RuleRunner) -> None:
        self._state = state
        self._rules = rules

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
        return await self._post_by_staff(request, "message")

    async def post_note(self, request: web.Request) -> web.Response:
        """An internal note; answered as a message with `note: true`; 201."""
        return await self._post_by_staff(request, "note")

    async def _post_by_staff(self, request: web.Request, root: str) -> web.Response:
        case = self._case(request)
        staff_id, draft, files = await self._read_staff_post(request, root)
        message = self._state.add_staff_message(
            case.case_id,
            staff_id=staff_id,
            content=draft.content,
            content_html=draft.content_html,
            files=files,
            base_url=base_url(request, self._state),
            note=root == "note",
        )
        return json_response({"message": render_message(message)}, status=201)

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
        files = draft.files + await fetch_files(draft.attachment_urls)
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
