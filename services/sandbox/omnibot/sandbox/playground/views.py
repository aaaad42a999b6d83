"""What the playground page shows, read off the sandbox state. Pure: no I/O, clocks passed in.

Owns the view of the account a person sees: the cases to switch between, one case as its customer
sees it (replies only) and as its operator sees it (every message with its author, notes marked,
labels, status, responsible staff, the webhooks its rules fired and the API calls made on it), the
rules, and the faults in force. Templates only lay these out; they never reach into the state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from omnibot.sandbox.records import Attachment, Case, Message
from omnibot.sandbox.state import SandboxState

Author = Literal["customer", "bot", "operator"]
# Shown inline; anything else (SVG, HTML, ...) is only offered as a download, never rendered.
PREVIEW_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_CASES_SHOWN = 200
MAX_CALLS_SHOWN = 50
_CASE_PATH = re.compile(r"^/api/cases/(\d+)[./]")


@dataclass(frozen=True, slots=True)
class Clocks:
    """The state's clocks read once per view: request times are on the monotonic one."""

    wall: float
    monotonic: float

    @classmethod
    def of(cls, state: SandboxState) -> Clocks:
        return cls(wall=state.wall_clock(), monotonic=state.clock())

    def wall_of(self, monotonic: float) -> float:
        return self.wall - (self.monotonic - monotonic)


@dataclass(frozen=True, slots=True)
class FileView:
    name: str
    href: str  # same-origin, through the playground's own route (not the Omnidesk log)
    size: str
    preview: bool


@dataclass(frozen=True, slots=True)
class LineView:
    message_id: int
    author: Author
    author_name: str
    text: str
    time: str
    note: bool
    files: list[FileView]


@dataclass(frozen=True, slots=True)
class CaseSummary:
    case_id: int
    number: str
    customer: str
    preview: str
    status: str
    on_bot: bool
    updated: str


@dataclass(frozen=True, slots=True)
class LabelView:
    label_id: int
    title: str
    checked: bool
    is_bot_label: bool


@dataclass(frozen=True, slots=True)
class WebhookView:
    rule: str
    status: str
    ok: bool
    time: str
    detail: str


@dataclass(frozen=True, slots=True)
class CallView:
    method: str
    path: str
    status: str
    ok: bool
    time: str


@dataclass(frozen=True, slots=True)
class CaseView:
    summary: CaseSummary
    customer_lines: list[LineView]  # what the customer sees: no notes
    operator_lines: list[LineView]  # everything, notes marked
    labels: list[LabelView]
    bot_label_title: str
    responsible: str
    webhooks: list[WebhookView]
    calls: list[CallView]


@dataclass(frozen=True, slots=True)
class RuleView:
    on: str
    url: str
    require_label: bool


@dataclass(frozen=True, slots=True)
class FaultView:
    method: str
    path: str
    remaining: int


@dataclass(frozen=True, slots=True)
class FaultsView:
    faults: list[FaultView]
    outage: str  # "" when the API is up
    rate_limit: int
    delete_labels_supported: bool


# --- formatting ---------------------------------------------------------------------------------


def clock_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S")


def file_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def mask_url(url: str) -> str:
    """A webhook URL with its secret (the last path segment) cut short: the page shows which URL
    a rule posts to without showing the secret that lets anyone post to it."""
    head, slash, secret = url.rstrip("/").rpartition("/")
    if not slash or len(secret) < 12 or head.endswith(":/"):
        return url
    return f"{head}/{secret[:4]}…{secret[-2:]}"


def attachment_href(attachment: Attachment) -> str:
    return f"/sandbox/attachments/{attachment.url_hash}/{attachment.stored_name}"


def _file(attachment: Attachment) -> FileView:
    return FileView(
        name=attachment.file_name,
        href=attachment_href(attachment),
        size=file_size(attachment.file_size),
        preview=attachment.mime_type in PREVIEW_TYPES,
    )


# --- views --------------------------------------------------------------------------------------


def _author(state: SandboxState, message: Message) -> tuple[Author, str]:
    if message.user_id:
        user = state.users.get(message.user_id)
        return "customer", (user.full_name if user and user.full_name else "Customer")
    member = state.staff.get(message.staff_id)
    name = member.full_name if member else f"staff {message.staff_id}"
    return ("bot" if message.staff_id == state.bot_staff_id else "operator"), name


