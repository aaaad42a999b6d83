"""The `omnibot` command as a person or a script uses it: real MongoDB, ingress, RabbitMQ, sandbox.

The command runs in a worker thread (it has its own event loop, as in a shell) while this test's
loop serves ingress and the sandbox; its output is captured and its exit code checked.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from omnibot.ingress.service import serve_ingress
from omnibot.launcher import cli
from omnibot.sandbox.state import SandboxState
from omnibot.shared.channels import Channel, MongoChannelStore
from omnibot.shared.chats import ChatRecord, MongoChatStore, TranscriptLine
from omnibot.shared.crypto import SecretBox, generate_key
from omnibot.shared.settings import Settings, env_name
from omnibot.shared.topology import Topology
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ServiceProcess, child_env
from omnibot.testkit.services import ServiceTask
from tests.harness import FIXTURES, ROOT
from tests.integration.test_admin_service import bury, queued

AGENT = str(FIXTURES / "agents" / "pipeline-demo.json")
Omnibot = Callable[..., Coroutine[Any, Any, tuple[int, str, str]]]


def use_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for field in Settings.__struct_fields__:
        value = getattr(settings, field)
        monkeypatch.setenv(env_name(field), str(value).lower() if isinstance(value, bool) else str(value))


@pytest.fixture
def omnibot(
    settings: Settings, db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Omnibot:
    use_settings(monkeypatch, settings)
    # The command configures logging for a terminal; here the test's capture must stay in place.
    monkeypatch.setattr(cli, "configure_logging", lambda *a, **k: None)

    async def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        def call() -> int:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
            try:
                cli.main(list(argv))
            except SystemExit as exc:
                return int(exc.code or 0)
            raise AssertionError("main() must exit")

        code = await asyncio.to_thread(call)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
async def ingress(settings: Settings, broker: Any, db: Any) -> AsyncIterator[None]:
    service = ServiceTask("ingress", serve_ingress, settings)
    await service.wait_ready()
    yield
    await service.stop()


def field(out: str, name: str) -> str:
    """The value of `name` in the readable key/value output."""
    for line in out.splitlines():
        key, _, value = line.partition("  ")
        if key == name:
            return value.strip()
    raise AssertionError(f"{name} not in {out!r}")


def channel_args(sandbox: tuple[SandboxState, str], *extra: str) -> list[str]:
    state, url = sandbox
    return [
        "channel",
        "create",
        "--title",
        "Support",
        "--domain",
        url,
        "--api-key",
        state.api_key,
        "--email",
        state.bot_email,
        "--agent",
        "pipeline-demo",
        *extra,
    ]


async def test_agent_commands(omnibot: Omnibot, sandbox: tuple[SandboxState, str], tmp_path: Path) -> None:
    code, out, _ = await omnibot("agent", "import", AGENT)
    assert code == 0
    assert (field(out, "name"), field(out, "published")) == ("pipeline-demo", "no")
    code, out, _ = await omnibot("--json", "agent", "import", AGENT, "--publish")
    assert (code, json.loads(out)) == (
        0,
        {"name": "pipeline-demo", "version": 2, "published": True, "warnings": []},
    )

    code, out, _ = await omnibot("agent", "list")
    assert code == 0
    assert out.splitlines() == [
        "name           latest_version  published_version",
        "pipeline-demo  2               2",
    ]
    code, out, _ = await omnibot("agent", "versions", "pipeline-demo", "--json")
    page = json.loads(out)
    assert [(v["version"], v["published"]) for v in page["items"]] == [(1, False), (2, True)]
    assert (await omnibot("agent", "publish", "pipeline-demo", "--version", "1"))[0] == 0
    assert (await omnibot("--json", "agent", "list"))[1].count('"published_version": 1') == 1

    code, exported, _ = await omnibot("agent", "export", "pipeline-demo", "--version", "1")
    assert code == 0
    (tmp_path / "exported.json").write_text(exported)
    code, out, _ = await omnibot("agent", "validate", str(tmp_path / "exported.json"))
    assert (code, field(out, "valid")) == (0, "yes")

    broken = json.loads(exported)
    broken["start"] = "missing-slot"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    for command in ("validate", "import"):
        code, _, err = await omnibot("agent", command, str(tmp_path / "broken.json"))
        assert code == 1
        assert "refused (agent_invalid)" in err and "missing-slot" in err

    code, _, err = await omnibot("agent", "publish", "ghost")
    assert (code, "agent ghost does not exist" in err) == (1, True)

    assert (await omnibot(*channel_args(sandbox)))[0] == 0
    code, _, err = await omnibot("agent", "delete", "pipeline-demo")
    assert code == 1
    assert "refused (agent_in_use)" in err and "channel 1 (Support) uses agent pipeline-demo" in err
    assert (await omnibot("channel", "delete", "1"))[0] == 0
    code, out, _ = await omnibot("--json", "agent", "delete", "pipeline-demo")
    assert (code, json.loads(out)) == (0, {"name": "pipeline-demo", "deleted": True, "versions": 2})
    assert (await omnibot("agent", "list"))[1].strip() == "(none)"


async def test_channel_commands(
    omnibot: Omnibot, ingress: None, sandbox: tuple[SandboxState, str], settings: Settings
) -> None:
    assert (await omnibot("agent", "import", AGENT, "--publish"))[0] == 0
    state, url = sandbox

    # CREATE: inactive, with its webhook URL; the API key read from stdin.
    args = channel_args(sandbox)
    args[args.index(state.api_key)] = "-"
    code, out, _ = await omnibot("--json", *args, stdin=state.api_key + "\n")
    created = json.loads(out)
    assert (code, created["active"], created["api_key"]) == (
        0,
        False,
        f"{state.api_key[:4]}…{state.api_key[-2:]}",
    )
    assert created["webhook_url"].startswith(f"{settings.public_base_url}/webhooks/omnidesk/1/")

    # CREATE & ACTIVATE: the four checks pass (channel 1 is not active, so no clash).
    code, out, _ = await omnibot(*channel_args(sandbox, "--activate"))
    assert (code, field(out, "active")) == (0, "yes")
    assert "  passed  agent: agent pipeline-demo version 1 is published" in out
    assert out.count("  passed  ") == 4
    # A failing check: the channel stays inactive, exit 1, the reason printed.
    code, out, _ = await omnibot("channel", "activate", "1")
    assert (code, field(out, "active")) == (1, "no")
    assert "  FAILED  unique: channel 2 already uses this domain and e-mail" in out
    assert (await omnibot("channel", "deactivate", "2"))[0] == 0
    code, out, _ = await omnibot("channel", "activate", "1")
    assert (code, field(out, "active"), out.count("  passed  ")) == (0, "yes", 4)

    code, out, _ = await omnibot("channel", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "title", "domain", "email", "agent", "active"]
    assert lines[1].split() == ["1", "Support", url, state.bot_email, "pipeline-demo", "yes"]
    assert lines[2].split()[-1] == "no"
    code, out, _ = await omnibot("channel", "list", "--limit", "1", "--json")
    assert (json.loads(out)["next_offset"], len(json.loads(out)["items"])) == (1, 1)

    code, out, _ = await omnibot("channel", "update", "1", "--title", "Renamed", "--no-bot-label")
    assert (code, field(out, "title"), field(out, "bot_label_id")) == (0, "Renamed", "-")
    code, _, err = await omnibot("channel", "update", "1", "--api-key", "-", stdin="wrong-key-4242\n")
    assert code == 1
    assert "refused (checks_failed)" in err and "omnidesk: Omnidesk refused the credentials" in err
    code, _, err = await omnibot("channel", "update", "1", "--email", "nope")
    assert (code, "email: must be an e-mail address" in err) == (1, True)

    code, out, _ = await omnibot("--json", "channel", "rotate-secret", "1")
    rotated = json.loads(out)
    assert rotated["webhook_url"] != created["webhook_url"]
    code, out, _ = await omnibot("--json", "channel", "show", "1")
    assert json.loads(out)["webhook_url"] == rotated["webhook_url"]
    async with aiohttp.ClientSession() as session:
        for webhook, status in ((created["webhook_url"], 404), (rotated["webhook_url"], 200)):
            async with session.get(webhook) as response:
                assert response.status == status

    assert (await omnibot("channel", "delete", "1"))[0] == 0
    code, _, err = await omnibot("channel", "show", "1")
    assert (code, err.strip()) == (1, "omnibot: refused (not_found):\n  - channel 1 does not exist")


async def test_channel_language_model_commands(
    omnibot: Omnibot, sandbox: tuple[SandboxState, str], settings: Settings, db: Any
) -> None:
    """A channel's own language model: the key only from stdin (after the Omnidesk key), never shown."""
    assert (await omnibot("agent", "import", AGENT, "--publish"))[0] == 0
    state, _ = sandbox
    key, newer = "sk-CLI-llm-key-31337", "sk-CLI-newer-key-2718"
    args = channel_args(sandbox, "--llm-base-url", "https://llm.example/v1", "--llm-model", "gpt-x")
    args[args.index(state.api_key)] = "-"
    code, out, err = await omnibot(*args, "--llm-api-key-stdin", stdin=f"{state.api_key}\n{key}\n")
    assert code == 0, err
    assert (field(out, "llm_base_url"), field(out, "llm_model"), field(out, "llm_api_key_set")) == (
        "https://llm.example/v1",
        "gpt-x",
        "yes",
    )
    box = SecretBox(settings.secret_key)

    async def stored() -> Channel:
        channel = await MongoChannelStore(db).get(1)
        assert channel is not None
        return channel

    channel = await stored()
    assert (box.decrypt(channel.api_key_enc), box.decrypt(channel.llm_api_key_enc)) == (state.api_key, key)

    code, out, _ = await omnibot("channel", "update", "1", "--llm-api-key-stdin", stdin=newer + "\n")
    assert (code, field(out, "llm_api_key_set")) == (0, "yes")
    assert box.decrypt((await stored()).llm_api_key_enc) == newer
    code, _, err = await omnibot("channel", "update", "1", "--llm-api-key-stdin", stdin="\n")
    assert (code, "standard input gave no key" in err) == (2, True)
    code, _, err = await omnibot("channel", "update", "1", "--llm-base-url", "https://me:pw@llm.example")
    assert (code, "llm_base_url: must not contain credentials" in err) == (1, True)
    # Not a plain argument: a key there would be in the shell history and the process list.
    assert (await omnibot("channel", "update", "1", "--llm-api-key", newer))[0] == 2
    code, out, _ = await omnibot(
        "--json", "channel", "update", "1", "--llm-base-url", "", "--llm-model", "", "--no-llm-api-key"
    )
    cleared = json.loads(out)
    assert (code, cleared["llm_base_url"], cleared["llm_model"], cleared["llm_api_key_set"]) == (
        0,
        None,
        None,
        False,
    )
    assert (await stored()).llm_api_key_enc == ""
    code, out, err = await omnibot("--json", "channel", "show", "1")
    for secret in (key, newer):
        assert secret not in out + err


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("--domain", "http://acme.omnidesk.ru/path"), "domain: must be the account address only"),
        (("--domain", "https://user:pw@acme.omnidesk.ru"), "domain: must not contain credentials"),
        (("--email", "bot"), "email: must be an e-mail address"),
        (("--api-key", " "), "api_key: must not be empty"),
        (("--agent", "ghost"), "agent: ghost does not exist"),
        (("--bot-label-id", "-3"), "bot_label_id: must be a positive id"),
    ],
)
async def test_channel_create_names_each_invalid_field(
    omnibot: Omnibot, sandbox: tuple[SandboxState, str], change: tuple[str, str], problem: str
) -> None:
    assert (await omnibot("agent", "import", AGENT))[0] == 0
    args = channel_args(sandbox)
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += list(change)
    code, out, err = await omnibot(*args)
    assert code == 1
    assert err.startswith("omnibot: refused (invalid):\n")
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and problem in problems[0]
    assert not out
    assert (await omnibot("--json", "channel", "list"))[1].count('"id"') == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["channel", "create", "--domain", "https://a.omnidesk.ru"],
        ["channel", "show", "one"],
        ["channel", "teleport", "1"],
        ["dlq", "replay"],
        ["dlq", "replay", "--all", "--id", "x"],
        ["chat", "list", "1", "--since", "yesterday"],
        ["chat", "list", "1", "--owner", "robot"],
        ["agent", "list", "--limit", "0"],
        ["agent", "import", "/no/such/file.json"],
        ["run", "everything"],
    ],
)
async def test_usage_errors_exit_2(omnibot: Omnibot, argv: list[str]) -> None:
    code, out, err = await omnibot(*argv)
    assert code == 2
    assert err and not out


