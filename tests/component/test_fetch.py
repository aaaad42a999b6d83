"""ExternalFetcher against a real aiohttp server on 127.0.0.1: policy, limits, redirects, results."""

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from yarl import URL

from omnibot.dialog.fetch import ExternalFetcher, FetchResult
from omnibot.shared.net.policy import NetworkPolicy, PolicyResolver

pytestmark = pytest.mark.timeout(10)

LOOPBACK = "127.0.0.0/8"


@dataclass
class Upstream:
    server: TestServer
    requests: list[web.Request] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def build_app(upstream_ref: list[Upstream]) -> web.Application:
    def upstream() -> Upstream:
        return upstream_ref[0]

    async def echo(request: web.Request) -> web.Response:
        upstream().requests.append(request)
        raw = await request.read()
        auth = request.headers.get("Authorization")
        login = password = None
        if auth is not None and auth.startswith("Basic "):
            login, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "content_type": request.headers.get("Content-Type"),
                "user_agent": request.headers.get("User-Agent"),
                "trace": request.headers.get("X-Trace"),
                "authorization": auth,
                "login": login,
                "password": password,
                "body": (await request.json()) if raw else None,
            }
        )

    async def text(request: web.Request) -> web.Response:
        upstream().requests.append(request)
        return web.Response(text="hello <b>world</b>", content_type="text/html")

    async def fail(request: web.Request) -> web.Response:
        upstream().requests.append(request)
        return web.json_response({"error": "boom"}, status=500)

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def slow(request: web.Request) -> web.Response:
        upstream().requests.append(request)
        await upstream().release.wait()
        return web.json_response({"late": True})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["size"]), content_type="application/octet-stream")

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        # No Content-Length: the size is only known by counting what arrives.
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        remaining = int(request.query["size"])
        while remaining > 0:
            part = min(remaining, 16 * 1024)
            await response.write(b"y" * part)
            remaining -= part
        await response.write_eof()
        return response

    async def redirect_chain(request: web.Request) -> web.Response:
        upstream().requests.append(request)
        n = int(request.match_info["n"])
        if n == 0:
            return web.json_response({"done": True})
        raise web.HTTPFound(f"/redirect/{n - 1}")

    async def redirect_to(request: web.Request) -> web.Response:
        upstream().requests.append(request)
        return web.Response(
            status=int(request.query.get("status", "302")), headers={"Location": request.query["url"]}
        )

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/text", text)
    app.router.add_get("/fail", fail)
    app.router.add_get("/empty", empty)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/big-chunked", big_chunked)
    app.router.add_get("/redirect/{n}", redirect_chain)
    app.router.add_route("*", "/redirect-to", redirect_to)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    ref: list[Upstream] = []
    server = TestServer(build_app(ref), host="127.0.0.1")
    ref.append(Upstream(server))
    await server.start_server()
    try:
        yield ref[0]
    finally:
        # Lets a handler parked on /slow finish so the server closes without waiting.
        ref[0].release.set()
        await server.close()


