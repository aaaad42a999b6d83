"""The playground's routes: the page at `/`, its two static files, the event stream, the actions.

Owns the page's HTTP answers and their security headers: a strict Content-Security-Policy (only
this origin's script and style files, no inline script or style, no framing), no sniffing, no
referrer. The page is plain server-rendered HTML plus one hand-written script and one style sheet
(no build step); everything the script does goes through the JSON control API.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from omnibot.sandbox.http import base_url
from omnibot.sandbox.playground.actions import PlaygroundActions
from omnibot.sandbox.playground.events import EventStream
from omnibot.sandbox.playground.render import Account, PageRenderer
from omnibot.sandbox.records import ApiError
from omnibot.sandbox.rules import RuleRunner
from omnibot.sandbox.state import SandboxState

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {
    "playground.js": "text/javascript",
    "playground.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def case_param(request: web.Request) -> int | None:
    """`?case=N`: the case shown; absent or empty: a new chat."""
    raw = request.query.get("case", "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "incorrect_case") from None


class Playground:
    """The page, its files, its live stream and its actions, over one sandbox state."""

    def __init__(self, state: SandboxState, rules: RuleRunner) -> None:
        self._state = state
        self._renderer = PageRenderer()
        self.events = EventStream(state, self._renderer)
        self._actions = PlaygroundActions(state, rules)
        # Read once: two small files that only change with the code.
        self._static = {name: (STATIC / name).read_bytes() for name in _STATIC_TYPES}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.page),
            web.get("/sandbox/static/{name}", self.static),
            web.get("/sandbox/events", self.stream),
            *self._actions.routes(),
        ]

    async def page(self, request: web.Request) -> web.Response:
        case_id = case_param(request)
        if case_id is not None and case_id not in self._state.cases:
            case_id = None  # e.g. after a reset: a new chat rather than an error page
        state = self._state
        label = state.labels.get(state.bot_label_id)
        account = Account(
            domain=base_url(request, state),
            bot_email=state.bot_email,
            api_key=state.api_key,
            bot_label_id=state.bot_label_id,
            bot_label_title=label.title if label else "",
        )
        html = self._renderer.page(state, case_id, account)
        return web.Response(
            text=html,
            content_type="text/html",
            charset="utf-8",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
        )

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._static:
            raise ApiError(404, "not_found")
        return web.Response(
            body=self._static[name],
            headers={
                **SECURITY_HEADERS,
                "Content-Type": f"{_STATIC_TYPES[name]}; charset=utf-8",
                "Cache-Control": "no-cache",  # revalidate: a new version shows on the next load
            },
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        return await self.events.serve(request, case_param(request))
