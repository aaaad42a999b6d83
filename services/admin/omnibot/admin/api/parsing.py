"""Reading a request of the admin API: the JSON body as a Struct and the query parameters, every
problem named before refusing."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from aiohttp import web

from omnibot.admin.operations import Refused
from omnibot.admin.schemas import DEFAULT_PAGE
from omnibot.admin.validation import parse_since

S = TypeVar("S", bound=msgspec.Struct)

_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)  # int() would also take "+1", " 1", "١"


async def read_raw(request: web.Request, *, required: bool) -> bytes | None:
    """The raw body, which must be JSON; None when there is none and none is required."""
    if not request.body_exists:
        if required:
            raise Refused("bad_request", ["a JSON body is required"])
        return None
    if request.content_type != "application/json":
        raise Refused("unsupported_media_type", ["send the body as application/json"])
    raw = await request.read()
    if not raw.strip():
        if required:
            raise Refused("bad_request", ["a JSON body is required"])
        return None
    return raw


async def read_body(request: web.Request, kind: type[S], *, required: bool = True) -> S:
    """The body as `kind`, with every wrong field named (msgspec alone stops at the first)."""
    raw = await read_raw(request, required=required)
    if raw is None:
        return msgspec.convert({}, kind)
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise Refused("bad_request", ["the body is not valid JSON"]) from None
    except RecursionError:
        raise Refused("bad_request", ["the body is nested too deeply"]) from None
    if not isinstance(data, dict):
        raise Refused("bad_request", ["the body must be a JSON object"])
    fields = {f.encode_name: f for f in msgspec.structs.fields(kind)}
    problems = [f"{key}: unknown field" for key in data if key not in fields]
    for name, field in fields.items():
        if name not in data:
            if field.required:
                problems.append(f"{name}: required")
            continue
        try:
            msgspec.convert(data[name], field.type)
        except msgspec.ValidationError as exc:
            problems.append(f"{name}: {str(exc).replace(' - at `$', f' at `{name}')}")
    if problems:
        raise Refused("invalid", problems)
    return msgspec.convert(data, kind)


class Query:
    """Query parameters, every problem collected before refusing.

    A parameter given twice, or given empty, is refused (400) rather than read as one of its
    values or as its default: the caller meant something, and guessing what hides their mistake.
    """

    def __init__(self, request: web.Request) -> None:
        self._query = request.query
        self.malformed: list[str] = []
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        values = self._query.getall(name, [])
        if len(values) > 1:
            self.malformed.append(f"{name}: given {len(values)} times; give it once")
            return None
        if values and values[0] == "":
            self.malformed.append(f"{name}: given empty; leave it out for the default")
            return None
        return values[0] if values else None

    def integer(self, name: str, default: int) -> int:
        value = self.optional_integer(name)
        return default if value is None else value

    def optional_integer(self, name: str) -> int | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if not _INTEGER.fullmatch(raw):
            self.problems.append(f"{name}: must be an integer")
            return None
        if len(raw.lstrip("-")) > 18:
            self.problems.append(f"{name}: out of range")
            return None
        return int(raw)

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if raw not in choices:
            self.problems.append(f"{name}: must be one of {', '.join(choices)}")
            return None
        return raw

    def flag(self, name: str) -> bool:
        raw = (self._raw(name) or "").lower()
        if raw not in ("", "true", "false", "1", "0"):
            self.problems.append(f"{name}: must be true or false")
        return raw in ("true", "1")

    def since(self, name: str) -> float | None:
        raw = self._raw(name)
        if raw is None:
            return None
        value, problem = parse_since(raw)
        if problem:
            self.problems.append(problem)
        return value

    def page(self) -> tuple[int, int]:
        return self.integer("limit", DEFAULT_PAGE), self.integer("offset", 0)

    def done(self) -> None:
        if self.malformed:
            raise Refused("bad_request", self.malformed)
        if self.problems:
            raise Refused("invalid", self.problems)


def only_page(request: web.Request) -> tuple[int, int]:
    """`limit` and `offset` of an endpoint that takes no other query parameter."""
    query = Query(request)
    limit, offset = query.page()
    query.done()
    return limit, offset


def channel_id(request: web.Request) -> int:
    return int(request.match_info["channel_id"])
