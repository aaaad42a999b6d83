"""External requests: performs agents' ``external_request`` calls through the safe HTTP client.

Owns the fetcher that runs one request within its limits (method, delay, timeouts, body size) and
turns every outcome, failures included, into a ``FetchResult`` whose error never holds a
credential. Which addresses may be reached, and how redirects are followed, is the shared
client's (``omnibot.shared.net``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver
from opentelemetry.trace import SpanKind
from yarl import URL

from omnibot.agents import engine
from omnibot.shared import metrics, telemetry
from omnibot.shared.net.client import (
    CHUNK_BYTES,
    RequestFailed,
    SafeHttpClient,
    build_headers,
    format_size,
    redact,
)
from omnibot.shared.net.policy import AddressRefusedError, NetworkPolicy

log = logging.getLogger(__name__)

MAX_DELAY_S: Final = 60.0
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_SECRET_HEADER_HINTS: Final = ("auth", "token", "key", "secret", "password", "cookie", "session")


@dataclass(frozen=True)
class _Call:
    """One ``external_request`` as the agent gave it."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any | None
    basic_auth: str | None
    timeout_s: float
    delay_s: float
    sleep: Callable[[float], Awaitable[None]]


class FetchResult(msgspec.Struct, frozen=True):
    """The outcome of one ``external_request``."""

    status: int | None  # None on network error, timeout, refusal, too large
    body: Any  # decoded JSON, or the text when not JSON, or None
    error: str | None  # readable reason; never contains credentials


def _format_seconds(s: float) -> str:
    return f"{s:g} s"


def _scrub(text: str, secrets: Iterable[str]) -> str:
    # Only applied to texts that come from exceptions; the messages built here never hold secrets.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _decode_body(raw: bytes, charset: str | None) -> Any:
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        pass
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _basic_authorization(credentials: str) -> str:
    """The ``Authorization`` value for ``"user:password"``.

    Split on the first colon: a login cannot contain one (RFC 7617), a password may; a value without
    a colon is a login with an empty password. Encoded here because aiohttp 3.14 deprecates BasicAuth.
    """
    login, _, password = credentials.partition(":")
    token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def external_result(result: FetchResult) -> str:
    """The `result` label of omnibot_external_requests_total: ok is an answer below 500; refused
    by the network policy, timed out, or any other failure (5xx included) is error."""
    if result.error is None:
        return "ok" if result.status is not None and result.status < 500 else "error"
    if result.error.startswith("refused"):
        return "refused_by_policy"
    if "timeout" in result.error.split(":", 1)[0]:
        return "timeout"
    return "error"


def _host_of(url: str) -> str:
    try:
        return (URL(url).host or "")[:100]
    except (ValueError, TypeError):
        return ""