async def test_chat_commands(
    omnibot: Omnibot, sandbox: tuple[SandboxState, str], db: Any, broker: Any
) -> None:
    assert (await omnibot("agent", "import", AGENT, "--publish"))[0] == 0
    assert (await omnibot(*channel_args(sandbox)))[0] == 0
    chats = MongoChatStore(db)
    for chat_id, owner in (("100", "bot"), ("200", "operator")):
        record = ChatRecord(
            key=f"1:{chat_id}",
            channel_id=1,
            chat_id=chat_id,
            agent_name="pipeline-demo",
            agent_version=1,
            owner=owner,  # type: ignore[arg-type]
            state={"slot": "menu", "waiting": "reply", "variables": {"order_id": "42"}},
            version=2,
            out_seq=3,
        )
        assert await chats.commit(record, 0)
        await chats.append_transcript(
            [TranscriptLine(chat=record.key, seq=1000, role="customer", text="Привет", at=time.time())]
        )

    code, out, _ = await omnibot("chat", "list", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "chat_id",
        "owner",
        "agent",
        "agent_version",
        "slot",
        "updated_at",
        "last_error",
    ]
    assert sorted(line.split()[0] for line in lines[1:]) == ["100", "200"]
    code, out, _ = await omnibot("--json", "chat", "list", "1", "--owner", "operator")
    assert [c["chat_id"] for c in json.loads(out)["items"]] == ["200"]
    code, out, _ = await omnibot("--json", "chat", "list", "1", "--since", "2999-01-01T00:00:00Z")
    assert json.loads(out)["items"] == []

    code, out, _ = await omnibot("chat", "show", "1", "100")
    assert code == 0
    assert (field(out, "owner"), field(out, "slot"), field(out, "agent_version")) == ("bot", "menu", "1")
    assert 'order_id  "42"' in out
    assert "customer  Привет" in out

    code, out, _ = await omnibot("--json", "chat", "transfer", "1", "100")
    assert (code, json.loads(out)["owner"]) == (0, "operator")
    code, out, _ = await omnibot("--json", "chat", "resume", "1", "100")
    resumed = json.loads(out)
    assert (code, resumed["owner"], resumed["slot"], resumed["variables"]) == (0, "bot", None, {})
    record = await chats.load("1:100")  # type: ignore[assignment]
    assert record is not None and (record.out_seq, record.version) == (4, 4)  # the transfer took seq 4
    code, _, err = await omnibot("chat", "transfer", "1", "999")
    assert (code, "chat 999 of channel 1 does not exist" in err) == (1, True)


