"""The webhook body of product.md and its real-world variations."""

import pytest

from omnibot.ingress.webhook import InvalidWebhook, decode_webhook

SEED_BODY = (
    b'{"event": "new_message", "message": {"kind": "text", "text": "Hello"}, '
    b'"visitor": {"id": "77", "fields": {"email": "a@b.ru", "login": "77", "name": "Anna", "phone": ""}}, '
    b'"chat_id": "12345"}'
)


def decode(body: bytes):
    return decode_webhook(body, channel_id=3, event_id="e1", received_at=1.0)


def test_seed_body_decodes_into_an_inbound_message() -> None:
    message = decode(SEED_BODY)
    assert message.chat_id == "12345"
    assert message.text == "Hello"
    assert message.visitor.name == "Anna"
    assert message.visitor.email == "a@b.ru"
    assert message.channel_id == 3
    assert message.fingerprint


@pytest.mark.parametrize(
    "body",
    [
        b'{"message": {"text": "hi"}, "chat_id": 12345}',  # number instead of string
        b'{"message": {"text": "hi", "kind": "visitor"}, "chat_id": "12345", "extra": [1]}',
        b'{"message": {"text": "hi"}, "visitor": {"id": 5}, "chat_id": "12345"}',  # no fields
        b'{"message": {"text": "hi"}, "visitor": {"id": "", "fields": {"email": ""}}, "chat_id": " 12345 "}',
    ],
)
def test_real_world_variations_are_accepted(body: bytes) -> None:
    assert decode(body).chat_id == "12345"


def test_numeric_placeholders_become_strings() -> None:
    message = decode(
        b'{"message": {"text": 42}, "visitor": {"id": 7, "fields": {"phone": 79991234567}}, "chat_id": 1}'
    )
    assert message.text == "42"
    assert message.visitor.id == "7"
    assert message.visitor.phone == "79991234567"


def test_attachment_block_is_kept_in_the_text() -> None:
    text = "Смотрите\\n\\u2014\\u2014\\u2014\\u2014\\u2014\\n\\u0412\\u043b\\u043e\\u0436\\u0435\\u043d\\u043d\\u044b\\u0435 \\u0444\\u0430\\u0439\\u043b\\u044b:\\nhttps://x.omnidesk.ru/attachment/download/chat/h/1_file_0.jpg"
    message = decode(('{"message": {"text": "' + text + '"}, "chat_id": "9"}').encode())
    assert message.text.endswith("1_file_0.jpg")
    assert "Вложенные файлы:" in message.text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"message": {"text": "hi"}}', "chat_id is missing"),
        (b'{"message": {"text": "hi"}, "chat_id": ""}', "chat_id is missing"),
        (b'{"message": {"text": "hi"}, "chat_id": "[case_id]"}', "digits"),
        (b'{"message": "hi", "chat_id": "1"}', "message"),
        (b'{"message": {"text": "hi"}, "visitor": "x", "chat_id": "1"}', "visitor"),
        (b'{"message": {"text": "hi"}, "visitor": {"fields": []}, "chat_id": "1"}', "fields"),
        (b'{"chat_id": "1"}', "message"),
    ],
)
def test_bad_bodies_are_refused_with_a_reason(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidWebhook) as info:
        decode(body)
    assert fragment in str(info.value)


def test_same_content_same_fingerprint_different_text_different() -> None:
    a = decode(SEED_BODY)
    b = decode_webhook(SEED_BODY, channel_id=3, event_id="e2", received_at=2.0)
    c = decode(SEED_BODY.replace(b"Hello", b"Hello!"))
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
