"""The one spelling of an id that arrives from outside: Omnidesk case ids and omnibot channel ids.

`str.isdigit()` also accepts Arabic-Indic (`١٢`) and full-width (`１２`) digits, and `int("01")` is 1,
so without one canonical form the same case or channel could be reached under another key (another
chat record, another ordering partition). Accepted: ASCII digits, no sign, no leading zero, no
spaces, and a bounded length: the id also travels in AMQP headers and routing keys, where an
unbounded value breaks the broker connection (RabbitMQ closes it with `frame_too_large`).
"""

from __future__ import annotations

import re

# Omnidesk case ids are 64-bit integers: at most 20 digits.
MAX_CASE_ID_DIGITS = 20
MAX_CHANNEL_ID_DIGITS = 12

_CANONICAL = re.compile(r"[1-9][0-9]*", re.ASCII)


def canonical_digits(text: str, max_digits: int) -> str | None:
    """`text` if it is a canonical positive decimal of at most `max_digits` digits, else None."""
    if not 0 < len(text) <= max_digits or _CANONICAL.fullmatch(text) is None:
        return None
    return text


def parse_case_id(text: str) -> str | None:
    """An Omnidesk `[case_id]` in its canonical form, or None."""
    return canonical_digits(text, MAX_CASE_ID_DIGITS)


def parse_channel_id(text: str) -> int | None:
    """A channel id from a URL path segment, or None (`/01/`, `/１/`, `/+1/` are not channel 1)."""
    digits = canonical_digits(text, MAX_CHANNEL_ID_DIGITS)
    return None if digits is None else int(digits)
