"""Running omnibot for tests: services in this process or as real OS processes, and the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from pymongo import AsyncMongoClient

from omnibot.admin.operations import Management
from omnibot.sandbox.app import build_app
from omnibot.sandbox.state import SandboxState
from omnibot.shared.crypto import SecretBox
from omnibot.shared.settings import Settings, env_name

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


@contextlib.asynccontextmanager
async def running_sandbox(
    port: int, state: SandboxState | None = None
) -> AsyncIterator[tuple[SandboxState, str]]:
    state = state or SandboxState()
    # Short: a test may leave a deliberately late answer pending (fault injection).
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class ServiceTask:
    """A service running as a task of this process, stoppable like a SIGTERM would."""

    def __init__(self, name: str, serve: Callable[..., Awaitable[None]], settings: Settings, **kwargs: Any):
        self.name = name
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(serve(settings, self._stop, ready=self._ready, **kwargs), name=name)

    async def wait_ready(self, timeout: float = 20) -> None:
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self._task in done:
            ready.cancel()
            self._task.result()  # raises what the service died of
        if ready not in done:
            ready.cancel()
            raise TimeoutError(f"{self.name} not ready in {timeout}s")

    async def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        await asyncio.wait_for(self._task, timeout)


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIBOT_", "AMQP_", "MONGODB_"))}
    for field in Settings.__struct_fields__:
        value = getattr(settings, field)
        env[env_name(field)] = str(value).lower() if isinstance(value, bool) else str(value)
    env["OMNIBOT_HEALTH_DIR"] = settings.data_dir
    env["LOG_FORMAT"] = "text"
    return env


class ServiceProcess:
    """A service as a separate OS process (`omnibot run NAME`), for kill -9 tests."""

    def __init__(self, name: str, settings: Settings, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{os.getpid()}-{id(self)}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omnibot.launcher", "run", name],
            env=settings_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    async def wait_log(self, fragment: str, timeout: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while fragment not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-3000:]}")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{self.name} did not log {fragment!r}")
            await asyncio.sleep(0.05)  # polling a log file: there is no event to wait on

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._log.close()
        return code


async def management(settings: Settings) -> tuple[Management, AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    return Management(client[settings.mongodb_db], SecretBox(settings.secret_key), settings), client


async def setup_channel(
    settings: Settings,
    sandbox: SandboxState,
    sandbox_url: str,
    *,
    agent_file: str = "pipeline-demo.json",
    activate: bool = True,
) -> dict[str, Any]:
    """Import and publish the agent, create (and activate) a channel pointed at the sandbox."""
    ops, client = await management(settings)
    try:
        agent = await ops.agents.import_agent((FIXTURES / "agents" / agent_file).read_bytes(), publish=True)
        created = await ops.channels.create_channel(
            title="Test channel",
            domain=sandbox_url,
            api_key=sandbox.api_key,
            email=sandbox.bot_email,
            agent=agent.name,
            activate=activate,
            bot_label_id=sandbox.bot_label_id,
        )
    finally:
        await client.close()
    channel: dict[str, Any] = msgspec.to_builtins(created)
    if activate:
        assert channel["active"], channel.get("checks")
    return channel


async def add_rules(sandbox_url: str, webhook_url: str, *, require_label: bool = True) -> None:
    """The seed's two rules (incoming and changed cases) posting to the webhook URL.

    `require_label=False` fires them whether or not the case carries the bot label (the seed's
    rules condition on the case status only): omnibot itself must then keep quiet for a human.
    """
    async with aiohttp.ClientSession() as session:
        for on in ("incoming", "changed"):
            rule = {"webhook_url": webhook_url, "on": on, "require_label": require_label}
            async with session.post(f"{sandbox_url}/sandbox/rules", json=rule) as r:
                assert r.status in (200, 201), await r.text()


async def customer_says(
    sandbox_url: str, text: str, *, case_id: int | None = None, name: str = "Anna"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": text,
        "user": {"name": name, "email": f"{name.lower()}@example.com", "phone": "+79990000000"},
    }
    if case_id is not None:
        body["case_id"] = case_id
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sandbox_url}/sandbox/customer-messages", json=body) as r,
    ):
        assert r.status == 200, await r.text()
        result: dict[str, Any] = await r.json()
        return result


def bot_texts(sandbox: SandboxState, case_id: int) -> list[str]:
    return [m.content for m in sandbox.staff_messages(case_id)]


async def wait_bot_messages(
    sandbox: SandboxState, case_id: int, count: int, timeout: float = 10
) -> list[str]:
    def enough(state: SandboxState) -> bool:
        try:
            return len(state.staff_messages(case_id)) >= count
        except KeyError:
            return False

    await sandbox.wait_for(enough, timeout)
    return bot_texts(sandbox, case_id)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10, what: str = "condition"
) -> None:
    """Wait until an async check holds. For state kept outside this process (MongoDB), where there
    is no event to wait on; polls briefly and gives up with a clear message."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout}s")
        await asyncio.sleep(0.05)


async def chat_record(settings: Settings, channel_id: int, case_id: int) -> dict[str, Any] | None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    try:
        return await client[settings.mongodb_db].chats.find_one({"_id": f"{channel_id}:{case_id}"})
    finally:
        await client.close()


async def post_json(url: str, body: Any) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status


async def edit_case_via_api(
    sandbox: SandboxState, sandbox_url: str, case_id: int, fields: dict[str, Any]
) -> None:
    """Change a case through Omnidesk's API (as a person or a rule would), firing the changed rules."""
    auth = aiohttp.encode_basic_auth(sandbox.bot_email, sandbox.api_key)
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{sandbox_url}/api/cases/{case_id}.json", json={"case": fields}, headers={"Authorization": auth}
        ) as response,
    ):
        assert response.status == 200, await response.text()
