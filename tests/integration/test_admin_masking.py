"""API keys never leave omnibot in full: not in an API answer, an error, a log line or the command's
output. Every operation that handles a key runs here, including the failing ones, and everything
they produced is searched for the key.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from omnibot.admin.service import serve_admin
from omnibot.ingress.service import serve_ingress
from omnibot.launcher import cli
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import running_sandbox
from omnibot.testkit.services import ServiceTask
from tests.harness import FIXTURES
from tests.integration.test_admin_cli import use_settings

TOKEN = "masking-admin-token-0123456789abcdef"


@pytest.fixture
def keys(unique: str) -> tuple[str, str]:
    # Distinctive enough that any appearance is a leak, not a coincidence.
    return f"k-LEAK{unique}CANARY-live", f"k-WRONG{unique}CANARY-typo"


@pytest.fixture
async def world(
    settings: Settings, broker: Any, db: Any, keys: tuple[str, str]
) -> AsyncIterator[tuple[Settings, SandboxState, str]]:
    settings = msgspec.structs.replace(settings, admin_token=TOKEN, admin_port=free_port())
    async with running_sandbox(free_port(), SandboxState(api_key=keys[0])) as (state, url):
        services = [
            ServiceTask("ingress", serve_ingress, settings),
            ServiceTask("admin", serve_admin, settings),
        ]
        for service in services:
            await service.wait_ready()
        yield settings, state, url
        for service in reversed(services):
            await service.stop()


async def test_no_api_key_in_any_answer_log_line_error_or_output(
    world: tuple[Settings, SandboxState, str],
    db: Any,
    keys: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings, state, url = world
    key, wrong = keys
    llm_key = key.replace("LEAK", "LLMLEAK")
    answers: list[str] = []
    api = f"http://127.0.0.1:{settings.admin_port}/api/v1"

    async def call(
        session: aiohttp.ClientSession, method: str, path: str, body: Any = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
        if isinstance(body, bytes):
            kwargs["data"], kwargs["headers"]["Content-Type"] = body, "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with session.request(method, api + path, **kwargs) as response:
            text = await response.text()
        answers.append(text)
        return response.status, json.loads(text)

    channel = {"domain": url, "email": state.bot_email, "agent": "pipeline-demo"}
    async with aiohttp.ClientSession() as session:
        agent = (FIXTURES / "agents" / "pipeline-demo.json").read_bytes()
        assert (await call(session, "POST", "/agents?publish=true", agent))[0] == 201
        # Refused with the key in the body: the error names the field, never the value.
        assert (await call(session, "POST", "/channels", {**channel, "api_key": key, "email": "x"}))[0] == 422
        assert (await call(session, "POST", "/channels", {**channel, "api_key": [key]}))[0] == 422
        assert (await call(session, "POST", "/channels", {**channel, "api_key": key, "activate": key}))[
            0
        ] == 422
        # A key Omnidesk refuses: the failed check says so without the key.
        status, bad = await call(
            session, "POST", "/channels", {**channel, "api_key": wrong, "activate": True}
        )
        assert (status, bad["active"]) == (201, False)
        status, good = await call(session, "POST", "/channels", {**channel, "api_key": key, "activate": True})
        assert (status, good["active"]) == (201, True), good
        cid = good["id"]
        for method, path, body in (
            ("GET", f"/channels/{cid}", None),
            ("GET", "/channels", None),
            ("PATCH", f"/channels/{cid}", {"api_key": wrong}),
            ("PATCH", f"/channels/{cid}", {"api_key": key, "title": "Same key"}),
            # The language model's key: saved, refused (with a space in it), shown as set only.
            ("PATCH", f"/channels/{cid}", {"llm_base_url": "https://llm.example/v1", "llm_api_key": llm_key}),
            ("PATCH", f"/channels/{cid}", {"llm_api_key": f"{llm_key} {llm_key}", "title": ""}),
            ("GET", f"/channels/{cid}", None),
            ("POST", f"/channels/{bad['id']}/activate", None),
            ("POST", f"/channels/{cid}/rotate-secret", None),
            ("POST", "/secrets/rotate", None),
            ("POST", f"/channels/{cid}/deactivate", None),
        ):
            await call(session, method, path, body)

    use_settings(monkeypatch, settings)
    monkeypatch.setattr(cli, "configure_logging", lambda *a, **k: None)

    async def omnibot(*argv: str, stdin: str = "") -> int:
        def run() -> int:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
            try:
                cli.main(list(argv))
            except SystemExit as exc:
                return int(exc.code or 0)
            return 0

        return await asyncio.to_thread(run)

    create = ["channel", "create", "--domain", url, "--email", state.bot_email, "--agent", "pipeline-demo"]
    assert await omnibot(*create, "--api-key", "-", "--activate", stdin=key + "\n") == 0
    latest = str(cid + 1)
    assert await omnibot(*create, "--api-key", key, "--email", "not-an-email") == 1
    assert await omnibot("channel", "activate", str(cid)) == 1  # the new channel uses the account
    assert await omnibot("channel", "update", latest, "--api-key", "-", stdin=wrong + "\n") == 1
    assert await omnibot("channel", "update", latest, "--api-key", key, "--title", "CLI") == 0
    assert await omnibot("channel", "update", latest, "--llm-api-key-stdin", stdin=llm_key + "\n") == 0
    for argv in (["channel", "list"], ["--json", "channel", "list"], ["channel", "show", latest]):
        assert await omnibot(*argv) == 0
    assert await omnibot("--json", "secrets", "rotate") == 0

    out, err = capsys.readouterr()
    assert answers and out
    assert "POST /api/v1/channels 422" in caplog.text  # the admin service's own lines are in there
    assert '"llm_api_key_set":true' in "".join(answers)
    audit = await db.audit_log.find({}, {"_id": 0}).to_list()
    assert audit  # the API's changes are in the audit log, without a key
    for secret in (key, wrong, llm_key):
        for name, text in (
            ("API answers", "\n".join(answers)),
            ("logs", caplog.text),
            ("stdout", out),
            ("stderr", err),
            ("audit log", json.dumps(audit)),
        ):
            assert secret not in text, f"an API key appears in {name}"
            # Not a recognisable piece of it either (the mask keeps 4 + 2 characters).
            assert secret[2:-2] not in text, f"most of an API key appears in {name}"
    # The masked form is what people see.
    assert f"{key[:4]}…{key[-2:]}" in out
