"""External requests: performs agents' ``external_request`` calls without opening the internal network.

Owns the network policy (which addresses an agent may reach, from ``EXTERNAL_REQUEST_ALLOW_NETWORKS``),
the resolver that applies it to every connection the HTTP client makes, and the fetcher that runs one
request within its limits (scheme, delay, timeouts, body size, redirects) and turns every outcome,
failures included, into a ``FetchResult``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import math
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from opentelemetry.trace import SpanKind
from yarl import URL

from omnibot.shared import metrics, telemetry
from omnibot.shared.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_NETWORKS_SETTING: Final = "EXTERNAL_REQUEST_ALLOW_NETWORKS"
MAX_DELAY_S: Final = 60.0


def _networks(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), label) for cidr, label in pairs)


# First match wins, so the more specific entries come before the ranges that contain them.
# The stdlib's is_private/is_global flags changed meaning between patch releases, so the refused
# ranges are spelled out here; `not is_global` remains as a backstop for anything not listed.
_REFUSED_V4: Final = _networks(
    ("0.0.0.0/32", "the unspecified address"),
    ("0.0.0.0/8", "a 'this network' address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (CGNAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.169.254/32", "a link-local address (cloud metadata service)"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address (IETF protocol assignments)"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a reserved address (6to4 relay anycast)"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_REFUSED_V6: Final = _networks(
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    # Also covers the deprecated IPv4-compatible form ::a.b.c.d.
    ("::/8", "a reserved address"),
    ("100::/64", "a discard-only address"),
    ("2001::/23", "a reserved address (IETF protocol assignments, incl. Teredo)"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a unique local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
_NAT64_WELL_KNOWN: Final = ipaddress.IPv6Network("64:ff9b::/96")


def _without_scope(ip: IPAddress) -> IPAddress:
    # A zone id (fe80::1%eth0) is not part of the address; comparisons must not depend on it.
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return ipaddress.IPv6Address(int(ip))
    return ip


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, with the name of the mapping, if any."""
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped form", ip.ipv4_mapped
    if ip in _NAT64_WELL_KNOWN:
        return "a NAT64 form", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "a 6to4 form", ip.sixtofour
    return None


