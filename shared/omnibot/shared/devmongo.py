"""Development only: a local MongoDB-protocol server when no MONGODB_URL is given.

Real MongoDB cannot be installed on the development machines (see ../shared/docs/environment.md),
so development and tests use SecantusDB, a GPL-2.0 server kept as a separate process and a dev
dependency only. One server per data dir is shared by every local process (the services and the
command line): its address is kept in `<data_dir>/mongo.json`, and whoever finds none starts it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from omnibot.shared.errors import OmnibotError


class DevMongoError(OmnibotError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _server_command() -> list[str]:
    exe = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    if not Path(exe).exists():
        raise DevMongoError(
            "MONGODB_URL is not set and the development MongoDB-protocol server (secantusdb) is not "
            "installed: run `make install`, or set MONGODB_URL to a MongoDB server"
        )
    return [exe]


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    # The database files hold chats and encrypted secrets: only this user may read them.
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    with (data_dir / "mongo.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start_server(storage: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start a server process (detached from our process group so Ctrl-C does not kill it)."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(  # noqa: S603 - fixed executable, arguments are ours
            [*_server_command(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_up(port: int, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _answers(port):
            return
        if process is not None and process.poll() is not None:
            raise DevMongoError(f"the local MongoDB-protocol server exited with {process.returncode}")
        time.sleep(0.1)
    raise DevMongoError(
        f"the local MongoDB-protocol server did not answer on port {port} in {timeout_s:.0f}s"
    )


def ensure_dev_mongo(data_dir: str) -> str:
    """Return the URL of the data dir's local server, starting it if it is not running."""
    root = Path(data_dir).resolve()
    state_file = root / "mongo.json"
    with _locked(root):
        if state_file.exists():
            state = json.loads(state_file.read_text())
            if _answers(int(state["port"])):
                return f"mongodb://127.0.0.1:{state['port']}"
        port = free_port()
        storage = root / "mongo-data"
        storage.mkdir(mode=0o700, parents=True, exist_ok=True)
        storage.chmod(0o700)
        process = start_server(str(storage), port, root / "mongo.log")
        wait_until_up(port, process)
        state_file.write_text(json.dumps({"port": port, "pid": process.pid}))
        return f"mongodb://127.0.0.1:{port}"


def stop_dev_mongo(data_dir: str) -> bool:
    state_file = Path(data_dir).resolve() / "mongo.json"
    if not state_file.exists():
        return False
    state = json.loads(state_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(state["pid"]), signal.SIGTERM)
    state_file.unlink()
    return True


@contextlib.contextmanager
def throwaway_server(storage: str = ":memory:") -> Iterator[str]:
    """A local server for the length of a block (tests, benchmarks); yields its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="omnibot-mongo-") as tmp:
        process = start_server(storage, port, Path(tmp) / "server.log")
        try:
            wait_until_up(port, process)
            yield f"mongodb://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
