"""Every payload that crosses a queue: tagged msgspec Structs and one decoder per queue.

Evolution rules: new fields get defaults; existing field types never change; unknown fields are
tolerated (rolling deploys). A breaking change gets a new tag (`...v2`), never a reused one.
"""

from __future__ import annotations

import msgspec


class Visitor(msgspec.Struct, kw_only=True, frozen=True):
    """The customer as the Omnidesk rule describes them; unknown placeholders arrive as ""."""

    id: str = ""
    email: str = ""
    login: str = ""
    name: str = ""
    phone: str = ""


class InboundMessage(msgspec.Struct, tag="inbound.message.v1", kw_only=True, frozen=True):
    """A customer message accepted by ingress from a channel's webhook."""

    event_id: str  # unique per accepted delivery (ingress-generated)
    channel_id: int
    chat_id: str
    text: str
    kind: str = "text"
    visitor: Visitor = Visitor()
    received_at: float  # unix seconds, ingress clock
    # Identifies the delivered content (chat, text, visitor): two deliveries of one Omnidesk event
    # share it; used to recognise Omnidesk's duplicate deliveries.
    fingerprint: str = ""


class ChatTimer(msgspec.Struct, tag="chat.timer.v1", kw_only=True, frozen=True):
    """A chat's inactivity timer (the agent's `on_timeout`), travelling through the inbound delay
    tiers until it is due. Stale once the customer wrote again (`activity` no longer the chat's)."""

    channel_id: int
    chat_id: str
    activity: float  # the chat's `last_activity` when the timer was set
    due_at: float  # unix seconds
    visitor: Visitor = Visitor()  # for the runtime variables of the turn it runs


class _Outbound(msgspec.Struct, kw_only=True, frozen=True):
    action_id: str  # stable across republishing: "<channel_id>:<chat_id>:<seq>"
    channel_id: int
    chat_id: str
    seq: int  # strictly increasing per chat; egress performs a chat's actions in this order
    created_at: float
    # Set when dialog republishes actions it may already have published (crash recovery).
    maybe_duplicate: bool = False
    # When ingress accepted the webhook this action answers (its `received_at`; 0: unknown):
    # egress measures the reply latency a customer feels from it.
    accepted_at: float = 0.0


class SendText(_Outbound, tag="outbound.text.v1", kw_only=True, frozen=True):
    text: str


class SendFile(_Outbound, tag="outbound.file.v1", kw_only=True, frozen=True):
    url: str
    name: str
    caption: str = ""


class TransferToOperator(_Outbound, tag="outbound.transfer.v1", kw_only=True, frozen=True):
    """Hand the case to a human: note for the operator, bot label removed."""

    summary: str  # readable dialog summary for the internal note
    label_id: int | None = None  # the bot label; None: use the channel's setting


OutboundAction = SendText | SendFile | TransferToOperator

inbound_decoder = msgspec.json.Decoder(InboundMessage)
# What the dialog consumer reads from chat.inbound: customer messages and the chats' timers.
dialog_decoder: msgspec.json.Decoder[InboundMessage | ChatTimer] = msgspec.json.Decoder(
    InboundMessage | ChatTimer
)
outbound_decoder: msgspec.json.Decoder[OutboundAction] = msgspec.json.Decoder(OutboundAction)
encoder = msgspec.json.Encoder()


def chat_key(channel_id: int, chat_id: str) -> str:
    """The identity of a chat across services: one Omnidesk case on one channel."""
    return f"{channel_id}:{chat_id}"
