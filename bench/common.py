"""What the benchmarks share: the machine's description, a MongoDB-protocol server, child processes
(the testing kit's), and settings isolated per run. Benchmarks are scripts, not tests."""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from omnibot.shared.crypto import generate_key
from omnibot.shared.devmongo import throwaway_server
from omnibot.shared.settings import Settings
from omnibot.testkit.processes import ChildProcess

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


@contextlib.contextmanager
def mongo() -> Iterator[str]:
    """MONGODB_URL, or a throwaway in-memory SecantusDB process."""
    if os.environ.get("MONGODB_URL"):
        yield os.environ["MONGODB_URL"]
        return
    with throwaway_server() as url:
        yield url


def spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> ChildProcess:
    """A child process of the benchmark, in a session of its own, ended when the benchmark ends."""
    return ChildProcess(name, argv, log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log", env=env, own_session=True)


async def started(process: ChildProcess, limit_s: float = 60) -> None:
    """Start a process that says `ready` on stdout once it works, and wait for that."""
    process.start(stdout_lines=True)
    await process.wait_line("ready", limit_s)


def bench_settings(mongo_url: str, **overrides: object) -> Settings:
    run = uuid.uuid4().hex[:8]
    fields: dict[str, object] = {
        "amqp_url": os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        "amqp_namespace": f"bench-{run}",
        "mongodb_url": mongo_url,
        "mongodb_db": f"bench_{run}",
        "secret_key": generate_key(),
        "omnidesk_allow_http": True,
        "log_level": "WARNING",
        "data_dir": tempfile.mkdtemp(prefix="omnibot-bench-"),
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]
