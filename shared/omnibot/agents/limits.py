"""How much one turn of an agent may produce: variables, rendered texts, the chat's state.

Without bounds a 2 KB agent doubling a variable fourteen times built 16 MB in one turn; the chat
could not be saved (MongoDB's 16 MB document limit), the message was retried and dead-lettered,
and the customer got neither an answer nor an operator. With them, a turn that goes over a bound
fails like any failing turn (the engine's apology and a transfer to an operator), at once and
once, and the chat keeps the variables it had before that turn.

The bounds are far above what a conversation needs: a saved API answer or a long text fits.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

MAX_VARIABLE_BYTES: Final = 256 * 1024  # one variable's value, as JSON
MAX_RENDERED_CHARS: Final = 256 * 1024  # one rendered template (text, url, header, body string)
MAX_MESSAGE_CHARS: Final = 64 * 1024  # one text sent to the customer (reply, menu, caption)
MAX_STATE_BYTES: Final = 1024 * 1024  # all of a chat's variables together, as JSON

_encode = msgspec.json.Encoder().encode


class OutputTooLarge(ValueError):
    """A turn produced more than a bound allows; the message says which bound."""


def json_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2  # the common case, without encoding a copy
    try:
        return len(_encode(value))
    except (TypeError, msgspec.EncodeError):
        return len(str(value))


def check_variable(name: str, value: Any) -> None:
    size = json_size(value)
    if size > MAX_VARIABLE_BYTES:
        raise OutputTooLarge(f"variable {name!r} would hold {size} bytes (at most {MAX_VARIABLE_BYTES})")


def check_rendered(length: int) -> None:
    if length > MAX_RENDERED_CHARS:
        raise OutputTooLarge(f"a rendered template is over {MAX_RENDERED_CHARS} characters")


def check_message(text: str) -> None:
    if len(text) > MAX_MESSAGE_CHARS:
        raise OutputTooLarge(f"a message of {len(text)} characters (at most {MAX_MESSAGE_CHARS})")


def state_problem(variables: dict[str, Any]) -> str | None:
    size = json_size(variables)
    if size > MAX_STATE_BYTES:
        return f"the chat's variables would take {size} bytes (at most {MAX_STATE_BYTES})"
    return None