class StaticResolver(AbstractResolver):
    """A DNS stand-in: fixed answers per name, recorded lookups."""

    def __init__(self, answers: Mapping[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.answers:
            raise OSError(f"unknown host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def make_fetcher() -> AsyncIterator[Any]:
    started: list[ExternalFetcher] = []

    async def make(setting: str = LOOPBACK, **kwargs: Any) -> ExternalFetcher:
        fetcher = ExternalFetcher(NetworkPolicy.from_setting(setting), **kwargs)
        await fetcher.start()
        started.append(fetcher)
        return fetcher

    yield make
    for fetcher in started:
        await fetcher.close()


async def get(fetcher: ExternalFetcher, url: str, **kwargs: Any) -> FetchResult:
    params: dict[str, Any] = {
        "method": "GET",
        "headers": {},
        "body": None,
        "basic_auth": None,
        "timeout_s": 5.0,
    }
    params.update(kwargs)
    return await fetcher.fetch(url=url, **params)


# --- the network policy at the connection --------------------------------------------------------


async def test_loopback_is_refused_by_default(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher("")

    result = await get(fetcher, upstream.url("/echo"))

    assert result == FetchResult(status=None, body=None, error="refused: 127.0.0.1 is a loopback address")
    assert upstream.requests == []


async def test_loopback_is_reachable_when_allowed(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher(LOOPBACK)

    result = await get(fetcher, upstream.url("/echo"))

    assert result.status == 200
    assert result.error is None
    assert len(upstream.requests) == 1


async def test_hostname_resolving_to_loopback_is_refused(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher("")

    result = await get(fetcher, upstream.url("/echo", host="localhost"))

    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("refused: localhost resolves only to refused addresses")
    assert "loopback" in result.error
    assert upstream.requests == []


async def test_hostname_resolving_to_allowed_loopback_connects(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher("127.0.0.1/32")

    result = await get(fetcher, upstream.url("/echo", host="localhost"))

    assert result.status == 200


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:127.0.0.1]",  # IPv4-mapped literal
        "[::1]",
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f.1",  # getaddrinfo turns this into 127.0.0.1; the resolver sees the result
        "127.1",
        "0.0.0.0",
    ],
)
async def test_other_spellings_of_loopback_are_refused(
    upstream: Upstream, make_fetcher: Any, host: str
) -> None:
    fetcher = await make_fetcher("")

    result = await get(fetcher, upstream.url("/echo", host=host))

    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("refused:")
    assert upstream.requests == []


async def test_hostname_resolving_to_private_address_is_refused(
    upstream: Upstream, make_fetcher: Any
) -> None:
    dns = StaticResolver({"intranet.test": ["10.0.0.5"]})
    fetcher = await make_fetcher("", resolver=dns)

    result = await get(fetcher, upstream.url("/echo", host="intranet.test"))

    assert result.error == (
        "refused: intranet.test resolves only to refused addresses (10.0.0.5 is a private address)"
    )
    assert dns.lookups == ["intranet.test"]


async def test_resolver_passes_on_only_the_checked_addresses() -> None:
    inner = StaticResolver({"mixed.test": ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1"]})
    resolver = PolicyResolver(NetworkPolicy.from_setting(LOOPBACK), inner)

    resolved = await resolver.resolve("mixed.test", 443, socket.AF_UNSPEC)

    assert [entry["host"] for entry in resolved] == ["127.0.0.1"]
    assert resolved[0]["port"] == 443


@pytest.fixture
async def decoy(upstream: Upstream) -> AsyncIterator[list[str]]:
    """A second server on 127.0.0.2, same port: where a connection to an unchecked address would land."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"decoy": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.2", port=upstream.port)
    await server.start_server()
    try:
        yield hits
    finally:
        await server.close()


class RebindingResolver(StaticResolver):
    """Answers the checked address once, then an internal one: a DNS rebinding attack."""

    def __init__(self, name: str, first: str, then: str) -> None:
        super().__init__({name: [first]})
        self.name, self.then = name, then

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = await super().resolve(host, port, family)
        self.answers = {self.name: [self.then]}
        return answer


async def test_connection_goes_only_to_the_checked_addresses_of_a_mixed_answer(
    upstream: Upstream, decoy: list[str], make_fetcher: Any
) -> None:
    # The refused address comes first: were it passed on, the connector would connect to it.
    dns = StaticResolver({"mixed.test": ["127.0.0.2", "127.0.0.1"]})
    fetcher = await make_fetcher("127.0.0.1/32", resolver=dns)

    result = await get(fetcher, upstream.url("/echo", host="mixed.test"))

    assert result.status == 200
    assert result.body["path"] == "/echo"
    assert decoy == []


async def test_a_rebinding_name_is_connected_to_the_address_that_was_checked(
    upstream: Upstream, decoy: list[str], make_fetcher: Any
) -> None:
    dns = RebindingResolver("rebind.test", first="127.0.0.1", then="127.0.0.2")
    fetcher = await make_fetcher("127.0.0.1/32", resolver=dns)

    result = await get(fetcher, upstream.url("/echo", host="rebind.test"))

    assert result.status == 200
    assert decoy == []
    assert dns.lookups == ["rebind.test"]


async def test_unresolvable_host_is_an_error_result(make_fetcher: Any) -> None:
    fetcher = await make_fetcher("", resolver=StaticResolver({}))

    result = await get(fetcher, "http://nowhere.test/")

    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("cannot resolve nowhere.test")


# --- requests and responses -----------------------------------------------------------------------


async def test_json_get_round_trip(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher()

    result = await get(fetcher, upstream.url("/echo?order=42"), headers={"X-Trace": "t-1"})

    assert result.status == 200
    assert result.error is None
    assert result.body["method"] == "GET"
    assert result.body["query"] == {"order": "42"}
    assert result.body["trace"] == "t-1"
    assert result.body["user_agent"] == "omnibot/0.1"
    assert result.body["authorization"] is None
    assert result.body["body"] is None


async def test_json_post_with_basic_auth_whose_password_has_colons(
    upstream: Upstream, make_fetcher: Any
) -> None:
    fetcher = await make_fetcher()

    result = await fetcher.fetch(
        method="post",
        url=upstream.url("/echo"),
        headers={},
        body={"delete_labels": [123], "note": "заказ"},
        basic_auth="bot@example.com:pa:ss:word",
        timeout_s=5,
    )

    assert result.status == 200
    assert result.body["method"] == "POST"
    assert result.body["content_type"] == "application/json"
    assert result.body["body"] == {"delete_labels": [123], "note": "заказ"}
    assert result.body["login"] == "bot@example.com"
    assert result.body["password"] == "pa:ss:word"


async def test_non_json_body_is_returned_as_text(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher()

    result = await get(fetcher, upstream.url("/text"))

    assert result == FetchResult(status=200, body="hello <b>world</b>", error=None)


async def test_empty_body_is_none(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher()

    result = await get(fetcher, upstream.url("/empty"))

    assert result == FetchResult(status=204, body=None, error=None)


async def test_server_error_status_is_returned_not_swallowed(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher()

    result = await get(fetcher, upstream.url("/fail"))

    assert result == FetchResult(status=500, body={"error": "boom"}, error=None)


async def test_timeout_gives_no_status_and_says_timeout(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher()

    result = await get(fetcher, upstream.url("/slow"), timeout_s=0.2)

    assert result == FetchResult(status=None, body=None, error="timeout after 0.2 s")


async def test_response_over_the_limit_with_content_length_is_cut_off(
    upstream: Upstream, make_fetcher: Any
) -> None:
    fetcher = await make_fetcher(max_body_bytes=1024)

    over = await get(fetcher, upstream.url("/big?size=1025"))
    at_limit = await get(fetcher, upstream.url("/big?size=1024"))

    assert over == FetchResult(status=None, body=None, error="response over 1 KiB")
    assert at_limit.status == 200
    assert at_limit.body == "x" * 1024


async def test_streamed_response_over_the_default_limit_is_cut_off(
    upstream: Upstream, make_fetcher: Any
) -> None:
    fetcher = await make_fetcher()

    result = await get(fetcher, upstream.url(f"/big-chunked?size={(1 << 20) + 1}"))

    assert result == FetchResult(status=None, body=None, error="response over 1 MiB")


async def test_connection_refused_is_an_error_result(make_fetcher: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fetcher = await make_fetcher()

    result = await get(fetcher, f"http://127.0.0.1:{port}/")

    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("cannot connect")


# --- redirects ------------------------------------------------------------------------------------


async def test_redirects_are_followed_up_to_the_limit(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher(max_redirects=3)

    within = await get(fetcher, upstream.url("/redirect/3"))
    beyond = await get(fetcher, upstream.url("/redirect/4"))

    assert within == FetchResult(status=200, body={"done": True}, error=None)
    assert beyond == FetchResult(status=None, body=None, error="too many redirects (more than 3)")


@pytest.mark.parametrize(
    ("target", "error"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "refused: 169.254.169.254 is a link-local address (cloud metadata service)",
        ),
        ("http://10.0.0.5/admin", "refused: 10.0.0.5 is a private address"),
        ("http://[::1]:1/", "refused: ::1 is a loopback address"),
        ("file:///etc/passwd", "unsupported url scheme 'file': only http and https are allowed"),
    ],
)
async def test_redirect_to_a_refused_target_is_refused(
    upstream: Upstream, make_fetcher: Any, target: str, error: str
) -> None:
    fetcher = await make_fetcher("127.0.0.1/32")

    result = await get(fetcher, redirect_url(upstream, target))

    assert result == FetchResult(status=None, body=None, error=error)


async def test_redirect_to_a_name_resolving_to_a_refused_address_is_refused(
    upstream: Upstream, make_fetcher: Any
) -> None:
    dns = StaticResolver({"rebind.test": ["127.0.0.2", "192.168.0.1"]})
    fetcher = await make_fetcher("127.0.0.1/32", resolver=dns)
    target = f"http://rebind.test:{upstream.port}/echo"

    result = await get(fetcher, redirect_url(upstream, target))

    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("refused: rebind.test resolves only to refused addresses (127.0.0.2 is")
    assert [r.path for r in upstream.requests] == ["/redirect-to"]


def redirect_url(upstream: Upstream, target: str, status: int = 302) -> str:
    return str(URL(upstream.url("/redirect-to")).with_query(url=target, status=str(status)))


@pytest.mark.parametrize("status", [307, 308])
async def test_307_and_308_keep_method_and_body(upstream: Upstream, make_fetcher: Any, status: int) -> None:
    fetcher = await make_fetcher()

    result = await fetcher.fetch(
        method="POST",
        url=redirect_url(upstream, "/echo", status),
        headers={},
        body={"k": "v"},
        basic_auth=None,
        timeout_s=5,
    )

    assert result.status == 200
    assert result.body["method"] == "POST"
    assert result.body["body"] == {"k": "v"}


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_301_302_303_become_get_without_body(
    upstream: Upstream, make_fetcher: Any, status: int
) -> None:
    fetcher = await make_fetcher()

    result = await fetcher.fetch(
        method="POST",
        url=redirect_url(upstream, "/echo", status),
        headers={},
        body={"k": "v"},
        basic_auth=None,
        timeout_s=5,
    )

    assert result.status == 200
    assert result.body["method"] == "GET"
    assert result.body["body"] is None
    assert result.body["content_type"] is None


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    upstream: Upstream, make_fetcher: Any
) -> None:
    dns = StaticResolver({"other.test": ["127.0.0.1"]})
    fetcher = await make_fetcher(resolver=dns)
    same = upstream.url("/echo")
    other = upstream.url("/echo", host="other.test")

    kept = await get(fetcher, redirect_url(upstream, same), basic_auth="u:p")
    dropped = await get(fetcher, redirect_url(upstream, other), basic_auth="u:p")

    assert kept.body["login"] == "u"
    assert dropped.status == 200
    assert dropped.body["authorization"] is None


# --- delay, bad input, secrets --------------------------------------------------------------------


@pytest.mark.parametrize(("delay_s", "expected"), [(2.5, [2.5]), (600, [60.0]), (0, []), (-3, [])])
async def test_delay_is_waited_through_the_injected_sleep_before_the_call(
    upstream: Upstream, make_fetcher: Any, delay_s: float, expected: list[float]
) -> None:
    fetcher = await make_fetcher()
    slept: list[float] = []
    requests_seen_while_sleeping: list[int] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        requests_seen_while_sleeping.append(len(upstream.requests))

    result = await get(fetcher, upstream.url("/echo"), delay_s=delay_s, sleep=fake_sleep)

    assert result.status == 200
    assert slept == expected
    assert all(seen == 0 for seen in requests_seen_while_sleeping)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"url": "ftp://example.com/x"}, "unsupported url scheme 'ftp': only http and https are allowed"),
        ({"url": "http:///nohost"}, "invalid url: no host"),
        ({"method": "TRACE"}, "unsupported method 'TRACE'"),
        ({"timeout_s": 0}, "invalid timeout 0: must be a positive number of seconds"),
        ({"body": {"x": object()}}, "body is not JSON-serialisable: TypeError"),
        (
            {"headers": {"X-Evil": "a\r\nHost: b"}},
            "invalid value for header X-Evil: contains a line break or NUL",
        ),
        ({"headers": {"Bad Name": "v"}}, "invalid header name 'Bad Name'"),
    ],
)
async def test_bad_input_becomes_an_error_result(
    upstream: Upstream, make_fetcher: Any, kwargs: dict[str, Any], error: str
) -> None:
    fetcher = await make_fetcher()
    params: dict[str, Any] = {"url": upstream.url("/echo")} | kwargs

    result = await get(fetcher, **params)

    assert result == FetchResult(status=None, body=None, error=error)
    assert upstream.requests == []


async def test_fetch_before_start_is_an_error_result() -> None:
    fetcher = ExternalFetcher(NetworkPolicy.from_setting(""))

    result = await get(fetcher, "https://example.com/")

    assert result.status is None
    assert result.error == "external requests are not available (fetcher not started)"


async def test_credentials_never_reach_errors_or_logs(
    upstream: Upstream, make_fetcher: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="omnibot")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    strict = await make_fetcher("")
    loose = await make_fetcher()
    secret_headers = {"Authorization": "Bearer tok-SECRET-1", "X-Api-Key": "key-SECRET-2"}

    results = [
        await get(strict, upstream.url("/echo"), basic_auth="bot:pw-SECRET-0", headers=secret_headers),
        await get(loose, f"http://127.0.0.1:{closed_port}/", basic_auth="bot:pw-SECRET-0"),
        await get(loose, "http://bot:pw-SECRET-0@127.0.0.1:1/?token=tok-SECRET-3"),
        await get(loose, upstream.url("/slow?token=tok-SECRET-3"), timeout_s=0.05, headers=secret_headers),
    ]

    assert all(r.status is None and r.error for r in results)
    for text in [r.error or "" for r in results] + [caplog.text]:
        assert "SECRET" not in text
    assert "Ym90OnB3LVNFQ1JFVC0w" not in caplog.text  # base64 of the Basic credentials


async def test_url_credentials_are_sent_as_basic_auth(upstream: Upstream, make_fetcher: Any) -> None:
    fetcher = await make_fetcher()

    result = await get(fetcher, f"http://bot:pa:ss@127.0.0.1:{upstream.port}/echo")

    assert result.status == 200
    assert (result.body["login"], result.body["password"]) == ("bot", "pa:ss")
