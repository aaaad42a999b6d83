"""What went wrong talking to Omnidesk, as types: the client raises them, callers match on them.

Each failure is also a `TransientError` or a `PermanentError`, so the consumers' retry policy needs
no change; the type says what happened (who is to blame, what a person should fix) without anyone
reading message text. Messages never quote an Omnidesk response body: a server that echoes the
request would put the channel's credentials there (`safe_code` keeps only a short error code).
"""

from __future__ import annotations

import re
from typing import Any

from omnibot.shared.errors import OmnibotError, PermanentError, TransientError

# Omnidesk's error codes are snake_case words ("staff_not_active", "incorrect_parameters"); a
# Basic credential (base64, mixed case) or an echoed header line is not.
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class OmnideskFailure(OmnibotError):
    """Any failed Omnidesk call. `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status
        self.code = code


# --- the request got no usable answer: try again later ----------------------------------------


class OmnideskUnreachable(OmnideskFailure, TransientError):
    """No connection could be made (DNS, refused, TLS): the request certainly did not take effect."""


class OmnideskTimeout(OmnideskFailure, TransientError):
    """No answer in time, or the connection broke mid-answer (`ambiguous` for a state change)."""


class OmnideskRateLimited(OmnideskFailure, TransientError):
    """The account's API limit is reached; `retry_after` says when to try again."""


class OmnideskServerError(OmnideskFailure, TransientError):
    """Omnidesk answered 5xx (or 408): its fault, maybe passing."""


# --- Omnidesk refused: trying again cannot help ------------------------------------------------


class OmnideskUnauthorized(OmnideskFailure, PermanentError):
    """401: the e-mail and API key are not accepted."""


class OmnideskNotFound(OmnideskFailure, PermanentError):
    """404: no such resource, or (for an account's first call) no Omnidesk API at this domain."""


class OmnideskRefused(OmnideskFailure, PermanentError):
    """Another 4xx: Omnidesk understood and objected (`code` says what, when it said)."""


class OmnideskBadResponse(OmnideskFailure, PermanentError):
    """An answer that is not what the Omnidesk API sends (not JSON, wrong shape)."""


class StaffNotFound(OmnideskFailure, PermanentError):
    """The channel's e-mail is not a staff member of the account."""


class StaffInactive(OmnideskFailure, PermanentError):
    """The channel's staff member exists but is deactivated."""


class LabelNotFound(OmnideskFailure, PermanentError):
    """No label with the given title."""


def safe_code(body: Any, *secrets: str) -> str:
    """Omnidesk's error code from a decoded body, if it is a plain identifier containing no secret."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return ""
    code: str = body["error"]
    if not _CODE.fullmatch(code) or any(len(s) >= 4 and s in code for s in secrets):
        return ""
    return code
