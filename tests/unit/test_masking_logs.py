"""Secrets masked in urls, log lines that cannot be forged (issue 10, items 6 and 10)."""

from __future__ import annotations

import io
import logging

import pytest

from omnibot.shared.logs import ContextFilter, JsonFormatter, TextFormatter, bind
from omnibot.shared.masking import mask_text, mask_url

TELEGRAM = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"https://api.telegram.org/bot{TELEGRAM}/sendMessage?chat_id=1",
            "https://api.telegram.org/…/sendMessage",
        ),
        ("http://u:p@shop.example/orders/4711?key=s3cr3t#x", "http://shop.example/orders/4711"),
        ("https://x.example/hook/Zk3v9QaP2mL8rT5wY1nB6cD4", "https://x.example/hook/…"),
        ("https://x.example/api/cases/123/messages.json", "https://x.example/api/cases/123/messages.json"),
    ],
)
def test_urls_lose_their_secrets(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_texts_lose_the_secrets_of_their_urls_and_bare_tokens() -> None:
    reason = f"POST https://api.telegram.org/bot{TELEGRAM}/send failed; token {TELEGRAM} refused"
    masked = mask_text(reason)
    assert TELEGRAM not in masked
    assert "https://api.telegram.org/…/send" in masked


def log_line(formatter: logging.Formatter, message: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("test.masking")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        with bind(chat_id="1\n09:00:00 ERROR forged"):
            logger.warning(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_text_lines_escape_control_characters_and_mask_urls() -> None:
    customer = "ok\n09:00:00 ERROR omnibot: forged line\x1b[2J\x9b31m"
    line = log_line(
        TextFormatter(), "customer wrote %s to https://api.telegram.org/bot%s/x", customer, TELEGRAM
    )
    assert line.count("\n") == 1  # one record, one line
    assert "\x1b" not in line and "\x9b" not in line
    assert "\\n09:00:00 ERROR omnibot: forged line\\x1b[2J\\x9b31m" in line
    assert "chat_id=1\\n09:00:00 ERROR forged" in line
    assert TELEGRAM not in line


def test_json_lines_mask_urls() -> None:
    line = log_line(JsonFormatter(), "GET https://api.telegram.org/bot%s/x", TELEGRAM)
    assert TELEGRAM not in line
    assert line.count("\n") == 1
