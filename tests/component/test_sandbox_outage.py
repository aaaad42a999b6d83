"""Component tests of the sandbox's timed outage (`/sandbox/outage`) over real HTTP.

The chaos suite uses it to make Omnidesk fail for a while; these tests pin what "down" means: every
`/api` request answers the outage status with `{"error": "service_unavailable"}` and changes
nothing, the control API keeps working, and the API comes back by itself when the time is up (the
state's clock is injected, so no test waits for real time) or when the outage is ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from omnibot.sandbox.app import build_app
from omnibot.sandbox.state import SandboxState

Client = TestClient[Any, Any]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    return SandboxState(filler_staff=3, clock=clock)


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[Client]:
    async with TestServer(build_app(state)) as server:
        test_client: Client = TestClient(server)
        async with test_client:
            yield test_client


def auth(state: SandboxState) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(state.bot_email, state.api_key)}


async def new_case(client: Client) -> int:
    response = await client.post("/sandbox/customer-messages", json={"text": "Здравствуйте"})
    assert response.status == 200, await response.text()
    case_id: int = (await response.json())["case_id"]
    return case_id


async def post_reply(client: Client, state: SandboxState, case_id: int, text: str) -> aiohttp.ClientResponse:
    return await client.post(
        f"/api/cases/{case_id}/messages.json",
        json={"message": {"staff_id": state.bot_staff_id, "content": text}},
        headers=auth(state),
    )


async def test_an_outage_refuses_every_api_request_and_changes_nothing(
    client: Client, state: SandboxState, clock: FakeClock
) -> None:
    case_id = await new_case(client)
    started = await client.post("/sandbox/outage", json={"seconds": 20, "status": 503})
    assert started.status == 200
    assert (await started.json()) == {"outage": {"status": 503, "seconds_left": 20.0}}

    refused = [
        await post_reply(client, state, case_id, "не дойдёт"),
        await client.get(f"/api/cases/{case_id}/messages.json", headers=auth(state)),
        await client.get("/api/staff.json", headers=auth(state)),
        await client.put(
            f"/api/cases/{case_id}.json", json={"case": {"status": "closed"}}, headers=auth(state)
        ),
        await client.get("/api/labels.json"),  # not even authenticated: the outage answers first
    ]

    for response in refused:
        assert response.status == 503
        assert await response.json() == {"error": "service_unavailable"}
    assert state.staff_messages(case_id) == []
    assert state.case(case_id).status == "open"
    # The request log shows what was refused, as it does for every Omnidesk-side request.
    assert [r.status for r in state.requests[-5:]] == [503] * 5
    # The control API is not Omnidesk: it keeps working during the outage.
    assert (await client.get(f"/sandbox/cases/{case_id}")).status == 200
    clock.now += 5
    assert (await (await client.get("/sandbox/outage")).json()) == {
        "outage": {"status": 503, "seconds_left": 15.0}
    }
    # Nothing reached the account, so nothing was counted against the rate limit.
    clock.now += 15
    after = await client.get("/api/staff.json", headers=auth(state))
    assert after.status == 200
    assert after.headers["api_calls_left"] == str(state.rate_limiter.per_minute - 1)


async def test_the_api_comes_back_by_itself_when_the_time_is_up(
    client: Client, state: SandboxState, clock: FakeClock
) -> None:
    case_id = await new_case(client)
    assert (await client.post("/sandbox/outage", json={"seconds": 20})).status == 200  # 503 by default
    clock.now += 19.9
    assert (await post_reply(client, state, case_id, "ещё нет")).status == 503

    clock.now += 0.1
    answered = await post_reply(client, state, case_id, "снова работает")

    assert answered.status == 201
    assert [m.content for m in state.staff_messages(case_id)] == ["снова работает"]
    assert (await (await client.get("/sandbox/outage")).json()) == {"outage": None}


async def test_an_outage_can_be_ended_early_and_use_another_status(
    client: Client, state: SandboxState
) -> None:
    case_id = await new_case(client)
    assert (await client.post("/sandbox/outage", json={"seconds": 60, "status": 500})).status == 200
    down = await client.get(f"/api/cases/{case_id}.json", headers=auth(state))
    assert (down.status, await down.json()) == (500, {"error": "service_unavailable"})

    ended = await client.delete("/sandbox/outage")

    assert (ended.status, await ended.json()) == (200, {"outage": None})
    assert (await client.get(f"/api/cases/{case_id}.json", headers=auth(state))).status == 200


async def test_a_reset_ends_the_outage(client: Client, state: SandboxState) -> None:
    assert (await client.post("/sandbox/outage", json={"seconds": 60})).status == 200
    assert (await client.post("/sandbox/reset")).status == 200
    assert (await client.get("/api/staff.json", headers=auth(state))).status == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"seconds": 0},
        {"seconds": -1},
        {"seconds": 301},
        {"seconds": "soon"},
        {"seconds": 5, "status": 200},
        {"seconds": 5, "status": 600},
    ],
)
async def test_a_bad_outage_is_refused_with_a_json_400(
    client: Client, state: SandboxState, body: Any
) -> None:
    response = await client.post("/sandbox/outage", json=body)

    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"
    assert state.outage is None
    assert (await client.get("/api/staff.json", headers=auth(state))).status == 200
