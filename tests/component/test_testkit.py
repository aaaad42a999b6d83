"""The testing kit itself: child processes (log lines, stdout lines, exit codes), the sandbox and
its control client, and the environment a child reads its settings from."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import aiohttp
import msgspec
import pytest

from omnibot.shared.settings import Settings, load_settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ChildProcess, child_env
from omnibot.testkit.sandbox import SandboxClient, SandboxProcess, SandboxRefused, running_sandbox

SCRIPT = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
print("starting", file=sys.stderr, flush=True)
print("ready", flush=True)
print("event one", flush=True)
time.sleep(30)
"""


def child(tmp_path: Path, **kwargs: object) -> ChildProcess:
    return ChildProcess("child", [sys.executable, "-c", SCRIPT], tmp_path / "child.log", **kwargs)  # type: ignore[arg-type]


async def test_a_child_is_waited_for_by_its_log_and_stopped_by_sigterm(tmp_path: Path) -> None:
    process = child(tmp_path).start()
    await process.wait_log("ready", 10, whole_line=True)

    assert process.running
    assert process.terminate(10) == 3
    assert "starting" in process.log_text()


async def test_a_child_reporting_on_stdout_is_read_line_by_line(tmp_path: Path) -> None:
    process = child(tmp_path, own_session=True).start(stdout_lines=True)
    try:
        await process.wait_line("ready", 10)
        assert await process.next_line() == "event one"
        assert "starting" in process.log_text()  # stderr still goes to the log
    finally:
        process.kill()
    assert not process.running
    assert process.popen is not None
    assert process.popen.returncode == -signal.SIGKILL


async def test_waiting_for_a_child_that_exits_fails_at_once(tmp_path: Path) -> None:
    process = ChildProcess("quitter", [sys.executable, "-c", "print('bye')"], tmp_path / "q.log").start()

    with pytest.raises(RuntimeError, match="exited before logging"):
        await process.wait_log("never", 10)


async def test_a_child_killed_with_sigkill_starts_again_on_the_same_log(tmp_path: Path) -> None:
    process = child(tmp_path).start()
    await process.wait_log("ready", 10, whole_line=True)
    process.kill()
    assert not process.running
    assert process.popen is not None
    assert process.popen.returncode == -signal.SIGKILL

    process.start()
    try:
        # The log is appended to: the second start's line is the second of its kind.
        await process.wait_log("ready", 10, whole_line=True, count=2)
        assert process.log_text().count("starting") == 2
        with pytest.raises(TimeoutError, match="3 times"):
            await process.wait_log("ready", 0.2, whole_line=True, count=3)
    finally:
        process.kill()


def test_settings_go_to_a_child_and_come_back_the_same() -> None:
    settings = Settings(ingress_port=free_port(), omnidesk_allow_http=True, secret_key="k" * 44)

    env = child_env(settings, base={"AMQP_URL": "amqp://elsewhere", "PATH": "/bin"})

    assert env["PATH"] == "/bin" and env["OMNIDESK_ALLOW_HTTP"] == "true"
    # A child logs readable text into its log file, whatever this process does.
    assert load_settings(env) == msgspec.structs.replace(settings, log_format="text")


async def test_the_sandbox_client_drives_the_sandbox() -> None:
    async with running_sandbox() as (state, url), aiohttp.ClientSession() as session:
        control = SandboxClient(session, url)
        assert (await control.info())["api_key"] == state.api_key

        await control.add_seed_rules("http://127.0.0.1:9/hook", require_label=False)
        answer = await control.customer_message("hello", user={"name": "Anna", "email": "a@example.com"})
        case = await control.case(int(answer["case_id"]))

        assert [m["content"] for m in case["messages"]] == ["hello"]
        assert len(state.rules) == 2
        with pytest.raises(SandboxRefused, match="404"):
            await control.case(999_999_999)


async def test_the_sandbox_as_a_process_answers_once_up(tmp_path: Path) -> None:
    process = SandboxProcess(free_port(), tmp_path / "sandbox.log")
    process.start()
    try:
        async with aiohttp.ClientSession() as session:
            info = await process.wait_up(SandboxClient(session, process.url), 30)
        assert info["api_key"] and info["bot_email"]
    finally:
        await process.stop(10)
    assert not process.running
