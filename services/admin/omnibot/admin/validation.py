"""Checks of what an operator types in: each problem named precisely, nothing saved on failure. Pure."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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


def email_problem(value: str) -> str | None:
    return None if _EMAIL.match(value.strip()) else "email: must be an e-mail address"


def api_key_problem(value: str) -> str | None:
    return None if value.strip() else "api_key: must not be empty"


def title_problem(value: str) -> str | None:
    if not value.strip():
        return "title: must not be empty"
    return "title: at most 200 characters" if len(value) > 200 else None
