"""The safe HTTP client: requests to urls that agents choose, without opening the internal network.

One ``aiohttp.ClientSession`` whose resolver applies the network policy to every connection, with
no cookies, no proxy from the environment and no redirect followed blindly: each hop is checked
again (scheme, literal address), and the caller reads the final response within its own limits.
A redirect to another origin is followed without any header the caller gave (an agent's
`X-Api-Key`, its Basic credentials, anything rendered from a variable) and without a body: a
307/308 that would re-send the body to another origin is not followed, its answer is the result.
Used by dialog's external requests and egress's file downloads.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict
from yarl import URL

from omnibot.shared.masking import mask_url
from omnibot.shared.net.policy import IPAddress, NetworkPolicy, PolicyResolver

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK_BYTES: Final = 64 * 1024
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# aiohttp derives these from the url and body; a template-supplied value could desynchronise the
# connection or send the request to another virtual host than the checked url names.
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection", "host"})


class RequestFailed(Exception):
    """A request that cannot be made or completed; the message is already safe to show and log."""


def format_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def redact(url: URL) -> str:
    """The url for errors and logs: no user info, query or fragment, and no secret-looking path
    segment (a Telegram-style token), which may all carry secrets (`omnibot.shared.masking`)."""
    return mask_url(url)


def redact_text(url: str) -> str:
    try:
        return redact(URL(url))
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
        if ":" in bare or bare.replace(".", "").isdigit() or _inet_aton_accepts(bare):
            raise RequestFailed(f"refused: {host!r} is not a canonical IP address") from None
        return None


def _inet_aton_accepts(host: str) -> bool:
    # getaddrinfo reads hex and octal parts ("0x7f.1" is 127.0.0.1) while a DNS resolver (aiodns)
    # finds no such name: which one aiohttp uses must not decide whether such a host is refused.
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _same_origin(a: URL, b: URL) -> bool:
    return (a.scheme, a.raw_host, a.port) == (b.scheme, b.raw_host, b.port)


def build_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """Headers given by an agent, checked: valid names, no line breaks, no framing headers."""
    built: CIMultiDict[str] = CIMultiDict()
    for raw_name, raw_value in headers.items():
        name, value = str(raw_name), str(raw_value)
        if not _TOKEN.fullmatch(name):
            raise RequestFailed(f"invalid header name {name[:64]!r}")
        if any(ch in value for ch in "\r\n\0"):
            # The name only: the value may be a credential.
            raise RequestFailed(f"invalid value for header {name}: contains a line break or NUL")
        if name.lower() in _FRAMING_HEADERS:
            continue
        built[name] = value
    return built


class SafeHttpClient:
    """One ``aiohttp.ClientSession`` guarded by a network policy; redirects are followed by hand."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        max_redirects: int = 3,
        connect_timeout_s: float = 5.0,
        user_agent: str = "omnibot/0.1",
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._policy = policy
        self._max_redirects = max_redirects
        self.connect_timeout_s = connect_timeout_s
        self._user_agent = user_agent
        self._inner_resolver = resolver
        self._resolver: PolicyResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def started(self) -> bool:
        return self._session is not None

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
            timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout_s),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if session is not None:
            await session.close()
        if resolver is not None:
            # The connector only closes resolvers it created itself.
            await resolver.close()

    def parse_url(self, url: str) -> URL:
        """The url, checked (scheme, literal address); raises RequestFailed."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise RequestFailed("invalid url") from None
        self._check_target(parsed)
        return parsed

    def _check_target(self, url: URL) -> None:
        """Scheme and literal-address checks; names are checked by the resolver at connect time."""
        if url.scheme not in ("http", "https"):
            raise RequestFailed(f"unsupported url scheme {url.scheme!r}: only http and https are allowed")
        host = url.raw_host
        if not host:
            raise RequestFailed("invalid url: no host")
        ip = _parse_ip_literal(host)
        if ip is not None:
            reason = self._policy.refusal_reason(ip)
            if reason is not None:
                raise RequestFailed(f"refused: {reason}")

    async def request(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        data: bytes | None,
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
    ) -> T:
        """Send the request and `read` the final response, following redirects by hand so that
        every hop passes the target checks. aiohttp's errors pass through for the caller to word."""
        session = self._session
        if session is None:
            raise RequestFailed("the HTTP client is not started")
        for _ in range(self._max_redirects + 1):
            async with session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status not in _REDIRECT_STATUSES or not location:
                    return await read(resp)
                try:
                    next_url = url.join(URL(location)).with_fragment(None)
                except (ValueError, TypeError):
                    raise RequestFailed(f"redirect to an invalid url from {redact(url)}") from None
                keeps_body = resp.status in (307, 308) or method == "HEAD"
                if not _same_origin(url, next_url) and keeps_body and data is not None:
                    # A 307/308 asks for the body again, which is the caller's and may carry
                    # credentials: not to another origin. This answer is the result.
                    log.info("redirect to another origin not followed: it would re-send the body")
                    return await read(resp)
            self._check_target(next_url)
            if not keeps_body:
                method, data = "GET", None
                headers.popall("Content-Type", None)
            if not _same_origin(url, next_url):
                # Every header the caller gave was meant for the first origin: an agent's
                # X-Api-Key, a token rendered from a variable, its Basic credentials.
                headers = CIMultiDict()
            log.debug("redirect %s -> %s", redact(url), redact(next_url))
            url = next_url
        raise RequestFailed(f"too many redirects (more than {self._max_redirects})")