async def test_chat_show_prints_no_terminal_escapes_of_the_customer(
    omnibot: Omnibot, sandbox: tuple[SandboxState, str], db: Any
) -> None:
    # What a customer can type: colours, a cursor move and screen clear, a window-title change,
    # a carriage return that would overwrite the line, an 8-bit CSI, a right-to-left override.
    hostile = "\x1b[31mred\x1b[2J\x1b[H\x1b]0;pwned\x07 ok\rforged \x9b6n \u202etxt.exe"
    assert (await omnibot("agent", "import", AGENT, "--publish"))[0] == 0
    assert (await omnibot(*channel_args(sandbox)))[0] == 0
    chats = MongoChatStore(db)
    record = ChatRecord(
        key="1:100",
        channel_id=1,
        chat_id="100",
        agent_name="pipeline-demo",
        agent_version=1,
        state={"slot": "menu", "waiting": "reply", "variables": {"note\x1b[8m": hostile}},
        version=1,
        last_error=hostile,
    )
    assert await chats.commit(record, 0)
    await chats.append_transcript(
        [TranscriptLine(chat="1:100", seq=1000, role="customer", text=f"line one\n{hostile}", at=time.time())]
    )
    for argv in (("chat", "show", "1", "100"), ("--json", "chat", "show", "1", "100"), ("chat", "list", "1")):
        code, out, _ = await omnibot(*argv)
        assert code == 0
        for unsafe in ("\x1b", "\x07", "\r", "\x9b", "\u202e"):
            assert unsafe not in out, (argv, unsafe)
    code, out, _ = await omnibot("chat", "show", "1", "100")
    assert "\\x1b[31mred" in out and "\\x9b6n" in out  # shown, escaped
    assert "line one\n" in out  # the customer's own line breaks are kept
    code, out, _ = await omnibot("--json", "chat", "show", "1", "100")
    assert json.loads(out)["transcript"][0]["text"] == f"line one\n{hostile}"  # JSON stays exact


