"""Rendering pages: the jinja2 environment (autoescaped everywhere) and the console's headers.

Every page gets a strict Content-Security-Policy (scripts and styles only from /static, nothing
inline, no framing), and `Cache-Control: no-store` so a signed-in page is never kept by a browser
or a proxy. Values reach templates as data and jinja2 escapes them: customer text such as
`<img src=x onerror=alert(1)>` or `{{channel_webhook_token}}` is shown as text.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from omnibot.admin.console.i18n import Language, translate

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def build_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = format_time
    return env


def format_time(value: float | str | None) -> str:
    """Unix seconds or ISO 8601 as `2026-12-01 09:30:12 UTC`; empty for never."""
    if value is None or value == "" or value == 0:
        return ""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        moment = datetime.fromtimestamp(value, tz=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_seconds(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def age(language: Language, since: float, now: float | None = None) -> str:
    seconds = max(0, int((now if now is not None else time.time()) - since))
    if seconds < 120:
        return translate(language, "{n} s").format(n=seconds)
    if seconds < 7200:
        return translate(language, "{n} min").format(n=seconds // 60)
    if seconds < 172800:
        return translate(language, "{n} h").format(n=seconds // 3600)
    return translate(language, "{n} d").format(n=seconds // 86400)


def page(
    env: jinja2.Environment,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    content_type: str = "text/html",
) -> web.Response:
    text = env.get_template(template).render(context)
    response = web.Response(text=text, status=status, content_type=content_type, charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response
