"""The fake external service of a transcript: which scripted answer a request gets, and a server.

`ExternalScript` is the pure part, shared by both runners: it matches a request to the header's
`external` entries by method and path (host ignored, `*` a wildcard), the first unused match
first, and the last match again once all are used.

`FakeExternalServer` serves a script over HTTP for pipeline runs, on 127.0.0.1: the agent's
`external_request`s and the egress's attachment downloads reach it like any outside server. A
request nothing matches is cut off without an answer (the agent sees a network failure, as the
engine runner reports it); `GET /files/{name}?size=N` without a scripted answer serves N bytes
of deterministic content, so `as: file` attachments can point here. Its control routes live under
`/__replay/`: load a script (which also clears the request log), read the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import aiohttp
import msgspec
from aiohttp import web
from yarl import URL

from omnibot.replay.transcript import FakeResponse

CONTROL_PREFIX: Final = "/__replay"
DEFAULT_FILE_BYTES: Final = 1024
MAX_FILE_BYTES: Final = 30 * 1024 * 1024  # past Omnidesk's 25 MB, to test the limit


class ExternalScript:
    """Answers to requests from a transcript header's `external` list; no I/O, remembers what was used."""

    def __init__(self, responses: Sequence[FakeResponse]) -> None:
        self._responses = list(responses)
        self._used = [False] * len(self._responses)

    def take(self, method: str, url_or_path: str) -> FakeResponse | None:
        """The answer to a request, or None when nothing matches. The host of a url is ignored."""
        path = _path_of(url_or_path)
        matching = [i for i, r in enumerate(self._responses) if _matches(r, method, path)]
        if not matching:
            return None
        chosen = next((i for i in matching if not self._used[i]), matching[-1])
        self._used[chosen] = True
        return self._responses[chosen]


def _path_of(url_or_path: str) -> str:
    """The path, and the query if there is one (an entry may name it: `/search?q=1`)."""
    url = URL(url_or_path)
    return url.raw_path_qs if url.raw_query_string else url.raw_path


def _matches(response: FakeResponse, method: str, path: str) -> bool:
    if response.method.upper() != method.upper():
        return False
    wanted = response.path
    if "?" not in wanted:
        path = path.split("?", 1)[0]  # an entry without a query answers whatever the query is
    # Compared as the wire has them: an entry with non-ASCII text is percent-encoded (`*` stays).
    return _glob(URL(wanted).raw_path_qs).fullmatch(path) is not None


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    # Only `*` is special: `?` and `[` are ordinary characters of urls.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def file_bytes(name: str, size: int) -> bytes:
    """Deterministic content for a fake file: a block derived from the name, repeated."""
    block = hashlib.sha256(name.encode()).digest() * 128
    return (block * (size // len(block) + 1))[:size]


class RecordedCall(msgspec.Struct, kw_only=True, frozen=True):
    """A request the fake service received (for tests that check what the agent sent)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON, the text, or None


class _ScriptIn(msgspec.Struct, kw_only=True):
    external: list[FakeResponse] = []


class FakeExternalServer:
    """An aiohttp server playing the external service. One script at a time."""

    def __init__(self) -> None:
        self.script = ExternalScript([])
        self.calls: list[RecordedCall] = []
        self._stopping = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"{CONTROL_PREFIX}/script", self._load_script)
        app.router.add_get(f"{CONTROL_PREFIX}/calls", self._list_calls)
        app.router.add_route("*", "/{tail:.*}", self._answer)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def load(self, responses: Sequence[FakeResponse]) -> None:
        self.script = ExternalScript(responses)
        self.calls = []

    async def _on_shutdown(self, app: web.Application) -> None:
        self._stopping.set()  # cut scripted delays short

    async def _load_script(self, request: web.Request) -> web.Response:
        try:
            body = msgspec.json.decode(await request.read(), type=_ScriptIn)
        except msgspec.DecodeError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.load(body.external)
        return web.json_response({"responses": len(body.external)})

    async def _list_calls(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode({"calls": self.calls}), content_type="application/json")

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.calls.append(
            RecordedCall(
                method=request.method,
                path=request.raw_path,
                headers=dict(request.headers),
                body=_decode(raw),
            )
        )
        response = self.script.take(request.method, request.raw_path)
        if response is not None:
            await self._pause(response.delay_s)
            return web.Response(
                status=response.status,
                body=None if response.body is None else msgspec.json.encode(response.body),
                content_type="application/json",
            )
        if request.method == "GET" and request.path.startswith("/files/"):
            return self._file(request)
        # Unreachable, as far as the client can tell: the connection closes without an answer.
        if request.transport is not None:
            request.transport.close()
        raise web.HTTPServiceUnavailable  # never reaches the client

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def _file(self, request: web.Request) -> web.Response:
        name = request.path.rsplit("/", 1)[-1]
        try:
            size = int(request.query.get("size", DEFAULT_FILE_BYTES))
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_FILE_BYTES:
            return web.json_response({"error": "bad size"}, status=400)
        return web.Response(body=file_bytes(name, size), content_type="application/octet-stream")


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode("utf-8", errors="replace")


@contextlib.asynccontextmanager
async def running_fake_external(port: int = 0) -> AsyncIterator[tuple[FakeExternalServer, str]]:
    """Serve a `FakeExternalServer` on 127.0.0.1 (`port` 0: any free one); yields it and its base URL."""
    server = FakeExternalServer()
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield server, f"http://127.0.0.1:{bound}"
    finally:
        await runner.cleanup()


async def load_script(
    session: aiohttp.ClientSession, external_url: str, responses: Sequence[FakeResponse]
) -> None:
    """Give a running fake service (in this process or not) the answers of a transcript."""
    payload = msgspec.json.encode({"external": responses})
    async with session.post(
        f"{external_url.rstrip('/')}{CONTROL_PREFIX}/script",
        data=payload,
        headers={"Content-Type": "application/json"},
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"the fake external service refused the script: {await response.text()}")