def _refused_label(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # These addresses reach the embedded IPv4 address, so that address decides alone.
            form, v4 = embedded
            inner = _refused_label(v4)
            return None if inner is None else f"{form} of {v4}, {inner}"
        table = _REFUSED_V6
    else:
        table = _REFUSED_V4
    for network, label in table:
        if ip in network:
            return label
    if not ip.is_global:
        return "not a globally routable address"
    return None


class NetworkPolicy:
    """Which addresses an ``external_request`` may connect to. Pure.

    Every non-public address is refused unless it lies inside one of the explicitly allowed networks.
    """

    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self._allowed: tuple[IPNetwork, ...] = tuple(allowed)

    @classmethod
    def from_setting(cls, allow_networks: str) -> NetworkPolicy:
        """Parse ``EXTERNAL_REQUEST_ALLOW_NETWORKS``: comma-separated CIDRs, empty for none."""
        allowed: list[IPNetwork] = []
        for raw in allow_networks.split(","):
            item = raw.strip()
            if not item:
                continue
            try:
                allowed.append(ipaddress.ip_network(item, strict=True))
            except ValueError as exc:
                raise ValueError(
                    f"{ALLOW_NETWORKS_SETTING}: {item!r} is not a valid CIDR network "
                    f"(expected e.g. 10.1.0.0/16 or fd00::/8): {exc}"
                ) from None
        return cls(allowed)

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return self._allowed

    def is_allowed(self, ip: IPAddress) -> bool:
        return self.refusal_reason(ip) is None

    def refusal_reason(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused (e.g. ``"10.0.0.5 is a private address"``), or None if allowed."""
        ip = _without_scope(ip)
        if self._explicitly_allowed(ip):
            return None
        label = _refused_label(ip)
        return None if label is None else f"{ip} is {label}"

    def _explicitly_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        # An allowed IPv4 network also allows its IPv4-mapped IPv6 spelling: it is the same host.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self._allowed
        )


class AddressRefusedError(OSError):
    """A connection target was refused by the network policy.

    An ``OSError`` because aiohttp's connector treats resolver ``OSError``s as resolution failures
    and keeps the original as ``os_error``, which is how ``fetch`` recognises a refusal.
    """


class PolicyResolver(AbstractResolver):
    """Resolves through ``inner`` and keeps only the addresses the policy allows.

    The connector connects to exactly the addresses returned here, so there is no window between
    check and connect for a rebinding DNS answer, and every hop of a redirect chain is covered.
    """

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        first_refusal: str | None = None
        for entry in resolved:
            try:
                reason = self._policy.refusal_reason(ipaddress.ip_address(entry["host"]))
            except ValueError:
                reason = f"{entry['host']!r} is not an IP address"
            if reason is None:
                kept.append(entry)
            elif first_refusal is None:
                first_refusal = reason
        if kept:
            return kept
        if first_refusal is None:
            raise OSError(f"{host} has no addresses")
        raise AddressRefusedError(f"refused: {host} resolves only to refused addresses ({first_refusal})")

    async def close(self) -> None:
        await self._inner.close()


class FetchResult(msgspec.Struct, frozen=True):
    """The outcome of one ``external_request``."""

    status: int | None  # None on network error, timeout, refusal, too large
    body: Any  # decoded JSON, or the text when not JSON, or None
    error: str | None  # readable reason; never contains credentials


class _FetchError(Exception):
    """A failure whose message is already safe to show and log."""


_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# aiohttp derives these from the url and body; a template-supplied value could desynchronise the
# connection or send the request to another virtual host than the checked url names.
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection", "host"})
# Credentials meant for one origin must not follow a redirect to another.
_CREDENTIAL_HEADERS: Final = ("Authorization", "Proxy-Authorization", "Cookie")
_SECRET_HEADER_HINTS: Final = ("auth", "token", "key", "secret", "password", "cookie", "session")
_CHUNK_BYTES: Final = 64 * 1024


def _format_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _format_seconds(s: float) -> str:
    return f"{s:g} s"


def _redact(url: URL) -> str:
    """The url for errors and logs: no user info, query or fragment, which may carry secrets."""
    try:
        return str(url.with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return "<invalid url>"


def _scrub(text: str, secrets: Iterable[str]) -> str:
    # Only applied to texts that come from exceptions; the messages built here never hold secrets.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _redact_text(url: str) -> str:
    try:
        return _redact(URL(url))
    except (ValueError, TypeError):
        return "<invalid url>"


def _parse_ip_literal(host: str) -> IPAddress | None:
    """The address of a host written as an IP literal, None for a name.

    aiohttp connects to anything that looks numeric (digits and dots, or a colon) without calling
    the resolver, so such a host must be checked here; one it cannot parse is refused outright.
    """
    bare = host.rstrip(".")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        if ":" in bare or bare.replace(".", "").isdigit():
            raise _FetchError(f"refused: {host!r} is not a canonical IP address") from None
        return None


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


def _same_origin(a: URL, b: URL) -> bool:
    return (a.scheme, a.raw_host, a.port) == (b.scheme, b.raw_host, b.port)


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
    """Runs ``external_request`` calls through one ``aiohttp.ClientSession`` guarded by a policy."""

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
        self._policy = policy
        self._max_body_bytes = max_body_bytes
        self._max_redirects = max_redirects
        self._connect_timeout_s = connect_timeout_s
        self._user_agent = user_agent
        self._inner_resolver = resolver
        self._resolver: PolicyResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        # The resolver is built here, not in __init__: aiohttp's resolvers bind the running loop.
        inner = self._inner_resolver if self._inner_resolver is not None else aiohttp.DefaultResolver()
        self._resolver = PolicyResolver(self._policy, inner)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=self._resolver),
            # Chats of different customers share this session: no cookies may carry over.
            cookie_jar=aiohttp.DummyCookieJar(),
            # A proxy from the environment would connect on our behalf, bypassing the resolver.
            trust_env=False,
            headers={"User-Agent": self._user_agent},
            timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout_s),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if session is not None:
            await session.close()
        if resolver is not None:
            # The connector only closes resolvers it created itself.
            await resolver.close()

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
        # A span of our own: the url's path and query, and the headers, may carry credentials.
        with telemetry.span(
            "omnibot.dialog",
            f"external_request {method.upper()[:10]}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method.upper()[:10], "server.address": _host_of(url)},
        ) as span:
            result = await self._fetch_logged(
                method=method,
                url=url,
                headers=headers,
                body=body,
                basic_auth=basic_auth,
                timeout_s=timeout_s,
                delay_s=delay_s,
                sleep=sleep,
            )
            outcome = external_result(result)
            metrics.record_external_request(outcome)
            telemetry.set_attributes(span, **{"omnibot.result": outcome})
            if result.status is not None:
                telemetry.set_attributes(span, **{"http.response.status_code": result.status})
            if outcome != "ok":
                telemetry.set_error(span, outcome)
        return result

    async def _fetch_logged(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any | None,
        basic_auth: str | None,
        timeout_s: float,
        delay_s: float,
        sleep: Callable[[float], Awaitable[None]],
    ) -> FetchResult:
        secrets = self._secrets(headers, basic_auth, url)
        started = time.monotonic()
        try:
            result = await self._fetch(
                method=method,
                url=url,
                headers=headers,
                body=body,
                basic_auth=basic_auth,
                timeout_s=timeout_s,
                delay_s=delay_s,
                sleep=sleep,
                secrets=secrets,
            )
        except _FetchError as exc:
            result = FetchResult(status=None, body=None, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - an agent's request must never crash the dialog turn
            message = _scrub(f"unexpected error: {type(exc).__name__}: {exc}", secrets)
            log.warning("external_request failed unexpectedly: %s", message)
            result = FetchResult(status=None, body=None, error=message)
        elapsed_ms = (time.monotonic() - started) * 1000
        if result.error is None:
            log.info(
                "external_request %s -> %s in %.0f ms", self._describe(method, url), result.status, elapsed_ms
            )
        else:
            log.warning(
                "external_request %s failed in %.0f ms: %s",
                self._describe(method, url),
                elapsed_ms,
                result.error,
            )
        return result

    @staticmethod
    def _describe(method: str, url: str) -> str:
        try:
            return f"{method.upper()} {_redact(URL(url))}"
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

    async def _fetch(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any | None,
        basic_auth: str | None,
        timeout_s: float,
        delay_s: float,
        sleep: Callable[[float], Awaitable[None]],
        secrets: list[str],
    ) -> FetchResult:
        session = self._session
        if session is None:
            raise _FetchError("external requests are not available (fetcher not started)")
        verb = method.strip().upper()
        if verb not in _METHODS:
            raise _FetchError(f"unsupported method {method!r}")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise _FetchError(f"invalid timeout {timeout_s!r}: must be a positive number of seconds")
        target = self._parse_url(url)
        request_headers = self._build_headers(headers)
        if target.user is not None:
            # Credentials in the url would reach aiohttp's own auth handling and leak into errors;
            # they become the Basic header like `auth.basic`, which takes precedence.
            if basic_auth is None:
                basic_auth = f"{target.user}:{target.password or ''}"
            target = target.with_user(None)
        if basic_auth is not None:
            request_headers["Authorization"] = _basic_authorization(basic_auth)
        data: bytes | None = None
        if body is not None:
            try:
                data = msgspec.json.encode(body)
            except (TypeError, ValueError, OverflowError) as exc:
                raise _FetchError(f"body is not JSON-serialisable: {type(exc).__name__}") from None
            request_headers.setdefault("Content-Type", "application/json")

        delay = min(max(delay_s, 0.0), MAX_DELAY_S) if math.isfinite(delay_s) else 0.0
        if delay > 0:
            await sleep(delay)

        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                return await self._follow(session, verb, target, request_headers, data)
        except TimeoutError as exc:
            if deadline.expired():
                raise _FetchError(f"timeout after {_format_seconds(timeout_s)}") from None
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise _FetchError(
                    f"connect timeout after {_format_seconds(self._connect_timeout_s)}"
                ) from None
            raise _FetchError(_scrub(f"timeout: {exc}", secrets)) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefusedError):
                raise _FetchError(str(exc.os_error)) from None
            if isinstance(exc, aiohttp.ClientConnectorDNSError):
                host = exc.host
                raise _FetchError(f"cannot resolve {host}: {exc.os_error.strerror or exc.os_error}") from None
            raise _FetchError(_scrub(f"cannot connect: {exc}", secrets)) from None
        except aiohttp.ClientError as exc:
            raise _FetchError(_scrub(f"request failed: {type(exc).__name__}: {exc}", secrets)) from None

    def _parse_url(self, url: str) -> URL:
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise _FetchError("invalid url") from None
        self._check_target(parsed)
        return parsed

    def _check_target(self, url: URL) -> None:
        """Scheme and literal-address checks; names are checked by the resolver at connect time."""
        if url.scheme not in ("http", "https"):
            raise _FetchError(f"unsupported url scheme {url.scheme!r}: only http and https are allowed")
        host = url.raw_host
        if not host:
            raise _FetchError("invalid url: no host")
        ip = _parse_ip_literal(host)
        if ip is not None:
            reason = self._policy.refusal_reason(ip)
            if reason is not None:
                raise _FetchError(f"refused: {reason}")

    @staticmethod
    def _build_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
        built: CIMultiDict[str] = CIMultiDict()
        for raw_name, raw_value in headers.items():
            name, value = str(raw_name), str(raw_value)
            if not _TOKEN.fullmatch(name):
                raise _FetchError(f"invalid header name {name[:64]!r}")
            if any(ch in value for ch in "\r\n\0"):
                # The name only: the value may be a credential.
                raise _FetchError(f"invalid value for header {name}: contains a line break or NUL")
            if name.lower() in _FRAMING_HEADERS:
                continue
            built[name] = value
        return built

    async def _follow(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        data: bytes | None,
        read: Callable[[aiohttp.ClientResponse], Awaitable[FetchResult]] | None = None,
    ) -> FetchResult:
        """Send the request, following redirects by hand so that every hop passes ``_check_target``."""
        for _ in range(self._max_redirects + 1):
            async with session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status not in _REDIRECT_STATUSES or not location:
                    if read is not None:
                        return await read(resp)
                    return FetchResult(status=resp.status, body=await self._read_body(resp), error=None)
            try:
                next_url = url.join(URL(location)).with_fragment(None)
            except (ValueError, TypeError):
                raise _FetchError(f"redirect to an invalid url from {_redact(url)}") from None
            self._check_target(next_url)
            if resp.status in (301, 302, 303) and method != "HEAD":
                method, data = "GET", None
                headers.popall("Content-Type", None)
            if not _same_origin(url, next_url):
                headers = headers.copy()
                for name in _CREDENTIAL_HEADERS:
                    headers.popall(name, None)
            log.debug("external_request redirect %s -> %s", _redact(url), _redact(next_url))
            url = next_url
        raise _FetchError(f"too many redirects (more than {self._max_redirects})")

    async def download(self, url: str, max_bytes: int, *, timeout_s: float = 120.0) -> tuple[bytes, str]:
        """Fetch a file for egress to attach: (content, content type), under the same policy.

        Raises PermanentError when the file cannot be had (refused, missing, over `max_bytes`) and
        TransientError when trying again may help (timeouts, 5xx, connection failures).
        """
        session = self._session
        if session is None:
            raise TransientError("file downloads are not available (fetcher not started)")

        async def read(resp: aiohttp.ClientResponse) -> FetchResult:
            if resp.status >= 400:
                return FetchResult(
                    status=resp.status, body=None, error=f"the file url answered {resp.status}"
                )
            declared = resp.content_length
            if declared is not None and declared > max_bytes:
                raise _FetchError(f"file over {_format_size(max_bytes)} (Omnidesk's limit)")
            buffer = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
                buffer += chunk
                if len(buffer) > max_bytes:
                    raise _FetchError(f"file over {_format_size(max_bytes)} (Omnidesk's limit)")
            return FetchResult(status=resp.status, body=(bytes(buffer), resp.content_type), error=None)

        try:
            target = self._parse_url(url)
            async with asyncio.timeout(timeout_s):
                result = await self._follow(session, "GET", target, CIMultiDict(), None, read)
        except _FetchError as exc:
            raise PermanentError(f"cannot attach {_redact_text(url)}: {exc}") from None
        except TimeoutError:
            raise TransientError(
                f"downloading {_redact_text(url)} timed out after {timeout_s:.0f} s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefusedError):
                raise PermanentError(f"cannot attach {_redact_text(url)}: {exc.os_error}") from None
            raise TransientError(f"cannot connect to download {_redact_text(url)}") from None
        except aiohttp.ClientError as exc:
            raise TransientError(f"downloading {_redact_text(url)} failed: {type(exc).__name__}") from None
        if result.status is not None and result.status >= 500:
            raise TransientError(f"downloading {_redact_text(url)}: {result.error}")
        if result.error is not None:
            raise PermanentError(f"cannot attach {_redact_text(url)}: {result.error}")
        content, content_type = result.body
        return content, content_type

    async def _read_body(self, resp: aiohttp.ClientResponse) -> Any:
        too_large = _FetchError(f"response over {_format_size(self._max_body_bytes)}")
        # Content-Length is only a shortcut for honest servers; the streamed count below decides.
        declared = resp.content_length
        if (
            declared is not None
            and declared > self._max_body_bytes
            and "Content-Encoding" not in resp.headers
        ):
            raise too_large
        buffer = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            buffer += chunk
            if len(buffer) > self._max_body_bytes:
                raise too_large
        return _decode_body(bytes(buffer), resp.charset)
