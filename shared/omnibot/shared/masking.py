"""Secrets in urls and texts that leave the process (logs, dead letters, errors): masked.

Agents put credentials in urls: in the query (`?key=`), in user info (`user:pass@`), and, like
Telegram's bot API (`/bot123456:AAH…/sendMessage`), in the path. What logs and dead letters keep
of a url is its scheme, host and port, and its path with secret-looking segments replaced by `…`:
a segment holding a colon after digits (a Telegram token), or a long run of letters and digits
both (an API key, a webhook secret, a signed id). Ordinary paths (`/orders/4711`, `/api/cases`)
stay readable.
"""

from __future__ import annotations

import re
from typing import Final

from yarl import URL

MASK: Final = "…"
_TELEGRAM: Final = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")
_LONG_TOKEN: Final = re.compile(r"[A-Za-z0-9_\-.~+=]{24,}")
_URL_IN_TEXT: Final = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def _secret_segment(segment: str) -> bool:
    if _TELEGRAM.search(segment):
        return True
    if _LONG_TOKEN.fullmatch(segment):
        return any(c.isdigit() for c in segment) and any(c.isalpha() for c in segment)
    return False


def mask_path(path: str) -> str:
    return "/".join(MASK if _secret_segment(part) else part for part in path.split("/"))


def mask_url(url: URL | str) -> str:
    """The url without user info, query or fragment, and with secret-looking path segments masked."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        bare = parsed.with_user(None).with_query(None).with_fragment(None)
        origin = str(bare.origin()) if bare.absolute else ""
        return origin + mask_path(bare.raw_path)
    except (ValueError, TypeError):
        return "<invalid url>"


def mask_text(text: str) -> str:
    """`text` with every url in it masked, and Telegram-style tokens masked wherever they are."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
    return _TELEGRAM.sub(MASK, text) if ":" in text else text
