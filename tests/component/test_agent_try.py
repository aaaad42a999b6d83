"""`omnibot agent try` driven as a person would: in a pseudo-terminal, line by line; and `graph`."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.operations import Management
from omnibot.shared.crypto import SecretBox
from omnibot.shared.settings import Settings
from omnibot.testkit.processes import child_env

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "examples" / "agents" / "support.json"
PROMPT = b"you> "


class Terminal:
    """The command in a pseudo-terminal; `say` types a line and returns what it printed back."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the command
            environ = {**(os.environ if env is None else env), "LOG_LEVEL": "WARNING"}
            os.execve(sys.executable, [sys.executable, "-m", "omnibot.launcher", *args], environ)
        self.first = self._until_prompt()

    def _until_prompt(self, timeout_s: float = 30.0) -> str:
        buffer = b""
        deadline = time.monotonic() + timeout_s
        while not buffer.endswith(PROMPT):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no prompt within {timeout_s}s; got {buffer.decode(errors='replace')!r}"
                )
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the child is gone
                    break
                if not chunk:
                    break
                buffer += chunk
        return buffer.decode().replace("\r\n", "\n")

    def say(self, line: str) -> str:
        os.write(self.fd, line.encode() + b"\n")
        echoed = self._until_prompt()
        # The terminal echoes what was typed: drop that line.
        return echoed.split("\n", 1)[1] if "\n" in echoed else echoed

    def close(self) -> int:
        os.write(self.fd, b"/quit\n")
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


@pytest.fixture
def fixtures(tmp_path: Path) -> Path:
    path = tmp_path / "fixtures.json"
    path.write_text(
        json.dumps(
            {
                "external": [
                    {
                        "method": "GET",
                        "path": "/orders/4711",
                        "status": 200,
                        "body": {"order": {"status": "shipped", "delivery": {"date": "20 января"}}},
                    }
                ],
                "llm": ["Доставка стоит 300 ₽.", {"status": 503}],
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def terminal(fixtures: Path) -> Iterator[Terminal]:
    term = Terminal(
        "agent", "try", str(SUPPORT), "--fixtures", str(fixtures), "--at", "2026-12-01T10:00:00+03:00"
    )
    yield term
    assert term.close() == 0


def test_a_conversation_in_the_terminal(terminal: Terminal) -> None:
    assert "support (start: init)" in terminal.first
    opened = terminal.say("Привет")
    assert "bot Здравствуйте, Гость! Я бот магазина «Ромашка»." in opened
    assert "1. Где мой заказ" in opened
    assert 'set topic = "общий вопрос"' in opened

    chosen = terminal.say("хочу узнать, когда привезут заказ")
    assert "scores menu → Где мой заказ" in chosen
    assert 'set menu_choice = "Где мой заказ"' in chosen
    assert "Напишите номер заказа" in chosen

    found = terminal.say("4711")
    assert "request GET https://shop.example/orders/4711" in found
    assert "response 200" in found
    assert "Заказ 4711 в пути, доставка ожидается 20 января." in found
    assert 'set order_status = "shipped"' in found

    terminal.say("да")
    asked = terminal.say("сколько стоит доставка?")
    assert "scores intent → question (1.00)" in asked
    assert "bot Доставка стоит 300 ₽." in asked
    assert "set ai_answer" in asked

    terminal.say("да")
    failed = terminal.say("есть ли самовывоз")
    assert "model failed: HTTP 503" in failed
    assert "transfer to an operator (slot: operator)" in failed
    assert "the chat is with an operator" in terminal.say("алло")


def test_the_inactivity_timeout_in_the_terminal(terminal: Terminal) -> None:
    terminal.say("Привет")
    early = terminal.say("/wait 600")
    assert "timeout" not in early.split("later", 1)[1]
    timed_out = terminal.say("/wait 300")
    assert "on_timeout runs" in timed_out
    assert "bot Диалог завершён из-за отсутствия ответа." in timed_out
    assert "the session ended" in timed_out


def test_closed_hours_in_the_terminal(fixtures: Path) -> None:
    term = Terminal(
        "agent", "try", str(SUPPORT), "--fixtures", str(fixtures), "--at", "2027-01-01T12:00:00+03:00"
    )
    term.say("Привет")
    answer = term.say("курьер нагрубил")
    assert "scores intent → complaint" in answer
    assert "Сейчас нерабочее время" in answer
    assert term.close() == 0


async def test_try_an_imported_agent_by_its_name(
    settings: Settings, db: AsyncDatabase[dict[str, object]], fixtures: Path
) -> None:
    """NAME reads the published version from MongoDB: the one new chats get, not a newer draft."""
    ops = Management(db, SecretBox(settings.secret_key), settings)
    published = SUPPORT.read_bytes()
    await ops.agents.import_agent(published, publish=True)
    draft = published.replace("Я бот магазина".encode(), "Я черновик бота магазина".encode())
    assert (await ops.agents.import_agent(draft)).version == 2
    term = Terminal(
        "agent",
        "try",
        "support",
        "--fixtures",
        str(fixtures),
        "--at",
        "2026-12-01T10:00:00+03:00",
        env=child_env(settings),
    )
    assert "support (start: init)" in term.first
    assert "version 1 (published)" in term.first
    opened = term.say("Привет")
    assert "bot Здравствуйте, Гость! Я бот магазина «Ромашка»." in opened
    assert "черновик" not in opened
    chosen = term.say("хочу узнать, когда привезут заказ")
    assert "scores menu → Где мой заказ" in chosen
    assert term.close() == 0


def test_try_an_unknown_name(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnibot.launcher", "agent", "try", "no-such-agent"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env=child_env(settings),
    )
    assert done.returncode == 2
    assert "no agent file or agent named 'no-such-agent'" in done.stderr


@pytest.mark.parametrize(("fmt", "start"), [("dot", "digraph"), ("mermaid", "flowchart TD"), ("svg", "<svg")])
def test_graph_command(fmt: str, start: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnibot.launcher", "agent", "graph", str(SUPPORT), "--format", fmt],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(start)
    assert "understand" in done.stdout


def test_try_refuses_a_broken_agent(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps(
            {
                "format": "omnibot/agent@1",
                "name": "b",
                "start": "x",
                "slots": [{"id": "x", "type": "intent", "intents": [], "fallback": "x"}],
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "omnibot.launcher", "agent", "try", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert "`intents` must not be empty" in done.stderr