def _line(state: SandboxState, message: Message) -> LineView:
    author, name = _author(state, message)
    return LineView(
        message_id=message.message_id,
        author=author,
        author_name=name,
        text=message.content,
        time=clock_time(message.created_at),
        note=message.note,
        files=[_file(a) for a in message.attachments],
    )


def customer_name(state: SandboxState, case: Case) -> str:
    user = state.users.get(case.user_id)
    return (user.full_name or user.email) if user and (user.full_name or user.email) else "Customer"


def summarize(state: SandboxState, case: Case) -> CaseSummary:
    visible = [m for m in case.messages if not m.note]
    last = visible[-1] if visible else None
    preview = ""
    if last is not None:
        preview = last.content.strip().splitlines()[0] if last.content.strip() else "(a file)"
    return CaseSummary(
        case_id=case.case_id,
        number=case.case_number,
        customer=customer_name(state, case),
        preview=preview[:80],
        status=case.status,
        on_bot=state.bot_label_id in case.labels,
        updated=clock_time(case.updated_at),
    )


def case_list(state: SandboxState) -> list[CaseSummary]:
    """Newest first; a long-running sandbox shows its latest cases only."""
    cases = sorted(state.cases.values(), key=lambda c: c.case_id, reverse=True)[:MAX_CASES_SHOWN]
    return [summarize(state, case) for case in cases]


def _responsible(state: SandboxState, case: Case) -> str:
    if not case.staff_id:
        return "nobody"
    member = state.staff.get(case.staff_id)
    return member.full_name if member else f"staff {case.staff_id}"


def _webhooks(state: SandboxState, case_id: int) -> list[WebhookView]:
    rules = {rule.rule_id: rule.on for rule in state.rules}
    shown = []
    for delivery in state.webhook_deliveries:
        if delivery.case_id != case_id:
            continue
        ok = delivery.status is not None and 200 <= delivery.status < 300
        shown.append(
            WebhookView(
                rule=rules.get(delivery.rule_id, f"rule {delivery.rule_id}"),
                status=str(delivery.status) if delivery.status is not None else "no answer",
                ok=ok,
                time=clock_time(delivery.time),
                detail=(delivery.error or "").replace(delivery.url, mask_url(delivery.url)),
            )
        )
    return shown


def _calls(state: SandboxState, case_id: int, clocks: Clocks) -> list[CallView]:
    """The Omnidesk API requests made on this case (egress's replies, notes, label edits)."""
    calls = []
    for record in state.requests:
        match = _CASE_PATH.match(record.path)
        if match is None or int(match[1]) != case_id:
            continue
        status = record.status
        calls.append(
            CallView(
                method=record.method,
                path=record.path,
                status="…" if status is None else str(status),
                ok=status is not None and 200 <= status < 300,
                time=clock_time(clocks.wall_of(record.time)),
            )
        )
    return calls[-MAX_CALLS_SHOWN:]


def case_view(state: SandboxState, case_id: int, clocks: Clocks) -> CaseView | None:
    case = state.cases.get(case_id)
    if case is None:
        return None
    lines = [_line(state, message) for message in case.messages]
    labels = [
        LabelView(
            label_id=label.label_id,
            title=label.title,
            checked=label.label_id in case.labels,
            is_bot_label=label.label_id == state.bot_label_id,
        )
        for label in state.label_list()
    ]
    return CaseView(
        summary=summarize(state, case),
        customer_lines=[line for line in lines if not line.note],
        operator_lines=lines,
        labels=labels,
        bot_label_title=next((label.title for label in labels if label.is_bot_label), "the bot label"),
        responsible=_responsible(state, case),
        webhooks=_webhooks(state, case_id),
        calls=_calls(state, case_id, clocks),
    )


def rules_view(state: SandboxState) -> list[RuleView]:
    return [
        RuleView(on=r.on, url=mask_url(r.webhook_url), require_label=r.require_label) for r in state.rules
    ]


def faults_view(state: SandboxState, clocks: Clocks) -> FaultsView:
    outage = ""
    if state.outage is not None and clocks.monotonic < state.outage.until:
        until = clock_time(clocks.wall_of(state.outage.until))
        outage = f"every API call answers {state.outage.status} until {until} UTC"
    return FaultsView(
        faults=[
            FaultView(method=f.method or "any", path=f.path.pattern, remaining=len(f.responses))
            for f in state.faults.pending()
        ],
        outage=outage,
        rate_limit=state.rate_limiter.per_minute,
        delete_labels_supported=state.delete_labels_supported,
    )
