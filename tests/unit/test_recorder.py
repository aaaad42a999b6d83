"""What the recorder makes of observed messages."""

from typing import Any

from omnibot.replay.recorder import Recorder, from_dead_letters
from omnibot.replay.transcript import BotLine, CustomerLine, FileLine, TransferLine, dump, parse
from omnibot.shared.messages import InboundMessage, SendFile, SendText, TransferToOperator, Visitor


def inbound(text: str, chat: str = "7", fingerprint: str = "", channel: int = 1) -> InboundMessage:
    return InboundMessage(
        event_id=f"e-{text}-{fingerprint}",
        channel_id=channel,
        chat_id=chat,
        text=text,
        visitor=Visitor(name="Anna"),
        received_at=0,
        fingerprint=fingerprint or text,
    )


def test_lines_in_order_with_times_and_repeats_left_out() -> None:
    recorder = Recorder(1, dedup_window_s=30)
    recorder.inbound(inbound("hi"), now=100.0)
    recorder.inbound(inbound("hi"), now=101.0)  # Omnidesk delivered it again
    recorder.outbound(
        SendText(action_id="a", channel_id=1, chat_id="7", seq=1, created_at=0, text="Hello"), now=101.5
    )
    recorder.outbound(
        SendFile(
            action_id="b", channel_id=1, chat_id="7", seq=2, created_at=0, url="u", name="f.pdf", caption="c"
        ),
        now=102.0,
    )
    recorder.outbound(
        TransferToOperator(
            action_id="c",
            channel_id=1,
            chat_id="7",
            seq=3,
            created_at=0,
            summary="omnibot: ... (the agent looped)",
        ),
        now=103.0,
    )
    recorder.inbound(inbound("other", channel=2), now=104.0)  # another channel
    recorder.inbound(inbound("hi"), now=140.0)  # really said again, later
    events = recorder.transcript("agent.json").events
    assert [type(e) for e in events] == [CustomerLine, BotLine, FileLine, TransferLine, CustomerLine]
    assert [e.at for e in events] == [0.0, 1.5, 2.0, 3.0, 40.0]
    assert events[3].transfer.reason == "loop"  # type: ignore[union-attr]
    assert recorder.visitor.name == "Anna"


def test_republished_actions_and_orphan_outputs_are_not_recorded() -> None:
    recorder = Recorder(1)
    recorder.outbound(
        SendText(action_id="x", channel_id=1, chat_id="9", seq=5, created_at=0, text="late"), now=1.0
    )
    recorder.inbound(inbound("hi", chat="9"), now=2.0)
    recorder.outbound(
        SendText(
            action_id="y", channel_id=1, chat_id="9", seq=6, created_at=0, text="dup", maybe_duplicate=True
        ),
        now=3.0,
    )
    transcript = recorder.transcript("a.json")
    assert [type(e) for e in transcript.events] == [CustomerLine]
    assert parse(dump(transcript)) == transcript


def test_dead_letters_become_customer_lines() -> None:
    bodies: list[Any] = [
        {
            "type": "inbound.message.v1",
            "event_id": "e1",
            "channel_id": 1,
            "chat_id": "5",
            "text": "a",
            "received_at": 0,
        },
        {
            "type": "inbound.message.v1",
            "event_id": "e2",
            "channel_id": 2,
            "chat_id": "6",
            "text": "b",
            "received_at": 0,
        },
        {"undecodable": "x"},
    ]
    events = from_dead_letters(1, bodies).transcript("a.json").events
    assert [(e.chat, e.customer) for e in events] == [("5", "a")]  # type: ignore[union-attr]
