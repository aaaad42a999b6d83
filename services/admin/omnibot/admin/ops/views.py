"""Records as the answers of management: masked, with ISO 8601 times, in pages. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET

from omnibot.admin.ops.context import Refused
from omnibot.admin.schemas import (
    MAX_PAGE,
    ChannelView,
    ChatSummary,
    ChatView,
    Check,
    DeadLetterView,
    Page,
    TranscriptEntry,
)
from omnibot.admin.validation import page_problems
from omnibot.shared.channels import Channel
from omnibot.shared.chats import ChatRecord, TranscriptLine
from omnibot.shared.crypto import mask
from omnibot.shared.deadletters import DeadLetter

T = TypeVar("T")


def iso_time(ts: float) -> str | None:
    """Unix seconds as ISO 8601 UTC ("2026-05-01T10:00:00Z"); 0 (never recorded) is None."""
    if not ts:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_page(limit: int, offset: int) -> None:
    problems = page_problems(limit, offset, max_limit=MAX_PAGE)
    if problems:
        raise Refused("invalid", problems)


def page(items: Sequence[T], total: int, limit: int, offset: int) -> Page[T]:
    following = offset + len(items)
    return Page(
        items=list(items),
        total=total,
        limit=limit,
        offset=offset,
        next_offset=following if following < total and items else None,
    )


def channel_view(
    channel: Channel, *, api_key: str, webhook_url: str, checks: Sequence[Check] | None = None
) -> ChannelView:
    """`api_key` is the plain key: only its mask goes into the answer. Of the language model's
    key, only whether there is one (it is never decrypted here)."""
    return ChannelView(
        id=channel.id,
        title=channel.title,
        domain=channel.domain,
        email=channel.email,
        api_key=mask(api_key),
        agent=channel.agent,
        active=channel.active,
        webhook_url=webhook_url,
        bot_label_id=channel.bot_label_id,
        bot_label_title=channel.bot_label_title,
        transfer_status=channel.transfer_status or None,
        transfer_group_id=channel.transfer_group_id,
        llm_base_url=channel.llm_base_url or None,
        llm_model=channel.llm_model or None,
        llm_api_key_set=bool(channel.llm_api_key_enc),
        created_at=iso_time(channel.created_at),
        updated_at=iso_time(channel.updated_at),
        checks=list(checks) if checks is not None else UNSET,
    )


def chat_summary(record: ChatRecord) -> ChatSummary:
    state = record.state or {}
    return ChatSummary(
        channel_id=record.channel_id,
        chat_id=record.chat_id,
        owner=record.owner,
        agent=record.agent_name,
        agent_version=record.agent_version,
        slot=state.get("slot"),
        waiting=str(state.get("waiting") or "none"),
        last_error=record.last_error,
        created_at=iso_time(record.created_at),
        updated_at=iso_time(record.updated_at),
    )


def chat_view(record: ChatRecord, lines: Sequence[TranscriptLine]) -> ChatView:
    # A ChatView is a ChatSummary with the session's variables and the transcript.
    return ChatView(
        **msgspec.structs.asdict(chat_summary(record)),
        variables=dict((record.state or {}).get("variables") or {}),
        transcript=[TranscriptEntry(role=line.role, text=line.text, at=iso_time(line.at)) for line in lines],
    )


def dead_view(dead: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        id=dead.id,
        stage=dead.stage,
        channel_id=dead.channel_id,
        chat_id=dead.chat_id,
        kind=dead.kind,
        error=dead.error,
        attempts=dead.attempts,
        dead_at=iso_time(dead.dead_at),
        body=dead.body,
    )


def problem_text(problem: Any) -> str:
    """An agent file's problem (or warning) as one line, naming the slot when there is one."""
    slot = getattr(problem, "slot", None)
    message = getattr(problem, "message", str(problem))
    return f"slot {slot}: {message}" if slot else str(message)
