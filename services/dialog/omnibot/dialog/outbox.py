"""Turning the engine's effects into numbered outbound actions and transcript lines. Pure."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from omnibot.agents import engine
from omnibot.shared.chats import TranscriptLine
from omnibot.shared.messages import OutboundAction, SendFile, SendText, TransferToOperator


def build_actions(
    effects: Sequence[engine.Effect],
    *,
    channel_id: int,
    chat_id: str,
    first_seq: int,
    now: float,
    summary: str,
    label_id: int | None,
) -> list[OutboundAction]:
    """Number the effects that reach Omnidesk from `first_seq` on, in the order the agent made them."""
    actions: list[OutboundAction] = []
    for effect in effects:
        seq = first_seq + len(actions)
        action_id = f"{channel_id}:{chat_id}:{seq}"
        ids = {
            "action_id": action_id,
            "channel_id": channel_id,
            "chat_id": chat_id,
            "seq": seq,
            "created_at": now,
        }
        action: OutboundAction | None = None
        if isinstance(effect, engine.Reply) and effect.text.strip():
            action = msgspec.convert({**ids, "text": effect.text}, SendText)
        elif isinstance(effect, engine.SendFile):
            action = msgspec.convert(
                {**ids, "url": effect.url, "name": effect.name, "caption": effect.caption}, SendFile
            )
        elif isinstance(effect, engine.Transfer):
            action = msgspec.convert({**ids, "summary": summary, "label_id": label_id}, TransferToOperator)
        if action is not None:
            actions.append(action)
    return actions


def transcript_lines(
    key: str, turn: int, customer_texts: Sequence[str], actions: Sequence[OutboundAction], now: float
) -> list[TranscriptLine]:
    """Lines of one commit (`turn` is the chat version it wrote), customers' words first."""
    lines = [
        TranscriptLine(chat=key, seq=turn * 1000 + index, role="customer", text=text, at=now)
        for index, text in enumerate(customer_texts)
    ]
    for index, action in enumerate(actions, start=len(lines)):
        if isinstance(action, SendText):
            text, role = action.text, "bot"
        elif isinstance(action, SendFile):
            text, role = f"[file {action.name}] {action.caption}".strip(), "bot"
        else:
            text, role = "[transferred to an operator]", "system"
        lines.append(TranscriptLine(chat=key, seq=turn * 1000 + index, role=role, text=text, at=now))  # type: ignore[arg-type]
    return lines
