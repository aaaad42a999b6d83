"""Agents' regular expressions (`input.pattern`, condition `matches`): linear time, bounded size.

Python's `re` backtracks: `^(a+)+$` against 32 `a`s and a `!` runs for minutes, on the event loop,
stalling every chat of the process. Agent patterns are therefore run by RE2 (`google-re2`), whose
matching time is linear in the text, never exponential. What RE2 cannot run, backreferences
(`\\1`) and lookaround (`(?=`, `(?<!`), is refused at import with the slot named, like a pattern
that is too long or compiles to too large a program. The text matched is bounded too
(`MAX_MATCHED_CHARS`): a longer text does not match, so one match costs at most microseconds
times that bound.

RE2's syntax is Perl's, minus those features; `^[0-9]+$`, `\\d`, `(?i)`, classes and repetition
work as in `re`. Differences worth knowing: `\\d` and `\\w` are ASCII only, `$` matches only at the
very end (not before a trailing newline), and `\\Z` is spelt `\\z`.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

MAX_PATTERN_CHARS: Final = 1000
MAX_PROGRAM_SIZE: Final = 5000  # RE2 instructions; `[a-z]{1000}` is about 1,000, `\w{1000}` 3,000
MAX_MATCHED_CHARS: Final = 10_000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to the user, not to stderr
_OPTIONS.max_mem = 8 << 20  # bytes RE2 may use for one pattern (its DFA cache included)


class PatternError(ValueError):
    """A pattern that agents may not use; the message says why, for the import report."""


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:  # re2._Regexp, untyped
    """The compiled pattern (once per process: agents reuse a few patterns on every message)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise PatternError(_explain(exc)) from None
    if compiled.programsize > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"the pattern is too large once compiled ({compiled.programsize} instructions, at most "
            f"{MAX_PROGRAM_SIZE}): use smaller repetition counts"
        )
    return compiled


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used, or None if it can."""
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        return str(exc)
    return None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` occurs in `text`; a text over `MAX_MATCHED_CHARS` does not match.

    Raises PatternError for a pattern `pattern_problem` refuses (an agent that skipped import)."""
    if len(text) > MAX_MATCHED_CHARS:
        return False
    return bool(compile_pattern(pattern).search(text) is not None)


def _explain(exc: re2.error) -> str:
    raw = exc.args[0] if exc.args else b""
    detail = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if "invalid escape sequence: \\" in detail and detail.rstrip()[-1:].isdigit():
        return f"backreferences are not supported ({detail})"
    if "invalid perl operator: (?" in detail and any(op in detail for op in ("(?=", "(?!", "(?<")):
        return f"lookahead and lookbehind are not supported ({detail})"
    return f"not a valid pattern (RE2 syntax): {detail}"
