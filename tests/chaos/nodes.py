"""RabbitMQ nodes of the chaos suite's own: started, clustered, hurt and stopped by the suite.

The machine's broker (`rabbit@localhost`, port 5672) is shared by every run on the machine and is
never touched here. Each node of ours gets its own node name, AMQP and distribution ports, data,
log and config directories and `RABBITMQ_CONFIG_FILE` (/etc/rabbitmq/rabbitmq.conf pins the
listener to 5672; see ../shared/docs/environment.md). They share the machine's Erlang cookie, so
they can be joined into a cluster. Every node started is registered in `STARTED`, and
`stop_all_started()` (called by the fixtures' teardown and by pytest_sessionfinish) stops whatever
is still running, so no node outlives its run, whatever failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

from omnibot.testkit.ports import free_port

CTL_TIMEOUT_S = 120.0
STARTED: dict[str, RabbitNode] = {}


class NodeError(AssertionError):
    """A node did not do what was asked of it (start, stop, join)."""


class RabbitNode:
    def __init__(self, base_dir: Path, label: str) -> None:
        self.name = f"chaos-{uuid.uuid4().hex[:8]}-{label}@localhost"
        self.label = label
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = base_dir / label
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
        }

    def _prepare(self) -> None:
        if self.dir.exists():
            return
        self.dir.mkdir(parents=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            # Small: a test node needs no more, and the machine is shared.
            "vm_memory_high_watermark.relative = 0.1\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        (self.dir / "plugins").write_text("[].\n")
        # The server drops to the rabbitmq user: it must own its directories.
        shutil.chown(self.dir.parent, "rabbitmq", "rabbitmq")
        for path in [self.dir, *self.dir.iterdir()]:
            shutil.chown(path, "rabbitmq", "rabbitmq")

    async def ctl(self, *args: str, timeout: float = CTL_TIMEOUT_S, tool: str = "rabbitmqctl") -> str:
        process = await asyncio.create_subprocess_exec(
            tool,
            "-n",
            self.name,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise NodeError(f"{tool} -n {self.name} {' '.join(args)} took over {timeout:.0f}s") from None
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise NodeError(f"{tool} -n {self.name} {' '.join(args)} failed: {text}")
        return text

    async def start(self) -> None:
        """Start the node (again, on its data) and return once it serves."""
        self._prepare()
        STARTED[self.name] = self
        process = await asyncio.create_subprocess_exec(
            "rabbitmq-server",
            "-detached",
            env=self._env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        # `wait` first: right after -detached the node may not even be known to epmd yet.
        await self.ctl("wait", str(self.dir / "pid"), "--timeout", "90")
        await self.ctl("await_startup")
        self.pid = int((self.dir / "pid").read_text().strip())

    async def stop(self) -> None:
        """A clean stop of the whole node."""
        await self.ctl("stop")
        self.pid = None

    def kill(self) -> None:
        """SIGKILL of the node's Erlang VM: no goodbye to its peers or its clients."""
        if self.pid is None:
            raise NodeError(f"{self.name} is not running")
        os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    async def join(self, other: RabbitNode) -> None:
        await self.ctl("stop_app")
        await self.ctl("join_cluster", other.name)
        await self.ctl("start_app")
        await self.ctl("await_startup")

    async def stop_app(self) -> None:
        await self.ctl("stop_app")

    async def start_app(self) -> None:
        await self.ctl("start_app")
        await self.ctl("await_startup")

    async def leaders(self, prefix: str) -> dict[str, str]:
        """queue name → the node leading it, for the quorum queues whose names start with prefix."""
        out = await self.ctl("-q", "list_queues", "name", "leader", "--no-table-headers")
        pairs = (line.split("\t") for line in out.splitlines() if line.startswith(prefix))
        return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def stop_all_started() -> None:
    """Stop every node this run started that may still run (synchronous: for teardown hooks)."""
    for name, node in list(STARTED.items()):
        subprocess.run(
            ["rabbitmqctl", "-n", name, "stop"],
            capture_output=True,
            timeout=CTL_TIMEOUT_S,
            check=False,
        )
        if node.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
        STARTED.pop(name, None)


async def start_cluster(base_dir: Path, count: int) -> list[RabbitNode]:
    """`count` nodes started side by side; with more than one, the others joined to the first."""
    nodes = [RabbitNode(base_dir, chr(ord("a") + i)) for i in range(count)]
    await asyncio.gather(*(node.start() for node in nodes))
    for node in nodes[1:]:
        await node.join(nodes[0])
    return nodes
