"""Logging set-up: JSON lines in containers, readable text on a TTY, context bound per task.

`bind(chat_id=..., channel_id=...)` stores fields in a contextvar; a filter copies them onto every
record made in that task, so handlers never pass ids around just to log them.

What a line says may come from outside (a customer's text, a url an agent built, a path a client
sent). Both formats mask secrets in urls (`omnibot.shared.masking`); the text format also escapes
control characters (`\n` → `\\n`, ESC → `\\x1b`), so such text can neither forge a log line nor
drive the terminal that shows it. JSON lines escape them by being JSON.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from omnibot.shared.masking import mask_text

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "omnibot_log_context", default=None
)

# C0 controls, DEL and C1 controls (ESC [ and CSI drive terminals), and the Unicode line breaks.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS |= {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_controls(text: str) -> str:
    """`text` on one line, its control characters written as escapes."""
    return text.translate(_CONTROLS)


_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Attach fields (chat_id, channel_id, message_id, attempt, ...) to log records in this block."""
    current = _context.get() or {}
    token = _context.set({**current, **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_text(record.getMessage()),
            **_extra_fields(record),
        }
        if record.exc_info:
            entry["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 -- logging's name
        # `format` sets record.message afresh for every handler, so changing it here is local.
        record.message = escape_controls(mask_text(record.message))
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 -- logging's name
        # A traceback keeps its lines; other controls in it (an exception quoting a customer) not.
        lines = mask_text(super().formatException(ei)).split("\n")
        return "\n".join(escape_controls(line) for line in lines)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = _extra_fields(record)
        if extra:
            line += "  " + " ".join(escape_controls(mask_text(f"{k}={v}")) for k, v in extra.items())
        return line


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO drowns the service's own lines.
    for noisy in ("aio_pika", "aiormq", "pymongo", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
