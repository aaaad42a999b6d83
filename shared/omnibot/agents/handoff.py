"""Handing a chat to a human: what counts as a transfer, and how it is worded. Pure.

Shared by the dialog service and the replay runners, so both recognise the same transfers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from omnibot.agents import engine

SUMMARY_LINES = 6  # the customer's last messages quoted in the note for the operator
MAX_EXTERNAL_CALLS_PER_TURN = 10  # a turn making more requests than this is given up

# How the note for the operator says why the bot handed over (and how to read it back).
REASON_TEXT = {"slot": "the agent transferred it", "error": "the agent failed", "loop": "the agent looped"}


def reason_text(transfer: engine.Transfer) -> str:
    text = REASON_TEXT.get(transfer.reason, transfer.reason)
    return f"{text}: {transfer.detail}" if transfer.detail else text


def reason_of(note: str) -> str | None:
    """The transfer reason ("slot", "error", "loop") a note was written for, if it is ours."""
    return next((reason for reason, text in REASON_TEXT.items() if text in note), None)


def label_id(value: object, fallback: int | None = None) -> int | None:
    """A label id from an agent variable (a number, or a numeric string), else the fallback."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return fallback


def removed_bot_label(
    call: engine.CallExternal, result: engine.ExternalResult, domain: str, chat_id: str, bot_label: int | None
) -> int | None:
    """The bot label, if this successful request took it off this chat's case in Omnidesk.

    This is how the seed transfers a chat: `PUT {{channel_webhook_url}}/api/cases/{{chat_id}}.json`
    with `{"case": {"delete_labels": [bot_label_id]}}` (or a `labels` list without it).
    """
    if bot_label is None or result.status is None or not 200 <= result.status < 300 or call.method != "PUT":
        return None
    if call.url.split("?", 1)[0].rstrip("/") != f"{domain}/api/cases/{chat_id}.json":
        return None
    body = call.body.get("case") if isinstance(call.body, dict) else None
    if not isinstance(body, dict):
        return None
    removed = {label_id(x) for x in body.get("delete_labels") or body.get("remove_labels") or []}
    kept = body.get("labels")
    if bot_label in removed or (isinstance(kept, list) and bot_label not in {label_id(x) for x in kept}):
        return bot_label
    return None


class SaidLine(Protocol):
    """A line of a chat's transcript, as much of it as the note for the operator needs."""

    @property
    def role(self) -> str: ...

    @property
    def text(self) -> str: ...


def transfer_summary(recent: Sequence[SaidLine], variables: dict[str, object], reason: str) -> str:
    """A short note for the operator: why, what the customer said last, what the agent collected."""
    parts = [f"omnibot: the chat is handed to an operator ({reason})."]
    said = [line.text for line in recent if line.role == "customer"][-SUMMARY_LINES:]
    if said:
        parts.append("Last customer messages:")
        parts.extend(f"- {_clip(text)}" for text in said)
    collected = {
        k: v
        for k, v in variables.items()
        if not k.startswith(("client_", "channel_")) and v not in ("", None)
    }
    if collected:
        parts.append(
            "Collected: " + ", ".join(f"{k}={_clip(str(v), 60)}" for k, v in sorted(collected.items()))
        )
    return "\n".join(parts)


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
