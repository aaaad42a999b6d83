"""The admin API through its real app factory: real HTTP, a real MongoDB-protocol server, the sandbox
as Omnidesk. The webhook check (does ingress serve the URL?) is a scripted fake here; the
integration tests run it against the real ingress.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from omnibot.admin.api import ENDPOINTS, build_app
from omnibot.admin.broker import BrokerLink
from omnibot.admin.operations import Management
from omnibot.admin.schemas import AgentVersionView, ChannelView, ChatSummary, ChatView, Page
from omnibot.agents.agent import load_agent
from omnibot.sandbox.faults import FaultResponse
from omnibot.sandbox.state import SandboxState
from omnibot.shared.channels import MongoChannelStore
from omnibot.shared.chats import ChatRecord, MongoChatStore, TranscriptLine
from omnibot.shared.crypto import SecretBox, same_secret
from omnibot.shared.messages import OutboundAction, TransferToOperator, outbound_decoder
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology, partition_of
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import running_sandbox
from tests.conftest import take_all
from tests.harness import FIXTURES

TOKEN = "test-admin-token-0123456789abcdef"
AGENT_FILE = (FIXTURES / "agents" / "pipeline-demo.json").read_bytes()
API = "/api/v1"


class FakeProbe:
    """Stands in for "is ingress serving this webhook URL?"; `problem` scripts the answer."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self.urls: list[str] = []

    async def __call__(self, url: str) -> str | None:
        self.urls.append(url)
        return self.problem


@dataclass
class Admin:
    http: TestClient[Any, Any]
    ops: Management
    db: Any
    settings: Settings
    sandbox: SandboxState
    sandbox_url: str
    probe: FakeProbe
    log: list[tuple[int, Any]] = field(default_factory=list)

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            kwargs["data"] = body if isinstance(body, bytes) else json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        async with self.http.request(method, path, headers=headers, **kwargs) as response:
            raw = await response.read()
            answer = json.loads(raw) if raw else None
        self.log.append((response.status, answer))
        return response.status, answer

    def channel_body(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "title": "Support",
            "domain": self.sandbox_url,
            "api_key": self.sandbox.api_key,
            "email": self.sandbox.bot_email,
            "agent": "pipeline-demo",
            "bot_label_id": self.sandbox.bot_label_id,
        }
        return {**body, **overrides}

    async def agent(self, *, publish: bool = True) -> None:
        status, _ = await self.call("POST", f"{API}/agents?publish={str(publish).lower()}", AGENT_FILE)
        assert status == 201

    async def channel(self, **overrides: Any) -> dict[str, Any]:
        status, body = await self.call("POST", f"{API}/channels", self.channel_body(**overrides))
        assert status == 201, body
        return dict(body)


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    async with running_sandbox(free_port()) as running:
        yield running


@pytest.fixture
async def admin(settings: Settings, db: Any, sandbox: tuple[SandboxState, str]) -> AsyncIterator[Admin]:
    probe = FakeProbe()
    # Connected on first use only: tests that use RabbitMQ ask for `broker`, which cleans up.
    link = BrokerLink(settings, name="test-admin")
    ops = Management(
        db, SecretBox(settings.secret_key), settings, probe_webhook=probe, omnidesk_timeout_s=1.0, broker=link
    )
    async with TestClient(TestServer(build_app(ops, token=TOKEN))) as http:
        yield Admin(http, ops, db, settings, sandbox[0], sandbox[1], probe)
    await link.close()


def error_of(answer: Any) -> tuple[str, list[str]]:
    assert set(answer) >= {"error", "message", "problems"}, answer
    assert answer["message"]
    return answer["error"], answer["problems"]


# --- authentication, errors, the OpenAPI document -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{API}/channels"), ("POST", f"{API}/channels"), ("GET", f"{API}/no-such-thing")],
)
@pytest.mark.parametrize("token", [None, "wrong-token", ""])
async def test_requests_without_the_token_are_refused(
    admin: Admin, method: str, path: str, token: str | None
) -> None:
    status, answer = await admin.call(method, path, admin.channel_body(), token=token)
    assert status == 401
    assert error_of(answer)[0] == "unauthorized"
    assert await MongoChannelStore(admin.db).all() == []


