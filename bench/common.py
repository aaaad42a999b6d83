"""What the benchmarks share: the machine's description, a MongoDB-protocol server, the sandbox as
its own process, and settings isolated per run. Benchmarks are scripts, not tests."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from omnibot.shared.crypto import generate_key
from omnibot.shared.devmongo import throwaway_server
from omnibot.shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mongo() -> Iterator[str]:
    """MONGODB_URL, or a throwaway in-memory SecantusDB process."""
    if os.environ.get("MONGODB_URL"):
        yield os.environ["MONGODB_URL"]
        return
    with throwaway_server() as url:
        yield url


@contextlib.contextmanager
def sandbox_process(per_minute: int = 10**9) -> Iterator[tuple[str, dict[str, object]]]:
    """The Omnidesk sandbox as a separate process (so it does not share our CPU), unthrottled."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "omnibot.launcher", "sandbox", "--port", str(port)],
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/sandbox", timeout=1) as response:
                    info = json.load(response)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        post(f"{url}/sandbox/rate-limit", {"per_minute": per_minute})
        yield url, info
    finally:
        process.terminate()
        process.wait(10)


def post(url: str, body: object) -> object:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


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
