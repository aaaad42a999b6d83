"""The in-memory state of one sandbox Omnidesk account, and waking whoever waits for it to change.

Owns: staff, users, cases with their messages and notes, labels, rules, the request log, webhook
deliveries, queued faults, a timed outage of the whole API and the per-minute rate limiter (the
records are in records.py, the rate limiter, faults and outage in faults.py).
Pure-ish: every mutation is synchronous and does no I/O; time comes from injected clocks. Business
errors are raised as `ApiError` carrying the Omnidesk status and error code, so the HTTP layer only
has to render them.

One state belongs to one event loop (its `asyncio.Condition` binds to the loop on first use).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

from omnibot.sandbox.faults import FaultQueue, Outage, RateLimiter
from omnibot.sandbox.records import (
    BOT_LABEL_TITLE,
    ApiError,
    Attachment,
    Case,
    CaseStatus,
    Label,
    Message,
    NewFile,
    RecordedRequest,
    Rule,
    RuleEvent,
    Staff,
    User,
    WebhookDelivery,
    check_file_sizes,
    text_to_html,
)

MAX_LOGGED = 10_000  # requests and webhook deliveries kept

# Id ranges differ per entity so that a client passing a case id where a staff id belongs (or the
# reverse) gets an error instead of a lucky match.
_STAFF_ID_BASE = 41_000
_LABEL_ID_BASE = 87_470
_USER_ID_BASE = 300_000
_CASE_ID_BASE = 2_000
_MESSAGE_ID_BASE = 200_000_000
_FILE_ID_BASE = 24_000_000
_ID_EPOCH = 1_795_000_000  # late 2026: keeps restart-shifted ids short
_IDS_PER_SECOND = (
    100  # users, cases, messages and files a second a sandbox may create without a restart reusing ids
)


def _trim(log: list[Any]) -> None:
    """Keep the newest MAX_LOGGED entries: a sandbox left running must not grow without bound."""
    if len(log) > MAX_LOGGED:
        del log[: len(log) - MAX_LOGGED]


def _stored_name(message_id: int, index: int, file_name: str) -> str:
    # As in the chat attachment urls Omnidesk renders: `24629614_file_0.jpg`.
    return f"{message_id}_file_{index}{PurePosixPath(file_name).suffix.lower()}"


# --- the account ------------------------------------------------------------------------------


class SandboxState:
    """One Omnidesk account. See the module docstring."""

    delete_labels_supported: bool

    def __init__(
        self,
        *,
        api_key: str = "sandbox-api-key",
        bot_email: str = "bot@sandbox.local",
        filler_staff: int = 120,
        rate_limit_per_minute: int = 600,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        public_url: str | None = None,
        ids_after: float | None = None,
    ) -> None:
        self.api_key = api_key
        self.bot_email = bot_email
        self.clock = clock
        self.wall_clock = wall_clock
        # Base of attachment urls; None: the origin the request came in on.
        self.public_url = public_url.rstrip("/") if public_url else None
        self._filler_staff = filler_staff
        self._initial_rate_limit = rate_limit_per_minute
        self.rate_limiter = RateLimiter(rate_limit_per_minute, clock)
        self.faults = FaultQueue(on_change=self._changed)
        self.version = 0  # bumped on every change
        self._cond = asyncio.Condition()
        self._wake_task: asyncio.Task[None] | None = None
        # Cases, messages, users and files keep their counters across resets: an omnibot that
        # remembers case 2000 must not see a different case 2000 after a reset.
        # `ids_after` (a wall-clock time) does the same across restarts: a sandbox process started
        # later numbers from higher up, so an omnibot whose database outlived the previous sandbox
        # never takes a new case or message for one it already handled.
        shift = 0 if ids_after is None else max(0, int(ids_after) - _ID_EPOCH)
        self._user_ids = itertools.count(_USER_ID_BASE + shift * _IDS_PER_SECOND)
        self._case_ids = itertools.count(_CASE_ID_BASE + shift * _IDS_PER_SECOND)
        self._message_ids = itertools.count(_MESSAGE_ID_BASE + shift * _IDS_PER_SECOND)
        self._file_ids = itertools.count(_FILE_ID_BASE + shift * _IDS_PER_SECOND)
        self._seed()

    # -- seeding ---------------------------------------------------------------------------

    def _seed(self) -> None:
        # Staff and label ids restart from the same base, so the bot keeps its ids across resets
        # (omnibot caches them).
        self._staff_ids = itertools.count(_STAFF_ID_BASE)
        self._label_ids = itertools.count(_LABEL_ID_BASE)
        self._rule_ids = itertools.count(1)
        self.delete_labels_supported = True
        self.staff: dict[int, Staff] = {}
        self.users: dict[int, User] = {}
        self.labels: dict[int, Label] = {}
        self.cases: dict[int, Case] = {}
        self.rules: list[Rule] = []
        self.requests: list[RecordedRequest] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._files: dict[tuple[str, str], Attachment] = {}
        self.rate_limiter.reset(self._initial_rate_limit)
        self.faults.clear()
        self.outage: Outage | None = None
        # Filler first, so the bot is not on the first page of /api/staff.json (limit 100).
        for n in range(1, self._filler_staff + 1):
            self.add_staff(email=f"operator{n:03d}@sandbox.local", full_name=f"Оператор {n}")
        self.bot_staff_id = self.add_staff(email=self.bot_email, full_name="Бот").staff_id
        self.bot_label_id = self.add_label(BOT_LABEL_TITLE).label_id

    def reset(self) -> None:
        """Back to the seeded account: no cases, rules, log, faults; initial limit and variants."""
        self._seed()
        self._changed()

    # -- waiting ---------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[SandboxState], bool], timeout: float) -> None:  # noqa: ASYNC109 - public interface
        """Return once `predicate(self)` holds; raise TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout), self._cond:
            await self._cond.wait_for(lambda: predicate(self))

    def _changed(self) -> None:
        """Record a change and wake the waiters.

        Mutations are synchronous, but notifying an asyncio.Condition needs its lock, which only a
        coroutine can take; so a small task does it. One pending task covers any number of changes:
        it notifies after they happened, and between its notify and its completion nothing else
        can run, so no change is left without a wake-up.
        """
        self.version += 1
        if self._wake_task is not None and not self._wake_task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: nobody can be waiting
        self._wake_task = loop.create_task(self._wake_waiters())

    async def _wake_waiters(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # -- staff -----------------------------------------------------------------------------

    def add_staff(self, *, email: str, full_name: str, active: bool = True) -> Staff:
        if self.find_staff_by_email(email) is not None:
            raise ApiError(400, "email_already_exist")
        now = self.wall_clock()
        member = Staff(
            staff_id=next(self._staff_ids),
            email=email,
            full_name=full_name,
            active=active,
            created_at=now,
            updated_at=now,
        )
        self.staff[member.staff_id] = member
        self._changed()
        return member

    def find_staff_by_email(self, email: str) -> Staff | None:
        wanted = email.casefold()
        return next((s for s in self.staff.values() if s.email.casefold() == wanted), None)

    def staff_member(self, staff_id: int) -> Staff:
        try:
            return self.staff[staff_id]
        except KeyError:
            raise ApiError(404, "staff_not_found") from None

    def set_staff_active(self, staff_id: int, active: bool) -> Staff:
        member = self.staff_member(staff_id)
        member.active = active
        member.updated_at = self.wall_clock()
        self._changed()
        return member

    def staff_list(self) -> list[Staff]:
        return sorted(self.staff.values(), key=lambda s: s.staff_id)

    def authenticate(self, email: str, api_key: str) -> Staff:
        """The staff member an API request acts as (Basic `staff_email:api_key`)."""
        member = self.find_staff_by_email(email)
        if member is None or not hmac.compare_digest(api_key.encode(), self.api_key.encode()):
            raise ApiError(401, "unauthorized")
        if not member.active:
            raise ApiError(403, "staff_not_active")
        return member

    # -- labels ----------------------------------------------------------------------------

    def add_label(self, title: str) -> Label:
        title = title.strip()
        if not title:
            raise ApiError(400, "label_title_required")
        if any(label.title == title for label in self.labels.values()):
            raise ApiError(400, "label_already_exist")
        label = Label(label_id=next(self._label_ids), title=title)
        self.labels[label.label_id] = label
        self._changed()
        return label

    def label_list(self) -> list[Label]:
        return sorted(self.labels.values(), key=lambda label: label.label_id)

    # -- users and cases -------------------------------------------------------------------

    def user_for(
        self, *, user_id: int | None = None, email: str = "", name: str = "", phone: str = ""
    ) -> User:
        """The customer writing: a known user by id or e-mail, else a new one."""
        if user_id is not None:
            try:
                return self.users[user_id]
            except KeyError:
                raise ApiError(400, "user_not_found") from None
        if email:
            wanted = email.casefold()
            known = next((u for u in self.users.values() if u.email.casefold() == wanted), None)
            if known is not None:
                return known
        user = User(
            user_id=next(self._user_ids),
            email=email,
            full_name=name,
            phone=phone,
            created_at=self.wall_clock(),
        )
        self.users[user.user_id] = user
        self._changed()
        return user

    def case(self, case_id: int) -> Case:
        """The case; KeyError if unknown (for tests)."""
        return self.cases[case_id]

    def find_case(self, case_id: int) -> Case:
        """The case; `case_not_found` if unknown (for the API)."""
        try:
            return self.cases[case_id]
        except KeyError:
            raise ApiError(404, "case_not_found") from None

    def open_case(self, *, user: User, subject: str) -> Case:
        case_id = next(self._case_ids)
        now = self.wall_clock()
        case = Case(
            case_id=case_id,
            case_number=f"{100 + case_id % 900}-{case_id:06d}",
            subject=subject,
            user_id=user.user_id,
            created_at=now,
            updated_at=now,
        )
        self.cases[case_id] = case
        self._changed()
        return case

    def edit_case(
        self,
        case_id: int,
        *,
        labels: list[int] | None = None,
        add_labels: list[int] | None = None,
        delete_labels: list[int] | None = None,
        status: CaseStatus | None = None,
        group_id: int | None = None,
        staff_id: int | None = None,
        subject: str | None = None,
        priority: str | None = None,
    ) -> bool:
        """Apply an edit; return whether the labels changed (that fires "changed" rules).

        Labels: `labels` replaces the set, then `add_labels`, then `delete_labels` (ignored when
        the account does not support it, as some accounts may: clients must verify and fall back).
        """
        case = self.find_case(case_id)
        for label_id in [*(labels or []), *(add_labels or [])]:
            if label_id not in self.labels:
                raise ApiError(400, "label_not_found")
        if staff_id and staff_id not in self.staff:
            raise ApiError(400, "staff_not_found")
        before = list(case.labels)
        new_labels = list(dict.fromkeys(labels)) if labels is not None else list(case.labels)
        new_labels += [label_id for label_id in add_labels or [] if label_id not in new_labels]
        if delete_labels and self.delete_labels_supported:
            new_labels = [label_id for label_id in new_labels if label_id not in delete_labels]
        case.labels = new_labels
        if status is not None:
            self._set_status(case, status)
        if group_id is not None:
            case.group_id = group_id
        if staff_id is not None:
            case.staff_id = staff_id
        if subject is not None:
            case.subject = subject
        if priority is not None:
            case.priority = priority
        case.updated_at = self.wall_clock()
        self._changed()
        return sorted(before) != sorted(case.labels)

    def apply_incoming_rule_actions(self, case_id: int) -> None:
        """What the seed's incoming rule does besides the webhook: assign the bot, add its label."""
        case = self.find_case(case_id)
        case.staff_id = self.bot_staff_id
        if self.bot_label_id not in case.labels:
            case.labels.append(self.bot_label_id)
        self._changed()

    def apply_transfer_rule_actions(self, case_id: int) -> None:
        """What the seed's transfer rule does when the bot label leaves a case: the bot stops being
        responsible, and any available staff member takes the case (nobody if none is)."""
        case = self.find_case(case_id)
        case.staff_id = next(
            (s.staff_id for s in self.staff_list() if s.active and s.staff_id != self.bot_staff_id), 0
        )
        case.updated_at = self.wall_clock()
        self._changed()

    def operator_for(self, case_id: int) -> Staff:
        """Who answers as "the operator" in the playground: the case's responsible staff member
        unless that is the bot, else the first active staff member who is not the bot."""
        case = self.find_case(case_id)
        responsible = self.staff.get(case.staff_id)
        if responsible is not None and responsible.staff_id != self.bot_staff_id and responsible.active:
            return responsible
        for member in self.staff_list():
            if member.active and member.staff_id != self.bot_staff_id:
                return member
        raise ApiError(400, "no_operator", detail="the account has no active staff member but the bot")

    def set_label(self, case_id: int, label_id: int, present: bool) -> bool:
        """Put a label on the case or take it off, as a person does in Omnidesk's interface (so
        whatever `delete_labels_supported` says about the API); return whether anything changed."""
        case = self.find_case(case_id)
        if label_id not in self.labels:
            raise ApiError(404, "label_not_found")
        if present == (label_id in case.labels):
            return False
        labels = [*case.labels, label_id] if present else [i for i in case.labels if i != label_id]
        return self.edit_case(case_id, labels=labels)

    def _set_status(self, case: Case, status: CaseStatus) -> None:
        case.status = status
        case.closed_at = self.wall_clock() if status == "closed" else None

    # -- messages --------------------------------------------------------------------------

    def add_customer_message(
        self, case_id: int, *, text: str, files: Sequence[NewFile], base_url: str
    ) -> Message:
        """The customer writes: the case (re)opens."""
        case = self.find_case(case_id)
        message = self._append(
            case,
            user_id=case.user_id,
            staff_id=0,
            content=text,
            content_html=text_to_html(text),
            files=files,
            base_url=base_url,
            note=False,
        )
        self._set_status(case, "open")
        return message

    def add_staff_message(
        self,
        case_id: int,
        *,
        staff_id: int,
        content: str,
        content_html: str,
        files: Sequence[NewFile],
        base_url: str,
        note: bool = False,
    ) -> Message:
        """A staff reply: it goes to the customer and the case waits for them. With `note`, an
        internal note: staff only, the status does not change."""
        case = self.find_case(case_id)
        message = self._append(
            case,
            user_id=0,
            staff_id=staff_id,
            content=content,
            content_html=content_html,
            files=files,
            base_url=base_url,
            note=note,
        )
        if not note:
            self._set_status(case, "waiting")
            case.last_response_at = message.created_at
        return message

    def _append(
        self,
        case: Case,
        *,
        user_id: int,
        staff_id: int,
        content: str,
        content_html: str,
        files: Sequence[NewFile],
        base_url: str,
        note: bool,
    ) -> Message:
        check_file_sizes(len(f.content) for f in files)
        message_id = next(self._message_ids)
        message = Message(
            message_id=message_id,
            case_id=case.case_id,
            user_id=user_id,
            staff_id=staff_id,
            content=content,
            content_html=content_html,
            attachments=[self._store_file(message_id, n, f, base_url) for n, f in enumerate(files)],
            note=note,
            created_at=self.wall_clock(),
        )
        case.messages.append(message)
        case.updated_at = message.created_at
        self._changed()
        return message

    def _store_file(self, message_id: int, index: int, new: NewFile, base_url: str) -> Attachment:
        url_hash = secrets.token_hex(16)
        stored_name = _stored_name(message_id, index, new.name)
        base = self.public_url or base_url.rstrip("/")
        attachment = Attachment(
            file_id=next(self._file_ids),
            file_name=new.name,
            file_size=len(new.content),
            mime_type=new.mime_type,
            sha256=hashlib.sha256(new.content).hexdigest(),
            url=f"{base}/attachment/download/chat/{url_hash}/{stored_name}",
            url_hash=url_hash,
            stored_name=stored_name,
            content=new.content,
        )
        self._files[url_hash, stored_name] = attachment
        return attachment

    def attachment(self, url_hash: str, stored_name: str) -> Attachment | None:
        return self._files.get((url_hash, stored_name))

    def messages(self, case_id: int) -> list[Message]:
        """Replies and notes of the case, oldest first (what /messages.json lists)."""
        return list(self.case(case_id).messages)

    def staff_messages(self, case_id: int) -> list[Message]:
        return [m for m in self.case(case_id).messages if not m.note and m.staff_id != 0]

    def customer_messages(self, case_id: int) -> list[Message]:
        return [m for m in self.case(case_id).messages if not m.note and m.user_id != 0]

    def notes(self, case_id: int) -> list[Message]:
        return [m for m in self.case(case_id).messages if m.note]

    # -- rules, log, knobs -----------------------------------------------------------------

    def add_rule(self, *, webhook_url: str, on: RuleEvent, require_label: bool, body: Any) -> Rule:
        rule = Rule(
            rule_id=next(self._rule_ids),
            webhook_url=webhook_url,
            on=on,
            require_label=require_label,
            body=body,
        )
        self.rules.append(rule)
        self._changed()
        return rule

    def drop_rules(self, kinds: set[RuleEvent]) -> None:
        """Remove the rules of these kinds; the others keep their ids (their deliveries name them)."""
        self.rules = [rule for rule in self.rules if rule.on not in kinds]
        self._changed()

    def clear_rules(self) -> None:
        self.rules.clear()
        self._changed()

    def record_delivery(self, delivery: WebhookDelivery) -> None:
        self.webhook_deliveries.append(delivery)
        _trim(self.webhook_deliveries)
        self._changed()

    def clear_deliveries(self) -> None:
        self.webhook_deliveries.clear()
        self._changed()

    def start_request(self, record: RecordedRequest) -> None:
        self.requests.append(record)
        _trim(self.requests)
        self._changed()

    def finish_request(self, record: RecordedRequest, status: int) -> None:
        record.status = status
        self._changed()

    def clear_requests(self) -> None:
        self.requests.clear()
        self._changed()

    def set_rate_limit(self, per_minute: int) -> None:
        self.rate_limiter.reset(per_minute)
        self._changed()

    def start_outage(self, seconds: float, status: int) -> Outage:
        """Take the API down for `seconds` from now (replacing an outage already going on)."""
        self.outage = Outage(until=self.clock() + seconds, status=status)
        self._changed()
        return self.outage

    def end_outage(self) -> None:
        self.outage = None
        self._changed()

    def outage_status(self) -> int | None:
        """The status every `/api` request answers now, None when the API is up."""
        if self.outage is None:
            return None
        if self.clock() >= self.outage.until:
            self.end_outage()  # over by itself: forget it, so /sandbox shows the API up
            return None
        return self.outage.status

    def set_delete_labels_supported(self, supported: bool) -> None:
        self.delete_labels_supported = supported
        self._changed()
