"""Checks of what an operator types in: each problem named precisely, nothing saved on failure. Pure."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from omnibot.shared.printable import printable

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TITLE = 200
# Ids and counts are stored as MongoDB's 64-bit integers; offsets beyond any real list are refused.
MAX_ID = 2**63 - 1
MAX_OFFSET = 1_000_000_000
# A channel's own language model (`llm` slots): generous bounds, far above any real value.
MAX_LLM_URL = 2000
MAX_LLM_MODEL = 200
MAX_LLM_KEY = 4096


def normalise_domain(value: str, *, allow_http: bool) -> tuple[str | None, str | None]:
    """(the domain as stored, or None; the problem, or None)."""
    raw = value.strip()
    try:
        parts = urlsplit(raw)
    except ValueError:
        return None, "domain: not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None, "domain: must be an http(s) URL like https://example.omnidesk.ru"
    if parts.scheme == "http" and not allow_http:
        return None, "domain: must use https (set OMNIDESK_ALLOW_HTTP=true only for a sandbox)"
    if parts.username or parts.password:
        return None, "domain: must not contain credentials"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None, "domain: must be the account address only, without path, query or fragment"
    try:
        port = parts.port
    except ValueError:
        return None, "domain: invalid port"
    host = parts.hostname.lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}", None


def normalise_llm_base_url(value: str) -> tuple[str, str | None]:
    """(the channel's chat-completions base URL as stored, "" for LLM_BASE_URL; the problem, or None).

    An http(s) URL with a host; its path is kept (`https://api.example.com/v1`). No credentials,
    query or fragment: the key goes in `llm_api_key`, never into a URL that is shown. Whether a
    private address may be called is the network policy's, at call time (as for LLM_BASE_URL).
    """
    raw = value.strip()
    if not raw:
        return "", None
    if len(value) > MAX_LLM_URL:
        return "", f"llm_base_url: at most {MAX_LLM_URL} characters"
    if printable(raw) != raw or any(c.isspace() for c in raw):
        return "", "llm_base_url: must not contain spaces or control characters"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return "", "llm_base_url: not a URL (or an invalid port)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "", "llm_base_url: must be an http(s) URL like https://api.openai.com/v1"
    if parts.username is not None or parts.password is not None:
        return "", "llm_base_url: must not contain credentials (give the key as llm_api_key)"
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        return "", "llm_base_url: must not have a query or fragment"
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}", None


def llm_model_problem(value: str) -> str | None:
    if len(value) > MAX_LLM_MODEL:
        return f"llm_model: at most {MAX_LLM_MODEL} characters"
    stripped = value.strip()
    return None if printable(stripped) == stripped else "llm_model: must not contain control characters"


def llm_api_key_problem(value: str) -> str | None:
    """Never the value itself: a problem is shown and logged."""
    if len(value) > MAX_LLM_KEY:
        return f"llm_api_key: at most {MAX_LLM_KEY} characters"
    # Sent as `Authorization: Bearer <key>`: a space or a control character would break the header.
    if any(c.isspace() or printable(c) != c for c in value.strip()):
        return "llm_api_key: must not contain spaces or control characters"
    return None


def email_problem(value: str) -> str | None:
    return None if _EMAIL.match(value.strip()) else "email: must be an e-mail address"


def api_key_problem(value: str) -> str | None:
    return None if value.strip() else "api_key: must not be empty"


def title_problem(value: str) -> str | None:
    if not value.strip():
        return "title: must not be empty"
    return f"title: at most {MAX_TITLE} characters" if len(value) > MAX_TITLE else None


def label_title_problem(value: str) -> str | None:
    return "bot_label_title: at most 200 characters" if len(value) > 200 else None


def positive_problem(name: str, value: int | None) -> str | None:
    if value is None or 0 < value <= MAX_ID:
        return None
    if value > MAX_ID:
        return f"{name}: must be a positive id of at most {MAX_ID}"
    return f"{name}: must be a positive id"


def transfer_status_problem(value: str) -> str | None:
    if value in ("", "open", "waiting", "closed"):
        return None
    return "transfer_status: must be open, waiting or closed (or empty: leave the status alone)"


def page_problems(limit: int, offset: int, *, max_limit: int) -> list[str]:
    problems = []
    if not 1 <= limit <= max_limit:
        problems.append(f"limit: must be between 1 and {max_limit}")
    if offset < 0:
        problems.append("offset: must not be negative")
    elif offset > MAX_OFFSET:
        problems.append(f"offset: at most {MAX_OFFSET}")
    return problems


def version_problem(value: int | None) -> str | None:
    """An agent version asked for: None means the latest (or, to publish, the latest too)."""
    if value is None or 1 <= value <= MAX_ID:
        return None
    return "version: must be a version number (1 or more)"


def parse_since(value: str) -> tuple[float | None, str | None]:
    """A point in time as unix seconds or ISO 8601 (UTC unless it says otherwise): (ts, problem)."""
    raw = value.strip()
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        return (number, None) if math.isfinite(number) else (None, "updated_since: must be a finite time")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None, "updated_since: must be an ISO 8601 time (2026-05-01T10:00:00Z) or unix seconds"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp(), None
