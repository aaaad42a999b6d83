"""Child processes: one OS process writing its output to a log file, and `omnibot run NAME` as one.

There is no event to wait on in another process's output, so waiting for a log line polls the file
briefly and fails at once (with the log's tail) if the process exits first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from omnibot.shared.settings import Settings

ROOT = Path(__file__).resolve().parents[4]
POLL_S = 0.05
TAIL_CHARS = 3000


def child_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a child process reads `settings` from: this process's, without any omnibot,
    AMQP or MongoDB variable of its own, plus `settings.to_env()`."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(("OMNIBOT_", "AMQP_", "MONGODB_"))
    }
    env.update(settings.to_env())
    env["OMNIBOT_HEALTH_DIR"] = settings.data_dir
    env["LOG_FORMAT"] = "text"
    return env


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when this process dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ChildProcess:
    """One OS process, stdout and stderr into a log file (appended to across restarts).

    Started with `stdout_lines`, its stdout is read line by line instead (`next_line`, `wait_line`):
    for processes that report on stdout (`ready`, one line per event) while they log to stderr.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        own_session: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        # A session of its own, tied to this process's life: signals to our group (Ctrl-C) do
        # not reach it, and it does not outlive us.
        self._own_session = own_session
        self.popen: subprocess.Popen[bytes] | None = None
        self._lines: asyncio.StreamReader | None = None

    def start(self, *, stdout_lines: bool = False) -> ChildProcess:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(  # noqa: S603 - our own argv
                self.argv,
                env=self.env,
                stdout=subprocess.PIPE if stdout_lines else log,
                stderr=log if stdout_lines else subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=self._own_session,
                preexec_fn=die_with_parent if self._own_session else None,
            )
        return self

    async def next_line(self) -> str | None:
        """The next line the process wrote on stdout (started with `stdout_lines`); None once it
        closed stdout (it exited)."""
        assert self.popen is not None, "start() first"
        assert self.popen.stdout is not None, "start(stdout_lines=True) first"
        if self._lines is None:
            reader = asyncio.StreamReader()
            loop = asyncio.get_running_loop()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self.popen.stdout)
            self._lines = reader
        line = await self._lines.readline()
        return line.decode(errors="replace").rstrip("\n") if line else None

    async def wait_line(self, wanted: str, timeout: float = 60) -> None:
        """Read stdout until the line `wanted`; fail if the process exits or the time runs out first."""
        try:
            async with asyncio.timeout(timeout):
                while (line := await self.next_line()) != wanted:
                    if line is None:
                        raise RuntimeError(f"{self.name} exited before saying {wanted!r}: {self.log_tail()}")
        except TimeoutError:
            said = f"{self.name} did not say {wanted!r} in {timeout}s"
            raise TimeoutError(f"{said}: {self.log_tail()}") from None

    def adopt(self, popen: subprocess.Popen[bytes]) -> None:
        """A process started elsewhere (the MongoDB-protocol server's own helper starts it)."""
        self.popen = popen

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        assert self.popen is not None, "start() first"
        return self.popen.pid

    def kill(self) -> None:
        """SIGKILL: no cleanup, no acknowledgement, no goodbye to the broker or the database."""
        if self.popen is not None and self.running:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the exit; its exit code."""
        assert self.popen is not None, "start() first"
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    async def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time; without blocking the event loop."""
        if self.popen is None or not self.running:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far (0 once it is gone)."""
        return 0.0 if self.popen is None else cpu_seconds(self.popen.pid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = TAIL_CHARS) -> str:
        return self.log_text()[-chars:]

    async def wait_log(
        self, fragment: str, timeout: float = 30, *, whole_line: bool = False, count: int = 1
    ) -> None:
        """Wait until the log holds `fragment` (as a whole line, with `whole_line`) `count` times or
        more; fail at once if the process exits first."""
        deadline = time.monotonic() + timeout
        times = f" {count} times" if count > 1 else ""
        while True:
            text = self.log_text()
            found = text.splitlines().count(fragment) if whole_line else text.count(fragment)
            if found >= count:
                return
            if not self.running:
                raise RuntimeError(
                    f"{self.name} exited before logging {fragment!r}{times}: {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} did not log {fragment!r}{times} in {timeout}s: {self.log_tail()}"
                )
            await asyncio.sleep(POLL_S)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServiceProcess(ChildProcess):
    """A service as a separate OS process (`omnibot run SERVICE`), started at once, for kill -9
    tests. `name` tells replicas of one service apart (default: the service)."""

    def __init__(self, service: str, settings: Settings, log_dir: Path, *, name: str | None = None) -> None:
        name = name or service
        super().__init__(
            name,
            [sys.executable, "-m", "omnibot.launcher", "run", service],
            log_dir / f"{name}-{os.getpid()}-{id(self)}.log",
            env=child_env(settings),
        )
        self.start()