async def test_channel_ids_are_spelt_one_way(omnibot: Omnibot, sandbox: tuple[SandboxState, str]) -> None:
    assert (await omnibot("agent", "import", AGENT, "--publish"))[0] == 0
    assert (await omnibot(*channel_args(sandbox)))[0] == 0
    for spelt in ("01", "１", "١", "+1"):
        code, _, err = await omnibot("channel", "delete", spelt)
        assert code == 2 and "ASCII digits" in err, spelt
    assert (await omnibot("channel", "show", "1"))[0] == 0


async def test_dlq_commands(omnibot: Omnibot, settings: Settings, broker: Any) -> None:
    await bury(broker, settings, [("outbound", "o-1", 0), ("inbound", "i-1", 1), ("inbound", "i-2", 1)])
    code, out, _ = await omnibot("dlq", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "id",
        "stage",
        "channel_id",
        "chat_id",
        "kind",
        "attempts",
        "dead_at",
        "error",
    ]
    assert sorted(line.split()[0] for line in lines[1:]) == ["i-1", "i-2", "o-1"]
    code, out, _ = await omnibot("--json", "dlq", "list", "--stage", "inbound")
    assert sorted(d["id"] for d in json.loads(out)["items"]) == ["i-1", "i-2"]

    code, out, _ = await omnibot("dlq", "replay", "--id", "i-2", "gone")
    assert code == 1  # one of them was not there
    assert "inbound  i-2" in out and "not found (no longer dead letters?): gone" in out
    code, out, _ = await omnibot("--json", "dlq", "replay", "--all")
    assert (code, sorted(d["id"] for d in json.loads(out)["replayed"])) == (0, ["i-1", "o-1"])
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions, settings.amqp_queue_type)
    assert sorted(m.message_id or "" for m in await queued(broker, topology.inbound.partition_queue(1))) == [
        "i-1",
        "i-2",
    ]
    assert (await omnibot("dlq", "list"))[1].strip() == "(none)"


