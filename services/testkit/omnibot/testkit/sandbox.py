"""The Omnidesk sandbox for a run: served in this process or as its own, and a client of its
control API (`/sandbox/...`: customers writing, rules, faults, outages, the request log)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from omnibot.sandbox.app import build_app
from omnibot.sandbox.state import SandboxState
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ChildProcess


class SandboxRefused(RuntimeError):
    """The sandbox answered a control request with an error status."""


@contextlib.asynccontextmanager
async def running_sandbox(
    port: int | None = None, state: SandboxState | None = None
) -> AsyncIterator[tuple[SandboxState, str]]:
    """The sandbox served by this process: its state (to look at directly) and its url."""
    state = state or SandboxState()
    port = port or free_port()
    # Short: a test may leave a deliberately late answer pending (fault injection).
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class SandboxProcess(ChildProcess):
    """The sandbox as an OS process of its own (`omnibot sandbox`) on `port`."""

    def __init__(
        self, port: int, log_path: Path, *, env: dict[str, str] | None = None, own_session: bool = False
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "omnibot.launcher",
            "sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        super().__init__("sandbox", argv, log_path, env=env, own_session=own_session)
        self.url = f"http://127.0.0.1:{port}"

    async def wait_up(self, control: SandboxClient, limit_s: float = 20) -> dict[str, Any]:
        """Once its control API answers: what `GET /sandbox` says (the account's credentials)."""
        deadline = time.monotonic() + limit_s
        while True:
            try:
                return await control.info()
            except aiohttp.ClientError:
                if not self.running:
                    raise RuntimeError(f"the sandbox exited: {self.log_tail()}") from None
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)  # a process starting up: no event to wait on


@contextlib.asynccontextmanager
async def sandbox_process(
    *, per_minute: int | None = None, log_dir: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The sandbox as a process of its own (so it does not share this one's CPU): its url and
    what `GET /sandbox` says (the account's credentials). `per_minute` sets its rate limit."""
    port = free_port()
    log_path = (log_dir or Path(tempfile.mkdtemp(prefix="omnibot-sandbox-"))) / f"sandbox-{port}.log"
    process = SandboxProcess(port, log_path, env=env, own_session=True)
    process.start()
    try:
        async with aiohttp.ClientSession() as session:
            control = SandboxClient(session, process.url)
            info = await process.wait_up(control)
            if per_minute is not None:
                await control.set_rate_limit(per_minute)
        yield process.url, info
    finally:
        await process.stop(10)


class SandboxClient:
    """The sandbox's `/sandbox` control API, as tests, replay, the benchmark and the chaos suite use it."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        async with self.session.request(method, f"{self.url}{path}", json=body, params=params) as response:
            if response.status >= 300:
                raise SandboxRefused(f"sandbox {method} {path}: {response.status} {await response.text()}")
            return await response.json(content_type=None)

    async def info(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("GET", "/sandbox")
        return answer

    async def reset(self) -> None:
        await self._call("POST", "/sandbox/reset", {})

    async def set_rate_limit(self, per_minute: int) -> None:
        await self._call("POST", "/sandbox/rate-limit", {"per_minute": per_minute})

    async def add_rule(self, webhook_url: str, on: str, *, require_label: bool | None = None) -> None:
        """A rule posting to `webhook_url` when a case comes in (`incoming`) or changes (`changed`)."""
        rule: dict[str, Any] = {"webhook_url": webhook_url, "on": on}
        if require_label is not None:
            rule["require_label"] = require_label
        await self._call("POST", "/sandbox/rules", rule)

    async def add_seed_rules(self, webhook_url: str, *, require_label: bool | None = None) -> None:
        """The seed's two rules: incoming and changed cases run the bot's webhook."""
        for on in ("incoming", "changed"):
            await self.add_rule(webhook_url, on, require_label=require_label)

    async def clear_rules(self) -> None:
        await self._call("DELETE", "/sandbox/rules")

    async def customer_message(
        self,
        text: str,
        *,
        user: Mapping[str, str],
        case_id: int | None = None,
        files: Sequence[tuple[str, bytes]] = (),
    ) -> dict[str, Any]:
        """The customer writes: stored in the case (a new one if None), and the rules fire.
        `files` (name, content) are attached to the message, as the chat's "Attach file" does;
        the answer's `attachments` are their urls."""
        body: dict[str, Any] = {"text": text, "user": dict(user)}
        if case_id is not None:
            body["case_id"] = case_id
        if files:
            body["files"] = [
                {"name": name, "content_base64": base64.b64encode(content).decode()}
                for name, content in files
            ]
        answer: dict[str, Any] = await self._call("POST", "/sandbox/customer-messages", body)
        return answer

    async def operator_reply(self, case_id: int, text: str) -> dict[str, Any]:
        """The case's operator (a staff member, not the bot) writes to the customer, as the
        playground's "Reply as operator" does. No rule fires (the seed's rules wait for the customer)."""
        answer: dict[str, Any] = await self._call(
            "POST", f"/sandbox/cases/{case_id}/operator-messages", {"text": text}
        )
        return answer

    async def wait_replies(self, case_id: int, count: int, timeout_s: float = 20) -> None:
        """Until the case has `count` staff replies (the bot's and operators'), at most `timeout_s`."""
        await self._call(
            "GET",
            f"/sandbox/cases/{case_id}/wait",
            params={"staff_messages": str(count), "timeout": str(timeout_s)},
        )

    async def case(self, case_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("GET", f"/sandbox/cases/{case_id}")
        return answer

    async def requests(self, **query: str) -> list[dict[str, Any]]:
        """The request log (`method`, `path` filter it)."""
        answer: list[dict[str, Any]] = (await self._call("GET", "/sandbox/requests", params=query))[
            "requests"
        ]
        return answer

    async def clear_requests(self) -> None:
        await self._call("DELETE", "/sandbox/requests")

    async def add_fault(self, body: dict[str, Any]) -> None:
        await self._call("POST", "/sandbox/faults", body)

    async def pending_faults(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = (await self._call("GET", "/sandbox/faults"))["faults"]
        return answer

    async def start_outage(self, seconds: float, status: int) -> None:
        await self._call("POST", "/sandbox/outage", {"seconds": seconds, "status": status})

    async def outage(self) -> dict[str, Any] | None:
        answer: dict[str, Any] | None = (await self._call("GET", "/sandbox/outage"))["outage"]
        return answer