async def test_a_basic_or_malformed_authorization_header_is_refused(admin: Admin) -> None:
    for header in (f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer {TOKEN}x"):
        async with admin.http.get(f"{API}/channels", headers={"Authorization": header}) as response:
            assert response.status == 401, header
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_health_and_openapi_need_no_token(admin: Admin) -> None:
    assert await admin.call("GET", "/healthz", token=None) == (200, {"status": "alive"})
    status, document = await admin.call("GET", f"{API}/openapi.json", token=None)
    assert status == 200
    assert document["openapi"].startswith("3.1")


async def test_every_route_is_in_the_openapi_document_and_nothing_else(admin: Admin) -> None:
    _, document = await admin.call("GET", f"{API}/openapi.json", token=None)
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in admin.http.server.app.router.routes()  # type: ignore[attr-defined]
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert served == documented
    assert len(served) == len(ENDPOINTS)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"], (method, path)
            public = operation.get("security") == []
            assert public == (path in ("/healthz", f"{API}/openapi.json")), (method, path)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert f"{{{parameter['name']}}}" in path
            for response in operation["responses"].values():
                ref = response["content"]["application/json"]["schema"].get("$ref")
                if ref:
                    assert ref.rsplit("/", 1)[1] in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        (
            "POST",
            f"{API}/channels",
            {"data": b"{nope", "headers": {"Content-Type": "application/json"}},
            400,
            "bad_request",
        ),
        (
            "POST",
            f"{API}/channels",
            {"data": b"[1, 2]", "headers": {"Content-Type": "application/json"}},
            400,
            "bad_request",
        ),
        (
            "POST",
            f"{API}/channels",
            {"data": b"domain=x", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("POST", f"{API}/channels", {}, 400, "bad_request"),
        (
            "POST",
            f"{API}/channels",
            {
                "data": io.BytesIO(b"{" + b" " * (5 << 20) + b"}"),
                "headers": {"Content-Type": "application/json"},
            },
            413,
            "too_large",
        ),
        ("PUT", f"{API}/channels", {}, 405, "method_not_allowed"),
        ("GET", f"{API}/channels/abc", {}, 404, "not_found"),
        ("GET", f"{API}/channels?limit=0&offset=-1", {}, 422, "invalid"),
        ("GET", f"{API}/channels?limit=x", {}, 422, "invalid"),
        ("GET", f"{API}/dead-letters?stage=sideways", {}, 422, "invalid"),
    ],
)
async def test_bad_requests_get_a_json_error_with_a_stable_code(
    admin: Admin, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    kwargs = dict(kwargs)
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    async with admin.http.request(method, path, headers=headers, **kwargs) as response:
        assert response.status == status
        assert error_of(await response.json())[0] == code
    assert await MongoChannelStore(admin.db).all() == []


# --- agents ----------------------------------------------------------------------------------


async def test_agent_import_list_versions_publish_export(admin: Admin) -> None:
    status, first = await admin.call("POST", f"{API}/agents", AGENT_FILE)
    assert status == 201
    assert first == {"name": "pipeline-demo", "version": 1, "published": False, "warnings": []}
    status, second = await admin.call("POST", f"{API}/agents?publish=true", AGENT_FILE)
    assert (status, second["version"], second["published"]) == (201, 2, True)

    status, agents = await admin.call("GET", f"{API}/agents")
    assert status == 200
    assert agents["items"] == [{"name": "pipeline-demo", "latest_version": 2, "published_version": 2}]
    assert await admin.call("GET", f"{API}/agents/pipeline-demo") == (200, agents["items"][0])

    status, versions = await admin.call("GET", f"{API}/agents/pipeline-demo/versions")
    page = msgspec.convert(versions, Page[AgentVersionView])
    assert [(v.version, v.published) for v in page.items] == [(1, False), (2, True)]
    assert page.items[0].slots > 0 and page.items[0].imported_at

    assert await admin.call("POST", f"{API}/agents/pipeline-demo/publish", {"version": 1}) == (
        200,
        {"name": "pipeline-demo", "published_version": 1},
    )
    status, published = await admin.call("POST", f"{API}/agents/pipeline-demo/publish")
    assert (status, published["published_version"]) == (200, 2)

    async with admin.http.get(
        f"{API}/agents/pipeline-demo/export?version=1", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        assert response.status == 200
        exported = await response.read()
    assert load_agent(exported)[0] == load_agent(AGENT_FILE)[0]
    status, validated = await admin.call("POST", f"{API}/agents/validate", exported)
    assert (status, validated["valid"]) == (200, True)


async def test_a_broken_agent_is_refused_with_every_problem_and_not_saved(admin: Admin) -> None:
    broken = json.loads(AGENT_FILE)
    broken["slots"][0]["type"] = "teleport"
    broken["slots"][1]["next"] = "nowhere"
    for path in (f"{API}/agents", f"{API}/agents/validate"):
        status, answer = await admin.call("POST", path, json.dumps(broken).encode())
        code, problems = error_of(answer)
        assert (status, code) == (422, "agent_invalid")
        assert len(problems) >= 2
        assert any("teleport" in p for p in problems)
    assert (await admin.call("GET", f"{API}/agents"))[1]["total"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{API}/agents/ghost"),
        ("GET", f"{API}/agents/ghost/versions"),
        ("POST", f"{API}/agents/ghost/publish"),
        ("GET", f"{API}/agents/ghost/export"),
        ("DELETE", f"{API}/agents/ghost"),
    ],
)
async def test_unknown_agents_are_404(admin: Admin, method: str, path: str) -> None:
    status, answer = await admin.call(method, path)
    assert (status, error_of(answer)[0]) == (404, "not_found")
    assert "ghost" in answer["message"]


async def test_publishing_a_missing_version_is_404(admin: Admin) -> None:
    await admin.agent()
    status, answer = await admin.call("POST", f"{API}/agents/pipeline-demo/publish", {"version": 9})
    assert (status, error_of(answer)[0]) == (404, "not_found")
    status, answer = await admin.call("POST", f"{API}/agents/pipeline-demo/publish", {"version": "9"})
    assert (status, error_of(answer)[1]) == (422, ["version: Expected `int | null`, got `str`"])


async def test_an_agent_in_use_cannot_be_deleted_and_a_free_one_can(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel()
    status, answer = await admin.call("DELETE", f"{API}/agents/pipeline-demo")
    code, problems = error_of(answer)
    assert (status, code) == (409, "agent_in_use")
    assert f"channel {channel['id']}" in problems[0]

    assert (await admin.call("DELETE", f"{API}/channels/{channel['id']}"))[0] == 200
    assert await admin.call("DELETE", f"{API}/agents/pipeline-demo") == (
        200,
        {"name": "pipeline-demo", "deleted": True, "versions": 1},
    )
    assert (await admin.call("GET", f"{API}/agents/pipeline-demo"))[0] == 404
    # Imported again, it goes on numbering: dialog caches versions by (name, number) for ever.
    status, again = await admin.call("POST", f"{API}/agents", AGENT_FILE)
    assert (status, again["version"]) == (201, 2)
    status, versions = await admin.call("GET", f"{API}/agents/pipeline-demo/versions")
    assert [v["version"] for v in versions["items"]] == [2]


# --- channels --------------------------------------------------------------------------------


async def test_create_leaves_the_channel_inactive_with_a_webhook_url_and_a_masked_key(admin: Admin) -> None:
    await admin.agent()
    body = admin.channel_body()
    del body["title"]
    status, created = await admin.call("POST", f"{API}/channels", body)
    assert status == 201
    view = msgspec.convert(created, ChannelView)
    assert view.title == "New channel"
    assert view.active is False
    assert view.checks is msgspec.UNSET
    assert view.api_key == f"{admin.sandbox.api_key[:4]}…{admin.sandbox.api_key[-2:]}"
    assert view.webhook_url.startswith(f"{admin.settings.public_base_url}/webhooks/omnidesk/{view.id}/")
    assert admin.probe.urls == []  # no checks ran
    assert await admin.call("GET", f"{API}/channels/{view.id}") == (200, created)
    status, listed = await admin.call("GET", f"{API}/channels")
    assert listed["items"] == [created]

    stored = await MongoChannelStore(admin.db).get(view.id)
    assert stored is not None
    assert admin.sandbox.api_key not in json.dumps(msgspec.to_builtins(stored))
    assert same_secret(view.webhook_url.rsplit("/", 1)[1], stored.webhook_secret_hash)


async def test_create_and_activate_runs_the_four_checks(admin: Admin) -> None:
    await admin.agent()
    status, created = await admin.call(
        "POST",
        f"{API}/channels",
        admin.channel_body(activate=True, transfer_status="open", transfer_group_id=7),
    )
    assert status == 201
    assert created["active"] is True
    assert [(c["name"], c["passed"]) for c in created["checks"]] == [
        ("agent", True),
        ("omnidesk", True),
        ("webhook", True),
        ("unique", True),
    ]
    assert (created["transfer_status"], created["transfer_group_id"]) == ("open", 7)
    assert admin.probe.urls == [created["webhook_url"]]


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"domain": "http://acme.omnidesk.ru"}, "domain", "domain: must use https"),
        ({"domain": "https://acme.omnidesk.ru/api"}, "domain", "without path, query or fragment"),
        ({"domain": "https://acme.omnidesk.ru/?x=1"}, "domain", "without path, query or fragment"),
        ({"domain": "https://me:pw@acme.omnidesk.ru"}, "domain", "domain: must not contain credentials"),
        ({"domain": "acme.omnidesk.ru"}, "domain", "domain: must be an http(s) URL"),
        ({"domain": "ftp://acme.omnidesk.ru"}, "domain", "domain: must be an http(s) URL"),
        ({"email": "bot-at-acme"}, "email", "email: must be an e-mail address"),
        ({"api_key": "   "}, "api_key", "api_key: must not be empty"),
        ({"agent": "ghost"}, "agent", "agent: ghost does not exist"),
        ({"title": ""}, "title", "title: must not be empty"),
        ({"bot_label_id": 0}, "bot_label_id", "bot_label_id: must be a positive id"),
        ({"transfer_status": "gone"}, "transfer_status", "transfer_status: must be open, waiting or closed"),
        ({"api_key": 12345}, "api_key", "api_key: Expected `str`, got `int`"),
        ({"llm_base_url": "llm.example/v1"}, "llm_base_url", "llm_base_url: must be an http(s) URL"),
        ({"llm_base_url": "ftp://llm.example/v1"}, "llm_base_url", "llm_base_url: must be an http(s) URL"),
        ({"llm_base_url": "https://u:p@llm.example/v1"}, "llm_base_url", "must not contain credentials"),
        ({"llm_base_url": "https://llm.example/v1?key=s"}, "llm_base_url", "must not have a query"),
        ({"llm_base_url": "https://llm.example:99999/v1"}, "llm_base_url", "invalid port"),
        ({"llm_base_url": "https://llm.example/a b"}, "llm_base_url", "must not contain spaces"),
        ({"llm_model": "gpt\n4"}, "llm_model", "llm_model: must not contain control characters"),
        ({"llm_model": "m" * 201}, "llm_model", "llm_model: at most 200 characters"),
        ({"llm_api_key": "sk two words"}, "llm_api_key", "llm_api_key: must not contain spaces"),
        ({"llm_api_key": 42}, "llm_api_key", "llm_api_key: Expected `str`, got `int`"),
        ({"activate": "yes"}, "activate", "activate: Expected `bool`, got `str`"),
        ({"colour": "red"}, "colour", "colour: unknown field"),
    ],
)
async def test_each_invalid_field_is_named_and_nothing_is_saved(
    admin: Admin, change: dict[str, Any], field: str, problem: str
) -> None:
    await admin.agent()
    strict = Management(
        admin.db,
        SecretBox(admin.settings.secret_key),
        msgspec.structs.replace(admin.settings, omnidesk_allow_http=False),
    )
    async with TestClient(TestServer(build_app(strict, token=TOKEN))) as http:
        body = {**admin.channel_body(domain="https://acme.omnidesk.ru"), **change}
        async with http.post(
            f"{API}/channels", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            status, answer = response.status, await response.json()
    code, problems = error_of(answer)
    assert (status, code) == (422, "invalid")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{field}: ")
    assert problem in problems[0]
    assert await MongoChannelStore(admin.db).all() == []


async def test_a_channel_names_its_own_language_model_and_its_key_never_comes_back(admin: Admin) -> None:
    await admin.agent()
    key, newer = "sk-CHANNEL-llm-key-4711", "sk-NEWER-llm-key-0815"
    plain = await admin.channel()
    assert (plain["llm_base_url"], plain["llm_model"], plain["llm_api_key_set"]) == (None, None, False)
    created = await admin.channel(
        title="Own model", llm_base_url=" https://LLM.example:8443/v1/ ", llm_model=" gpt-x ", llm_api_key=key
    )
    assert (created["llm_base_url"], created["llm_model"], created["llm_api_key_set"]) == (
        "https://llm.example:8443/v1",
        "gpt-x",
        True,
    )
    assert "llm_api_key" not in created
    cid = created["id"]
    store = MongoChannelStore(admin.db)
    box = SecretBox(admin.settings.secret_key)

    async def stored_key() -> str:
        channel = await store.get(cid)
        assert channel is not None
        assert key not in json.dumps(msgspec.to_builtins(channel))  # encrypted at rest
        return box.decrypt(channel.llm_api_key_enc) if channel.llm_api_key_enc else ""

    assert await stored_key() == key
    assert (await admin.call("GET", f"{API}/channels/{cid}")) == (200, created)
    # Changing the model keeps the key; a new key replaces it; "" clears each, back to the environment's.
    status, changed = await admin.call("PATCH", f"{API}/channels/{cid}", {"llm_model": "gpt-y"})
    assert (status, changed["llm_model"], changed["llm_api_key_set"]) == (200, "gpt-y", True)
    assert await stored_key() == key
    status, changed = await admin.call("PATCH", f"{API}/channels/{cid}", {"llm_api_key": newer})
    assert (status, changed["llm_base_url"], changed["llm_api_key_set"]) == (
        200,
        "https://llm.example:8443/v1",
        True,
    )
    assert await stored_key() == newer
    status, answer = await admin.call(
        "PATCH", f"{API}/channels/{cid}", {"llm_api_key": "sk bad key", "llm_base_url": "https://a@b"}
    )
    assert (status, [p.split(":")[0] for p in error_of(answer)[1]]) == (422, ["llm_base_url", "llm_api_key"])
    assert await stored_key() == newer  # nothing saved
    status, cleared = await admin.call(
        "PATCH", f"{API}/channels/{cid}", {"llm_base_url": "", "llm_model": "", "llm_api_key": ""}
    )
    assert (status, cleared["llm_base_url"], cleared["llm_model"], cleared["llm_api_key_set"]) == (
        200,
        None,
        None,
        False,
    )
    assert await stored_key() == ""
    _, listed = await admin.call("GET", f"{API}/channels")
    assert [c["llm_api_key_set"] for c in listed["items"]] == [False, False]
    everything = json.dumps(admin.log)
    for secret in (key, newer, "sk bad key"):
        assert secret not in everything


async def test_the_openapi_document_describes_the_language_model_fields(admin: Admin) -> None:
    _, document = await admin.call("GET", f"{API}/openapi.json", token=None)
    schemas = document["components"]["schemas"]
    for name in ("ChannelCreate", "ChannelChanges"):
        fields = schemas[name]["properties"]
        text = json.dumps(fields)
        for field_name in ("llm_base_url", "llm_model", "llm_api_key"):
            assert field_name in fields, (name, field_name)
        assert '"writeOnly": true' in text
        assert '"maxLength": 2000' in text and '"maxLength": 200' in text
    view = schemas["ChannelView"]["properties"]
    assert "llm_api_key_set" in view and "llm_api_key" not in view


async def test_every_problem_is_listed_at_once(admin: Admin) -> None:
    status, answer = await admin.call(
        "POST", f"{API}/channels", {"domain": "nope", "api_key": "", "email": "x", "agent": "ghost"}
    )
    code, problems = error_of(answer)
    assert (status, code) == (422, "invalid")
    assert [p.split(":")[0] for p in problems] == ["domain", "api_key", "email", "agent"]
    status, answer = await admin.call("POST", f"{API}/channels", {"title": 5})
    assert sorted(error_of(answer)[1]) == [
        "agent: required",
        "api_key: required",
        "domain: required",
        "email: required",
        "title: Expected `str`, got `int`",
    ]


async def test_activation_check_failures_say_what_to_fix_and_leave_the_channel_inactive(admin: Admin) -> None:
    await admin.agent(publish=False)
    channel = await admin.channel(email="ghost@sandbox.local", api_key="wrong-key-123456")
    admin.probe.problem = "ingress answered 404 on the webhook URL"
    status, answer = await admin.call("POST", f"{API}/channels/{channel['id']}/activate")
    code, problems = error_of(answer)
    assert (status, code) == (409, "activation_failed")
    assert problems == [
        "agent: agent pipeline-demo has no published version",
        "omnidesk: Omnidesk refused the credentials: staff ghost@sandbox.local not found or the API key "
        "is wrong (401)",
        "webhook: ingress answered 404 on the webhook URL",
    ]
    assert answer["details"]["channel"]["active"] is False
    assert [c["passed"] for c in answer["details"]["checks"]] == [False, False, False, True]
    assert (await admin.call("GET", f"{API}/channels/{channel['id']}"))[1]["active"] is False


async def failed_checks(admin: Admin, channel_id: int) -> dict[str, str]:
    status, answer = await admin.call("POST", f"{API}/channels/{channel_id}/activate")
    assert status == 409, answer
    assert answer["details"]["channel"]["active"] is False
    return {c["name"]: c["detail"] for c in answer["details"]["checks"] if not c["passed"]}


async def test_check_staff_not_found_and_not_active(admin: Admin) -> None:
    await admin.agent()
    # Authenticates (an admin's key and e-mail would), but the bot's staff member is not in the list.
    channel = await admin.channel()
    member = admin.sandbox.find_staff_by_email(admin.sandbox.bot_email)
    assert member is not None
    admin.sandbox.faults.add(
        method="GET",
        path="/api/staff.json",
        responses=[
            FaultResponse(
                status=200, body={"0": {"staff": {"staff_id": 1, "staff_email": "x@y.z"}}, "total_count": 1}
            )
        ],
    )
    assert await failed_checks(admin, channel["id"]) == {
        "omnidesk": f"staff {admin.sandbox.bot_email} not found in Omnidesk"
    }
    admin.sandbox.set_staff_active(member.staff_id, False)
    assert await failed_checks(admin, channel["id"]) == {
        "omnidesk": f"staff {admin.sandbox.bot_email} is not active in Omnidesk"
    }


async def test_check_domain_that_does_not_answer(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel()
    admin.sandbox.faults.add(method="GET", path="/api/staff.json", responses=[FaultResponse(delay_s=3)])
    assert await failed_checks(admin, channel["id"]) == {
        "omnidesk": f"{admin.sandbox_url} did not answer in 1 s"
    }
    closed = f"http://127.0.0.1:{free_port()}"
    other = await admin.channel(domain=closed)
    assert await failed_checks(admin, other["id"]) == {
        "omnidesk": f"cannot connect to {closed}: check the domain"
    }


async def test_check_another_active_channel_with_the_same_domain_and_email(admin: Admin) -> None:
    await admin.agent()
    first = await admin.channel(activate=True)
    assert first["active"]
    second = await admin.channel(activate=True, title="Copy")
    assert second["active"] is False
    failed = {c["name"]: c["detail"] for c in second["checks"] if not c["passed"]}
    assert failed == {"unique": f"channel {first['id']} already uses this domain and e-mail"}
    # Once the first is inactive, the second may be activated.
    assert (await admin.call("POST", f"{API}/channels/{first['id']}/deactivate"))[1]["active"] is False
    status, activated = await admin.call("POST", f"{API}/channels/{second['id']}/activate")
    assert (status, activated["active"]) == (200, True)


async def test_update_of_an_inactive_channel(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel(transfer_group_id=4)
    status, updated = await admin.call(
        "PATCH",
        f"{API}/channels/{channel['id']}",
        {"title": "Renamed", "api_key": "another-key-987", "bot_label_id": None, "transfer_group_id": None},
    )
    assert status == 200
    assert (updated["title"], updated["api_key"], updated["bot_label_id"], updated["transfer_group_id"]) == (
        "Renamed",
        "anot…87",
        None,
        None,
    )
    assert "checks" not in updated
    assert updated["webhook_url"] == channel["webhook_url"]
    assert admin.probe.urls == []
    status, answer = await admin.call("PATCH", f"{API}/channels/{channel['id']}", {})
    assert (status, error_of(answer)[1]) == (422, ["nothing to change: give at least one field"])
    status, answer = await admin.call(
        "PATCH", f"{API}/channels/{channel['id']}", {"email": "nope", "agent": "x"}
    )
    assert (status, [p.split(":")[0] for p in error_of(answer)[1]]) == (422, ["email", "agent"])
    assert (await admin.call("PATCH", f"{API}/channels/999", {"title": "x"}))[0] == 404


async def test_changing_credentials_of_an_active_channel_reruns_the_checks(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel(activate=True)
    assert channel["active"]
    # A wrong key: refused, nothing changes, the channel stays active with its old settings.
    status, answer = await admin.call(
        "PATCH", f"{API}/channels/{channel['id']}", {"api_key": "wrong-key-000"}
    )
    code, problems = error_of(answer)
    assert (status, code) == (409, "checks_failed")
    assert problems[0].startswith("omnidesk: Omnidesk refused the credentials")
    assert len(answer["details"]["checks"]) == 4
    status, current = await admin.call("GET", f"{API}/channels/{channel['id']}")
    assert (current["active"], current["api_key"]) == (True, channel["api_key"])
    # A title change of an active channel needs no checks.
    checked = len(admin.probe.urls)
    status, renamed = await admin.call("PATCH", f"{API}/channels/{channel['id']}", {"title": "New name"})
    assert (status, renamed["title"], "checks" in renamed) == (200, "New name", False)
    assert len(admin.probe.urls) == checked
    # The same key again, spelt the same: nothing to re-check either.
    status, same = await admin.call(
        "PATCH", f"{API}/channels/{channel['id']}", {"api_key": admin.sandbox.api_key}
    )
    assert (status, "checks" in same) == (200, False)
    # A working change: checked, and applied.
    status, moved = await admin.call(
        "PATCH",
        f"{API}/channels/{channel['id']}",
        {"domain": admin.sandbox_url.replace("127.0.0.1", "localhost")},
    )
    assert status == 200, moved
    assert moved["active"] and all(c["passed"] for c in moved["checks"])
    assert moved["domain"].startswith("http://localhost:")


async def test_changing_the_default_agent_keeps_running_chats_on_theirs(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel(activate=True)
    chats = MongoChatStore(admin.db)
    record = ChatRecord(
        key=f"{channel['id']}:500",
        channel_id=channel["id"],
        chat_id="500",
        agent_name="pipeline-demo",
        agent_version=1,
    )
    assert await chats.commit(record, 0)
    other = json.loads(AGENT_FILE) | {"name": "other-agent"}
    assert (await admin.call("POST", f"{API}/agents", json.dumps(other).encode()))[0] == 201
    # Not published: an active channel refuses it (new chats would have nothing to run).
    status, answer = await admin.call("PATCH", f"{API}/channels/{channel['id']}", {"agent": "other-agent"})
    assert (status, error_of(answer)[1]) == (409, ["agent: agent other-agent has no published version"])
    assert (await admin.call("POST", f"{API}/agents/other-agent/publish"))[0] == 200
    status, updated = await admin.call("PATCH", f"{API}/channels/{channel['id']}", {"agent": "other-agent"})
    assert (status, updated["agent"]) == (200, "other-agent")
    _, chat = await admin.call("GET", f"{API}/channels/{channel['id']}/chats/500")
    assert (chat["agent"], chat["agent_version"]) == ("pipeline-demo", 1)


async def test_rotating_the_webhook_secret_changes_the_url(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel(activate=True)
    old_secret = channel["webhook_url"].rsplit("/", 1)[1]
    status, rotated = await admin.call("POST", f"{API}/channels/{channel['id']}/rotate-secret")
    assert status == 200
    new_secret = rotated["webhook_url"].rsplit("/", 1)[1]
    assert new_secret != old_secret and len(new_secret) >= 40
    assert rotated["active"] is True
    stored = await MongoChannelStore(admin.db).get(channel["id"])
    assert stored is not None
    assert same_secret(new_secret, stored.webhook_secret_hash)
    assert not same_secret(old_secret, stored.webhook_secret_hash)
    assert (await admin.call("GET", f"{API}/channels/{channel['id']}"))[1]["webhook_url"] == rotated[
        "webhook_url"
    ]
    assert (await admin.call("POST", f"{API}/channels/77/rotate-secret"))[0] == 404


async def test_delete_channel(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel()
    assert await admin.call("DELETE", f"{API}/channels/{channel['id']}") == (
        200,
        {"id": channel["id"], "deleted": True},
    )
    for method, path in (
        ("GET", f"{API}/channels/{channel['id']}"),
        ("DELETE", f"{API}/channels/{channel['id']}"),
        ("POST", f"{API}/channels/{channel['id']}/activate"),
        ("POST", f"{API}/channels/{channel['id']}/deactivate"),
    ):
        status, answer = await admin.call(method, path)
        assert (status, error_of(answer)[0]) == (404, "not_found"), path
    # Ids are never reused.
    assert (await admin.channel())["id"] == channel["id"] + 1


async def test_channel_list_pages(admin: Admin) -> None:
    await admin.agent()
    ids = [(await admin.channel(title=f"c{i}"))["id"] for i in range(3)]
    _, first = await admin.call("GET", f"{API}/channels?limit=2")
    assert ([c["id"] for c in first["items"]], first["total"], first["next_offset"]) == (ids[:2], 3, 2)
    _, last = await admin.call("GET", f"{API}/channels?limit=2&offset=2")
    assert ([c["id"] for c in last["items"]], last["next_offset"]) == (ids[2:], None)
    _, beyond = await admin.call("GET", f"{API}/channels?offset=10")
    assert (beyond["items"], beyond["total"], beyond["next_offset"]) == ([], 3, None)


# --- chats -----------------------------------------------------------------------------------


# An action a dialog turn committed but may not have published (the outbox).
PENDING = {
    "type": "outbound.text.v1",
    "action_id": "x:5",
    "channel_id": 1,
    "chat_id": "1001",
    "seq": 5,
    "created_at": 1_700_000_000.0,
    "text": "Номер заказа?",
}


async def outbound_messages(admin: Admin, key: str) -> list[OutboundAction]:
    """What was published to the chat's outbound partition (taken off the queue)."""
    topology = Topology.build(admin.settings.amqp_namespace, admin.settings.chat_partitions)
    connection = await admin.ops.context.require_broker().connection()
    found: list[OutboundAction] = []
    async with connection.channel() as channel:
        name = topology.outbound.partition_queue(partition_of(key, topology.outbound.partitions))
        for message in await take_all(channel, name):
            found.append(outbound_decoder.decode(message.body))
    return found


async def seed_chat(
    admin: Admin, channel_id: int, chat_id: str, *, owner: str = "bot", updated_at: float | None = None
) -> ChatRecord:
    chats = MongoChatStore(admin.db)
    record = ChatRecord(
        key=f"{channel_id}:{chat_id}",
        channel_id=channel_id,
        chat_id=chat_id,
        agent_name="pipeline-demo",
        agent_version=1,
        owner=owner,  # type: ignore[arg-type]
        state={"slot": "ask", "waiting": "reply", "variables": {"order_id": "42", "client_message": "2"}},
        version=3,
        out_seq=5,
        pending=[msgspec.convert(PENDING, OutboundAction)],
        last_error="external request timed out",
        created_at=1_700_000_000.0,
    )
    assert await chats.commit(record, 0)
    if updated_at is not None:
        await admin.db.chats.update_one({"_id": record.key}, {"$set": {"updated_at": updated_at}})
    await chats.append_transcript(
        [
            TranscriptLine(
                chat=record.key, seq=1000, role="customer", text="Добрый день", at=1_700_000_000.0
            ),
            TranscriptLine(chat=record.key, seq=1001, role="bot", text="Здравствуйте!", at=1_700_000_001.0),
        ]
    )
    loaded = await chats.load(record.key)
    assert loaded is not None
    return loaded


async def test_show_chat(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel()
    await seed_chat(admin, channel["id"], "1001")
    status, answer = await admin.call("GET", f"{API}/channels/{channel['id']}/chats/1001")
    assert status == 200
    chat = msgspec.convert(answer, ChatView)
    assert (chat.owner, chat.agent, chat.agent_version, chat.slot, chat.waiting) == (
        "bot",
        "pipeline-demo",
        1,
        "ask",
        "reply",
    )
    assert chat.variables == {"order_id": "42", "client_message": "2"}
    assert chat.last_error == "external request timed out"
    assert [(t.role, t.text) for t in chat.transcript] == [
        ("customer", "Добрый день"),
        ("bot", "Здравствуйте!"),
    ]
    assert chat.transcript[0].at == "2023-11-14T22:13:20Z"
    _, short = await admin.call("GET", f"{API}/channels/{channel['id']}/chats/1001?transcript=1")
    assert [t["text"] for t in short["transcript"]] == ["Здравствуйте!"]
    for path in (f"{API}/channels/{channel['id']}/chats/999", f"{API}/channels/999/chats/1001"):
        status, missing = await admin.call("GET", path)
        assert (status, error_of(missing)[0]) == (404, "not_found")


async def test_list_chats_with_filters(admin: Admin) -> None:
    await admin.agent()
    channel = await admin.channel()
    other = await admin.channel(title="Other")
    await seed_chat(admin, channel["id"], "1", owner="bot", updated_at=1_000.0)
    await seed_chat(admin, channel["id"], "2", owner="operator", updated_at=2_000.0)
    await seed_chat(admin, channel["id"], "3", owner="bot", updated_at=3_000.0)
    await seed_chat(admin, other["id"], "4", owner="bot", updated_at=4_000.0)
    base = f"{API}/channels/{channel['id']}/chats"

    async def ids(query: str = "") -> list[str]:
        status, answer = await admin.call("GET", base + query)
        assert status == 200, answer
        page = msgspec.convert(answer, Page[ChatSummary])
        return [c.chat_id for c in page.items]

    assert await ids() == ["3", "2", "1"]
    assert await ids("?owner=bot") == ["3", "1"]
    assert await ids("?owner=operator") == ["2"]
    assert await ids("?updated_since=2000") == ["3", "2"]
    assert await ids("?updated_since=1970-01-01T00:40:00Z&owner=bot") == ["3"]
    assert await ids("?limit=1&offset=1") == ["2"]
    status, answer = await admin.call("GET", f"{base}?owner=robot&updated_since=yesterday")
    assert (status, len(error_of(answer)[1])) == (422, 2)
    assert (await admin.call("GET", f"{API}/channels/999/chats"))[0] == 404


async def test_transfer_and_resume_by_hand(admin: Admin, broker: Any) -> None:
    await admin.agent()
    channel = await admin.channel(bot_label_id=admin.sandbox.bot_label_id)
    seeded = await seed_chat(admin, channel["id"], "1001")
    path = f"{API}/channels/{channel['id']}/chats/1001"
    status, transferred = await admin.call("POST", f"{path}/transfer")
    assert (status, transferred["owner"]) == (200, "operator")
    assert transferred["transcript"][-1] == {
        "role": "system",
        "text": "[handed to an operator by hand]",
        "at": transferred["transcript"][-1]["at"],
    }
    # What egress gets: the outbox's earlier action again (it may have been published before),
    # then the transfer, numbered after everything the chat was given so far.
    published = await outbound_messages(admin, seeded.key)
    assert [(type(a).__name__, a.seq, a.maybe_duplicate) for a in published] == [
        ("SendText", 5, True),
        ("TransferToOperator", 6, False),
    ]
    transfer = published[1]
    assert isinstance(transfer, TransferToOperator)
    assert transfer.action_id == f"{channel['id']}:1001:6"
    assert "an administrator handed it over" in transfer.summary
    assert "Добрый день" in transfer.summary and "order_id=42" in transfer.summary
    record = await MongoChatStore(admin.db).load(seeded.key)
    assert record is not None
    assert (record.version, record.state, record.out_seq, record.transfer_seq, record.pending) == (
        seeded.version + 1,
        seeded.state,
        6,
        6,
        [],
    )
    assert record.bot_label_id == admin.sandbox.bot_label_id
    # Already with an operator: nothing changes, nothing is sent.
    assert (await admin.call("POST", f"{path}/transfer"))[1]["owner"] == "operator"
    assert (await MongoChatStore(admin.db).load(seeded.key)).version == seeded.version + 1  # type: ignore[union-attr]
    assert await outbound_messages(admin, seeded.key) == []

    status, resumed = await admin.call("POST", f"{path}/resume")
    assert (status, resumed["owner"], resumed["slot"], resumed["variables"]) == (200, "bot", None, {})
    assert resumed["transcript"][-1]["text"] == "[handed back to the bot by hand]"
    record = await MongoChatStore(admin.db).load(seeded.key)
    assert record is not None
    assert (record.owner, record.state, record.out_seq, record.transfer_seq, record.version) == (
        "bot",
        {},
        6,
        0,
        seeded.version + 2,
    )
    assert (await admin.call("POST", f"{API}/channels/{channel['id']}/chats/9/resume"))[0] == 404
    assert (await admin.call("POST", f"{API}/channels/{channel['id']}/chats/9/transfer"))[0] == 404


async def test_a_hand_transfer_without_rabbitmq_changes_nothing(admin: Admin, settings: Settings) -> None:
    await admin.agent()
    channel = await admin.channel()
    seeded = await seed_chat(admin, channel["id"], "1001")
    down = msgspec.structs.replace(settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    ops = Management(admin.db, SecretBox(settings.secret_key), down, broker=BrokerLink(down, name="down"))
    async with TestClient(TestServer(build_app(ops, token=TOKEN))) as http:
        async with http.post(
            f"{API}/channels/{channel['id']}/chats/1001/transfer",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            status, answer = response.status, await response.json()
        assert (status, error_of(answer)[0]) == (503, "unavailable")
        async with http.get(f"{API}/dead-letters", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert (response.status, (await response.json())["error"]) == (503, "unavailable")
    record = await MongoChatStore(admin.db).load(seeded.key)
    assert record is not None and (record.owner, record.version) == ("bot", seeded.version)


async def test_a_hand_transfer_retries_when_dialog_writes_first(admin: Admin, broker: Any) -> None:
    await admin.agent()
    channel = await admin.channel()
    seeded = await seed_chat(admin, channel["id"], "1001")
    store = admin.ops.context.chats
    real_commit = store.commit
    raced = []

    async def commit_after_a_turn(record: ChatRecord, expected_version: int) -> bool:
        if not raced:
            # A dialog turn lands between our read and our write.
            turn = msgspec.structs.replace(seeded, version=seeded.version + 1, out_seq=seeded.out_seq + 2)
            assert await real_commit(turn, seeded.version)
            raced.append(turn)
        return await real_commit(record, expected_version)

    store.commit = commit_after_a_turn  # type: ignore[method-assign]
    status, answer = await admin.call("POST", f"{API}/channels/{channel['id']}/chats/1001/transfer")
    assert (status, answer["owner"]) == (200, "operator")
    record = await MongoChatStore(admin.db).load(seeded.key)
    assert record is not None
    # The turn's write survived, and the transfer was applied on top of it, numbered after it.
    assert (record.owner, record.out_seq, record.version) == (
        "operator",
        seeded.out_seq + 3,
        seeded.version + 2,
    )
    assert [a.seq for a in await outbound_messages(admin, seeded.key)] == [5, seeded.out_seq + 3]


async def test_dead_letter_replay_needs_ids_or_all(admin: Admin) -> None:
    status, answer = await admin.call("POST", f"{API}/dead-letters/replay", {"ids": ["a"], "all": True})
    assert (status, error_of(answer)[0]) == (422, "invalid")
    status, answer = await admin.call("POST", f"{API}/dead-letters/replay", {})
    assert (status, error_of(answer)[0]) == (422, "invalid")
