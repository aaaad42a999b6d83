"""Text from outside, made safe to show a person in a terminal or a log line. Pure.

A customer's message, a variable, an agent name or a URL path may hold control characters: an ESC
sequence recolours, moves the cursor or retitles the operator's terminal, a carriage return
overwrites what is shown, and a newline in a text log line starts a line the service never wrote.
Each such character is shown as an escape (`\\x1b`, `\\n`) instead.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls (0x9b alone is a CSI), and the bidirectional overrides that
# reorder what is shown. `_BUT_NEWLINE` leaves line breaks to callers that lay lines out.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What json.dumps(ensure_ascii=False) leaves raw of them (it escapes C0 itself).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character shown as an escape."""
    return (_UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE).sub(_escape, text)


def printable_json(text: str) -> str:
    """JSON text (from json.dumps with ensure_ascii=False) with the rest escaped as \\uXXXX."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
