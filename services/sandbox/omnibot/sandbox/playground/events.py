"""The playground's live updates: a server-sent event stream of the page's regions.

Owns the stream's protocol. Every event carries the regions whose HTML changed since the last
event on that connection, and the first event of a connection carries them all, so an event is
never a delta that depends on one the browser might have missed: a page that reconnects is whole
again after one event. The event id is `<boot>.<version>` (the state's change counter): a
browser reconnecting with a `Last-Event-ID` of the current boot and version has missed nothing and
gets no snapshot; any other id (an older version, a restarted sandbox) gets one at once.

Changes are coalesced: at most one event per `MIN_INTERVAL_S`, so a burst of API calls (a retry
storm) costs a handful of renders, and a change is on screen well within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import msgspec
from aiohttp import web

from omnibot.sandbox.playground.render import PageRenderer
from omnibot.sandbox.state import SandboxState

MIN_INTERVAL_S = 0.1
KEEPALIVE_S = 15.0
RETRY_MS = 1000  # how soon EventSource reconnects after losing the stream


class _Event(msgspec.Struct, kw_only=True):
    seq: int
    case: int | None
    regions: dict[str, str]


def format_event(event_id: str, payload: bytes, *, retry_ms: int | None = None) -> bytes:
    """One SSE event; the payload is one line of JSON (msgspec escapes newlines in strings)."""
    head = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f"{head}id: {event_id}\nevent: state\ndata: ".encode() + payload + b"\n\n"


class EventStream:
    """Serves `GET /sandbox/events?case=N` until the client leaves or the server stops."""

    def __init__(self, state: SandboxState, renderer: PageRenderer) -> None:
        self._state = state
        self._renderer = renderer
        self._boot = secrets.token_hex(4)
        self._stopping = asyncio.Event()

    async def on_shutdown(self, app: web.Application) -> None:
        """End the streams: aiohttp would otherwise wait for them until its shutdown timeout."""
        self._stopping.set()

    def event_id(self, version: int) -> str:
        return f"{self._boot}.{version}"

    async def serve(self, request: web.Request, case_id: int | None) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
            }
        )
        await response.prepare(request)
        sent: dict[str, str] = {}
        seen = -1
        if request.headers.get("Last-Event-ID") == self.event_id(self._state.version):
            seen = self._state.version  # the page is up to date: wait for the next change
            await response.write(b"retry: %d\n\n" % RETRY_MS)
        with contextlib.suppress(ConnectionResetError):
            while not self._stopping.is_set():
                if self._state.version != seen:
                    seen = self._state.version
                    regions = self._renderer.regions(self._state, case_id)
                    changed = {k: v for k, v in regions.items() if sent.get(k) != v}
                    if changed or not sent:
                        payload = msgspec.json.encode(_Event(seq=seen, case=case_id, regions=changed))
                        retry = RETRY_MS if not sent else None
                        await response.write(format_event(self.event_id(seen), payload, retry_ms=retry))
                        sent.update(changed)
                    await self._pause(MIN_INTERVAL_S)
                    continue
                if not await self._next_change(seen):
                    await response.write(b": keepalive\n\n")  # also finds browsers that left
        return response

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _next_change(self, seen: int) -> bool:
        """Wait for a change after version `seen`; False after `KEEPALIVE_S` without one."""
        change = asyncio.ensure_future(self._state.wait_for(lambda s: s.version != seen, KEEPALIVE_S))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({change, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (change, stop):
                task.cancel()
            await asyncio.gather(change, stop, return_exceptions=True)  # a timeout is no error here
        return self._stopping.is_set() or self._state.version != seen
