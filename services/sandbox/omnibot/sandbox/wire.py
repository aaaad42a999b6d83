"""The sandbox account in Omnidesk's wire format (omnidesk-api.md §1-2). Pure.

Owns: how staff, labels, cases, messages and attachments look on the wire, Omnidesk's list shape
and timestamps, and parsing what requests carry in the query and headers (paging, HTTP Basic).
The Omnidesk API answers with these, and the control API reuses them so tests read the same shapes.

GUESS (public material is silent): paging values out of range answer 400 `incorrect_page` /
`incorrect_limit`.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from omnibot.sandbox.records import ApiError, Attachment, Case, Label, Message, Staff

DEFAULT_LIMIT = 100
MAX_PAGE = 500
# Omnidesk answers with Moscow-time RFC-2822 stamps ("Mon, 05 May 2014 00:15:17 +0300").
_MSK = timezone(timedelta(hours=3))


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
