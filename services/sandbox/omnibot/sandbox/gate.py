"""What every request on the Omnidesk side of the sandbox passes before its handler runs.

Owns: the request log (each request recorded with its JSON body, the Authorization header
redacted, and its final status, 499 when the client left first), a timed outage of the whole API,
the per-minute rate limit with Omnidesk's headers, scripted faults (refused before the operation,
or answered late or wrongly after it), HTTP Basic authentication as a staff member, and Omnidesk's
JSON errors. Requests of the control side (`/sandbox`, the page) pass through untouched.

GUESS: a refused rate limit is 429 `rate_limit_exceeded` with a `retry_after` header (whole
seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from omnibot.sandbox.faults import FaultResponse, RateDecision
from omnibot.sandbox.http import answer_errors, error_response, is_control_path, json_response
from omnibot.sandbox.records import ApiError, RecordedRequest, Staff
from omnibot.sandbox.state import SandboxState
from omnibot.sandbox.wire import parse_basic_auth

API_PREFIX = "/api/"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client went away first"

AUTH_STAFF: web.RequestKey[Staff] = web.RequestKey("sandbox_auth_staff", Staff)
RECORD: web.RequestKey[RecordedRequest] = web.RequestKey("sandbox_record", RecordedRequest)


def _rate_headers(response: web.StreamResponse, decision: RateDecision | None) -> web.StreamResponse:
    if decision is not None:
        # setdefault: headers a scripted fault sets win.
        response.headers.setdefault("rate_limit_per_minute", str(decision.limit))
        response.headers.setdefault("api_calls_left", str(decision.left))
    return response


def _fault_response(fault: FaultResponse, status: int) -> web.Response:
    body = fault.body if fault.body is not None else {"error": "sandbox_fault"}
    if isinstance(body, str):  # e.g. a proxy's HTML error page
        response = web.Response(status=status, text=body, content_type="text/html")
    else:
        response = json_response(body, status=status)
    response.headers.update(fault.headers)
    return response


def _record_of(request: web.Request, json_body: Any) -> RecordedRequest:
    headers = {
        name: (value.split(" ", 1)[0] + " <redacted>" if name.lower() == "authorization" else value)
        for name, value in request.headers.items()
    }
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query.items()),
        headers=headers,
        time=0.0,
        json=json_body,
    )


# --- the API ------------------------------------------------------------------------------------


class OmnideskGate:
    """The middleware of the Omnidesk side; `on_shutdown` cuts scripted delays short."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._stopping = asyncio.Event()

    async def on_shutdown(self, app: web.Application) -> None:
        """Cut scripted delays short: aiohttp waits for in-flight handlers after this signal."""
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        """Only scripted faults ever wait (`delay_s`), and never past the server's shutdown."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Log, rate-limit, fault-inject and authenticate everything outside `/sandbox`."""
        if is_control_path(request.path):
            return await handler(request)
        record = await self._start_record(request)
        status = 500  # unless an answer is produced
        try:
            response = await self._answer(request, handler)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = CLIENT_CLOSED_REQUEST  # the client left before the answer (e.g. its timeout)
            raise
        finally:
            self._state.finish_request(record, status)

    async def _start_record(self, request: web.Request) -> RecordedRequest:
        json_body: Any = None
        if request.body_exists and request.content_type == "application/json":
            try:
                # Cached by aiohttp: the handler reads the same bytes again.
                json_body = msgspec.json.decode(await request.read())
            except (msgspec.DecodeError, web.HTTPException):
                json_body = None
        record = _record_of(request, json_body)
        record.time = self._state.clock()
        request[RECORD] = record
        self._state.start_request(record)
        return record

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        decision: RateDecision | None = None
        if request.path.startswith(API_PREFIX):
            down = self._state.outage_status()
            if down is not None:
                # Omnidesk is down: nothing runs, nothing is counted against the rate limit.
                return error_response(down, "service_unavailable")
            decision = self._state.rate_limiter.take()
            if not decision.allowed:
                refused = error_response(
                    429, "rate_limit_exceeded", headers={"retry_after": str(decision.retry_after_s)}
                )
                return _rate_headers(refused, decision)
        fault = self._state.faults.take(request.method, request.path)
        if fault is not None and not fault.performs_operation:
            # Refused before anything happened (a proxy error, an outage, a scripted 429...).
            assert fault.status is not None  # only a fault with a status skips the operation
            await self._pause(fault.delay_s)
            return _rate_headers(_fault_response(fault, fault.status), decision)
        response = await answer_errors(request, self._authenticated(handler) if decision else handler)
        if fault is not None:
            # The operation happened; the answer is late, or replaced: "accepted, answer lost".
            await self._pause(fault.delay_s)
            if fault.status is not None:
                response = _fault_response(fault, fault.status)
        return _rate_headers(response, decision)

    def _authenticated(self, handler: Handler) -> Handler:
        async def authenticate_then_handle(request: web.Request) -> web.StreamResponse:
            credentials = parse_basic_auth(request.headers.get(hdrs.AUTHORIZATION, ""))
            if credentials is None:
                raise ApiError(401, "unauthorized")
            staff = self._state.authenticate(*credentials)
            request[AUTH_STAFF] = staff
            request[RECORD].staff_email = staff.email
            return await handler(request)

        return authenticate_then_handle