class ExternalFetcher:
    """Runs ``external_request`` calls through one safe HTTP client."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        max_body_bytes: int = 1 << 20,
        max_redirects: int = 3,
        connect_timeout_s: float = 5.0,
        user_agent: str = "omnibot/0.1",
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._client = SafeHttpClient(
            policy,
            max_redirects=max_redirects,
            connect_timeout_s=connect_timeout_s,
            user_agent=user_agent,
            resolver=resolver,
        )
        self._max_body_bytes = max_body_bytes

    async def start(self) -> None:
        await self._client.start()

    async def close(self) -> None:
        await self._client.close()

    async def fetch(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any | None,
        basic_auth: str | None,
        timeout_s: float,
        delay_s: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> FetchResult:
        """Perform one request. Never raises (except cancellation): failures have status None."""
        verb = method.upper()[:10]
        # A span of our own: the url's path and query, and the headers, may carry credentials.
        with telemetry.span(
            "omnibot.dialog",
            f"external_request {verb}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": verb, "server.address": _host_of(url)},
        ) as span:
            call = _Call(method, url, headers, body, basic_auth, timeout_s, delay_s, sleep)
            result = await self._fetch_logged(call)
            outcome = external_result(result)
            metrics.record_external_request(outcome)
            telemetry.set_attributes(span, **{"omnibot.result": outcome})
            if result.status is not None:
                telemetry.set_attributes(span, **{"http.response.status_code": result.status})
            if outcome != "ok":
                telemetry.set_error(span, outcome)
        return result

    async def _fetch_logged(self, call: _Call) -> FetchResult:
        secrets = self._secrets(call.headers, call.basic_auth, call.url)
        started = time.monotonic()
        try:
            result = await self._fetch(call, secrets)
        except RequestFailed as exc:
            result = FetchResult(status=None, body=None, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - an agent's request must never crash the dialog turn
            message = _scrub(f"unexpected error: {type(exc).__name__}: {exc}", secrets)
            log.warning("external_request failed unexpectedly: %s", message)
            result = FetchResult(status=None, body=None, error=message)
        elapsed_ms = (time.monotonic() - started) * 1000
        described = self._describe(call.method, call.url)
        if result.error is None:
            log.info("external_request %s -> %s in %.0f ms", described, result.status, elapsed_ms)
        else:
            log.warning(
                "external_request %s failed in %.0f ms: %s",
                described,
                elapsed_ms,
                result.error,
            )
        return result

    @staticmethod
    def _describe(method: str, url: str) -> str:
        try:
            return f"{method.upper()} {redact(URL(url))}"
        except (ValueError, TypeError):
            return f"{method.upper()} <invalid url>"

    @staticmethod
    def _secrets(headers: Mapping[str, str], basic_auth: str | None, url: str) -> list[str]:
        secrets: list[str] = []
        if basic_auth:
            secrets.append(basic_auth)
            secrets.append(basic_auth.partition(":")[2])
            secrets.append(base64.b64encode(basic_auth.encode("utf-8")).decode("ascii"))
        for name, value in headers.items():
            if any(hint in str(name).lower() for hint in _SECRET_HEADER_HINTS):
                secrets.append(str(value))
        try:
            password = URL(url).password
        except (ValueError, TypeError):
            password = None
        if password:
            secrets.append(password)
        return secrets

    async def _fetch(self, call: _Call, secrets: list[str]) -> FetchResult:
        method, url, basic_auth, timeout_s, delay_s = (
            call.method,
            call.url,
            call.basic_auth,
            call.timeout_s,
            call.delay_s,
        )
        if not self._client.started:
            raise RequestFailed("external requests are not available (fetcher not started)")
        verb = method.strip().upper()
        if verb not in _METHODS:
            raise RequestFailed(f"unsupported method {method!r}")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise RequestFailed(f"invalid timeout {timeout_s!r}: must be a positive number of seconds")
        target = self._client.parse_url(url)
        request_headers = build_headers(call.headers)
        if target.user is not None:
            # Credentials in the url would reach aiohttp's own auth handling and leak into errors;
            # they become the Basic header like `auth.basic`, which takes precedence.
            if basic_auth is None:
                basic_auth = f"{target.user}:{target.password or ''}"
            target = target.with_user(None)
        if basic_auth is not None:
            request_headers["Authorization"] = _basic_authorization(basic_auth)
        data: bytes | None = None
        if call.body is not None:
            try:
                data = msgspec.json.encode(call.body)
            except (TypeError, ValueError, OverflowError) as exc:
                raise RequestFailed(f"body is not JSON-serialisable: {type(exc).__name__}") from None
            request_headers.setdefault("Content-Type", "application/json")

        delay = min(max(delay_s, 0.0), MAX_DELAY_S) if math.isfinite(delay_s) else 0.0
        if delay > 0:
            await call.sleep(delay)

        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                return await self._client.request(verb, target, request_headers, data, self._read)
        except TimeoutError as exc:
            if deadline.expired():
                raise RequestFailed(f"timeout after {_format_seconds(timeout_s)}") from None
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise RequestFailed(
                    f"connect timeout after {_format_seconds(self._client.connect_timeout_s)}"
                ) from None
            raise RequestFailed(_scrub(f"timeout: {exc}", secrets)) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefusedError):
                raise RequestFailed(str(exc.os_error)) from None
            if isinstance(exc, aiohttp.ClientConnectorDNSError):
                host = exc.host
                raise RequestFailed(
                    f"cannot resolve {host}: {exc.os_error.strerror or exc.os_error}"
                ) from None
            raise RequestFailed(_scrub(f"cannot connect: {exc}", secrets)) from None
        except aiohttp.ClientError as exc:
            raise RequestFailed(_scrub(f"request failed: {type(exc).__name__}: {exc}", secrets)) from None

    async def _read(self, resp: aiohttp.ClientResponse) -> FetchResult:
        too_large = RequestFailed(f"response over {format_size(self._max_body_bytes)}")
        # Content-Length is only a shortcut for honest servers; the streamed count below decides.
        declared = resp.content_length
        if (
            declared is not None
            and declared > self._max_body_bytes
            and "Content-Encoding" not in resp.headers
        ):
            raise too_large
        buffer = bytearray()
        async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
            buffer += chunk
            if len(buffer) > self._max_body_bytes:
                raise too_large
        return FetchResult(status=resp.status, body=_decode_body(bytes(buffer), resp.charset), error=None)


def fetch_with(
    fetcher: ExternalFetcher,
) -> Callable[[engine.CallExternal], Awaitable[engine.ExternalResult]]:
    """An `external_request` slot's call, made by `fetcher`, answered as the engine expects."""

    async def fetch(call: engine.CallExternal) -> engine.ExternalResult:
        result = await fetcher.fetch(
            method=call.method,
            url=call.url,
            headers=call.headers,
            body=call.body,
            basic_auth=call.basic_auth,
            timeout_s=call.timeout_s,
            delay_s=call.delay_s,
        )
        return engine.ExternalResult(
            request_id=call.request_id, status=result.status, body=result.body, error=result.error
        )

    return fetch
