"""The records of a sandbox Omnidesk account and the refusal its API answers with.

Plain data: staff, users, labels, cases with their messages and attachments, rules, webhook
deliveries and the request log, plus the pure helpers the API and the playground share (pages,
attachment limits, text as HTML). No I/O and no clocks; `SandboxState` (state.py) owns the
instances and their ids.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")

# Omnidesk's official attachment limits (create-case section; assumed the same for replies).
MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_MESSAGE_FILES_BYTES = 50 * 1024 * 1024

BOT_LABEL_TITLE = "На боте"
CaseStatus = Literal["open", "waiting", "closed"]
RuleEvent = Literal["incoming", "changed"]


class ApiError(Exception):
    """A refusal the way Omnidesk says it: an HTTP status and `{"error": code}`."""

    def __init__(self, status: int, code: str, *, detail: str = "") -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = detail  # for people reading the sandbox's answers; Omnidesk has no such field


# --- entities -------------------------------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class Staff:
    staff_id: int
    email: str
    full_name: str
    active: bool
    status_id: int = 1
    created_at: float
    updated_at: float


@dataclass(kw_only=True, slots=True)
class User:
    user_id: int
    email: str = ""
    full_name: str = ""
    phone: str = ""
    created_at: float


@dataclass(kw_only=True, slots=True)
class Label:
    label_id: int
    title: str


@dataclass(kw_only=True, slots=True)
class NewFile:
    """A file as received, before the account stores it."""

    name: str
    content: bytes
    mime_type: str


@dataclass(kw_only=True, slots=True)
class Attachment:
    file_id: int
    file_name: str
    file_size: int
    mime_type: str
    sha256: str
    url: str
    url_hash: str  # the unguessable directory of the public download url
    stored_name: str  # `<message_id>_file_<n><ext>`, the last segment of the url
    content: bytes = field(repr=False)


@dataclass(kw_only=True, slots=True)
class Message:
    message_id: int
    case_id: int
    user_id: int  # != 0: the customer wrote it
    staff_id: int  # != 0: a staff member wrote it
    content: str
    content_html: str
    attachments: list[Attachment]
    note: bool = False
    sent_via_rule: bool = False
    created_at: float


@dataclass(kw_only=True, slots=True)
class Case:
    case_id: int
    case_number: str
    subject: str
    user_id: int
    staff_id: int = 0
    group_id: int = 0
    status: CaseStatus = "open"
    priority: str = "normal"
    channel: str = "chat"
    labels: list[int] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # replies and notes, in order
    created_at: float
    updated_at: float
    closed_at: float | None = None
    last_response_at: float | None = None


@dataclass(kw_only=True, slots=True)
class Rule:
    """An Omnidesk rule whose action is «Выполнить вебхук» (POST, custom JSON body)."""

    rule_id: int
    webhook_url: str
    on: RuleEvent
    require_label: bool
    body: Any  # JSON template; `[placeholder]`s inside strings are replaced when firing


@dataclass(kw_only=True, slots=True)
class WebhookDelivery:
    rule_id: int
    case_id: int
    url: str
    body: Any
    status: int | None  # None: no HTTP answer (see `error`)
    error: str | None
    time: float


@dataclass(kw_only=True, slots=True)
class RecordedFile:
    field: str
    name: str
    size: int
    mime_type: str


@dataclass(kw_only=True, slots=True)
class RecordedRequest:
    """One request received on the Omnidesk side (everything except `/sandbox`)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # Authorization redacted
    time: float  # the state's clock at receipt
    staff_email: str | None = None  # who authenticated, if anyone
    json: Any = None  # the decoded JSON body, if there was one
    form: dict[str, str] = field(default_factory=dict)  # multipart text fields
    files: list[RecordedFile] = field(default_factory=list)  # multipart files
    status: int | None = None  # None while the answer is still being prepared


# --- rate limiting ----------------------------------------------------------------------------


# --- pure helpers -----------------------------------------------------------------------------


def page_slice(items: Sequence[T], page: int, limit: int) -> list[T]:
    """Items of 1-based `page` with `limit` items a page."""
    start = (page - 1) * limit
    return list(items[start : start + limit])


def check_file_sizes(sizes: Iterable[int]) -> None:
    """Enforce Omnidesk's attachment limits: 25 MB a file, 50 MB a message."""
    total = 0
    for size in sizes:
        total += size
        if size > MAX_FILE_BYTES or total > MAX_MESSAGE_FILES_BYTES:
            raise ApiError(400, "file_too_large")


def text_to_html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")
