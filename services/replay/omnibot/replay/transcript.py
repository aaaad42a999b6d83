"""The conversation transcript format `omnibot/transcript@1`: its types, parsing and dumping.

A transcript is a JSON-lines file. It is written by hand as a test (what a customer says and what
the bot must answer) and, later, recorded from live traffic (`omnibot replay record`), so it is
general: several chats may interleave, and every line may carry the time it happened.

Line 1, the header (shown annotated here; in a file it is one JSON object on one line)::

    {"omnibot": "transcript@1",
     "agent": "agents/support.json",           # path of the agent file, relative to this file
     "variables": {"api_base": "{{external}}"}, # optional overrides of the agent's `variables`;
                                               # "{{external}}" in them becomes the fake external
                                               # server's base URL at run time
     "external": [                             # optional: the fake external service
        {"method": "GET", "path": "/orders/4711", "status": 200, "body": {...}, "delay_s": 0}],
     "visitor": {"name": "Анна", "email": "anna@example.com", "phone": ""}}

`external` answers the agent's `external_request`s by method and path (the host is ignored; `*` in
a path matches any run of characters): the first unused matching entry wins, and once all matching
entries are used the last of them repeats. A request nothing matches gets no answer at all (the
agent sees a network failure). `delay_s` is how long the fake service takes to answer.

Then one line per event, each with an optional `"chat"` label (default "c1") and an optional
`"at"` (seconds since the start; used by timed replays, ignored when comparing):

    {"customer": "text"}                               # input: the customer writes
    {"bot": "text"}                                    # output: a text reply
    {"file": {"name": "invoice.pdf", "caption": "…"}}  # output: a reply with an attached file
    {"transfer": {"reason": "slot"}}                   # output: handed to an operator
                                                       # ("slot", "error" or "loop")

Outputs answer the customer line of their chat before them, in the order they were produced; the
outputs of one chat may be interleaved with lines of other chats. In expected outputs, the fake
external server's base URL is written `{{external}}`. A customer line may end in Omnidesk's
attachment block (`"Фото\\n—————\\nВложенные файлы:\\nhttps://…/1_file_0.jpg"`): the files the
customer attached (see `omnibot.replay.scenario`). Blank lines and lines starting with `#` are
comments (they are not kept by `dump`). Unknown fields are refused, so that a typo cannot pass
unnoticed; a format that needs more fields gets a new tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

FORMAT: Final = "omnibot/transcript@1"
HEADER_TAG: Final = "transcript@1"
DEFAULT_CHAT: Final = "c1"
TRANSFER_REASONS: Final = ("slot", "error", "loop")
EXTERNAL_PLACEHOLDER: Final = "{{external}}"
METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class TranscriptError(ValueError):
    """A transcript that cannot be read; the message names the file and line."""


# -- the header -------------------------------------------------------------------------------------


class FakeResponse(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One answer of the fake external service."""

    path: str
    method: str = "GET"
    status: int = 200
    body: Any = None
    delay_s: float = 0.0


