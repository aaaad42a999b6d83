"""Secrets and cross-origin redirects (issue 10, item 4), with two real servers on 127.0.0.1.

The first server (the agent's API) redirects to the second (another origin: another port). The
probe found custom headers (`X-Api-Key`, `X-Auth-Token`, anything rendered from a variable) and a
307's re-posted JSON body carrying the channel's credentials to the other origin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from omnibot.dialog.fetch import ExternalFetcher
from omnibot.shared.net.policy import NetworkPolicy

pytestmark = pytest.mark.timeout(10)

TOKEN = "bot@example.com:k-0123456789abcdef0123456789abcdef"


@pytest.fixture
async def other_origin() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(
            {"method": request.method, "headers": dict(request.headers), "body": await request.text()}
        )
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/landing", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/landing")), seen
    await server.close()


@pytest.fixture
async def first_origin(other_origin: tuple[str, list[dict[str, Any]]]) -> AsyncIterator[str]:
    async def redirect(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": other_origin[0]})

    app = web.Application()
    app.router.add_route("*", "/start", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/start"))
    await server.close()


@pytest.fixture
async def fetcher() -> AsyncIterator[ExternalFetcher]:
    fetcher = ExternalFetcher(NetworkPolicy.from_setting("127.0.0.0/8"))
    await fetcher.start()
    yield fetcher
    await fetcher.close()


AGENT_HEADERS = {"X-Api-Key": TOKEN, "X-Auth-Token": TOKEN, "X-Anything": f"t={TOKEN}"}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_no_agent_header_and_no_body_reach_another_origin(
    fetcher: ExternalFetcher,
    first_origin: str,
    other_origin: tuple[str, list[dict[str, Any]]],
    status: int,
) -> None:
    result = await fetcher.fetch(
        method="POST",
        url=f"{first_origin}?status={status}",
        headers=AGENT_HEADERS,
        body={"token": TOKEN},
        basic_auth=TOKEN,
        timeout_s=5,
    )
    _, seen = other_origin
    for request in seen:
        assert TOKEN.split(":")[1] not in repr(request)
        assert not {"X-Api-Key", "X-Auth-Token", "X-Anything", "Authorization"} & set(request["headers"])
        assert request["body"] == ""
    if status in (307, 308):
        # Following would re-send the body: not to another origin; the redirect is the answer.
        assert seen == []
        assert result.status == status
    else:
        assert [r["method"] for r in seen] == ["GET"]
        assert result.status == 200


async def test_a_get_redirected_to_another_origin_is_followed_bare(
    fetcher: ExternalFetcher, first_origin: str, other_origin: tuple[str, list[dict[str, Any]]]
) -> None:
    result = await fetcher.fetch(
        method="GET",
        url=f"{first_origin}?status=307",
        headers=AGENT_HEADERS,
        body=None,
        basic_auth=None,
        timeout_s=5,
    )
    _, seen = other_origin
    assert result.status == 200
    assert len(seen) == 1
    assert not {"X-Api-Key", "X-Auth-Token", "X-Anything"} & set(seen[0]["headers"])
