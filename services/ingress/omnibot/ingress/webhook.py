"""The body Omnidesk's rule sends, decoded strictly enough to trust and loosely enough for real setups.

Real-world variation tolerated: numbers where strings are expected (placeholders replaced by
Omnidesk may look numeric), empty strings for unknown placeholders, extra fields, `kind` other than
"text", a missing `visitor` or `visitor.fields`. Refused: anything that is not a JSON object, objects
replaced by other types, a missing, empty, non-canonical or oversized `chat_id` (it is Omnidesk's
`[case_id]`; see `omnibot.shared.ids`), bodies that are not UTF-8 or are nested too deeply.
"""

from __future__ import annotations

import hashlib

import msgspec

from omnibot.shared.ids import MAX_CASE_ID_DIGITS, parse_case_id
from omnibot.shared.messages import InboundMessage, Visitor

Scalar = str | int | float | None


class _Fields(msgspec.Struct, kw_only=True):
    email: Scalar = ""
    login: Scalar = ""
    name: Scalar = ""
    phone: Scalar = ""


class _Visitor(msgspec.Struct, kw_only=True):
    id: Scalar = ""
    fields: _Fields | None = None


class _Message(msgspec.Struct, kw_only=True):
    kind: Scalar = "text"
    text: Scalar = ""


class WebhookBody(msgspec.Struct, kw_only=True):
    event: Scalar = "new_message"
    message: _Message
    visitor: _Visitor | None = None
    chat_id: Scalar = None


_decoder = msgspec.json.Decoder(WebhookBody)


class InvalidWebhook(ValueError):
    """The body cannot be accepted; the message says why, for the 400 answer."""


def _text(value: Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() if not isinstance(value, str) else value


def decode_webhook(body: bytes, *, channel_id: int, event_id: str, received_at: float) -> InboundMessage:
    try:
        webhook = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidWebhook(_readable(exc)) from None
    except RecursionError:
        # msgspec gives up on very deep nesting (even inside ignored fields) with RecursionError.
        raise InvalidWebhook("the body is nested too deeply") from None
    except UnicodeDecodeError:
        raise InvalidWebhook("the body is not valid UTF-8") from None
    raw_chat_id = _text(webhook.chat_id).strip()
    if not raw_chat_id:
        raise InvalidWebhook('chat_id is missing or empty: the rule must send "chat_id": "[case_id]"')
    chat_id = parse_case_id(raw_chat_id)
    if chat_id is None:
        raise InvalidWebhook(
            f"chat_id must be an Omnidesk case id (ASCII digits, no leading zero, at most "
            f"{MAX_CASE_ID_DIGITS} digits), got {raw_chat_id[:24]!r}" + ("…" if len(raw_chat_id) > 24 else "")
        )
    fields = webhook.visitor.fields if webhook.visitor and webhook.visitor.fields else _Fields()
    visitor = Visitor(
        id=_text(webhook.visitor.id).strip() if webhook.visitor else "",
        email=_text(fields.email).strip(),
        login=_text(fields.login).strip(),
        name=_text(fields.name).strip(),
        phone=_text(fields.phone).strip(),
    )
    text = _text(webhook.message.text)
    return InboundMessage(
        event_id=event_id,
        channel_id=channel_id,
        chat_id=chat_id,
        text=text,
        kind=_text(webhook.message.kind) or "text",
        visitor=visitor,
        received_at=received_at,
        fingerprint=content_fingerprint(channel_id, chat_id, visitor.id, text),
    )


def content_fingerprint(channel_id: int, chat_id: str, visitor_id: str, text: str) -> str:
    raw = f"{channel_id}\x00{chat_id}\x00{visitor_id}\x00{text}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _readable(exc: msgspec.DecodeError) -> str:
    message = str(exc)
    if message.startswith("Expected `object`, got") and "`$." not in message:
        return "the body must be a JSON object"
    if message.startswith(("JSON is malformed", "Input data was truncated")):
        return "the body is not valid JSON"
    return message.replace("`$.", "`")