class Visitor(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The customer, as Omnidesk's webhook describes them (`channel_visitor_*`)."""

    name: str = ""
    email: str = ""
    phone: str = ""


class Header(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    omnibot: str
    agent: str
    variables: dict[str, Any] = {}
    external: list[FakeResponse] = []
    visitor: Visitor = Visitor()


# -- events -----------------------------------------------------------------------------------------
# Hand-written files: unknown fields are refused, so a typo ("chta") cannot pass silently.


class _Line(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    chat: str = DEFAULT_CHAT
    at: float | None = None


class CustomerLine(_Line, kw_only=True, frozen=True):
    customer: str


class BotLine(_Line, kw_only=True, frozen=True):
    bot: str


class FileOut(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    caption: str = ""


class FileLine(_Line, kw_only=True, frozen=True):
    file: FileOut


class TransferOut(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    reason: str  # "slot" | "error" | "loop"; a runner may report something else it could not read


class TransferLine(_Line, kw_only=True, frozen=True):
    transfer: TransferOut


Output = BotLine | FileLine | TransferLine
Event = CustomerLine | Output
_KINDS: Final[dict[str, type[Event]]] = {
    "customer": CustomerLine,
    "bot": BotLine,
    "file": FileLine,
    "transfer": TransferLine,
}


class Transcript(msgspec.Struct, kw_only=True, frozen=True):
    header: Header
    events: list[Event]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One customer line and the outputs of its chat that answer it."""

    customer: CustomerLine
    outputs: list[Output]


def exchanges(transcript: Transcript) -> list[Exchange]:
    """The customer lines in order, each with the outputs that answer it.

    Outputs belong to the latest customer line of their chat before them, wherever other chats'
    lines fall in between. `parse` guarantees every output has such a line.
    """
    result: list[Exchange] = []
    latest: dict[str, Exchange] = {}
    for event in transcript.events:
        if isinstance(event, CustomerLine):
            latest[event.chat] = Exchange(event, [])
            result.append(latest[event.chat])
        else:
            latest[event.chat].outputs.append(event)
    return result


def chats(transcript: Transcript) -> list[str]:
    """The chat labels in the order their first line appears."""
    return list(dict.fromkeys(event.chat for event in transcript.events))


# -- parsing ----------------------------------------------------------------------------------------


def parse(text: str, source: str = "<transcript>") -> Transcript:
    """Read a transcript; `TranscriptError` says `source:line: what is wrong` for the first problem."""
    lines = _numbered_lines(text)
    first = next(lines, None)
    if first is None:
        raise TranscriptError(f"{source}: empty transcript (the first line must be the header)")
    number, raw = first
    header = _parse_header(raw, f"{source}:{number}")
    events: list[Event] = []
    started: set[str] = set()
    last_at = 0.0
    for number, raw in lines:
        where = f"{source}:{number}"
        event = _parse_event(raw, where)
        if isinstance(event, CustomerLine):
            started.add(event.chat)
        elif event.chat not in started:
            raise TranscriptError(f"{where}: an output of chat {event.chat!r} before any customer line of it")
        if event.at is not None:
            if event.at < last_at:
                raise TranscriptError(f"{where}: `at` {event.at:g} is earlier than a line before it")
            last_at = event.at
        events.append(event)
    return Transcript(header=header, events=events)


def load(path: Path) -> Transcript:
    """Read a transcript file."""
    return parse(path.read_text(encoding="utf-8"), str(path))


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def _decode_object(raw: str, where: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise TranscriptError(f"{where}: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TranscriptError(f"{where}: a line must be a JSON object")
    return value


def _convert(value: dict[str, Any], kind: type[Any], where: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise TranscriptError(f"{where}: {exc}") from None


def _parse_header(raw: str, where: str) -> Header:
    value = _decode_object(raw, where)
    if value.get("omnibot") != HEADER_TAG:
        raise TranscriptError(
            f'{where}: the first line must be the header {{"omnibot": "{HEADER_TAG}", "agent": ...}}'
        )
    header: Header = _convert(value, Header, where)
    if not header.agent.strip():
        raise TranscriptError(f"{where}: `agent` must name the agent file")
    for i, response in enumerate(header.external):
        problem = _response_problem(response)
        if problem:
            raise TranscriptError(f"{where}: `external[{i}]`: {problem}")
    return header


def _response_problem(response: FakeResponse) -> str | None:
    if response.method.upper() not in METHODS:
        return f"unknown method {response.method!r}"
    if not response.path.startswith("/"):
        return f"path {response.path!r} must start with /"
    if not 100 <= response.status <= 599:
        return f"status {response.status} is not an HTTP status"
    if response.delay_s < 0:
        return "delay_s must not be negative"
    return None


def _parse_event(raw: str, where: str) -> Event:
    value = _decode_object(raw, where)
    kinds = [key for key in _KINDS if key in value]
    if len(kinds) != 1:
        found = " and ".join(f"`{k}`" for k in kinds) or "none"
        raise TranscriptError(
            f"{where}: an event line has exactly one of `customer`, `bot`, `file`, `transfer` ({found} found)"
        )
    event: Event = _convert(value, _KINDS[kinds[0]], where)
    if not event.chat:
        raise TranscriptError(f"{where}: `chat` must not be empty")
    if event.at is not None and event.at < 0:
        raise TranscriptError(f"{where}: `at` must not be negative")
    if isinstance(event, TransferLine) and event.transfer.reason not in TRANSFER_REASONS:
        raise TranscriptError(
            f"{where}: transfer reason {event.transfer.reason!r} is not one of {', '.join(TRANSFER_REASONS)}"
        )
    return event


# -- dumping ----------------------------------------------------------------------------------------

_encode = msgspec.json.Encoder().encode


def dump(transcript: Transcript) -> str:
    """The transcript as JSON lines; `parse(dump(t))` gives `t` back."""
    header = msgspec.to_builtins(transcript.header)
    # `omnibot` first, so that a reader recognises the file at a glance.
    lines = [_encode({"omnibot": header.pop("omnibot"), **header}).decode()]
    lines.extend(_dump_event(event) for event in transcript.events)
    return "\n".join(lines) + "\n"


def _dump_event(event: Event) -> str:
    # The kind key first (`{"bot": ..., "chat": ...}`): that is what a reader scans for.
    fields = msgspec.to_builtins(event)
    kind = next(key for key in _KINDS if key in fields)
    return _encode({kind: fields.pop(kind), **fields}).decode()
