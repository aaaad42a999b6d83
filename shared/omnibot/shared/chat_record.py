"""The rules of a chat record, for every writer of one (dialog's turns, admin's hand-over and hand-back).

- Every write is the next version: `next_version` (+1), committed only if nobody wrote in between.
- What a write sends to Omnidesk is staged in the record's outbox (`pending`) in the same write,
  numbered on from `out_seq` (`build_actions`, `transfer_action`, `stage`); after the commit it is
  published and cleared (`publish_outbox`). A writer that dies between commit and publish leaves it
  staged; the next writer publishes it again, marked as a possible duplicate, and egress drops what
  it already performed (per-chat sequence numbers), so republishing is always safe.
- A chat is the bot's or an operator's: `hand_to_operator` (remembering the action that does it
  in Omnidesk and the label that means "on the bot"), `hand_back`.
- The transcript numbers its lines by the version that wrote them: `transcript_lines`, `note_line`.
- What operators write in Omnidesk is read back from the case and goes into the transcript once:
  `take_operator_messages` keeps a cursor (the newest operator message id looked at) in the record,
  so it advances in the same conditional write as the lines' version. Recording never stages an
  action and never changes the owner: reading the operator's words cannot make the bot speak.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec

from omnibot.agents import engine
from omnibot.shared.chats import ChatRecord, ChatStore, Role, TranscriptLine
from omnibot.shared.messages import OutboundAction, SendFile, SendText, TransferToOperator

Publish = Callable[[OutboundAction], Awaitable[None]]

LINES_PER_VERSION = 1000  # transcript seq = version * LINES_PER_VERSION + index


def next_version(record: ChatRecord, *, keep_outbox: bool = False) -> ChatRecord:
    """The record the next write stores: a copy, one version on.

    Its outbox starts empty: a writer publishes the outbox of the record it loaded before it
    writes (dialog does). A writer that does not (admin's hand-over) keeps it, and publishes it
    after its own write."""
    return msgspec.structs.replace(
        record, version=record.version + 1, pending=list(record.pending) if keep_outbox else []
    )


def action_id(channel_id: int, chat_id: str, seq: int) -> str:
    return f"{channel_id}:{chat_id}:{seq}"


def stage(record: ChatRecord, actions: Sequence[OutboundAction]) -> None:
    """Add a write's actions (numbered from `out_seq + 1`) to the outbox of the record it writes."""
    record.out_seq += len(actions)
    record.pending = [*record.pending, *actions]


async def publish_outbox(chats: ChatStore, record: ChatRecord, publish: Publish, *, earlier: int = 0) -> None:
    """Publish the outbox of the write just committed, in order, then clear it at that version.

    The first `earlier` actions were staged by an earlier write that may have published them:
    they go marked `maybe_duplicate`. A failed publish leaves the outbox for the next writer."""
    for index, action in enumerate(record.pending):
        await publish(msgspec.structs.replace(action, maybe_duplicate=True) if index < earlier else action)
    await chats.clear_pending(record.key, record.version)


def hand_to_operator(record: ChatRecord, *, transfer_seq: int, bot_label_id: int | None) -> None:
    """The chat is a human's from this write on; the bot falls silent.

    `transfer_seq` is the action that hands the case over in Omnidesk (0: the agent did it
    itself); until egress has performed it the bot label is still on the case, so it does not
    mean the chat was handed back. `bot_label_id` is the label to watch for that."""
    record.owner, record.transfer_seq, record.bot_label_id = "operator", transfer_seq, bot_label_id
    record.operator_unread = True


def hand_back(record: ChatRecord, *, restart: bool) -> None:
    """The chat is the bot's again; with `restart` its next message starts the agent afresh.

    `out_seq` stays (egress orders a chat's actions by it), and so does the outbox."""
    record.owner, record.transfer_seq = "bot", 0
    if restart:
        record.state, record.turn_event = {}, ""


class OperatorMessage(msgspec.Struct, kw_only=True, frozen=True):
    """A message a staff member other than the bot wrote to the customer, read back from Omnidesk."""

    message_id: int
    text: str
    at: float  # when Omnidesk says it was written (0: it did not say)


def take_operator_messages(record: ChatRecord, read: Sequence[OperatorMessage]) -> list[OperatorMessage]:
    """The messages of `read` (the case's operator messages, as read back now) that the
    transcript does not have yet, oldest first; the record's cursor moves past all of `read`.

    A chat whose cursor never moved takes only what was written since omnibot first saw it: the
    case's older history is not this chat's conversation. After this read, an operator may only
    have written since if the chat is still theirs (`operator_unread`)."""
    cursor = record.last_operator_message_id
    since = record.created_at - 1.0  # Omnidesk's times have whole seconds
    fresh = [
        message
        for message in sorted(read, key=lambda m: m.message_id)
        if message.message_id > cursor and (cursor or (message.at and message.at >= since))
    ]
    record.last_operator_message_id = max([cursor, *(m.message_id for m in read)])
    record.operator_unread = record.owner == "operator"
    return fresh


def transfer_action(record: ChatRecord, *, summary: str, now: float) -> TransferToOperator:
    """The action that hands the case to an operator, as the next of the record's outbox.
    Egress uses the channel's bot label (its id, or found by title)."""
    seq = record.out_seq + 1
    return TransferToOperator(
        action_id=action_id(record.channel_id, record.chat_id, seq),
        channel_id=record.channel_id,
        chat_id=record.chat_id,
        seq=seq,
        created_at=now,
        summary=summary,
        label_id=None,
    )


def note_line(record: ChatRecord, text: str, now: float) -> TranscriptLine:
    """A system line in the transcript, at the first seq of the version `record` writes (a
    dialog turn numbers its lines from the versions after it)."""
    return TranscriptLine(
        chat=record.key, seq=record.version * LINES_PER_VERSION, role="system", text=f"[{text}]", at=now
    )


def build_actions(
    effects: Sequence[engine.Effect],
    *,
    channel_id: int,
    chat_id: str,
    first_seq: int,
    now: float,
    summary: str,
    label_id: int | None,
    accepted_at: float = 0.0,
) -> list[OutboundAction]:
    """Number the effects that reach Omnidesk from `first_seq` on, in the order the agent made them."""
    actions: list[OutboundAction] = []
    for effect in effects:
        seq = first_seq + len(actions)
        ids = {
            "action_id": action_id(channel_id, chat_id, seq),
            "channel_id": channel_id,
            "chat_id": chat_id,
            "seq": seq,
            "created_at": now,
            "accepted_at": accepted_at,
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
    key: str,
    turn: int,
    customer_texts: Sequence[str],
    actions: Sequence[OutboundAction],
    now: float,
    *,
    operator: Sequence[OperatorMessage] = (),
) -> list[TranscriptLine]:
    """Lines of one commit (`turn` is the chat version it wrote): the operator messages read back
    with it (each at its own time: they were written before this commit), then the customer's
    words, then what the bot did."""
    lines = [
        TranscriptLine(
            chat=key,
            seq=turn * LINES_PER_VERSION + index,
            role="operator",
            text=message.text,
            at=message.at or now,
        )
        for index, message in enumerate(operator)
    ]
    lines += [
        TranscriptLine(chat=key, seq=turn * LINES_PER_VERSION + index, role="customer", text=text, at=now)
        for index, text in enumerate(customer_texts, start=len(lines))
    ]
    for index, action in enumerate(actions, start=len(lines)):
        role: Role = "bot"
        if isinstance(action, SendText):
            text = action.text
        elif isinstance(action, SendFile):
            text = f"[file {action.name}] {action.caption}".strip()
        else:
            text, role = "[transferred to an operator]", "system"
        lines.append(
            TranscriptLine(chat=key, seq=turn * LINES_PER_VERSION + index, role=role, text=text, at=now)
        )
    return lines