async def test_dlq_commands_without_rabbitmq(
    omnibot: Omnibot, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:s3cret@127.0.0.1:{free_port()}/")
    code, _, err = await omnibot("dlq", "list")
    assert code == 1
    assert "refused (unavailable)" in err and "RabbitMQ did not answer at AMQP_URL" in err
    assert "s3cret" not in err


async def test_secrets_rotate_and_a_wrong_secret_key(
    omnibot: Omnibot, sandbox: tuple[SandboxState, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await omnibot("agent", "import", AGENT))[0] == 0
    assert (await omnibot(*channel_args(sandbox)))[0] == 0
    new = generate_key()
    monkeypatch.setenv("SECRET_KEY", new)
    code, out, err = await omnibot("channel", "list")
    assert (code, out) == (2, "")
    assert err.startswith(
        "omnibot: configuration error: SECRET_KEY cannot decrypt the secrets stored for channel 1"
    )
    assert new not in err and settings.secret_key not in err

    monkeypatch.setenv("SECRET_KEY", f"{new},{settings.secret_key}")
    code, out, _ = await omnibot("--json", "secrets", "rotate")
    assert (code, json.loads(out)) == (0, {"channels": 1})
    monkeypatch.setenv("SECRET_KEY", new)
    assert (await omnibot("channel", "show", "1"))[0] == 0


def test_run_admin_as_a_process(settings: Settings, db: Any, tmp_path: Path) -> None:
    """`omnibot run admin`: a development token file, the API on ADMIN_PORT, a clean stop."""
    settings = msgspec.structs.replace(settings, admin_port=free_port(), admin_token="")
    process = ServiceProcess("admin", settings, tmp_path)
    try:
        asyncio.run(process.wait_log("admin API listening"))
        token = (Path(settings.data_dir) / "dev-admin-token").read_text().strip()
        log_text = process.log_path.read_text()
        assert "dev-admin-token" in log_text and token not in log_text

        async def probe() -> tuple[int, int]:
            base = f"http://127.0.0.1:{settings.admin_port}"
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base}/healthz") as health,
                session.get(
                    f"{base}/api/v1/channels", headers={"Authorization": f"Bearer {token}"}
                ) as channels,
            ):
                return health.status, channels.status

        assert asyncio.run(probe()) == (200, 200)
    finally:
        code = process.terminate()
    assert code == 0


def test_run_admin_with_a_wrong_secret_key_exits_2(settings: Settings, db: Any, tmp_path: Path) -> None:
    env = child_env(settings)
    imported = subprocess.run(
        [sys.executable, "-m", "omnibot.launcher", "agent", "import", AGENT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnibot.launcher",
            "channel",
            "create",
            "--domain",
            "http://127.0.0.1:9",
            "--api-key",
            "k",
            "--email",
            "bot@example.com",
            "--agent",
            "pipeline-demo",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    wrong = {**env, "SECRET_KEY": generate_key(), "ADMIN_PORT": str(free_port())}
    started = subprocess.run(
        [sys.executable, "-m", "omnibot.launcher", "run", "admin"],
        env=wrong,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert (
        b"configuration error: SECRET_KEY cannot decrypt the secrets stored for channel 1" in started.stderr
    )
