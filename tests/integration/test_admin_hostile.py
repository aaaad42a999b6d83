"""The admin service (`serve_admin`, real MongoDB, the sandbox Omnidesk) under the attacks of
issue 10 that concern it: each test sends what the probe sent and checks what holds now.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import pytest
from yarl import URL

from omnibot.admin.service import serve_admin
from omnibot.agents.agent import MAX_SLOTS
from omnibot.sandbox.faults import FaultResponse
from omnibot.sandbox.state import SandboxState
from omnibot.shared.agents import MongoAgentStore
from omnibot.shared.chats import ChatRecord, MongoChatStore, TranscriptLine
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.services import ServiceTask
from tests.harness import FIXTURES

TOKEN = "hostile-admin-token-0123456789abcdef"
AGENT = (FIXTURES / "agents" / "pipeline-demo.json").read_bytes()


@dataclass
class Admin:
    settings: Settings
    sandbox: SandboxState
    sandbox_url: str
    session: aiohttp.ClientSession
    db: Any

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.admin_port}"

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN
    ) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["data"] = io.BytesIO(body if isinstance(body, bytes) else json.dumps(body).encode())
            headers["Content-Type"] = "application/json"
        url = self.base + path if path.startswith("/") else path
        async with self.session.request(method, URL(url, encoded=True), headers=headers, **kwargs) as r:
            raw = await r.read()
            return r.status, (json.loads(raw) if raw else None), r.headers

    async def channel(self) -> dict[str, Any]:
        assert (await self.call("POST", "/api/v1/agents?publish=true", AGENT))[0] == 201
        status, channel, _ = await self.call(
            "POST",
            "/api/v1/channels",
            {
                "domain": self.sandbox_url,
                "api_key": self.sandbox.api_key,
                "email": self.sandbox.bot_email,
                "agent": "pipeline-demo",
            },
        )
        assert status == 201, channel
        return dict(channel)


@pytest.fixture
async def admin(settings: Settings, db: Any, sandbox: tuple[SandboxState, str]) -> AsyncIterator[Admin]:
    configured = msgspec.structs.replace(settings, admin_token=TOKEN, admin_port=free_port())
    service = ServiceTask("admin", serve_admin, configured)
    await service.wait_ready()
    async with aiohttp.ClientSession() as session:
        yield Admin(configured, sandbox[0], sandbox[1], session, db)
    await service.stop()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- 8: deeply nested JSON -------------------------------------------------------------------


async def test_deeply_nested_bodies_get_400_not_500(admin: Admin) -> None:
    agent = json.loads(AGENT)
    agent["variables"] = {"deep": "PLACEHOLDER"}
    deep_agent = json.dumps(agent).encode().replace(b'"PLACEHOLDER"', nested(5000))
    channel = await admin.channel()
    for method, path, body in (
        ("POST", "/api/v1/agents", deep_agent),
        ("POST", "/api/v1/agents/validate", deep_agent),
        ("POST", "/api/v1/channels", nested(5000)),
        ("PATCH", f"/api/v1/channels/{channel['id']}", b'{"title": ' + nested(5000) + b"}"),
        ("POST", "/api/v1/dead-letters/replay", b'{"ids": ' + nested(5000) + b"}"),
    ):
        status, answer, _ = await admin.call(method, path, body)
        assert (status, answer["error"]) == (400, "bad_request"), (path, answer)
        assert "nested too deeply" in answer["message"]
    versions = await MongoAgentStore(admin.db).summary("pipeline-demo")
    assert versions is not None and versions.latest_version == 1  # nothing imported
    assert (await admin.call("GET", f"/api/v1/channels/{channel['id']}"))[1]["title"] == channel["title"]


# --- 9: one spelling of an id ----------------------------------------------------------------


@pytest.mark.parametrize("spelt", ["01", "%EF%BC%91", "%D9%A1", "+1", "%201", "1.0", "0"])
async def test_a_channel_is_reached_by_its_canonical_id_only(admin: Admin, spelt: str) -> None:
    channel = await admin.channel()
    assert channel["id"] == 1
    for method, path in (
        ("GET", f"/api/v1/channels/{spelt}"),
        ("DELETE", f"/api/v1/channels/{spelt}"),
        ("POST", f"/api/v1/channels/{spelt}/rotate-secret"),
        ("GET", f"/api/v1/channels/{spelt}/chats"),
    ):
        status, answer, _ = await admin.call(method, path)
        assert (status, answer["error"]) == (404, "not_found"), (method, path)
    status, same, _ = await admin.call("GET", "/api/v1/channels/1")
    assert (status, same["webhook_url"]) == (200, channel["webhook_url"])


async def test_a_chat_is_reached_by_its_canonical_id_only(admin: Admin) -> None:
    channel = await admin.channel()
    record = ChatRecord(key="1:100", channel_id=1, chat_id="100", agent_name="pipeline-demo", agent_version=1)
    assert await MongoChatStore(admin.db).commit(record, 0)
    assert (await admin.call("GET", f"/api/v1/channels/{channel['id']}/chats/100"))[0] == 200
    for spelt in ("0100", "%EF%BC%91%EF%BC%90%EF%BC%90", "%D9%A1%D9%A0%D9%A0", "%20100"):
        status, answer, _ = await admin.call("POST", f"/api/v1/channels/1/chats/{spelt}/resume")
        assert (status, answer["error"]) == (404, "not_found"), spelt
    assert (await MongoChatStore(admin.db).load("1:100")) == record


# --- 10: no forged log lines -----------------------------------------------------------------


async def test_a_newline_in_an_unauthenticated_path_forges_no_log_line(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "/api/v1/x%0A2026-01-01%2000:00:00%20INFO%20omnibot.admin%20admin%20login%20ok%0D"
    with caplog.at_level(logging.INFO, logger="omnibot.admin"):
        status, _, _ = await admin.call("GET", forged, token=None)
        assert status == 401
        status, _, _ = await admin.call("GET", forged, token="wrong-token")
        assert status == 401
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("omnibot.admin")]
    assert len(lines) >= 2
    assert all("\n" not in line and "\r" not in line for line in lines), lines
    assert any("/api/v1/x\\n2026-01-01" in line for line in lines), lines


# --- 12: no credentials quoted from Omnidesk -------------------------------------------------


async def test_an_omnidesk_answer_echoing_the_credentials_is_never_quoted(admin: Admin) -> None:
    channel = await admin.channel()
    credentials = f"{admin.sandbox.bot_email}:{admin.sandbox.api_key}"
    basic = base64.b64encode(credentials.encode()).decode()
    echoes = [
        {"error": f"Basic {basic}"},
        {"error": basic},
        {"request": {"Authorization": f"Basic {basic}"}, "detail": credentials},
    ]
    for body in echoes:
        admin.sandbox.faults.add(
            method="GET", path="/api/staff.json", responses=[FaultResponse(status=400, body=body)]
        )
        status, answer, _ = await admin.call("POST", f"/api/v1/channels/{channel['id']}/activate")
        assert status == 409
        text = json.dumps(answer)
        for secret in (basic, admin.sandbox.api_key, credentials):
            assert secret not in text, (body, answer)
        omnidesk = next(c for c in answer["details"]["checks"] if c["name"] == "omnidesk")
        assert omnidesk["passed"] is False and "400" in omnidesk["detail"]


async def test_an_omnidesk_answer_of_the_wrong_shape_fails_the_check_not_the_request(admin: Admin) -> None:
    channel = await admin.channel()
    wrong = {"0": {"staff": {"staff_email": admin.sandbox.bot_email, "staff_id": "x"}}, "total_count": 1}
    admin.sandbox.faults.add(
        method="GET", path="/api/staff.json", responses=[FaultResponse(status=200, body=wrong)]
    )
    status, answer, _ = await admin.call("POST", f"/api/v1/channels/{channel['id']}/activate")
    assert (status, answer["error"]) == (409, "activation_failed")
    assert "omnidesk: Omnidesk's answer has no integer staff_id" in answer["problems"]


# --- 14: agent size ----------------------------------------------------------------------------


def big_agent(slots: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"id": f"s{i}", "type": "text", "text": f"step {i}", "next": f"s{i + 1}"} for i in range(slots - 1)
    ]
    body.append({"id": f"s{slots - 1}", "type": "end"})
    return {"format": "omnibot/agent@1", "name": "huge", "start": "s0", "slots": body}


async def test_an_agent_over_the_bounds_is_refused_at_import(admin: Admin) -> None:
    status, answer, _ = await admin.call(
        "POST", "/api/v1/agents", json.dumps(big_agent(MAX_SLOTS + 1)).encode()
    )
    assert (status, answer["error"]) == (422, "agent_invalid")
    assert f"at most {MAX_SLOTS}" in answer["message"]
    padded = big_agent(3)
    padded["variables"] = {"pad": "x" * (1024 * 1024)}
    status, answer, _ = await admin.call("POST", "/api/v1/agents", json.dumps(padded).encode())
    assert (status, answer["error"]) == (422, "agent_invalid")
    assert "at most 1048576" in answer["message"]
    assert (await admin.call("GET", "/api/v1/agents"))[1]["total"] == 0


async def test_exporting_a_huge_stored_agent_does_not_hold_up_the_event_loop(admin: Admin) -> None:
    # Stored before the bounds existed (straight into MongoDB): it must still export, and
    # meanwhile this process (ingress would be here too) keeps answering.
    await MongoAgentStore(admin.db).add_version("huge", big_agent(40_000))
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    async with admin.session.get(
        f"{admin.base}/api/v1/agents/huge/export", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        exported = await response.read()
    took = time.perf_counter() - started
    done.set()
    await ticker
    assert response.status == 200
    assert len(json.loads(exported)["slots"]) == 40_000
    # The export took long enough to be felt, and the loop was never held for more than a blink of it.
    assert took > 0.5, took
    assert max(gaps) < min(1.0, took / 3), (max(gaps), took)


# --- 15: the admin API's contract ------------------------------------------------------------


async def test_405_says_which_methods_are_allowed(admin: Admin) -> None:
    for method, path, allowed in (
        ("PUT", "/api/v1/channels", {"GET", "POST"}),
        ("POST", "/api/v1/channels/1/chats/5", {"GET"}),
        ("DELETE", "/api/v1/dead-letters", {"GET"}),
    ):
        status, answer, headers = await admin.call(method, path)
        assert (status, answer["error"]) == (405, "method_not_allowed")
        assert {m.strip() for m in headers["Allow"].split(",")} >= allowed


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=", 400),
        ("offset=", 400),
        ("limit=5&limit=7", 400),
        ("offset=0&offset=1", 400),
        ("limit=&offset=", 400),
        ("limit=%EF%BC%95", 422),  # a full-width 5
        ("limit=+5", 422),
        ("offset=99999999999999999999999", 422),
    ],
)
async def test_an_empty_repeated_or_odd_page_parameter_is_refused(
    admin: Admin, query: str, status: int
) -> None:
    channel = await admin.channel()
    for path in (
        "/api/v1/channels",
        "/api/v1/agents",
        "/api/v1/channels/1/chats",
        "/api/v1/agents/x/versions",
    ):
        answered, answer, _ = await admin.call("GET", f"{path}?{query}")
        assert (answered, answer["error"]) == (status, "bad_request" if status == 400 else "invalid"), path
    assert (await admin.call("GET", "/api/v1/channels/1"))[1] == channel


async def test_resume_twice_hands_back_once(admin: Admin) -> None:
    await admin.channel()
    chats = MongoChatStore(admin.db)
    record = ChatRecord(
        key="1:100",
        channel_id=1,
        chat_id="100",
        agent_name="pipeline-demo",
        agent_version=1,
        owner="operator",
        version=1,
    )
    assert await chats.commit(record, 0)
    await chats.append_transcript(
        [TranscriptLine(chat="1:100", seq=0, role="customer", text="позовите человека", at=time.time())]
    )
    answers = [await admin.call("POST", "/api/v1/channels/1/chats/100/resume") for _ in range(5)]
    assert all(status == 200 and answer["owner"] == "bot" for status, answer, _ in answers), answers
    lines = [t["text"] for t in answers[-1][1]["transcript"]]
    assert lines.count("[handed back to the bot by hand]") == 1
    stored = await chats.load("1:100")
    assert stored is not None and stored.version == 2  # one write: the first resume


async def test_the_openapi_document_states_what_the_server_enforces(admin: Admin) -> None:
    status, document, _ = await admin.call("GET", "/api/v1/openapi.json", token=None)
    assert status == 200
    paths = document["paths"]

    def param(path: str, method: str, name: str) -> dict[str, Any]:
        found = [p for p in paths[path][method]["parameters"] if p["name"] == name]
        assert found, (path, name)
        return dict(found[0]["schema"])

    chat = "/api/v1/channels/{channel_id}/chats/{chat_id}"
    assert param(chat, "get", "transcript").items() >= {"minimum": 0, "maximum": 10000}.items()
    assert param(chat, "get", "chat_id")["pattern"] == "^[1-9][0-9]{0,19}$"
    assert param(chat, "get", "channel_id")["minimum"] == 1
    assert param("/api/v1/agents/{name}/export", "get", "version")["minimum"] == 1
    assert param("/api/v1/channels", "get", "offset")["maximum"] == 1_000_000_000
    create = document["components"]["schemas"]["ChannelCreate"]["properties"]
    assert create["title"]["maxLength"] == 200
    assert create["transfer_status"]["enum"] == ["", "open", "waiting", "closed"]
    assert create["bot_label_id"]["anyOf"][0]["minimum"] == 1
    assert "pattern" in create["email"]
    for operation in paths["/api/v1/channels"].values():
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "400" in operation["responses"]


# --- 15: schemathesis against the served document --------------------------------------------

FUZZ_EXAMPLES = 25  # per operation and mode: about 1,200 requests, seconds


def fuzz(base: str, sandbox_url: str) -> list[str]:
    """Every operation of the served OpenAPI document, positive and negative examples, fixed seed.

    Runs in a worker thread (schemathesis calls synchronously) while the service answers on the
    test's event loop. Returns one line per failing operation.
    """
    import hypothesis
    import hypothesis.errors
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import positive_data_acceptance
    from schemathesis.config import SchemathesisConfig

    # The token through the document's own security scheme: negative examples may then leave it
    # out on purpose (and expect 401), which a header added to every call would undo.
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"bearer": {"bearer": TOKEN}}}})
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", config=config)
    failures: list[str] = []

    def loopback_only(case: Any) -> Any:
        # Activation connects to the channel's domain: only ever to the sandbox on this machine.
        if isinstance(case.body, dict) and isinstance(case.body.get("domain"), str):
            case.body["domain"] = sandbox_url
        return case

    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # our own document: every operation loads
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(
                max_examples=FUZZ_EXAMPLES,
                derandomize=True,  # the same examples every run
                database=None,
                deadline=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode).map(loopback_only))
            def check(case: Any) -> None:
                case.call_and_validate(
                    base_url=base,
                    # Valid by the schema is not always acceptable: a channel's agent must exist,
                    # an agent file must make sense. Every other check runs.
                    excluded_checks=[positive_data_acceptance],
                )

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to get wrong: no parameters and no body (GET /healthz, negative)
            except (Exception, BaseExceptionGroup) as exc:  # a check failed: report it
                failures.append(f"{operation.label} ({mode.value}): {type(exc).__name__}: {str(exc)[:2000]}")
    return failures


async def test_schemathesis_finds_nothing_against_the_served_document(admin: Admin, broker: Any) -> None:
    channel = await admin.channel()
    record = ChatRecord(key="1:100", channel_id=1, chat_id="100", agent_name="pipeline-demo", agent_version=1)
    assert await MongoChatStore(admin.db).commit(record, 0)
    failures = await asyncio.to_thread(fuzz, admin.base, admin.sandbox_url)
    assert failures == [], "\n\n".join(failures)
    # Whatever it did (it may have deleted the channel), the service still answers.
    assert (await admin.call("GET", f"/api/v1/channels/{channel['id']}"))[0] in (200, 404)
