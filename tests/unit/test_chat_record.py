"""The chat record's rules: versions, the outbox, ownership and transcript numbering."""

from __future__ import annotations

from omnibot.shared import chat_record
from omnibot.shared.chats import ChatRecord, MemoryChatStore
from omnibot.shared.messages import OutboundAction, SendText


def record(**changes: object) -> ChatRecord:
    base = ChatRecord(
        key="1:7", channel_id=1, chat_id="7", agent_name="a", agent_version=1, version=4, out_seq=2
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def text(seq: int) -> SendText:
    return SendText(
        action_id=chat_record.action_id(1, "7", seq),
        channel_id=1,
        chat_id="7",
        seq=seq,
        created_at=0.0,
        text="hi",
    )


def test_next_version_is_a_copy_one_on_with_the_outbox_published_or_kept() -> None:
    loaded = record(pending=[text(2)])

    assert (chat_record.next_version(loaded).version, chat_record.next_version(loaded).pending) == (5, [])
    assert chat_record.next_version(loaded, keep_outbox=True).pending == [text(2)]
    assert loaded.version == 4 and loaded.pending == [text(2)]


def test_staged_actions_follow_the_outbox_and_advance_out_seq() -> None:
    changed = chat_record.next_version(record(pending=[text(2)]), keep_outbox=True)
    transfer = chat_record.transfer_action(changed, summary="why", now=9.0)

    chat_record.stage(changed, [transfer])

    assert (transfer.seq, transfer.action_id, transfer.label_id) == (3, "1:7:3", None)
    assert (changed.out_seq, [a.seq for a in changed.pending]) == (3, [2, 3])


def test_handing_over_and_back() -> None:
    changed = record(state={"slot": "x"}, turn_event="e1")

    chat_record.hand_to_operator(changed, transfer_seq=3, bot_label_id=77)
    assert (changed.owner, changed.transfer_seq, changed.bot_label_id) == ("operator", 3, 77)

    chat_record.hand_back(changed, restart=False)
    assert (changed.owner, changed.transfer_seq, changed.state) == ("bot", 0, {"slot": "x"})

    chat_record.hand_back(changed, restart=True)
    assert (changed.state, changed.turn_event) == ({}, "")


async def test_the_outbox_is_published_in_order_then_cleared_earlier_ones_marked() -> None:
    chats = MemoryChatStore()
    committed = record(version=1, pending=[text(2), text(3)])
    assert await chats.commit(committed, 0)
    published: list[OutboundAction] = []

    async def publish(action: OutboundAction) -> None:
        published.append(action)

    await chat_record.publish_outbox(chats, committed, publish, earlier=1)

    assert [(a.seq, a.maybe_duplicate) for a in published] == [(2, True), (3, False)]
    assert chats.chats["1:7"].pending == []


def test_transcript_lines_are_numbered_by_the_version_that_wrote_them() -> None:
    lines = chat_record.transcript_lines("1:7", 5, ["hello"], [text(3)], 1.0)

    assert [(line.seq, line.role, line.text) for line in lines] == [
        (5000, "customer", "hello"),
        (5001, "bot", "hi"),
    ]
    assert chat_record.note_line(record(), "handed back", 2.0).seq == 4000


def said(mid: int, text: str, at: float = 100.0) -> chat_record.OperatorMessage:
    return chat_record.OperatorMessage(message_id=mid, text=text, at=at)


def test_operator_messages_are_taken_once_and_only_since_the_chat_began() -> None:
    chat = record(created_at=100.0, owner="operator")
    before = said(3, "an older conversation of the case", at=50.0)

    taken = chat_record.take_operator_messages(chat, [said(9, "second"), before, said(5, "first")])

    assert [m.text for m in taken] == ["first", "second"]
    assert (chat.last_operator_message_id, chat.operator_unread) == (9, True)
    # Read back again (a repeated webhook, the next one): nothing twice, only what is new.
    assert chat_record.take_operator_messages(chat, [said(5, "first"), said(9, "second")]) == []
    assert [m.text for m in chat_record.take_operator_messages(chat, [said(9, "x"), said(12, "third")])] == [
        "third"
    ]
    # Back with the bot: the read caught up, nothing more to look for until the next hand-over.
    chat_record.hand_back(chat, restart=False)
    assert chat_record.take_operator_messages(chat, []) == [] and chat.operator_unread is False
    chat_record.hand_to_operator(chat, transfer_seq=0, bot_label_id=None)
    assert chat.operator_unread is True


def test_operator_lines_come_first_at_their_own_time_then_the_customer_then_the_bot() -> None:
    lines = chat_record.transcript_lines(
        "1:7", 5, ["hello"], [text(3)], 1.0, operator=[said(9, "Иду", at=0.5)]
    )

    assert [(line.seq, line.role, line.text, line.at) for line in lines] == [
        (5000, "operator", "Иду", 0.5),
        (5001, "customer", "hello", 1.0),
        (5002, "bot", "hi", 1.0),
    ]
    assert chat_record.transcript_lines("1:7", 6, [], [], 2.0, operator=[said(10, "?", at=0.0)])[0].at == 2.0
